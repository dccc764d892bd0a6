"""APB2Face: the Audio-aware Fuser and a Multi-face Reenactor in one module (the inference stack).

    forward(reference, audio, pose, eyes) -> (image, landmarks)
      reference (B,3,S,S) in [-1,1]; audio (B,1,W,60) raw features (apb2face.data.audio.audio_features windows);
      pose (B,3) degrees yaw/pitch/roll; eyes (B,2) openness 0..1
      -> image (B,3,S,S) in [-1,1]; landmarks (B,K,2) in [0,1] of the crop (K = len(GEOMETRY_POINTS))

For streaming, split it: `encode_reference` once per reference, then per frame `fuse` + `render`.
"""

from __future__ import annotations

import torch
from torch import nn

from apb2face.models.config import ModelConfig
from apb2face.models.fuser import AudioFuser
from apb2face.models.registry import build_generator


class APB2Face(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.fuser = AudioFuser(config)
        self.generator = build_generator(config)

    def fuse(self, audio: torch.Tensor, pose: torch.Tensor, eyes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> latent (B, latent_dim), landmarks (B, K, 2)."""
        return self.fuser(audio, pose, eyes)

    def encode_reference(self, reference: torch.Tensor) -> torch.Tensor:
        """Per-reference features (everything before the first AdaConv); cache them across frames."""
        return self.generator.encode(reference)

    def render(self, features: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """Features of `encode_reference` (batch 1 broadcasts over the latent's batch) + latent -> image."""
        if features.shape[0] == 1 and latent.shape[0] > 1:
            features = features.expand(latent.shape[0], *features.shape[1:])
        return self.generator.render(features, latent)

    def forward(self, reference: torch.Tensor, audio: torch.Tensor, pose: torch.Tensor,
                eyes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent, landmarks = self.fuse(audio, pose, eyes)
        return self.render(self.encode_reference(reference), latent), landmarks
