"""How a video is re-voiced: `RevoiceConfig`, the settings every pass of `revoice` reads."""

from __future__ import annotations

from dataclasses import dataclass, field

from apb2face.errors import UserError
from apb2face.inference.compose import ComposeConfig
from apb2face.inference.limits import DEFAULT_MAX_SECONDS


@dataclass(frozen=True)
class RevoiceConfig:
    """How a video is re-voiced; validates itself (UserError)."""

    compose: ComposeConfig = field(default_factory=ComposeConfig)
    box_sigma: float = 2.0  # frames: centred Gaussian on the crop box centre track
    side_sigma: float = 4.0  # frames: the same on the box side (size changes show more than small shifts)
    pose_sigma: float = 1.5  # frames: on the measured head pose that drives the model (PnP noise makes the
    # generated head tremble; blinks are left unsmoothed, they last only 4-6 frames)
    mix: bool = False  # keep the video's own audio under the new one
    mix_gain: float = 0.3  # its level when mixed
    batch_size: int = 16  # frames per model call
    crf: int = 14  # the untouched part of the frame survives the re-encode at about 45 dB PSNR (crf 20: 42.6)
    preset: str = "veryfast"  # x264 preset of the output
    max_seconds: float | None = DEFAULT_MAX_SECONDS  # longer new audio is refused
    cache_megabytes: int = 256  # decoded frames kept for backward (ping-pong) playback
    overlap: bool = True  # decode, run the model and encode in threads of their own (same output, sooner)

    def __post_init__(self) -> None:
        if not all(0.0 <= v <= 25.0 for v in (self.box_sigma, self.side_sigma, self.pose_sigma)):
            raise UserError("box_sigma, side_sigma and pose_sigma must lie in [0, 25] frames")
        if not 0.0 <= self.mix_gain <= 1.0:
            raise UserError(f"mix_gain must lie in [0, 1], got {self.mix_gain:g}")
        if not 1 <= self.batch_size <= 256:
            raise UserError(f"batch_size must be 1 to 256, got {self.batch_size}")
        if not 0 <= self.crf <= 51:
            raise UserError(f"crf must be 0 to 51, got {self.crf}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise UserError(f"max_seconds must be positive, got {self.max_seconds:g}")
        if not 16 <= self.cache_megabytes <= 8192:
            raise UserError(f"cache_megabytes must be 16 to 8192, got {self.cache_megabytes}")
