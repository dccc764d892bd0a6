"""One video with several people (a job with `scene`): every tracked face becomes its own identity, and each gets
only the stretches where that face is speaking.

Faces are tracked in one pass (track.analyse_people) and ordered left to right; who speaks when is decided from the
video itself (active_speaker: which face's mouth follows the audio at that moment; silence is nobody's); the
audio/video offset is measured on the speaking faces' mouths; then each face's speaking frames are cut into clips
and written like a one-person video's. Every person's report lists all the turns with the evidence.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from apb2face.data.audio import num_video_frames, rms_per_frame
from apb2face.data.prepare.active_speaker import (
    Evidence,
    SpeakerDecision,
    speaker_turns,
    speech_envelope,
    voice_speaker_turns,
)
from apb2face.data.prepare.jobs import WORK_DIR, PrepareConfig, VideoJob, VideoResult
from apb2face.data.prepare.report import speakers_report
from apb2face.data.prepare.sync import cut_clips, estimate_offset, shift_audio, silence_mask
from apb2face.data.prepare.track import CropStore, Track, analyse_people
from apb2face.data.prepare.video import VideoPass, load_job_audio, write_face
from apb2face.data.prepare.voices import voice_labels
from apb2face.data.video import ConstantRateFrames, probe
from apb2face.data.voice import VoiceEncoder, voice_per_frame
from apb2face.errors import UserError

# listener(samples, num_frames, fps) -> (num_frames,) the mouth opening the 16 kHz mono audio calls for in each frame
Listener = Callable[[np.ndarray, int, float], np.ndarray]


def prepare_people_video(
    job: VideoJob,
    out: Path,
    cfg: PrepareConfig,
    progress: Callable[[int], None] | None = None,
    decode_threads: int = 0,
    listener: Listener | None = None,
) -> list[VideoResult]:
    """Prepare every person of one video into clips under `out`: one result per face, left to right (a face that
    never speaks long enough is a result with an error). `listener` gives the mouth the audio calls for (the speaker
    is the face whose mouth does that); None: the face whose mouth follows the audio's loudness. UserError naming
    the file when the video as a whole cannot be prepared; on any failure the clips it wrote are removed."""
    progress = progress or (lambda n: None)
    t_start = time.perf_counter()
    info = probe(job.path)
    reader = ConstantRateFrames(job.path, cfg.fps, threads=decode_threads)
    audio = load_job_audio(job, cfg, 0.0) if job.audio is not None else None  # a bad file fails before the pass
    stores: list[CropStore] = []
    written: list[Path] = []
    try:
        max_frames = num_video_frames(len(audio.samples), cfg.fps, cfg.sample_rate) if audio else 1 << 40
        work = out / WORK_DIR / f"{job.identity}__{job.stem}"
        tracks = analyse_people(reader, cfg, work, stores, max_frames, progress)
        audio = audio or load_job_audio(job, cfg, reader.first_pts)
        decoded = tracks[0].n if tracks else min(reader.frames, max_frames)
        n = min(decoded, num_video_frames(len(audio.samples), cfg.fps, cfg.sample_rate))
        order = people_left_to_right(job, tracks, n, cfg)
        names = job.person_names(len(order))
        rms = rms_per_frame(audio.samples, n, cfg.fps, cfg.sample_rate)
        silent = silence_mask(rms, cfg.silence_db)
        if silent.all():
            raise UserError("no speech in the audio: nobody speaks, so no face can be given footage", job.path)
        expected = None if listener is None else np.asarray(listener(audio.samples, n, cfg.fps), np.float64)[:n]
        voices = voice_per_frame(audio.samples, n, cfg.fps, VoiceEncoder.pretrained()) if cfg.speaker_voices else None
        mouths = np.stack([tracks[k].mouth[:n] for k in order])
        decision = detect_speakers(mouths, rms, silent, cfg, expected, voices)
        if not decision.turns:
            raise UserError(
                f"no face's mouth follows the speech clearly enough to say who speaks ({len(order)} faces)", job.path
            )
        offset = estimate_offset(speaking_mouth([tracks[k] for k in order], decision, n), rms, cfg)
        if offset.applied:
            audio.samples = shift_audio(audio.samples, offset.frames, cfg.samples_per_frame)
            rms = rms_per_frame(audio.samples, n, cfg.fps, cfg.sample_rate)
        turns = speakers_report(decision, names, cfg)
        source = VideoPass(info, reader, audio, rms, n, offset, t_start)
        results = []
        for i, k in enumerate(order):
            person = VideoJob(job.path, names[i], job.stem, job.audio)
            result = VideoResult(person)
            track, crops = tracks[k], stores[k].close()
            clips, test_from = cut_clips(np.where(decision.labels == i, track.segment[:n], -1), rms, n, cfg)
            if not clips:
                spoke = float((decision.labels == i).sum()) / cfg.fps
                result.error = (
                    f"{job.path}: {names[i]} (face {i + 1} from the left) speaks {spoke:.1f} s in all: no stretch of "
                    f"at least {cfg.min_clip_seconds:g} s with a steady face"
                )
                results.append(result)
                continue
            title = f"{Path(job.path).name} -> {names[i]}"
            write_face(
                person, out, cfg, source, track, crops, clips, test_from, result, written, title, {"speakers": turns}
            )
            results.append(result)
        return results
    except BaseException:
        for clip_dir in written:
            shutil.rmtree(clip_dir, ignore_errors=True)
        raise
    finally:
        for store in stores:
            store.discard()


def people_left_to_right(job: VideoJob, tracks: list[Track], n: int, cfg: PrepareConfig) -> list[int]:
    """Indices of the tracks seen in at least cfg.min_presence of the first n frames, by median box centre x
    (UserError when fewer than two faces are left and no names were given)."""
    if n == 0:
        raise UserError("no frames decoded", job.path)
    kept = [k for k, t in enumerate(tracks) if t.face[:n].mean() >= cfg.min_presence]
    if not kept:
        raise UserError(f"no face found in at least {cfg.min_presence:.0%} of the {n} frames", job.path)
    order = sorted(kept, key=lambda k: float(np.nanmedian(tracks[k].boxes[:n, 0])))
    if len(order) < 2 and not job.people:
        raise UserError("found one face only; a video with several people needs two or more in view", job.path)
    return order


def detect_speakers(
    mouths: np.ndarray,
    rms: np.ndarray,
    silent: np.ndarray,
    cfg: PrepareConfig,
    expected: np.ndarray | None = None,
    voices: np.ndarray | None = None,
) -> SpeakerDecision:
    """Who speaks when: `mouths` (faces, n) the mouth opening of each face, left to right; `expected` (n,) the mouth
    opening the audio calls for (a Listener's), None to follow the RMS envelope alone; `voices` (n, dim) the voice
    embedding around each frame (data.voice.voice_per_frame), None to decide every moment by the mouths alone
    (active_speaker.voice_speaker_turns or speaker_turns, with the config's settings)."""
    listen = expected is not None
    if voices is not None:
        speaking = voice_labels(
            voices, ~np.asarray(silent, bool), len(mouths), cfg.speaker_same_voice, cfg.speaker_voice_switch_cost
        )
        evidence = [Evidence(speech_envelope(rms), cfg.frames(cfg.speaker_window_seconds), cfg.speaker_max_lag_frames)]
        if listen:
            window = cfg.frames(cfg.speaker_listen_window_seconds)
            detrend = cfg.frames(cfg.speaker_listen_detrend_seconds)
            evidence.append(Evidence(expected, window, cfg.speaker_listen_max_lag_frames, detrend))
        return voice_speaker_turns(
            mouths,
            speaking,
            silent,
            evidence,
            min_r=cfg.speaker_voice_min_r,
            min_turn=cfg.frames(cfg.speaker_min_turn_seconds),
            bridge=cfg.frames(cfg.speaker_bridge_seconds),
        )
    return speaker_turns(
        mouths,
        rms,
        silent,
        window=cfg.frames(cfg.speaker_listen_window_seconds if listen else cfg.speaker_window_seconds),
        max_lag=cfg.speaker_listen_max_lag_frames if listen else cfg.speaker_max_lag_frames,
        margin=cfg.speaker_listen_margin if listen else cfg.speaker_margin,
        min_r=cfg.speaker_min_r,
        min_turn=cfg.frames(cfg.speaker_min_turn_seconds),
        bridge=cfg.frames(cfg.speaker_bridge_seconds),
        expected=expected,
        detrend=cfg.frames(cfg.speaker_listen_detrend_seconds),
    )


def speaking_mouth(tracks: list[Track], decision: SpeakerDecision, n: int) -> np.ndarray:
    """Per frame, the mouth opening of the face that speaks then (NaN in silence): what the offset is measured on."""
    mouth = np.full(n, np.nan)
    for i, track in enumerate(tracks):
        mine = decision.labels == i
        mouth[mine] = track.mouth[:n][mine]
    return mouth
