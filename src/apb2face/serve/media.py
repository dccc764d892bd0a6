"""Checks on uploaded files, made before anything is queued: media type (415), size and length limits (413),
undecodable content (422). Only bytes are read here; names sent by the client are never used."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from apb2face.serve.errors import ApiError

IMAGE_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"\xff\xd8\xff": "jpeg",
    b"BM": "bmp",
}
# declared types that can hold a decodable audio track (a browser or curl may also say octet-stream)
AUDIO_TYPE_PREFIXES = ("audio/", "video/")
AUDIO_TYPES_GENERIC = ("application/octet-stream", "application/ogg", "")


def image_kind(head: bytes) -> str | None:
    """The image format recognised from its first bytes (PNG, JPEG, BMP, WebP), or None."""
    for magic, kind in IMAGE_MAGIC.items():
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def check_photo(data: bytes, max_pixels: int) -> np.ndarray:
    """Decoded RGB uint8 photo. The pixel count is read from the header and checked before any decoding, so a
    decompression bomb (a small PNG of a huge image) is refused without being inflated."""
    from PIL import Image, ImageOps

    if image_kind(data[:16]) is None:
        raise ApiError(415, "photo must be a PNG, JPEG, WebP or BMP image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ApiError(413, f"photo has {width}x{height} pixels, more than the limit of {max_pixels}")
            Image.MAX_IMAGE_PIXELS = None  # our own limit was applied above
            image = ImageOps.exif_transpose(image).convert("RGB")
            pixels = np.asarray(image, dtype=np.uint8)
    except ApiError:
        raise
    except Exception as exc:  # PIL raises many types for damaged files
        raise ApiError(422, f"photo cannot be decoded ({type(exc).__name__})") from None
    if min(pixels.shape[:2]) < 32:
        raise ApiError(422, f"photo is too small ({pixels.shape[1]}x{pixels.shape[0]} pixels)")
    return np.ascontiguousarray(pixels)


def check_audio_type(content_type: str | None, head: bytes) -> None:
    declared = (content_type or "").split(";")[0].strip().lower()
    if image_kind(head) is not None or not (
        declared.startswith(AUDIO_TYPE_PREFIXES) or declared in AUDIO_TYPES_GENERIC
    ):
        raise ApiError(
            415, f"audio must be an audio file (wav, mp3, m4a, ogg, flac, ...), got {declared or 'no type'}"
        )


def audio_duration(path: Path, max_seconds: float) -> float:
    """Seconds of the first audio stream, decoded up to the limit (container headers can lie): 413 beyond the
    limit, 422 when it has no audio or cannot be decoded."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ApiError(422, "audio file has no audio stream")
            stream = container.streams.audio[0]
            seconds = 0.0
            for frame in container.decode(stream):
                seconds += frame.samples / float(frame.sample_rate or 1)
                if seconds > max_seconds:
                    raise ApiError(413, f"audio is longer than the limit of {max_seconds:g} s")
    except ApiError:
        raise
    except Exception as exc:  # FFmpeg errors of every kind for damaged or non-audio data
        raise ApiError(422, f"audio cannot be decoded ({type(exc).__name__})") from None
    if seconds <= 0:
        raise ApiError(422, "audio has no samples")
    return seconds
