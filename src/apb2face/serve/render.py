"""What a job worker does: reference + audio (file or text) -> MP4 in the data folder, written atomically."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from apb2face.errors import UserError
from apb2face.serve.config import ServeConfig
from apb2face.serve.engine import Engine
from apb2face.serve.errors import ApiError
from apb2face.serve.jobs import Job, Renderer, iter_batches_with_progress
from apb2face.serve.media import check_photo

FPS = 25.0


def upload_path(config: ServeConfig, job_id: str, kind: str) -> Path:
    """Where a job's upload is kept: a name the server makes (a UUID and the kind), never one from the client."""
    assert kind in ("photo", "audio") and job_id.isalnum()
    return config.uploads / f"{job_id}.{kind}"


def video_path(config: ServeConfig, job_id: str) -> Path:
    assert job_id.isalnum()
    return config.videos / f"{job_id}.mp4"


def make_renderer(engine: Engine, config: ServeConfig) -> Renderer:
    def render(job: Job, progress: Callable[[float, int], None], check: Callable[[], None]) -> int:
        from apb2face.data.video import write_video

        if job.has_photo:
            try:
                reference = check_photo(upload_path(config, job.id, "photo").read_bytes(), config.max_image_pixels)
            except ApiError as exc:
                raise UserError(exc.message) from None
        elif job.identity is not None:
            reference = job.identity
        else:
            raise UserError("the job has no reference (identity or photo)")
        if job.text is not None:
            audio, rate = engine.speak(job.text, job.voice)
            if len(audio) / rate > config.max_audio_s:
                raise UserError(
                    f"the spoken text lasts {len(audio) / rate:.1f} s, over the {config.max_audio_s:g} s limit"
                )
        else:
            audio, rate = upload_path(config, job.id, "audio"), None
        check()
        driving, _motion, batches = engine.generate(reference, audio, sample_rate=rate, fps=FPS, seed=job.seed)
        frames = iter_batches_with_progress(batches, driving.num_frames, progress, check)
        return write_video(
            video_path(config, job.id), frames, fps=FPS, audio=driving.audio, sample_rate=driving.sample_rate
        )

    return render


def remove_uploads(config: ServeConfig, job_id: str) -> None:
    for kind in ("photo", "audio"):
        upload_path(config, job_id, kind).unlink(missing_ok=True)
