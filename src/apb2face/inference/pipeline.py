"""Generation: a reference face + audio (+ optional pose / blink) -> a talking-face video, as a Python API.

    pipe = APB2FacePipeline.from_pretrained()  # the demo checkpoint shipped with the package
    out = pipe("woman1", "speech.wav")            # a bundled identity, or an image path, or an RGB array
    write_video("out.mp4", out.frames, fps=out.fps, audio=out.audio, sample_rate=out.sample_rate)

`__call__` runs the steps below in order; each is a method so that streaming can reuse them frame by frame:

1. check inputs          `prepare_reference`, `prepare_audio`, `prepare_motion`
2. audio features        `window_batches`      windows of encoded audio rows around each video frame, computed
                                               lazily: each 10 ms feature row is encoded once (`encode_audio`)
3. motion                `prepare_motion`      pose (N, 3) + eyes (N, 2): given, from a driving video, or natural
4. fuse                  `fuse`                window + pose + eyes -> latent, landmarks
5. render                `render`              cached reference features + latent -> image
6. postprocess           `postprocess`         [-1, 1] tensors -> uint8 RGB frames
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from apb2face.data import audio as A
from apb2face.data.identity import SAME_PERSON_DISTANCE, FaceEmbedder, IdentityMatch, closest_identity
from apb2face.errors import UserError
from apb2face.inference.compose import ComposeConfig
from apb2face.inference.faces import align_face, as_rgb_uint8, measure_pose, read_image
from apb2face.inference.limits import DEFAULT_MAX_SECONDS, MAX_FPS, MIN_FPS
from apb2face.inference.motion import (
    DEFAULT_SEED,
    Motion,
    NaturalMotion,
    fit_length,
    load_blink,
    load_pose,
    motion_from_video,
)
from apb2face.inference.streaming_features import RowWindow, StreamingFeatures
from apb2face.models.fuser import AUDIO_ROW_WIDTH

if TYPE_CHECKING:
    from apb2face.inference.avatar import FullFrames

log = logging.getLogger(__name__)

Reference = str | Path | np.ndarray
AudioInput = str | Path | np.ndarray
OUTPUT_SAMPLE_RATE = 48000  # decoded file audio is kept at this rate for the muxed AAC track
MAX_CENTRE_POSE_DEG = 10.0  # natural sway is centred on the reference's own pose, within this range
REFERENCE_CACHE_SIZE = 8
FEATURE_BLOCK_SAMPLES = 640  # 16 kHz samples pushed into the incremental features at a time (as streaming does)
# audio rows are encoded in blocks of exactly this many (the last one zero-padded): one batch shape, so a row's
# encoding is the same bits whichever rows share its block, and a stream equals offline generation exactly; four
# rows are one frame's worth at 25 fps
AUDIO_ROW_BLOCK = 4
# checkpoints shipped inside the package (apb2face/checkpoints/NAME, listed in pyproject's package-data): `demo`,
# the default, and `live`, the demo's renderer with a 30 ms audio look-ahead for live streams (90 ms less latency;
# docs/realtime.md). Anywhere a checkpoint directory is asked for, one of these names may be given instead
SHIPPED_CHECKPOINTS = ("demo", "live")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}


@dataclass
class APB2FaceOutput:
    frames: np.ndarray  # (N, S, S, 3) uint8 RGB
    fps: float
    audio: np.ndarray  # (samples,) float32 mono: the driving audio, for muxing
    sample_rate: int
    landmarks: np.ndarray  # (N, K, 2) float32 in [0, 1] of the frame (the fuser's geometry prediction)
    pose: np.ndarray  # (N, 3) degrees yaw, pitch, roll that drove each frame
    eyes: np.ndarray  # (N, 2) eye openness that drove each frame


@dataclass(frozen=True)
class ReferenceState:
    """A reference face ready for rendering: its crop, its head pose (None if not measurable) and the encoder's
    features (computed once, reused for every frame)."""

    name: str
    crop: np.ndarray  # (S, S, 3) uint8
    pose: tuple[float, float, float] | None
    features: torch.Tensor  # np.ndarray with the ONNX backend


@dataclass(frozen=True)
class DrivingAudio:
    """Audio checked and converted: `audio`/`sample_rate` for output, `pcm` (mono 16 kHz) for the model's features
    (computed lazily from it, batch by batch: `APB2FacePipeline.window_batches`)."""

    audio: np.ndarray
    sample_rate: int
    pcm: np.ndarray
    num_frames: int

    def chunks(self, size: int = FEATURE_BLOCK_SAMPLES) -> Iterator[np.ndarray]:
        """`pcm` in consecutive chunks of `size` samples (views, no copies)."""
        for lo in range(0, len(self.pcm), size):
            yield self.pcm[lo : lo + size]


def shipped_checkpoint(name: str) -> Path | None:
    """A checkpoint shipped inside the package as data, so a wheel install has it too (SHIPPED_CHECKPOINTS). The one
    place that resolves them; None when it was left out of the install."""
    if name not in SHIPPED_CHECKPOINTS:
        raise ValueError(f"no checkpoint named {name!r} ships with apb2face (known: {', '.join(SHIPPED_CHECKPOINTS)})")
    # a regular (unzipped) install gives a real directory, which is what the loaders read
    path = Path(str(resources.files("apb2face").joinpath("checkpoints", name)))
    return path if (path / "config.json").is_file() else None


def default_checkpoint() -> Path | None:
    """The demo checkpoint, used when none is given."""
    return shipped_checkpoint("demo")


def resolve_checkpoint(path: str | Path) -> Path:
    """`path` as given, or the shipped checkpoint of that name (`demo`, `live`) when no such path exists."""
    given = Path(path)
    if given.exists() or str(path) not in SHIPPED_CHECKPOINTS:
        return given
    shipped = shipped_checkpoint(str(path))
    if shipped is None:
        raise UserError(f"the shipped checkpoint {str(path)!r} is not installed; pass a checkpoint directory")
    return shipped


class APB2FacePipeline:
    def __init__(
        self,
        model: torch.nn.Module | None,
        config: Any,
        references: dict[str, np.ndarray],
        meta: dict | None = None,
        device: str | torch.device = "cpu",
        backend: Any = None,
        checkpoint: str | Path | None = None,
    ) -> None:
        """`backend`: None runs `model` in PyTorch; otherwise an object with `encode_reference(crop)`,
        `encode_audio_rows(rows)` and `step(features, windows, pose, eyes) -> (frames, landmarks)`
        (apb2face.inference.export.OnnxBackend) runs the model's steps instead, and `model` may be None.
        `checkpoint`: the folder it was loaded from (its avatar clips)."""
        if model is None and backend is None:
            raise ValueError("a model or a backend is required")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval() if model is not None else None
        self.backend = backend
        self.config = config
        self.references = dict(references)
        self.meta = dict(meta or {})
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.crop_scale = self.meta.get("crop_scale")  # None: prepare's default, the one the dataset used
        self._cache: OrderedDict[tuple, ReferenceState] = OrderedDict()
        self._embedder: FaceEmbedder | None = None  # created on the first photo reference
        self._identity_embeddings: dict[str, np.ndarray] | None = None  # the bundled identities', embedded once
        self._matches: OrderedDict[tuple, IdentityMatch | None] = OrderedDict()

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path | None = None,
        device: str | torch.device = "cpu",
        backend: str = "torch",
        int8: bool = False,
    ) -> APB2FacePipeline:
        """Load a checkpoint directory (config.json, model.safetensors, identities/), or a shipped one by name
        (`"demo"`, `"live"`); None = the demo checkpoint.
        backend="onnx" runs ONNX Runtime on an `apb2face export` directory, or on the checkpoint exported on the fly;
        int8 selects its dynamically quantised per-frame graph."""
        if path is None:
            path = default_checkpoint()
            if path is None:
                raise UserError(
                    "no checkpoint given and the demo checkpoint (apb2face/checkpoints/demo) is not installed; "
                    "pass --checkpoint DIR"
                )
        path = resolve_checkpoint(path)
        if backend == "onnx":
            from apb2face.inference.export import load_onnx

            onnx = load_onnx(path, int8=int8)
            return cls(None, onnx.config, onnx.references, onnx.meta, "cpu", backend=onnx.backend, checkpoint=path)
        if backend != "torch":
            raise UserError(f"unknown backend {backend!r} (known: torch, onnx)")
        from apb2face.models.modeling import load_pretrained

        pre = load_pretrained(path, device=device)
        return cls(pre.model, pre.config, pre.references, pre.meta, device, checkpoint=path)

    @property
    def identities(self) -> list[str]:
        return sorted(self.references)

    @property
    def image_size(self) -> int:
        return int(self.config.image_size)

    # ------------------------------------------------------------------------------------------------ 1. inputs

    def prepare_reference(self, reference: Reference, allow_unknown: bool = False) -> ReferenceState:
        """An identity name, an image path or an RGB array -> cropped, encoded reference (cached).

        A photo (path or array) must show one of the checkpoint's people (`identify`), or UserError tells the user
        to enrol that person first: a face the model never learnt comes out smeared. `allow_unknown=True` renders
        it anyway. Bundled identity names and checkpoints without bundled identities are not checked."""
        key, name, load = self._reference_source(reference)
        if key in self._cache:
            self._cache.move_to_end(key)
            state = self._cache[key]
        else:
            crop, pose = load()
            state = ReferenceState(name=name, crop=crop, pose=pose, features=self.encode_reference(crop))
            self._cache[key] = state
            while len(self._cache) > REFERENCE_CACHE_SIZE:
                self._cache.popitem(last=False)
        if not allow_unknown and key[0] != "identity" and self.references:
            self.check_known(key, state.crop, reference)
        return state

    def identify(self, crop: np.ndarray) -> IdentityMatch | None:
        """The bundled identity closest to the face in a reference crop (dlib face embedding, same person at a
        distance <= 0.6); None when the face recogniser finds no face in the crop or the checkpoint bundles none."""
        vector, references = self._embed_with_identities(crop)
        return None if vector is None else closest_identity(vector, references)

    def identity_distances(self, crop: np.ndarray) -> dict[str, float] | None:
        """Face-embedding distance from the face in a crop to every bundled identity (same person at <= 0.6), for
        matching several faces to several identities at once; None when the face recogniser finds no face."""
        vector, references = self._embed_with_identities(crop)
        if vector is None:
            return None
        return {name: FaceEmbedder.distance(vector, ref) for name, ref in references.items()}

    def _embed_with_identities(self, crop: np.ndarray) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
        if self._embedder is None:
            self._embedder = FaceEmbedder()
        if self._identity_embeddings is None:
            crops = {name: as_rgb_uint8(image) for name, image in self.references.items()}
            self._identity_embeddings = self._embedder.embed_all(crops)
        return self._embedder.embed(crop), self._identity_embeddings

    def check_known(self, key: tuple, crop: np.ndarray, reference: Reference) -> None:
        """UserError unless the reference crop shows one of the bundled identities (verdicts cached by `key`)."""
        if key in self._matches:
            self._matches.move_to_end(key)
        else:
            self._matches[key] = self.identify(crop)
            while len(self._matches) > REFERENCE_CACHE_SIZE:
                self._matches.popitem(last=False)
        found = self._matches[key]
        if found is not None and found.same_person:
            log.info("reference shows %s (face distance %.2f)", found.name, found.distance)
            return
        if found is None:
            why = "the face recogniser cannot check that this face is one of the checkpoint's people"
        else:
            why = (
                f"this face is not one of the checkpoint's people (closest: {found.name} at face distance "
                f"{found.distance:.2f} > {SAME_PERSON_DISTANCE})"
            )
        where = reference if isinstance(reference, (str, Path)) else "reference image"
        raise UserError(
            f"{why}: enrol this person first (apb2face enroll, see docs), or render anyway with --allow-unknown "
            "(Python: allow_unknown=True)",
            where,
        )

    def _reference_source(self, reference: Reference) -> tuple[tuple, str, Any]:
        size = self.image_size
        if isinstance(reference, np.ndarray):
            image = as_rgb_uint8(reference)
            digest = hashlib.sha1(image.tobytes()).hexdigest() + str(image.shape)
            return ("array", digest), "array", lambda: align_face(image, size, self.crop_scale)
        text = str(reference)
        path = Path(text)
        if path.is_file():
            stat = path.stat()
            key = ("file", str(path.resolve()), stat.st_mtime_ns, stat.st_size)
            return key, path.stem, lambda: align_face(read_image(path), size, self.crop_scale, path)
        if text in self.references:
            return ("identity", text), text, lambda: self._identity_crop(text)
        if "/" in text or "\\" in text or path.suffix.lower() in IMAGE_SUFFIXES:
            raise UserError("file not found", text)
        known = ", ".join(self.identities) or "none"
        raise UserError(f"not an image file nor an identity of this checkpoint (identities: {known})", text)

    def _identity_crop(self, name: str) -> tuple[np.ndarray, tuple[float, float, float] | None]:
        # bundled references are already dataset crops: no re-cropping, only a resize if the sizes differ
        import cv2

        crop = as_rgb_uint8(self.references[name])
        if crop.shape[:2] != (self.image_size, self.image_size):
            crop = cv2.resize(crop, (self.image_size, self.image_size), interpolation=cv2.INTER_AREA)
        return crop, measure_pose(crop)

    def prepare_audio(
        self, audio: AudioInput, sample_rate: int | None, fps: float, max_seconds: float | None = None
    ) -> DrivingAudio:
        """A file path (any format FFmpeg decodes) or a float array (+ its sample rate) -> checked audio, at most
        `max_seconds` long (None: no limit)."""
        if isinstance(audio, (str, Path)):
            out = A.load_audio(audio, OUTPUT_SAMPLE_RATE, max_seconds=max_seconds)
            rate = OUTPUT_SAMPLE_RATE
        else:
            if sample_rate is None:
                raise UserError("sample_rate is required when audio is an array")
            out = np.asarray(audio, dtype=np.float32)
            if out.ndim == 2:  # (samples, channels) -> mono
                out = out.mean(axis=1) if out.shape[1] <= 8 else out.mean(axis=0)
            if out.ndim != 1 or out.size == 0:
                raise UserError(f"audio array must be non-empty mono or (samples, channels), got shape {out.shape}")
            if not np.isfinite(out).all():
                raise UserError("audio array contains NaN or infinite values")
            rate = int(sample_rate)
            A.check_sample_rate(rate, "audio array")
            A.check_duration(len(out), rate, max_seconds, "audio array")
        if len(out) < rate / fps:
            log.warning("audio is shorter than one video frame (%d samples)", len(out))
        return DrivingAudio(
            audio=out,
            sample_rate=rate,
            pcm=A.resample(out, rate, A.SAMPLE_RATE),
            num_frames=A.num_video_frames(len(out), fps, rate),
        )

    def prepare_motion(
        self,
        num_frames: int,
        fps: float,
        *,
        pose: Any = None,
        eyes: Any = None,
        driving: str | Path | None = None,
        seed: int | None = DEFAULT_SEED,
        reference: ReferenceState | None = None,
    ) -> Motion:
        """Pose and blink for each frame. Each of pose / eyes is, in order of precedence: given (array or file),
        taken from the driving video, or generated (natural motion centred on the reference's own pose)."""
        from_video = motion_from_video(driving, num_frames, fps) if driving is not None else None
        natural = NaturalMotion(fps, seed, centre=self.sway_centre(reference)).take(num_frames)
        return Motion(
            pose=_signal(pose, 3, num_frames, fps, load_pose)
            if pose is not None
            else (from_video.pose if from_video is not None else natural.pose),
            eyes=_signal(eyes, 2, num_frames, fps, load_blink)
            if eyes is not None
            else (from_video.eyes if from_video is not None else natural.eyes),
        )

    @staticmethod
    def sway_centre(reference: ReferenceState | None) -> tuple[float, float, float]:
        """The pose (yaw, pitch, roll degrees) natural motion sways around: the reference's own head pose, clipped to
        +-MAX_CENTRE_POSE_DEG so a strongly turned photo does not push every frame further out; (0, 0, 0) when the
        reference has no measurable pose. Offline generation and streaming both centre their motion here."""
        if reference is None or reference.pose is None:
            return (0.0, 0.0, 0.0)
        return tuple(float(np.clip(v, -MAX_CENTRE_POSE_DEG, MAX_CENTRE_POSE_DEG)) for v in reference.pose)

    # ------------------------------------------------------------------------------------------- 2. audio features

    def audio_features(self, audio: np.ndarray, sample_rate: int = A.SAMPLE_RATE) -> np.ndarray:
        """(T, 60) feature rows of a whole track, as this checkpoint's fuser reads them (its `audio_loudness`)."""
        return A.audio_features(audio, sample_rate, loudness=self.config.audio_loudness)

    def streaming_features(self) -> StreamingFeatures:
        """Incremental features of one stream, as this checkpoint's fuser reads them (its `audio_loudness`)."""
        return StreamingFeatures(loudness=self.config.audio_loudness)

    def window_batches(
        self, pcm: Iterable[np.ndarray], num_frames: int, fps: float, batch_size: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(frame indices, (n, W, AUDIO_ROW_WIDTH) windows) for consecutive batches of frames, computed lazily: the
        16 kHz audio (chunks of mono PCM, e.g. `DrivingAudio.chunks()`) is pushed through the streaming engine's
        incremental features (StreamingFeatures) only as far as the next batch needs, each row is encoded once, and
        rows are kept in a fixed window, so memory does not grow with the audio's length. The windows are those of
        `audio_windows` on the whole track's features (rows clipped at both ends)."""
        window, lookahead = int(self.config.audio_window), int(self.config.audio_lookahead)
        offsets = np.arange(-(window - lookahead), lookahead)
        batch_rows = int(np.ceil(batch_size / fps * A.FEATURE_RATE)) + 1  # rows between a batch's first/last centre
        rows = RowWindow(window + batch_rows + 2 * FEATURE_BLOCK_SAMPLES // A.HOP + 16, AUDIO_ROW_WIDTH)
        features = self.streaming_features()
        # any chunking in, fixed-size blocks out: one push never adds more rows than the window has room for
        size = FEATURE_BLOCK_SAMPLES
        blocks = (chunk[lo : lo + size] for chunk in pcm for lo in range(0, len(chunk), size))
        for start in range(0, num_frames, batch_size):
            idx = np.arange(start, min(num_frames, start + batch_size))
            centres = A.frame_centre(idx, fps)
            # a window ends at row centre + lookahead - 1; even with no look-ahead it needs one row to clip to
            while rows.count < max(int(centres[-1]) + lookahead, 1) and not features.finished:
                block = next(blocks, None)
                rows.extend(self.encode_audio(features.finish() if block is None else features.push(block)))
            # mid-track every needed row exists; past the end the last row repeats, as in frame_windows
            yield idx, rows.take(np.clip(centres[:, None] + offsets, 0, rows.count - 1))

    def audio_windows(self, features: np.ndarray, frame_indices: np.ndarray, fps: float) -> np.ndarray:
        """(n, W, AUDIO_ROW_WIDTH) windows of encoded rows for the given video frames of whole-track features
        (T, 60); only the rows the windows use are encoded."""
        # the row indices of frame_windows' windows (one rule for which rows a frame hears, clipped at both ends)
        rows = A.frame_windows(
            np.arange(len(features))[:, None],
            np.asarray(frame_indices),
            fps,
            window=self.config.audio_window,
            lookahead=self.config.audio_lookahead,
        )[..., 0]
        used = np.unique(rows)
        return self.encode_audio(features[used])[np.searchsorted(used, rows)]

    def encode_audio(self, rows: np.ndarray) -> np.ndarray:
        """Raw feature rows (R, 60) -> encoded rows (R, AUDIO_ROW_WIDTH) float32, in blocks of AUDIO_ROW_BLOCK."""
        rows = np.asarray(rows, dtype=np.float32).reshape(-1, A.NUM_FEATURES)
        out = np.empty((len(rows), AUDIO_ROW_WIDTH), np.float32)
        block = np.zeros((AUDIO_ROW_BLOCK, A.NUM_FEATURES), np.float32)
        for lo in range(0, len(rows), AUDIO_ROW_BLOCK):
            part = rows[lo : lo + AUDIO_ROW_BLOCK]
            block[: len(part)] = part
            block[len(part) :] = 0.0
            out[lo : lo + len(part)] = self._encode_audio_block(block)[: len(part)]
        return out

    @torch.inference_mode()
    def _encode_audio_block(self, block: np.ndarray) -> np.ndarray:
        if self.backend is not None:
            return self.backend.encode_audio_rows(block)
        return self.model.encode_audio_rows(torch.from_numpy(block).to(self.device)).float().cpu().numpy()

    # ------------------------------------------------------------------------------------------ 4-6. model steps

    @torch.inference_mode()
    def encode_reference(self, crop: np.ndarray) -> torch.Tensor:
        if self.backend is not None:
            return self.backend.encode_reference(crop)
        x = torch.from_numpy(np.ascontiguousarray(crop)).to(self.device).permute(2, 0, 1)[None].float() / 127.5 - 1
        return self.model.encode_reference(x)

    @torch.inference_mode()
    def fuse(self, windows: np.ndarray, pose: np.ndarray, eyes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows of encoded rows (n, W, AUDIO_ROW_WIDTH) + pose + eyes -> latent, landmarks."""
        audio = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)).to(self.device)
        return self.model.fuse_rows(
            audio,
            torch.from_numpy(np.asarray(pose, np.float32)).to(self.device),
            torch.from_numpy(np.asarray(eyes, np.float32)).to(self.device),
        )

    @torch.inference_mode()
    def render(self, features: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        return self.model.render(features, latent)

    @staticmethod
    def postprocess(images: torch.Tensor) -> np.ndarray:
        """(B, 3, S, S) in [-1, 1] -> (B, S, S, 3) uint8."""
        x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return x.permute(0, 2, 3, 1).cpu().numpy()

    def step(
        self, reference: ReferenceState, windows: np.ndarray, pose: np.ndarray, eyes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Steps 4-6 for a batch of frames -> (frames uint8 (B, S, S, 3), landmarks (B, K, 2))."""
        if self.backend is not None:
            return self.backend.step(reference.features, windows, pose, eyes)
        latent, landmarks = self.fuse(windows, pose, eyes)
        frames = self.postprocess(self.render(reference.features, latent))
        return frames, landmarks.float().cpu().numpy()

    # ------------------------------------------------------------------------------------------------ the whole

    def generate(
        self,
        reference: Reference,
        audio: AudioInput,
        *,
        sample_rate: int | None = None,
        pose: Any = None,
        eyes: Any = None,
        driving: str | Path | None = None,
        fps: float = 25.0,
        seed: int | None = DEFAULT_SEED,
        batch_size: int = 16,
        max_seconds: float | None = DEFAULT_MAX_SECONDS,
        allow_unknown: bool = False,
        full_frame: bool = False,
        compose: ComposeConfig | None = None,
    ) -> tuple[DrivingAudio, Motion, Iterator[tuple[np.ndarray, np.ndarray]]]:
        """Checks every input first, then returns (audio, motion, an iterator of (frames, landmarks) batches).

        The CLI writes batches as they come (bounded memory, a progress bar); `__call__` collects them. Audio longer
        than `max_seconds` (None: no limit) is refused; so is a photo of someone the checkpoint does not know, unless
        `allow_unknown` (`prepare_reference`).

        `full_frame=True`: the frames are whole video frames with the generated face pasted in (`compose`, default
        `ComposeConfig()`): the `driving` video re-voiced, or without one the identity's avatar loop (see
        `full_frames`). The video gives the size, the frame rate (`fps` is not used) and the motion (no `pose`,
        `eyes`).
        """
        if full_frame:
            full = self.full_frames(
                reference, audio, sample_rate=sample_rate, driving=driving, compose=compose, batch_size=batch_size,
                max_seconds=max_seconds, allow_unknown=allow_unknown, pose=pose, eyes=eyes,
            )  # fmt: skip
            return full.driving, full.motion, full.batches
        if compose is not None:
            raise UserError("compose applies to full_frame=True only")
        check_fps(fps)
        if batch_size < 1:
            raise UserError(f"batch_size must be at least 1, got {batch_size}")
        # 1. check inputs (everything that can fail on user input fails here, before any output exists)
        ref = self.prepare_reference(reference, allow_unknown=allow_unknown)
        driving_audio = self.prepare_audio(audio, sample_rate, fps, max_seconds)
        n = driving_audio.num_frames
        # 3. motion
        motion = self.prepare_motion(n, fps, pose=pose, eyes=eyes, driving=driving, seed=seed, reference=ref)

        def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            # 2. audio features around each batch of frames, as the batch comes; 4-6. fuse, render, postprocess
            for idx, windows in self.window_batches(driving_audio.chunks(), n, fps, batch_size):
                yield self.step(ref, windows, motion.pose[idx], motion.eyes[idx])

        return driving_audio, motion, batches()

    def full_frames(
        self,
        reference: Reference,
        audio: AudioInput,
        *,
        sample_rate: int | None = None,
        driving: str | Path | None = None,
        compose: ComposeConfig | None = None,
        batch_size: int = 16,
        max_seconds: float | None = DEFAULT_MAX_SECONDS,
        allow_unknown: bool = False,
        pose: Any = None,
        eyes: Any = None,
    ) -> FullFrames:
        """Full-frame generation, checked: the `driving` video re-voiced with `audio`, or without one the identity's
        avatar loop (its checkpoint's `avatars/NAME.mp4`, or a built-in person's clip made from the checkpoint's
        synth recipe), played forward and backward for as long as the audio lasts. Returns the audio, the motion
        (the video's own pose and blinks), the video's frame rate and size, and the (frames, landmarks) batches,
        computed as they are taken (`apb2face.inference.avatar.full_frames`)."""
        if pose is not None or eyes is not None:
            raise UserError("pose and eyes cannot be given with full_frame (the video gives the head pose and blinks)")
        if batch_size < 1:
            raise UserError(f"batch_size must be at least 1, got {batch_size}")
        # avatar and revoice build on this module, so they are imported when used
        from apb2face.inference.avatar import full_frames
        from apb2face.inference.revoice import RevoiceConfig

        config = RevoiceConfig(compose=compose or ComposeConfig(), batch_size=batch_size, max_seconds=max_seconds)
        return full_frames(
            self, reference, audio, config, sample_rate=sample_rate, driving=driving, allow_unknown=allow_unknown
        )

    def __call__(
        self,
        reference: Reference,
        audio: AudioInput,
        *,
        sample_rate: int | None = None,
        pose: Any = None,
        eyes: Any = None,
        driving: str | Path | None = None,
        fps: float = 25.0,
        seed: int | None = DEFAULT_SEED,
        batch_size: int = 16,
        max_seconds: float | None = DEFAULT_MAX_SECONDS,
        allow_unknown: bool = False,
        full_frame: bool = False,
        compose: ComposeConfig | None = None,
    ) -> APB2FaceOutput:
        """Everything `generate` yields, collected. With `full_frame=True` the frames are whole video frames at the
        video's (or avatar clip's) rate, which `fps` of the output says: every frame is held, so for long audio use
        `generate` or `apb2face.inference.revoice.revoice` (writes the MP4 as it goes)."""
        if full_frame:
            full = self.full_frames(
                reference, audio, sample_rate=sample_rate, driving=driving, compose=compose, batch_size=batch_size,
                max_seconds=max_seconds, allow_unknown=allow_unknown, pose=pose, eyes=eyes,
            )  # fmt: skip
            driving_audio, motion, batches, fps = full.driving, full.motion, full.batches, full.fps
        else:
            driving_audio, motion, batches = self.generate(
                reference, audio, sample_rate=sample_rate, pose=pose, eyes=eyes, driving=driving, fps=fps, seed=seed,
                batch_size=batch_size, max_seconds=max_seconds, allow_unknown=allow_unknown, compose=compose,
            )  # fmt: skip
        frames, landmarks = zip(*batches)
        return APB2FaceOutput(
            frames=np.concatenate(frames),
            fps=float(fps),
            audio=driving_audio.audio,
            sample_rate=driving_audio.sample_rate,
            landmarks=np.concatenate(landmarks),
            pose=motion.pose,
            eyes=motion.eyes,
        )


def check_fps(fps: float) -> None:
    """UserError unless MIN_FPS <= fps <= MAX_FPS (a huge rate would ask for gigabytes of frames)."""
    if not (math.isfinite(fps) and MIN_FPS <= fps <= MAX_FPS):
        raise UserError(f"fps must be between {MIN_FPS:g} and {MAX_FPS:g}, got {fps:g}")


def _signal(value: Any, columns: int, num_frames: int, fps: float, loader: Any) -> np.ndarray:
    """A pose/eyes argument: a file path (loaded at 25 fps rows) or an array with one row per output frame."""
    if isinstance(value, (str, Path)):
        return loader(value, num_frames, fps)
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 1 and arr.shape[0] == columns:
        arr = np.repeat(arr[None], num_frames, axis=0)  # one constant value for every frame
    if arr.ndim != 2 or arr.shape[1] != columns or len(arr) == 0 or not np.isfinite(arr).all():
        raise UserError(f"expected a finite array of shape (frames, {columns}), got {arr.shape}")
    return fit_length(arr, num_frames, fps, fps)
