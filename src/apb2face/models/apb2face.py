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

    def encode_audio_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Raw audio feature rows (R, 60) -> encoded rows (R, AUDIO_ROW_WIDTH); cache them across frames."""
        return self.fuser.encode_rows(rows)

    def fuse_rows(
        self, windows: torch.Tensor, pose: torch.Tensor, eyes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`fuse` on windows of encoded rows (B, W, AUDIO_ROW_WIDTH) -> latent, landmarks."""
        return self.fuser.fuse_rows(windows, pose, eyes)

    def encode_reference(self, reference: torch.Tensor) -> torch.Tensor:
        """Per-reference features (everything before the first AdaConv); cache them across frames."""
        return self.generator.encode(reference)

    def render(
        self,
        features: torch.Tensor,
        latent: torch.Tensor,
        geometry: torch.Tensor | None = None,
        broadcast: bool = True,
    ) -> torch.Tensor:
        """Features of `encode_reference` + latent -> image. With `broadcast`, batch-1 features are expanded over the
        latent's batch (exporters pass False and expand with static shapes themselves).

        Generators that draw the geometry sketch get `geometry` (B, K, 2), by default the fuser's landmarks for
        this latent (training passes ground truth for part of the batch: teacher forcing); others ignore it."""
        if broadcast and features.shape[0] == 1 and latent.shape[0] > 1:
            features = features.expand(latent.shape[0], *features.shape[1:])
        if not self.config.geometry_sketch:
            return self.generator.render(features, latent)
        if geometry is None:
            geometry = self.fuser.landmarks(latent)
        return self.generator.render(features, latent, geometry)

    def forward(
        self,
        reference: torch.Tensor,
        audio: torch.Tensor,
        pose: torch.Tensor,
        eyes: torch.Tensor,
        geometry: torch.Tensor | None = None,
        teacher: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sketch generators draw the predicted landmarks; in training, `geometry` (B, K, 2) replaces them where the
        (B,) bool mask `teacher` is set (everywhere without a mask), and the predicted ones enter the sketch detached
        (the fuser learns geometry from the landmark loss alone)."""
        latent, landmarks = self.fuse(audio, pose, eyes)
        sketch_points = None
        if self.config.geometry_sketch:
            sketch_points = landmarks
            if geometry is not None:
                geometry = geometry.to(landmarks.dtype)
                sketch_points = (
                    geometry if teacher is None else torch.where(teacher[:, None, None], geometry, landmarks.detach())
                )
        return self.render(self.encode_reference(reference), latent, sketch_points), landmarks
