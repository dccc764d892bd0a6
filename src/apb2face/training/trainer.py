"""The training loop: fuser + generator trained jointly end to end against a conditional PatchGAN.

Per step (as upstream V2, plus the geometry loss the paper describes and upstream left out):
  fake, landmarks = G(reference, audio, pose, eyes)
  D step: 0.5 * [LSGAN(D(ref, target) -> 1) + LSGAN(D(ref, fake.detach()) -> 0)]
  G step (D frozen): lambda_gan * LSGAN(D(ref, fake) -> 1) + lambda_l1 * L1(fake, target)
                     + lambda_geometry * L1(landmarks, target landmarks)
The learning rate is a pure function of the step and the data order a pure function of (seed, sample number), so
`--resume` continues exactly. Under torchrun every process trains on its share of the global batch (DDP); only
rank 0 writes files.

Run directory::

    RUN/run.json                 the resolved RunConfig and the dataset path
    RUN/metrics.jsonl            one JSON line per step
    RUN/tb/                      TensorBoard scalars and image grids
    RUN/images/step_XXXXXXX.png  reference | generated | target | target with predicted landmarks
    RUN/checkpoints/step_XXXXXXX/  model.safetensors, discriminator.safetensors, state.pt (optimisers, RNG, step)
    RUN/latest/, RUN/final/      release checkpoints (apb2face.models.modeling.save_pretrained)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from apb2face.errors import UserError
from apb2face.io import atomic_dir, atomic_path, write_json
from apb2face.models.apb2face import APB2Face
from apb2face.models.discriminator import PatchDiscriminator
from apb2face.models.modeling import save_pretrained, warm_start
from apb2face.training.checkpoint import (
    CHECKPOINTS_DIR,
    METRICS_FILE,
    RUN_FILE,
    cpu_state,
    latest_checkpoint,
    list_checkpoints,
    model_card,
)
from apb2face.training.config import RunConfig, learning_rate
from apb2face.training.data import FrameDataset, StepBatches
from apb2face.training.losses import LOSS_KEYS, lsgan, mouth_l1

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Distributed:
        return cls(
            rank=int(os.environ.get("RANK", 0)),
            world=int(os.environ.get("WORLD_SIZE", 1)),
            local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        )


class Trainer:
    def __init__(
        self, run: RunConfig, data: str | Path, out: str | Path, resume: bool = False, max_steps: int | None = None
    ) -> None:
        self.run = run
        self.data_path = Path(data)
        self.out = Path(out)
        self.resume = resume
        self.stop = min(run.train.steps, max_steps) if max_steps is not None else run.train.steps
        self.dist = Distributed.from_env()
        self.step = 0
        self.wall_seconds = 0.0

    # ------------------------------------------------------------------ setup
    def setup(self) -> Trainer:
        train = self.run.train
        self.device = self._device()
        if self.dist.enabled and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(train.amp)
        if self.device.type != "cuda":
            self.amp_dtype = None
        self._check_out_dir()
        self.data = FrameDataset(
            self.data_path, self.run.model, seed=train.seed, reference_mouth_quantile=train.reference_mouth_quantile
        )
        torch.manual_seed(train.seed)
        self.model = APB2Face(self.run.model).to(self.device)
        self.disc = PatchDiscriminator(self.run.model).to(self.device)
        self.opt_g = torch.optim.Adam(self.model.parameters(), lr=train.lr, betas=train.betas)
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=train.lr, betas=train.betas)
        fp16 = self.amp_dtype == torch.float16
        self.scaler_g = torch.amp.GradScaler("cuda", enabled=fp16)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=fp16)
        checkpoint = latest_checkpoint(self.out) if self.resume else None
        if checkpoint is not None:
            self._load_checkpoint(checkpoint)
        elif train.init_from:
            # the checkpoint's audio statistics come with its fuser: the fuser was trained on them
            warm_start(self.model, train.init_from)
            log.info("initialised from %s", train.init_from)
        else:
            mean, std = self.data.audio_stats()
            self.model.fuser.set_audio_stats(mean, std)
        self.model_ddp: nn.Module = self.model
        self.disc_ddp: nn.Module = self.disc
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model_ddp = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
            self.disc_ddp = nn.parallel.DistributedDataParallel(self.disc, device_ids=ids)
        if self.dist.main:
            self.references = self.data.neutral_references()
            write_json(
                self.out / RUN_FILE, {"config": dataclasses.asdict(self.run), "data": str(self.data_path.resolve())}
            )
            self._trim_metrics()
        return self

    def _device(self) -> torch.device:
        want = self.run.train.device
        if want == "auto":
            want = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(want)
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise UserError(f"train.device={want} but CUDA is not available")
            if device.index is None:
                device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(device)
        return device

    def _check_out_dir(self) -> None:
        if self.out.exists() and not self.out.is_dir():
            raise UserError("output exists and is not a directory", self.out)
        if self.resume:
            if latest_checkpoint(self.out) is None:
                raise UserError("no checkpoint to resume from", self.out / CHECKPOINTS_DIR)
        elif (self.out / METRICS_FILE).exists() or (self.out / CHECKPOINTS_DIR).exists():
            raise UserError(
                "already holds a training run; pass --resume to continue it or choose a new --out", self.out
            )
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ loop
    def fit(self) -> dict[str, float]:
        from tqdm import tqdm

        train = self.run.train
        start = self.step
        last: dict[str, float] = {}
        if start >= self.stop:
            log.info("nothing to do: the run is at step %d (stop at %d)", start, self.stop)
            return last
        loader = torch.utils.data.DataLoader(
            self.data,
            batch_sampler=StepBatches(start, self.stop, train.batch_size, self.dist.rank, self.dist.world),
            num_workers=train.workers,
            pin_memory=self.device.type == "cuda",
        )
        writer = self._summary_writer() if self.dist.main else None
        bar = tqdm(total=self.stop, initial=start, disable=not self.dist.main, desc="train", dynamic_ncols=True)
        wall_base, fit_t0 = self.wall_seconds, time.perf_counter()
        try:
            tick = time.perf_counter()
            for batch in loader:
                batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
                losses, fake, landmarks = self.train_step(batch)
                self.step += 1
                # data wait + the update; logging, images and checkpoints are not part of a step's time
                seconds = time.perf_counter() - tick
                last = {"step": self.step, **losses, "lr": learning_rate(train, self.step - 1), "seconds": seconds}
                if self.dist.main:
                    self._log(last, writer, bar)
                    if self.step % train.image_interval == 0 or self.step == self.stop or self.step == start + 1:
                        self._write_images(batch, fake, landmarks, writer)
                if self.step % train.ckpt_interval == 0 or self.step == self.stop:
                    self.wall_seconds = wall_base + time.perf_counter() - fit_t0
                    self.save_checkpoint(final=self.step == self.stop)
                tick = time.perf_counter()
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        return last

    def train_step(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
        train = self.run.train
        lr = learning_rate(train, self.step)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        self.model_ddp.train()
        self.disc_ddp.train()
        ref, target = batch["reference"], batch["target"]
        sketch: dict[str, torch.Tensor] = {}
        if self.run.model.geometry_sketch:
            # a pure function of (seed, step, rank), like the data order: resume draws the same masks
            draw = torch.Generator().manual_seed((train.seed * 1_000_003 + self.step) * 64 + self.dist.rank)
            teacher = torch.rand(len(ref), generator=draw) < train.sketch_teacher_forcing
            sketch = {"geometry": batch["landmarks"], "teacher": teacher.to(self.device)}
        with self._autocast():
            fake, landmarks = self.model_ddp(ref, batch["audio"], batch["pose"], batch["eyes"], **sketch)

        # D step: real and fake in one forward (one DDP reduction; InstanceNorm is per sample so this is exact)
        self.disc.requires_grad_(True)
        with self._autocast():
            logits = self.disc_ddp(torch.cat([ref, ref]), torch.cat([target, fake.detach()]))
            real_logits, fake_logits = logits.float().chunk(2)
            loss_d_real = lsgan(real_logits, real=True)
            loss_d_fake = lsgan(fake_logits, real=False)
            loss_d = 0.5 * (loss_d_real + loss_d_fake)
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler_d.scale(loss_d).backward()
        self.scaler_d.step(self.opt_d)
        self.scaler_d.update()

        # G step with D frozen; the plain module avoids a DDP reduction for gradients nobody uses
        self.disc.requires_grad_(False)
        with self._autocast():
            pred = self.disc(ref, fake).float()
            loss_gan = lsgan(pred, real=True)
            loss_l1 = F.l1_loss(fake.float(), target)
            loss_geometry = F.l1_loss(landmarks.float(), batch["landmarks"])
            loss_mouth = mouth_l1(fake.float(), target, batch["landmarks"]) if train.lambda_mouth else loss_l1 * 0
            loss_g = (
                train.lambda_gan * loss_gan
                + train.lambda_l1 * loss_l1
                + train.lambda_geometry * loss_geometry
                + train.lambda_mouth * loss_mouth
            )
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler_g.scale(loss_g).backward()
        self.scaler_g.step(self.opt_g)
        self.scaler_g.update()
        self.disc.requires_grad_(True)

        values = torch.stack(
            [loss_g, loss_d, loss_d_real, loss_d_fake, loss_gan, loss_l1, loss_geometry, loss_mouth]
        ).detach()
        if self.dist.enabled:
            dist.all_reduce(values)
            values /= self.dist.world
        return dict(zip(LOSS_KEYS, values.float().cpu().tolist())), fake.detach(), landmarks.detach()

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    # ------------------------------------------------------------------ outputs
    def _summary_writer(self):
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.out / "tb"), purge_step=self.step + 1 if self.step else None)

    def _log(self, record: dict[str, float], writer, bar) -> None:
        with open(self.out / METRICS_FILE, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
        if writer is not None and (self.step % self.run.train.log_interval == 0 or self.step == self.stop):
            for key in (*LOSS_KEYS, "lr", "seconds"):
                writer.add_scalar(f"train/{key}", record[key], self.step)
        bar.set_postfix(
            G=f"{record['loss_g']:.3f}",
            D=f"{record['loss_d']:.3f}",
            L1=f"{record['loss_l1']:.4f}",
            geo=f"{record['loss_geometry']:.4f}",
            refresh=False,
        )
        bar.update(1)

    def _write_images(
        self, batch: dict[str, torch.Tensor], fake: torch.Tensor, landmarks: torch.Tensor, writer
    ) -> None:
        grid = image_grid(batch["reference"], fake, batch["target"], landmarks, batch["landmarks"])
        path = self.out / "images" / f"step_{self.step:07d}.png"
        with atomic_path(path) as tmp:
            cv2.imwrite(str(tmp), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        if writer is not None:
            writer.add_image("train/reference|generated|target|landmarks", grid, self.step, dataformats="HWC")

    def _trim_metrics(self) -> None:
        """On resume, drop metric lines of steps after the checkpoint (they will be recomputed)."""
        path = self.out / METRICS_FILE
        if not path.exists():
            return
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        kept = [ln for ln in lines if json.loads(ln)["step"] <= self.step]
        if len(kept) != len(lines):
            with atomic_path(path) as tmp:
                tmp.write_text("".join(ln + "\n" for ln in kept))

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, final: bool = False) -> None:
        """Training checkpoint (+ release checkpoint RUN/latest, and RUN/final at the end); rank 0 writes."""
        if self.dist.main:
            from safetensors.torch import save_file

            ckpt_dir = self.out / CHECKPOINTS_DIR / f"step_{self.step:07d}"
            with atomic_dir(ckpt_dir) as tmp:
                save_file(cpu_state(self.model), str(tmp / "model.safetensors"))
                save_file(cpu_state(self.disc), str(tmp / "discriminator.safetensors"))
                torch.save(self._training_state(), tmp / "state.pt")
                write_json(tmp / RUN_FILE, {"config": dataclasses.asdict(self.run), "step": self.step})
            self._prune_checkpoints()
            extra = self._release_meta()
            card = model_card(self.run, extra, sorted(self.references))
            save_pretrained(self.model, self.out / "latest", self.references, extra=extra, readme=card)
            if final:
                save_pretrained(self.model, self.out / "final", self.references, extra=extra, readme=card)
        if self.dist.enabled:
            dist.barrier()

    def _release_meta(self) -> dict[str, Any]:
        meta = self.data.dataset.meta
        return {
            "step": self.step,
            "schedule_steps": self.run.train.steps,
            "fps": meta.fps,
            "dataset": self.data_path.resolve().name,
            "dataset_source": meta.source,
            "identities_from_split": "train",
            "train": dataclasses.asdict(self.run.train),
            "wall_seconds": round(self.wall_seconds, 1),
            "processes": self.dist.world,
            "device": self.device.type,
        }

    def _training_state(self) -> dict[str, Any]:
        np_state = np.random.get_state()
        return {
            "step": self.step,
            "wall_seconds": self.wall_seconds,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler_g": self.scaler_g.state_dict(),
            "scaler_d": self.scaler_d.state_dict(),
            "rng": {
                "python": random.getstate(),
                "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
            # the data order is a pure function of these (see training/data.py)
            "data": {
                "seed": self.run.train.seed,
                "global_batch": self.run.train.batch_size,
                "samples_seen": self.step * self.run.train.batch_size,
                "num_frames": len(self.data),
            },
        }

    def _load_checkpoint(self, ckpt_dir: Path) -> None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            self.model.load_state_dict(load_file(str(ckpt_dir / "model.safetensors"), device=str(self.device)))
            self.disc.load_state_dict(load_file(str(ckpt_dir / "discriminator.safetensors"), device=str(self.device)))
            state = torch.load(ckpt_dir / "state.pt", map_location=self.device, weights_only=True)
        except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
            raise UserError(
                f"cannot resume from this checkpoint ({str(exc).splitlines()[0][:160]})", ckpt_dir
            ) from None
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.scaler_g.load_state_dict(state["scaler_g"])
        self.scaler_d.load_state_dict(state["scaler_d"])
        rng = state["rng"]
        random.setstate(_as_tuple(rng["python"]))
        np.random.set_state((rng["numpy"][0], rng["numpy"][1].numpy().astype(np.uint32), *rng["numpy"][2:]))
        torch.set_rng_state(rng["torch"].cpu())
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
        data = state["data"]
        if data["num_frames"] != len(self.data) or data["global_batch"] != self.run.train.batch_size:
            log.warning("the dataset or batch size changed since the checkpoint: the data order will differ")
        self.step = int(state["step"])
        self.wall_seconds = float(state.get("wall_seconds", 0.0))
        log.info("resumed from %s (step %d)", ckpt_dir, self.step)

    def _prune_checkpoints(self) -> None:
        import shutil

        for old in list_checkpoints(self.out)[: -self.run.train.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)


def image_grid(
    reference: torch.Tensor,
    fake: torch.Tensor,
    target: torch.Tensor,
    landmarks: torch.Tensor,
    target_landmarks: torch.Tensor,
    rows: int = 4,
) -> np.ndarray:
    """Rows of [reference | generated | target | target with true (red) and predicted (green) landmarks]."""
    n = min(rows, reference.shape[0])

    def img(t: torch.Tensor) -> np.ndarray:
        return ((t.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()

    size = reference.shape[-1]
    out = []
    for i in range(n):
        marked = np.ascontiguousarray(img(target[i]))
        for pts, colour in ((target_landmarks[i], (255, 0, 0)), (landmarks[i], (0, 255, 0))):
            for x, y in pts.detach().float().cpu().numpy() * size:
                cv2.circle(marked, (int(round(x)), int(round(y))), max(1, size // 128), colour, -1)
        out.append(np.concatenate([img(reference[i]), img(fake[i]), img(target[i]), marked], axis=1))
    return np.concatenate(out, axis=0)


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
