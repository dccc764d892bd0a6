"""The built-in multi-person talking-face dataset: distinct identities speaking espeak-ng sentences.

Pipeline per clip: sentence -> espeak-ng speech + phoneme onsets (`speech.synthesize`) -> viseme tracks (jaw opening,
lip rounding) with coarticulation (`visemes`) -> independent head-pose and blink schedules (`schedules`: their own
random streams, never looking at the audio) -> `face_render.render` per frame -> `format.DatasetWriter` (+ an MP4 for
people to watch).

Everything is a pure function of (seed, identity index, clip index): the same seed gives byte-identical dataset files.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from apb2face.data.audio import SAMPLE_RATE, num_video_frames
from apb2face.data.synth import face_render, flite
from apb2face.data.synth.appearance import build_identity
from apb2face.data.synth.face_render import Expression, FaceModel
from apb2face.data.synth.identities import IdentitySpec, identity_specs, spec_json
from apb2face.data.synth.schedules import blink_track, pose_track
from apb2face.data.synth.sentences import choose_sentences
from apb2face.data.synth.speech import Speech, synthesize
from apb2face.data.synth.visemes import viseme_tracks

FPS = 25.0
LEAD_IN = 0.3  # seconds of silence before and after each sentence (the mouth rests closed)
TAIL = 0.3


@dataclass(frozen=True)
class ClipJob:
    identity_index: int
    clip_index: int
    sentence: str
    seed: int


@dataclass
class RenderedClip:
    frames: np.ndarray
    audio: np.ndarray
    landmarks: np.ndarray  # (N, 478, 2) in [0, 1]
    pose: np.ndarray
    eyes: np.ndarray
    jaw: np.ndarray
    phonemes: list
    voice: str  # the voice that spoke: an espeak-ng voice name, or "flite:<voice>"


def speech_seed(job: ClipJob) -> int:
    """The seed of the clip's voice noise (breath of some espeak-ng variants): its own stream, like pose and blinks."""
    return int(np.random.default_rng([job.seed, 4, job.identity_index, job.clip_index]).integers(2**31 - 1))


def flite_voice(spec: IdentitySpec) -> tuple[str, float, float]:
    """The identity's voice in Flite: (voice, mean pitch in Hz, duration stretch). Men get rms, awb or kal16 and
    women slt, each in the order of their espeak-ng variant; pitch (espeak's 0-100) and rate (words/min) carry over,
    so the people keep their relative pitch and pace."""
    male = "+m" in spec.voice
    voices = flite.MALE_VOICES if male else flite.FEMALE_VOICES
    variant = int(spec.voice.rsplit("+", 1)[-1][1:] or 0)
    f0 = (80.0 if male else 150.0) + 1.2 * spec.pitch
    return voices[variant % len(voices)], f0, 170.0 / spec.rate


def speak(spec: IdentitySpec, job: ClipJob, tts: str) -> tuple[Speech, str]:
    """One identity's sentence through the chosen engine: the speech and a name of the voice used."""
    if tts == "flite":
        voice, f0, stretch = flite_voice(spec)
        return flite.synthesize(job.sentence, voice, f0, stretch), f"flite:{voice}"
    speech = synthesize(job.sentence, voice=spec.voice, pitch=spec.pitch, rate=spec.rate, seed=speech_seed(job))
    return speech, spec.voice


def render_clip(
    model: FaceModel, spec: IdentitySpec, job: ClipJob, fps: float = FPS, tts: str = "espeak"
) -> RenderedClip:
    """Speak one sentence with one identity's face and voice (`tts`: "espeak" or "flite")."""
    speech, voice = speak(spec, job, tts)
    audio = np.concatenate(
        [np.zeros(int(LEAD_IN * SAMPLE_RATE), np.float32), speech.audio, np.zeros(int(TAIL * SAMPLE_RATE), np.float32)]
    )
    phonemes = [(round(t + LEAD_IN, 4), p) for t, p in speech.phonemes]
    n = num_video_frames(len(audio), fps)
    jaw, rnd = viseme_tracks(phonemes, len(audio) / SAMPLE_RATE, fps, n, spec.articulation)
    pose = pose_track(np.random.default_rng([job.seed, 2, job.identity_index, job.clip_index]), n, fps)
    eyes = blink_track(np.random.default_rng([job.seed, 3, job.identity_index, job.clip_index]), n, fps)
    size = model.size
    frames = np.empty((n, size, size, 3), np.uint8)
    landmarks = np.empty((n, face_render.NUM_MESH, 2), np.float32)
    for i in range(n):
        e = Expression(
            jaw=float(jaw[i]),
            round=float(rnd[i]),
            close_left=float(1 - eyes[i, 0]),
            close_right=float(1 - eyes[i, 1]),
            yaw=float(pose[i, 0]),
            pitch=float(pose[i, 1]),
            roll=float(pose[i, 2]),
        )
        frames[i], xy = face_render.render(model, e)
        landmarks[i] = xy / size
    return RenderedClip(
        frames=frames, audio=audio, landmarks=landmarks, pose=pose, eyes=eyes, jaw=jaw, phonemes=phonemes, voice=voice
    )


# worker-process state: the identities' face models, sent once per worker by the pool initializer
_WORKER: dict = {}


def _init_worker(
    models: list[FaceModel], specs: list[IdentitySpec], root: str, size: int, fps: float, videos: bool, tts: str
) -> None:
    cv2.setNumThreads(1)
    _WORKER.update(models=models, specs=specs, root=root, size=size, fps=fps, videos=videos, tts=tts)


