"""The one pipeline a server shares between its job workers and live sessions, and speech from text.

The model steps run concurrently from several threads; preparing a reference touches the pipeline's cache and
espeak-ng keeps global state, so those two are serialised here."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from apb2face.inference.pipeline import APB2FacePipeline


class Engine:
    def __init__(self, checkpoint: Path | None, backend: str = "torch", threads: int = 1) -> None:
        import torch

        torch.set_num_threads(threads)
        self.pipeline = APB2FacePipeline.from_pretrained(checkpoint, backend=backend)
        self.reference_lock = threading.Lock()
        self._speech_lock = threading.Lock()

    @property
    def identities(self) -> list[str]:
        return self.pipeline.identities

    @property
    def image_size(self) -> int:
        return self.pipeline.image_size

    def generate(self, reference: str | np.ndarray, audio: Any, **kwargs: Any) -> Any:
        """`APB2FacePipeline.generate` with the reference prepared under the lock (batches render outside it)."""
        with self.reference_lock:
            return self.pipeline.generate(reference, audio, **kwargs)

    def streaming_session(self, reference: str | np.ndarray, **kwargs: Any) -> Any:
        from apb2face.inference.streaming import StreamingSession

        with self.reference_lock:
            return StreamingSession(self.pipeline, reference, **kwargs)

    def scene_session(self, scene: np.ndarray, speakers: tuple[str, ...], config: Any, **kwargs: Any) -> Any:
        """A `SceneStreamingSession` over a still scene given as pixels (its faces found and cast to identities)."""
        from apb2face.inference.scene import SceneStreamingSession, track_image

        track = track_image(scene, config, crop_scale=self.pipeline.crop_scale)
        with self.reference_lock:
            return SceneStreamingSession(self.pipeline, track, speakers, config, **kwargs)

    def speak(self, text: str, voice: str = "en-us") -> tuple[np.ndarray, int]:
        """espeak-ng speech of `text`: (float32 mono audio, sample rate)."""
        synthesize = _synthesize()
        with self._speech_lock:
            speech = synthesize(text, voice=voice)
        return speech.audio, speech.sample_rate


def _synthesize() -> Any:
    from apb2face.data.synth.speech import synthesize

    return synthesize
