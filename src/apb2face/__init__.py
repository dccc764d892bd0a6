"""apb2face: real-time audio-driven multi-face reenactment (APB2FaceV2 and beyond)."""

__version__ = "0.1.0"
