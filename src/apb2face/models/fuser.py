"""The Audio-aware Fuser (paper Fig. 1, left; the official code's `AudioNet`, `model/audio_net.py`): audio window +
head pose + blink -> latent.

Layer for layer as the official `model/audio_net.py`: a conv stack over the feature axis, one over the time axis, an
audio projection, pose and eye MLPs, a fusion MLP, per-sample standardisation of the 256-d latent, and a landmark head
from the latent. Added here: input conditioning (audio feature mean/std buffers set from training data and saved
with the weights, pose in units of 30 degrees, eye openness mapped to [-1, 1]) and a sigmoid on the landmark head
so landmarks come out in normalised crop coordinates.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from apb2face.models.config import POSE_SCALE_DEGREES, ModelConfig

AUDIO1_CHANNELS = (1, 72, 108, 162, 243, 256)
AUDIO_ROW_POSITIONS = 2  # the 60 features after five stride-2 convs along the feature axis: 60 -> 30 -> ... -> 2
AUDIO_ROW_WIDTH = AUDIO1_CHANNELS[-1] * AUDIO_ROW_POSITIONS  # one feature row after those convs, flattened


def _mlp(sizes: tuple[int, ...]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class AudioFuser(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        f = config.num_audio_features
        c = AUDIO1_CHANNELS
        # along the feature axis: 60 -> 30 -> 15 -> 8 -> 4 -> 2
        self.audio1 = nn.Sequential(
            *[
                m
                for a, b in zip(c[:-1], c[1:])
                for m in (nn.Conv2d(a, b, (1, 3), (1, 2), (0, 1)), nn.ReLU(inplace=True))
            ]
        )
        # along time: 64 -> 32 -> 16 -> 8 -> 4, then a (window/16)-tall conv collapses it to 1
        time_layers: list[nn.Module] = []
        for _ in range(4):
            time_layers += [nn.Conv2d(256, 256, (3, 1), (2, 1), (1, 0)), nn.ReLU(inplace=True)]
        k = config.audio_window // 16
        time_layers += [nn.Conv2d(256, 256, (k, 1), (k, 1)), nn.ReLU(inplace=True)]
        self.audio2 = nn.Sequential(*time_layers)
        width = f
        for _ in range(len(c) - 1):
            width = (width + 1) // 2
        self.trans_audio = nn.Linear(256 * width, 256)
        self.trans_pose = _mlp((3, 64, 64, 64))
        self.trans_eye = _mlp((2, 64, 64, 64))
        self.trans_cat1 = _mlp((256 + 64 + 64, 256, 256, config.latent_dim))
        # per-sample standardisation of the latent, no affine (upstream norm_1d)
        self.norm = nn.LayerNorm(config.latent_dim, eps=1e-5, elementwise_affine=False)
        self.trans_cat2 = nn.Linear(config.latent_dim, 2 * config.num_landmarks)
        self.register_buffer("audio_mean", torch.zeros(f))
        self.register_buffer("audio_std", torch.ones(f))

    @torch.no_grad()
    def set_audio_stats(self, mean: np.ndarray | torch.Tensor, std: np.ndarray | torch.Tensor) -> None:
        """Per-feature normalisation of the audio input, computed once from the training data."""
        self.audio_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.audio_std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-4))

    def forward(
        self, audio: torch.Tensor, pose: torch.Tensor, eyes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """audio (B,1,W,60) raw features, pose (B,3) degrees, eyes (B,2) openness -> latent (B,D), landmarks (B,K,2)"""
        a = (audio - self.audio_mean) / self.audio_std
        return self._fuse(self.audio2(self.audio1(a)), pose, eyes)

    # The normalisation and the feature-axis convs (audio1, kernel height 1) see one feature row at a time, so
    # inference runs them once per row and keeps the results: a frame's window shares all but a few rows with the
    # previous frame's. Training runs `forward` on whole windows (the same function).

    def encode_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Raw feature rows (R, 60) -> encoded rows (R, AUDIO_ROW_WIDTH), each row on its own."""
        a = (rows - self.audio_mean) / self.audio_std
        return self.audio1(a[:, None, None, :]).flatten(1)

    def fuse_rows(
        self, windows: torch.Tensor, pose: torch.Tensor, eyes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward` on windows of encoded rows (B, W, AUDIO_ROW_WIDTH)."""
        batch, window = windows.shape[:2]
        a = windows.reshape(batch, window, AUDIO1_CHANNELS[-1], AUDIO_ROW_POSITIONS).permute(0, 2, 1, 3)
        return self._fuse(self.audio2(a), pose, eyes)

    def _fuse(self, audio: torch.Tensor, pose: torch.Tensor, eyes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.trans_audio(audio.flatten(1))
        p = self.trans_pose(pose / POSE_SCALE_DEGREES)
        e = self.trans_eye(eyes * 2.0 - 1.0)
        latent = self.norm(self.trans_cat1(torch.cat([a, p, e], dim=1)))
        return latent, self.landmarks(latent)

    def landmarks(self, latent: torch.Tensor) -> torch.Tensor:
        """The landmark head: latent (B, D) -> geometry points (B, K, 2) in [0, 1] of the crop."""
        return torch.sigmoid(self.trans_cat2(latent)).view(-1, self.config.num_landmarks, 2)
