"""Real videos -> dataset format v1 (`apb2face prepare`): decode, track the face, measure, crop, cut into clips.

Per input video (one identity per video unless told otherwise), each step in the module named on its right::

    inputs -> one job per video: identity, clip-name prefix, audio source              jobs
    decode at a constant 25 fps (VFR and 30 fps sources resampled by timestamp)        video (data.video)
    audio of the file, or a same-named .wav beside it, or --audio: mono 16 kHz         video (data.audio)
    per frame: detect + track on a downscaled copy (mediapipe face mesh, video mode),  track
      landmarks mapped back to the full-resolution frame; scene-cut score from a 64x36
      thumbnail; raw crop box from the landmarks
    tracks = runs of frames with a face, broken by a missing face, a scene cut or a    track
      face-size/position jump
    crop box smoothed within a track by a zero-phase Gaussian (centre and side         track
      separately, bounded look-ahead, so only `lookahead` full frames are ever held);
      crop cut from the full-resolution frame, padded at borders
    pose (solvePnP vs the canonical face, calibrated), eye aspect ratios, mouth        track (data.face)
      opening per frame
    audio/video offset: mouth opening vs audio RMS cross-correlated over +-max_offset  sync
      frames, tested against circularly shifted audio; corrected only when the peak
      is clear
    clips: tracks cut at pauses in the (corrected) audio, min/max length; with         sync
      split=time, each video's last `test_fraction` of frames is cut off as test clips
    several people in one video (--people): every face tracked, left to right; the     people, track
      speech split into voices (speaker embeddings, k-means, Viterbi); each voice     voices (data.voice)
      given to the face whose mouth follows it best over all its frames (windowed     active_speaker
      correlation, Hungarian; silence = nobody); each face its own identity with
      only the frames where it speaks
    report.json + contact sheet PNG per video (per person), the turns listed           report
    all videos, in worker processes if asked; eyes normalised per identity once every  batch
      video is done; splits and dataset.json

Frames without a face are skipped, never fatal. A file that cannot be prepared fails alone with one line naming it.
"""

from apb2face.data.prepare.batch import finalize_dataset, run_jobs
from apb2face.data.prepare.jobs import (
    REPORTS_DIR,
    SIDECAR_AUDIO_EXTENSIONS,
    VIDEO_EXTENSIONS,
    WORK_DIR,
    PrepareConfig,
    VideoJob,
    VideoResult,
    discover_videos,
    make_jobs,
    read_identity_map,
    safe_name,
    sidecar_audio,
)
from apb2face.data.prepare.people import prepare_people_video
from apb2face.data.prepare.report import summary_table, turns_table
from apb2face.data.prepare.sync import OffsetEstimate, estimate_offset, plan_clips, runs, shift_audio, silence_mask
from apb2face.data.prepare.video import prepare_video

__all__ = [
    "REPORTS_DIR",
    "SIDECAR_AUDIO_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "WORK_DIR",
    "OffsetEstimate",
    "PrepareConfig",
    "VideoJob",
    "VideoResult",
    "discover_videos",
    "estimate_offset",
    "finalize_dataset",
    "make_jobs",
    "plan_clips",
    "prepare_people_video",
    "prepare_video",
    "read_identity_map",
    "run_jobs",
    "runs",
    "safe_name",
    "shift_audio",
    "sidecar_audio",
    "silence_mask",
    "summary_table",
    "turns_table",
]
