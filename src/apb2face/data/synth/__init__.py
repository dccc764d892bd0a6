"""The built-in dataset: distinct synthetic people speaking espeak-ng sentences, with exact ground truth.

One concern per module: `identities` (who each person is), `appearance` (their faces, from public-domain portraits),
`face_render` (the talking, blinking, turning 3D face), `speech` (espeak-ng audio and phoneme timings), `visemes`
(mouth motion from phonemes), `schedules` (head pose and blinks), `sentences` (what they say) and `dataset` (clips
rendered in parallel into the dataset format).
"""

from apb2face.data.synth.appearance import build_identity
from apb2face.data.synth.dataset import FPS, ClipJob, RenderedClip, SynthConfig, contact_sheet, generate, render_clip
from apb2face.data.synth.face_render import Expression, FaceModel
from apb2face.data.synth.identities import IdentitySpec, identity_specs
from apb2face.data.synth.schedules import blink_track, pose_track
from apb2face.data.synth.sentences import SENTENCES, choose_sentences
from apb2face.data.synth.speech import Speech, synthesize
from apb2face.data.synth.visemes import viseme_tracks

__all__ = [
    "FPS",
    "SENTENCES",
    "ClipJob",
    "Expression",
    "FaceModel",
    "IdentitySpec",
    "RenderedClip",
    "Speech",
    "SynthConfig",
    "blink_track",
    "build_identity",
    "choose_sentences",
    "contact_sheet",
    "generate",
    "identity_specs",
    "pose_track",
    "render_clip",
    "synthesize",
    "viseme_tracks",
]
