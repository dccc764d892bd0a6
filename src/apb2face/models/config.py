"""Model configuration and the geometry (landmark) subset the fuser predicts.

`ModelConfig` is everything needed to rebuild a model's architecture; it is stored in every checkpoint's
config.json. Training options live in `apb2face.training.config.RunConfig`, which embeds a ModelConfig.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from apb2face.data.loudness import Loudness

# The fuser's landmark head predicts a 106-point subset of the mediapipe-478 mesh, the same count as the 106-point
# layout upstream regressed. Order: face oval (36, clockwise from the chin's left), outer lips (20), inner lips (20),
# eyes (8 each: corners, upper lid, lower lid), brows (5 each), nose (4). Mouth points dominate on purpose: they
# carry the audio-driven motion the geometry loss must teach the fuser.
FACE_OVAL = (
    176,
    149,
    150,
    136,
    172,
    58,
    132,
    93,
    234,
    127,
    162,
    21,
    54,
    103,
    67,
    109,
    10,
    338,
    297,
    332,
    284,
    251,
    389,
    356,
    454,
    323,
    361,
    288,
    397,
    365,
    379,
    378,
    400,
    377,
    152,
    148,
)
LIPS_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
LIPS_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
RIGHT_EYE = (33, 160, 159, 158, 133, 153, 145, 144)
LEFT_EYE = (362, 385, 386, 387, 263, 373, 374, 380)
RIGHT_BROW = (70, 63, 105, 66, 107)
LEFT_BROW = (336, 296, 334, 293, 300)
NOSE = (6, 1, 98, 327)
GEOMETRY_GROUPS: dict[str, tuple[int, ...]] = {
    "face_oval": FACE_OVAL,
    "lips_outer": LIPS_OUTER,
    "lips_inner": LIPS_INNER,
    "right_eye": RIGHT_EYE,
    "left_eye": LEFT_EYE,
    "right_brow": RIGHT_BROW,
    "left_brow": LEFT_BROW,
    "nose": NOSE,
}
GEOMETRY_POINTS: tuple[int, ...] = tuple(i for group in GEOMETRY_GROUPS.values() for i in group)
GEOMETRY_SCHEME = "mediapipe-478"  # the landmark scheme GEOMETRY_POINTS index into

# Control-signal scaling applied inside the fuser so its inputs are O(1): pose degrees / POSE_SCALE,
# eye openness (0 closed .. 1 open) mapped to [-1, 1].
POSE_SCALE_DEGREES = 30.0
SKETCH_GENERATORS = ("skip", "mobile")  # generators whose render takes the geometry sketch


# Bounds on the size fields: a checkpoint's config.json is untrusted input, and the model is built from it before
# its weights can be compared, so no field may ask for more than a sane model (the presets use 256, 64 and 64).
MAX_LATENT_DIM = 1024
MAX_AUDIO_WINDOW = 512  # feature frames (5.12 s)
MAX_DISCRIMINATOR_WIDTH = 256


@dataclass
class ModelConfig:
    image_size: int = 128
    latent_dim: int = 256
    audio_window: int = 64  # feature frames (10 ms each) per video frame
    # feature frames after the frame's centre: 32 = centred (paper); 12 = 120 ms look-ahead, streamable
    audio_lookahead: int = 12
    num_audio_features: int = 60
    # c0 (log frame energy) as recorded ("absolute") or relative to the speaker's recent level ("relative",
    # data/loudness.py): a relative c0 reads the same at any recording gain, offline and streaming alike
    audio_loudness: Loudness = "absolute"
    num_landmarks: int = len(GEOMETRY_POINTS)
    generator: str = "paper"  # a key of apb2face.models.registry.GENERATORS
    generator_width: float = 1.0  # channel multiplier of the generator (paper = 1.0)
    discriminator_width: int = 64  # first-layer channels of the PatchGAN
    adaconv_init: Literal["identity", "normal"] = "identity"
    # also give the renderer the predicted landmarks drawn as contours (models/sketch.py); `skip` and `mobile` only
    geometry_sketch: bool = False
    # the decoder also predicts a flow that moves the reference's pixels into place, so hair, skin and background keep
    # the reference's texture, not the L1 loss's average (models/reference_warp.py). `skip`: a mask pastes the warped
    # reference over its output; `mobile`: the output is a change of the warped reference instead of the unmoved one
    reference_warp: bool = False
    # `mobile` only: the trunk's resolution as a fraction of the crop, 1/4 (the design study's) or 1/8 (a quarter of
    # the trunk's pixels, one more down- and upsampling step around it)
    trunk_stride: int = 4
    # `mobile` only: the last stage runs at half resolution and predicts each output pixel's 2x2 block as 12
    # channels (sub-pixel convolution), over the reference's own packed pixels, instead of a full-resolution tail
    subpixel_head: bool = False
    # `mobile` only: channel multiplier of the decoder after the trunk (its half-resolution stage is most of the
    # per-frame work at 256 px); None: generator_width
    decoder_width: float | None = None
    # px: draw the geometry sketch at most this size and upsample it (bilinear) to larger feature maps; None: at
    # their own size. At 256 px drawing it at 128 was about an eighth of the `realtime` frame graph's time
    sketch_max_size: int | None = None

    def __post_init__(self) -> None:
        self._check_types()
        self._check_sizes()
        if self.num_audio_features != 60:
            raise ValueError("num_audio_features must be 60 (apb2face.data.audio.NUM_FEATURES)")
        if self.num_landmarks != len(GEOMETRY_POINTS):
            raise ValueError(f"num_landmarks must be {len(GEOMETRY_POINTS)} (len(GEOMETRY_POINTS))")
        if self.geometry_sketch and self.generator not in SKETCH_GENERATORS:
            raise ValueError(f"geometry_sketch needs generator 'skip' or 'mobile', got {self.generator!r}")
        if self.reference_warp and self.generator not in ("skip", "mobile"):
            raise ValueError(f"reference_warp needs generator 'skip' or 'mobile', got {self.generator!r}")
        if self.trunk_stride not in (4, 8):
            raise ValueError(f"trunk_stride must be 4 or 8, got {self.trunk_stride}")
        if (
            self.trunk_stride != 4 or self.subpixel_head or self.decoder_width is not None
        ) and self.generator != "mobile":
            raise ValueError(
                f"trunk_stride, subpixel_head and decoder_width need generator 'mobile', got {self.generator!r}"
            )
        if self.audio_loudness not in get_args(Loudness):
            raise ValueError(f"audio_loudness must be 'absolute' or 'relative', got {self.audio_loudness!r}")
        if self.adaconv_init not in ("identity", "normal"):
            raise ValueError(f"adaconv_init must be 'identity' or 'normal', got {self.adaconv_init!r}")

    def _check_types(self) -> None:
        for name in (
            "image_size",
            "latent_dim",
            "audio_window",
            "audio_lookahead",
            "num_audio_features",
            "num_landmarks",
            "discriminator_width",
            "trunk_stride",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if not isinstance(self.generator_width, (int, float)) or isinstance(self.generator_width, bool):
            raise ValueError(f"generator_width must be a number, got {self.generator_width!r}")
        if self.decoder_width is not None and (
            not isinstance(self.decoder_width, (int, float)) or isinstance(self.decoder_width, bool)
        ):
            raise ValueError(f"decoder_width must be a number or null, got {self.decoder_width!r}")
        if self.sketch_max_size is not None and (
            not isinstance(self.sketch_max_size, int) or isinstance(self.sketch_max_size, bool)
        ):
            raise ValueError(f"sketch_max_size must be an integer or null, got {self.sketch_max_size!r}")
        if not isinstance(self.generator, str):
            raise ValueError(f"generator must be a name, got {self.generator!r}")
        for name in ("geometry_sketch", "reference_warp", "subpixel_head"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")

    def _check_sizes(self) -> None:
        if self.image_size not in (64, 128, 256):
            raise ValueError(f"image_size must be 64, 128 or 256, got {self.image_size}")
        if not 16 <= self.latent_dim <= MAX_LATENT_DIM:
            raise ValueError(f"latent_dim must be in [16, {MAX_LATENT_DIM}], got {self.latent_dim}")
        if not 16 <= self.audio_window <= MAX_AUDIO_WINDOW or self.audio_window % 16:
            raise ValueError(
                f"audio_window must be a multiple of 16 in [16, {MAX_AUDIO_WINDOW}], got {self.audio_window}"
            )
        if not 0 <= self.audio_lookahead <= self.audio_window:
            raise ValueError(f"audio_lookahead must be in [0, audio_window], got {self.audio_lookahead}")
        if not 0.1 <= self.generator_width <= 4.0:
            raise ValueError(f"generator_width must be in [0.1, 4], got {self.generator_width}")
        if self.decoder_width is not None and not 0.1 <= self.decoder_width <= 4.0:
            raise ValueError(f"decoder_width must be in [0.1, 4], got {self.decoder_width}")
        if self.sketch_max_size is not None and not 16 <= self.sketch_max_size <= 256:
            raise ValueError(f"sketch_max_size must be in [16, 256], got {self.sketch_max_size}")
        if not 8 <= self.discriminator_width <= MAX_DISCRIMINATOR_WIDTH:
            raise ValueError(
                f"discriminator_width must be in [8, {MAX_DISCRIMINATOR_WIDTH}], got {self.discriminator_width}"
            )