def _run_job(job: ClipJob) -> tuple[str, str, int, str]:
    from apb2face.data.format import DatasetWriter
    from apb2face.data.video import write_video

    w = _WORKER
    spec = w["specs"][job.identity_index]
    clip = render_clip(w["models"][job.identity_index], spec, job, w["fps"], w["tts"])
    name = f"clip{job.clip_index:03d}"
    writer = DatasetWriter(w["root"], image_size=w["size"], sample_rate=SAMPLE_RATE, fps=w["fps"])
    writer.add_clip(
        spec.name,
        name,
        frames=clip.frames,
        audio=clip.audio,
        landmarks=clip.landmarks,
        pose=clip.pose,
        eyes=clip.eyes,
        text=job.sentence,
        extra={
            "source": "apb2face synth",
            "voice": clip.voice,
            "pitch": spec.pitch,
            "rate": spec.rate,
            "phonemes": [[t, p] for t, p in clip.phonemes],
            "jaw": [round(float(v), 5) for v in clip.jaw],
        },
    )
    if w["videos"]:
        write_video(
            Path(w["root"]) / "videos" / spec.name / f"{name}.mp4",
            clip.frames,
            fps=w["fps"],
            audio=clip.audio,
            sample_rate=SAMPLE_RATE,
        )
    return spec.name, name, len(clip.frames), job.sentence


@dataclass(frozen=True)
class SynthConfig:
    identities: int = 6
    clips_per_identity: int = 10
    size: int = 256
    seed: int = 0
    fps: float = FPS
    workers: int = 2
    test_fraction: float = 0.2
    videos: bool = True
    # the speech engine: "espeak" (espeak-ng, in a wheel) or "flite" (CMU Flite, voices built from real speakers'
    # recordings; the Debian package `flite`): the same people, sentences and motion in other voices
    tts: str = "espeak"

    def __post_init__(self) -> None:
        for name, lowest in (("identities", 1), ("clips_per_identity", 1), ("size", 64), ("workers", 1)):
            if getattr(self, name) < lowest:
                raise ValueError(f"{name} must be at least {lowest}, got {getattr(self, name)}")
        if self.size % 2:
            raise ValueError(f"size must be even (H.264 needs even sizes), got {self.size}")
        if not 0 < self.fps <= 120:
            raise ValueError(f"fps must be in (0, 120], got {self.fps}")
        if self.tts not in ("espeak", "flite"):
            raise ValueError(f"tts must be 'espeak' or 'flite', got {self.tts!r}")
        if not 0 <= self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in [0, 1), got {self.test_fraction}")


def contact_sheet(models: list[FaceModel], specs: list[IdentitySpec], columns: int = 4) -> np.ndarray:
    """One frontal, mouth-slightly-open picture per identity, labelled, in a grid (RGB uint8)."""
    tiles = []
    for model, spec in zip(models, specs):
        img, _ = face_render.render(model, Expression(jaw=0.06))
        img = np.ascontiguousarray(img)
        cv2.putText(
            img,
            spec.name,
            (6, img.shape[0] - 8),
            cv2.FONT_HERSHEY_SIMPLEX,
            img.shape[0] / 400,
            (255, 255, 255),
            2,
            cv2.LINE_AA,
        )
        tiles.append(img)
    cols = min(columns, len(tiles))
    rows = -(-len(tiles) // cols)
    s = tiles[0].shape[0]
    sheet = np.full((rows * s, cols * s, 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        sheet[r * s : (r + 1) * s, c * s : (c + 1) * s] = tile
    return sheet


def generate(out: str | Path, cfg: SynthConfig) -> dict:
    """Render the dataset into an empty/new directory `out`. Returns a summary (clips, frames)."""
    from tqdm import tqdm

    from apb2face.data.format import ClipRecord, DatasetWriter
    from apb2face.io import atomic_path, write_json

    out = Path(out)
    specs = identity_specs(cfg.identities, cfg.seed)
    models = [build_identity(s, cfg.size) for s in specs]
    jobs = [
        ClipJob(i, j, sentence, cfg.seed)
        for i in range(cfg.identities)
        for j, sentence in enumerate(choose_sentences(i, cfg.clips_per_identity, cfg.seed))
    ]
    writer = DatasetWriter(out, image_size=cfg.size, sample_rate=SAMPLE_RATE, fps=cfg.fps, source="apb2face synth")
    results = []
    workers = max(1, min(cfg.workers, len(jobs)))
    init = (models, specs, str(out), cfg.size, cfg.fps, cfg.videos, cfg.tts)
    with tqdm(total=len(jobs), desc="synth", unit="clip") as bar:
        if workers == 1:
            _init_worker(*init)
            for job in jobs:
                results.append(_run_job(job))
                bar.update()
        else:
            # spawn, not fork: the parent has run mediapipe, whose threads make forked children deadlock
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=init) as pool:
                for res in pool.map(_run_job, jobs):
                    results.append(res)
                    bar.update()
    for identity, name, n, text in results:
        writer.register(ClipRecord(identity=identity, name=name, num_frames=n, text=text))
    write_json(out / "identities.json", {"seed": cfg.seed, "identities": [spec_json(s) for s in specs]})
    with atomic_path(out / "contact_sheet.png") as tmp:
        cv2.imwrite(str(tmp), cv2.cvtColor(contact_sheet(models, specs), cv2.COLOR_RGB2BGR))
    meta = writer.finish(test_fraction=cfg.test_fraction, seed=cfg.seed)
    return {"clips": len(meta.clips), "frames": sum(c.num_frames for c in meta.clips), "identities": len(specs)}
