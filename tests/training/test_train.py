"""Training: a short run writes its outputs, resume is exact, LR schedule, bad data is a user error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from apb2face.config import load
from apb2face.data.audio import frame_windows
from apb2face.errors import UserError
from apb2face.models.config import GEOMETRY_POINTS
from apb2face.models.modeling import load_pretrained
from apb2face.training.checkpoint import append_metrics
from apb2face.training.config import RunConfig, TrainConfig, learning_rate
from apb2face.training.data import FrameDataset, StepBatches
from apb2face.training.trainer import Trainer

from .conftest import write_tiny_dataset


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def tiny(*overrides: str) -> RunConfig:
    return load(RunConfig, "tiny", list(overrides))


def test_lr_constant_then_linear_to_zero():
    train = TrainConfig(steps=100, lr=1e-3, lr_decay_start=0.4)
    assert learning_rate(train, 0) == learning_rate(train, 39) == 1e-3
    assert learning_rate(train, 40) == 1e-3
    assert learning_rate(train, 70) == pytest.approx(0.5e-3)
    assert 0 < learning_rate(train, 99) < 1e-4
    assert learning_rate(train, 100) == 0.0


def test_lr_warmup_ramps_up_then_follows_the_schedule():
    train = TrainConfig(steps=100, lr=1e-3, lr_decay_start=0.4, lr_warmup=0.1)
    ramp = [learning_rate(train, step) for step in range(10)]
    assert ramp == sorted(ramp) and ramp[0] == pytest.approx(1e-4) and ramp[-1] == pytest.approx(1e-3)
    assert learning_rate(train, 10) == learning_rate(train, 39) == 1e-3
    assert learning_rate(train, 70) == pytest.approx(0.5e-3)
    with pytest.raises(ValueError, match="lr_warmup"):
        TrainConfig(lr_decay_start=0.3, lr_warmup=0.5)


def test_step_batches_shard_the_global_batch():
    whole = list(StepBatches(2, 4, 6))
    parts = [list(StepBatches(2, 4, 6, rank=r, world=3)) for r in range(3)]
    assert whole == [list(range(12, 18)), list(range(18, 24))]
    for step in range(2):
        assert sum((p[step] for p in parts), []) == whole[step]
    with pytest.raises(UserError):
        StepBatches(0, 1, 5, world=2)


def test_samples_are_a_pure_function_of_seed_and_number(tiny_dataset):
    config = tiny().model
    a = FrameDataset(tiny_dataset, config, seed=3)
    b = FrameDataset(tiny_dataset, config, seed=3)
    for k in (0, 5, 23, 24, 47, 100):
        sa, sb = a[k], b[k]
        for key in sa:
            assert (sa[key] == sb[key]).all(), key
    # each epoch visits every frame once
    assert sorted(a.frame_index(k) for k in range(len(a), 2 * len(a))) == list(range(len(a)))
    s = a[0]
    assert s["reference"].shape == (3, 64, 64) and s["target"].shape == (3, 64, 64)
    assert s["audio"].shape == (1, 64, 60)
    assert s["landmarks"].shape == (106, 2)
    assert not (s["reference"] == s["target"]).all()  # the reference is another frame
    assert -1 <= s["target"].min() and s["target"].max() <= 1


def test_downscales_larger_dataset(tmp_path):
    root = write_tiny_dataset(tmp_path / "d128", size=128, frames=4)
    ds = FrameDataset(root, tiny().model, seed=0)
    assert ds[0]["target"].shape == (3, 64, 64)
    with pytest.raises(UserError, match="smaller than the model"):
        FrameDataset(tiny_dataset_64(tmp_path), load(RunConfig, "default").model, seed=0)


def tiny_dataset_64(tmp_path: Path) -> Path:
    return write_tiny_dataset(tmp_path / "d64", size=64, frames=4)


def test_missing_dataset_is_user_error(tmp_path):
    with pytest.raises(UserError, match="dataset.json"):
        Trainer(tiny(), tmp_path / "nope", tmp_path / "run").setup()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "dataset.json").write_text("{broken")
    with pytest.raises(UserError, match="dataset.json"):
        Trainer(tiny(), tmp_path / "bad", tmp_path / "run").setup()


def test_train_two_steps_writes_everything(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny("train.steps=2", "train.ckpt_interval=1"), tiny_dataset, run).setup().fit()
    rows = metrics(run)
    assert [r["step"] for r in rows] == [1, 2]
    for key in (
        "loss_g",
        "loss_d",
        "loss_l1",
        "loss_gan",
        "loss_geometry",
        "loss_d_real",
        "loss_d_fake",
        "lr",
        "seconds",
    ):
        assert np.isfinite(rows[0][key]), key
    assert (run / "checkpoints" / "step_0000002" / "state.pt").is_file()
    assert (run / "images" / "step_0000002.png").is_file()
    assert any((run / "tb").iterdir())
    release = load_pretrained(run / "final")
    assert sorted(release.references) == ["anna", "ben"]
    assert release.meta["step"] == 2 and release.meta["fps"] == 25.0
    assert load_pretrained(run / "latest").meta["step"] == 2
    assert "step 2 of a 2-step schedule" in (run / "final" / "README.md").read_text()
    # a second run into the same directory without --resume is refused
    with pytest.raises(UserError, match="--resume"):
        Trainer(tiny(), tiny_dataset, run).setup()


def test_resume_is_exact(tiny_dataset, tmp_path, capsys):
    config = tiny("train.steps=6", "train.ckpt_interval=10")
    Trainer(config, tiny_dataset, tmp_path / "a").setup().fit()
    Trainer(config, tiny_dataset, tmp_path / "b", max_steps=3).setup().fit()
    assert [r["step"] for r in metrics(tmp_path / "b")] == [1, 2, 3]
    with open(tmp_path / "b" / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "loss_g": 1.2')  # a kill in the middle of an append leaves a torn last line
    capsys.readouterr()
    Trainer(config, tiny_dataset, tmp_path / "b", resume=True).setup().fit()
    assert "3/3" in capsys.readouterr().err  # the bar counts this run's steps: 6 in the schedule, 3 done before
    a, b = metrics(tmp_path / "a"), metrics(tmp_path / "b")
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5, 6]
    for ra, rb in zip(a, b):
        for key in ("loss_g", "loss_d", "loss_l1", "loss_gan", "loss_geometry", "lr"):
            assert abs(ra[key] - rb[key]) <= 1e-5, (ra["step"], key, ra[key], rb[key])
    # and the losses actually moved (the test would be vacuous on a frozen model)
    assert a[-1]["loss_g"] != a[0]["loss_g"]


def test_resume_without_checkpoint_is_user_error(tiny_dataset, tmp_path):
    with pytest.raises(UserError, match="no checkpoint"):
        Trainer(tiny(), tiny_dataset, tmp_path / "empty", resume=True).setup()


@pytest.mark.parametrize("resume", [False, True])
def test_run_stopped_before_its_first_checkpoint_starts_again(tiny_dataset, tmp_path, resume):
    """What a run killed before its first checkpoint leaves (run.json, metrics, images) neither blocks a fresh start
    nor --resume: both start from step 0 and drop the old lines."""
    run = tmp_path / "run"
    config = tiny("train.steps=2", "train.ckpt_interval=10")
    Trainer(config, tiny_dataset, run).setup()  # writes run.json, like a run killed during its first steps
    append_metrics(run, {"step": 1, "loss_g": 9.0})
    (run / "images").mkdir()
    trainer = Trainer(config, tiny_dataset, run, resume=resume, max_steps=1).setup()
    assert trainer.step == 0 and not (run / "metrics.jsonl").exists() and not (run / "images").exists()
    trainer.fit()
    assert [r["step"] for r in metrics(run)] == [1] and metrics(run)[0]["loss_g"] != 9.0
    assert (run / "checkpoints" / "step_0000001" / "state.pt").is_file()


def test_time_budget_stops_the_run_and_fits_the_schedule(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    config = tiny("train.steps=100000", "train.ckpt_interval=100000", "train.image_interval=100000")
    trainer = Trainer(config, tiny_dataset, run, max_minutes=0.02, fit_schedule=True).setup()
    trainer.fit()
    assert trainer.loop_seconds >= 1.2 and 1 <= trainer.step < 1000
    assert trainer.run.train.steps == trainer.step  # the schedule ended when the time did
    assert [r["step"] for r in metrics(run)] == list(range(1, trainer.step + 1))
    release = load_pretrained(run / "final")
    assert release.meta["step"] == release.meta["schedule_steps"] == trainer.step


def test_closed_mouth_references(tiny_dataset):
    from apb2face.models.config import ModelConfig
    from apb2face.training.data import FrameDataset

    config = ModelConfig(image_size=64, generator_width=0.25)
    every = FrameDataset(tiny_dataset, config, seed=0)
    closed = FrameDataset(tiny_dataset, config, seed=0, reference_mouth_quantile=0.3)
    for name in closed.identities:
        pool = closed.reference_frames[name]
        assert len(every.reference_frames[name]) == len(every.identity_frames[name])
        assert 0 < len(pool) < len(closed.identity_frames[name])
        mouth = {
            int(f): closed.clips[int(closed.clip_of[f])].mouth[int(closed.frame_of[f])]
            for f in closed.identity_frames[name]
        }
        limit = np.quantile(list(mouth.values()), 0.3)
        assert all(mouth[int(f)] <= limit for f in pool)


def test_sketch_model_resumes_exactly_and_warm_starts(tiny_dataset, tmp_path):
    """The teacher-forcing draw comes from the saved RNG, so a sketch run resumes exactly too; init_from starts a
    sketch run from a release checkpoint of a run without the sketch."""
    base = ("model.generator=skip", "model.generator_width=0.25", "train.steps=4", "train.ckpt_interval=10")
    Trainer(tiny(*base), tiny_dataset, tmp_path / "plain").setup().fit()
    sketch = tiny(*base, "model.geometry_sketch=true", f"train.init_from={tmp_path / 'plain' / 'final'}")
    Trainer(sketch, tiny_dataset, tmp_path / "a").setup().fit()
    Trainer(sketch, tiny_dataset, tmp_path / "b", max_steps=2).setup().fit()
    Trainer(sketch, tiny_dataset, tmp_path / "b", resume=True).setup().fit()
    a, b = metrics(tmp_path / "a"), metrics(tmp_path / "b")
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    for ra, rb in zip(a, b):
        assert abs(ra["loss_g"] - rb["loss_g"]) <= 1e-5, (ra["step"], ra["loss_g"], rb["loss_g"])
    assert load_pretrained(tmp_path / "a" / "final").config.geometry_sketch


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU (AMP is CUDA-only)")
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_training_on_cuda(tiny_dataset, tmp_path, amp):
    """Mixed precision on a GPU: finite losses, a checkpoint that loads on the CPU, exact resume."""
    import math

    config = tiny("train.steps=4", "train.ckpt_interval=10", f"train.amp={amp}", "train.device=cuda")
    Trainer(config, tiny_dataset, tmp_path / "a").setup().fit()
    Trainer(config, tiny_dataset, tmp_path / "b", max_steps=2).setup().fit()
    Trainer(config, tiny_dataset, tmp_path / "b", resume=True).setup().fit()
    a, b = metrics(tmp_path / "a"), metrics(tmp_path / "b")
    assert all(math.isfinite(r["loss_g"]) and math.isfinite(r["loss_d"]) for r in a)
    for ra, rb in zip(a, b):
        assert abs(ra["loss_g"] - rb["loss_g"]) <= 1e-3 * max(1.0, abs(ra["loss_g"]))
    assert load_pretrained(tmp_path / "a" / "final").config.image_size == 64


@pytest.mark.parametrize("loudness", ["absolute", "relative"])
def test_audio_window_recomputed_from_the_audio_equals_the_clip_features(tiny_dataset, loudness):
    """The degraded-audio path computes features from a stretch of audio; with no degradation it must give the same
    window as the whole clip's features, at the clip's edges and inside (relative c0 included: its level tracker
    must have the same history)."""
    config = tiny(f"model.audio_loudness={loudness}").model
    ds = FrameDataset(tiny_dataset, config, seed=0, audio_augment=1.0)
    for clip in ds.clips:
        for frame in range(len(clip.pose)):
            want = frame_windows(clip.features, np.array([frame]), ds.fps, config.audio_window, config.audio_lookahead)
            got = ds.window_from_audio(clip, frame, lambda x: x)
            np.testing.assert_allclose(got, want[0], atol=1e-4)


def test_references_come_from_the_first_dataset_that_has_the_identity(tiny_dataset, tmp_path):
    """Adding a dataset of the same people (e.g. other voices) does not change the references a run bundles."""
    other = write_tiny_dataset(tmp_path / "other", seed=1)
    config = tiny().model

    def references(*roots: Path) -> dict[str, np.ndarray]:
        return FrameDataset(list(roots), config, seed=0).neutral_references()

    alone, others = references(tiny_dataset), references(other)
    assert all(not np.array_equal(alone[name], others[name]) for name in alone)
    for first, second, want in ((tiny_dataset, other, alone), (other, tiny_dataset, others)):
        got = references(first, second)
        assert got.keys() == want.keys() and all(np.array_equal(got[n], want[n]) for n in want)


@pytest.mark.parametrize("augment", ["audio_augment", "voice_augment"])
def test_augmentation_changes_windows_deterministically(tiny_dataset, augment):
    config = tiny().model
    plain = FrameDataset(tiny_dataset, config, seed=0)
    a = FrameDataset(tiny_dataset, config, seed=0, **{augment: 1.0})
    b = FrameDataset(tiny_dataset, config, seed=0, **{augment: 1.0})
    for k in range(4):
        torch.testing.assert_close(a[k]["audio"], b[k]["audio"])
        torch.testing.assert_close(a[k]["target"], plain[k]["target"])
        assert not torch.allclose(a[k]["audio"], plain[k]["audio"])
    with pytest.raises(UserError, match=augment):
        tiny(f"train.{augment}=1.5")


def test_eye_loss_sees_a_blink_the_image_loss_hardly_does():
    from apb2face.training.losses import LEFT_EYE_SLICE, RIGHT_EYE_SLICE, eyes_l1

    size = 128
    landmarks = torch.full((1, len(GEOMETRY_POINTS), 2), 0.5)
    for sl, x in ((RIGHT_EYE_SLICE, 0.35), (LEFT_EYE_SLICE, 0.65)):
        n = sl.stop - sl.start
        landmarks[0, sl, 0] = x + torch.linspace(-0.05, 0.05, n)
        landmarks[0, sl, 1] = 0.4  # closed: the points lie on one line
    target = torch.zeros(1, 3, size, size)
    fake = target.clone()
    fake[..., 48:53, 40:50] = 1.0  # an open right eye where the target's is shut (the box keeps a minimum height)
    whole = F.l1_loss(fake, target).item()
    assert eyes_l1(fake, target, landmarks).item() > 20 * whole
    assert eyes_l1(target, target, landmarks).item() == 0.0


def test_several_datasets_train_together_with_repeats_and_resume_exactly(tiny_dataset, tmp_path):
    """Two datasets (the second a copy under other identity names, as an enrolment adds a person): every frame of
    the second appears `repeats` times per epoch, the run records both, and a resumed run equals an unbroken one."""
    import shutil

    from apb2face.data.format import Dataset, DatasetWriter

    other = tmp_path / "other"
    source = Dataset(tiny_dataset)
    writer = DatasetWriter(other, image_size=64, sample_rate=16000, fps=25.0, source="test")
    for record in source.clips("train"):
        clip = source.load_clip(record)
        arrays = {k: getattr(clip, k) for k in ("frames", "audio", "landmarks", "pose", "eyes")}
        writer.add_clip("new" + record.identity, record.name, **arrays)
    writer.finish(test_fraction=0.0, seed=0)
    config = tiny()
    both = FrameDataset([tiny_dataset, other], config.model, seed=0, repeats=[1, 3])
    single = FrameDataset(tiny_dataset, config.model, seed=0)
    assert len(both) == len(single) + 3 * len(FrameDataset(other, config.model, seed=0))
    assert set(both.identities) == {"anna", "ben", "newanna", "newben"}
    epoch = [both.clips[both.clip_of[both.frame_index(k)]].identity for k in range(len(both))]
    assert sum(name.startswith("new") for name in epoch) == 3 * (len(both) - len(single)) // 3

    def train(out: Path, resume: bool, max_steps: int | None) -> list[dict]:
        run = tiny("train.steps=4", "train.ckpt_interval=2")
        Trainer(run, [tiny_dataset, other], out, resume=resume, max_steps=max_steps, data_repeats=[1, 3]).setup().fit()
        return metrics(out)

    unbroken = train(tmp_path / "a", False, None)
    train(tmp_path / "b", False, 2)
    resumed = train(tmp_path / "b", True, None)
    assert [m["loss_g"] for m in resumed] == pytest.approx([m["loss_g"] for m in unbroken], abs=1e-5)
    recorded = json.loads((tmp_path / "a" / "run.json").read_text())
    assert recorded["data_repeats"] == [1, 3] and len(recorded["data"]) == 2
    shutil.rmtree(tmp_path / "a")


def test_budget_stops_refitting_after_the_fit_step():
    from apb2face.training.stopping import Budget

    budget = Budget(3600.0, fit_schedule=True, fit_until_step=3)
    budget.start()
    fitted = [budget.after_step(step) for step in range(1, 7)]
    assert fitted[0] is None  # no step time yet
    assert all(isinstance(f, int) and f > 3 for f in fitted[1:3])  # steps 2 and 3 still fit the schedule
    assert fitted[3:] == [None, None, None]  # later steps keep the length fixed


def test_budget_leaves_the_discriminator_warm_up_out_of_the_step_time():
    """Warm-up steps skip the generator's update: timed, they would make the fitted schedule far too long."""
    from apb2face.training.stopping import Budget

    budget = Budget(3600.0, fit_schedule=True, fit_until_step=3, timed_from=5)
    budget.start()
    fitted = [budget.after_step(step) for step in range(1, 12)]
    assert fitted[:6] == [None] * 6  # the 5 warm-up steps, then the first timed one (one-off costs)
    assert all(isinstance(f, int) and f > 8 for f in fitted[6:8])  # steps 7 and 8 fit the schedule
    assert fitted[8:] == [None, None, None]  # fixed after step 5 + 3
    assert budget.steps_done == 6


def test_speech_data_teaches_only_the_fuser_its_lip_shapes(tiny_dataset, tmp_path):
    """A second dataset of real talking faces adds its audio, pose, eyes and landmarks to every sample (its frames
    are never read), the lip-shape loss trains the run, and the run still resumes exactly."""
    from apb2face.training.losses import MOUTH_SLICE, lip_shape_l1

    config = tiny().model
    ds = FrameDataset(tiny_dataset, config, seed=0, speech=tiny_dataset)
    sample = ds[3]
    assert {"speech_audio", "speech_pose", "speech_eyes", "speech_landmarks", "speech_offset"} <= set(sample)
    assert sample["speech_audio"].shape == sample["audio"].shape
    assert ds.speech is not None and ds.speech._frames == {}  # no frame of the speech set was opened

    true = sample["speech_landmarks"][None]
    moved = true + torch.tensor([0.05, -0.02])  # the same lips elsewhere in the crop: the same shape
    assert lip_shape_l1(moved, true).item() < 1e-6
    opened = true.clone()
    opened[:, MOUTH_SLICE.start + 20 :, 1] += 0.03  # inner lips apart: another shape
    assert lip_shape_l1(opened, true).item() > 1e-3

    def train(out: Path, resume: bool, max_steps: int | None) -> list[dict]:
        run = tiny(
            "train.steps=4", "train.ckpt_interval=2", f"train.speech_data={tiny_dataset}", "train.lambda_speech=10"
        )
        Trainer(run, tiny_dataset, out, resume=resume, max_steps=max_steps).setup().fit()
        return metrics(out)

    unbroken = train(tmp_path / "a", False, None)
    assert all(m["loss_speech"] > 0 for m in unbroken)
    train(tmp_path / "b", False, 2)
    resumed = train(tmp_path / "b", True, None)
    assert [m["loss_g"] for m in resumed] == pytest.approx([m["loss_g"] for m in unbroken], abs=1e-5)


def test_blink_frames_repeat_and_the_discriminator_warms_up_alone(tiny_dataset, tmp_path):
    from apb2face.training.data import BLINK_CLOSED

    config = tiny().model
    plain = FrameDataset(tiny_dataset, config, seed=0)
    closed = sum(plain.clips[int(c)].eyes[int(f)].min() < BLINK_CLOSED for c, f in zip(plain.clip_of, plain.frame_of))
    assert closed > 0
    assert len(FrameDataset(tiny_dataset, config, seed=0, blink_repeat=4)) == len(plain) + 3 * closed

    run = tiny("train.steps=2", "train.d_warmup_steps=2", "train.lambda_eye_geometry=50")
    trainer = Trainer(run, tiny_dataset, tmp_path / "run").setup()
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    disc_before = {k: v.clone() for k, v in trainer.disc.state_dict().items()}
    trainer.fit()
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())  # G waited
    assert not all(torch.equal(disc_before[k], v) for k, v in trainer.disc.state_dict().items())  # D learned
    assert all(m["loss_g"] == 0 for m in metrics(tmp_path / "run"))


def test_fuser_only_training_keeps_the_renderer_exactly(tiny_dataset, tmp_path):
    speech = (f"train.speech_data={tiny_dataset}", "train.lambda_speech=10", "train.lambda_eye_geometry=50")
    run = tiny("train.steps=2", "train.train_only=fuser", *speech)
    trainer = Trainer(run, tiny_dataset, tmp_path / "run").setup()
    generator = {k: v.clone() for k, v in trainer.model.generator.state_dict().items()}
    fuser = {k: v.clone() for k, v in trainer.model.fuser.state_dict().items()}
    trainer.fit()
    assert all(torch.equal(generator[k], v) for k, v in trainer.model.generator.state_dict().items())
    assert not all(torch.equal(fuser[k], v) for k, v in trainer.model.fuser.state_dict().items())
    records = metrics(tmp_path / "run")
    assert all(m["loss_gan"] == 0 and m["loss_geometry"] > 0 and m["loss_speech"] > 0 for m in records)
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()


def test_eye_decoupling_counts_only_the_non_eye_points_and_trains_them_still(tiny_dataset, tmp_path):
    from apb2face.training.losses import LEFT_EYE_SLICE, MOUTH_SLICE, non_eye_l1

    run = tiny("train.steps=1")
    trainer = Trainer(run, tiny_dataset, tmp_path / "probe").setup()
    batch = next(iter(trainer._loader(0)))
    _, anchor = trainer.model.fuse(batch["audio"], batch["pose"], batch["eyes"])
    anchor = anchor.detach()
    blinked = anchor.clone()
    blinked[:, LEFT_EYE_SLICE, 1] += 0.05  # only an eye closes
    assert non_eye_l1(blinked, anchor).item() == 0.0
    lips = anchor.clone()
    lips[:, MOUTH_SLICE, 1] += 0.05  # the lips move with it
    assert non_eye_l1(lips, anchor).item() > 1e-3

    assert_fuser_only_training_halves("loss_eye_decouple", tiny_dataset, tmp_path, "train.lambda_eye_decouple=1000")


def assert_fuser_only_training_halves(key: str, dataset: Path, tmp_path: Path, *overrides: str) -> None:
    """8 fuser-only steps at a high LR with only the term `key` (no landmark L1) at least halve it."""
    run = tiny("train.steps=8", "train.train_only=fuser", "train.lambda_geometry=0", "train.lr=1e-3", *overrides)
    Trainer(run, dataset, tmp_path / "run").setup().fit()
    records = metrics(tmp_path / "run")
    assert records[0][key] > 0
    assert records[-1][key] < 0.5 * records[0][key]


def test_a_fuser_teacher_holds_the_non_eye_landmarks(tiny_dataset, tmp_path):
    with pytest.raises(UserError, match="fuser_teacher"):
        tiny("train.lambda_fuser_teacher=10")
    Trainer(tiny("train.steps=2"), tiny_dataset, tmp_path / "teacher").setup().fit()
    taught = (
        f"train.fuser_teacher={tmp_path / 'teacher' / 'final'}",
        "train.lambda_fuser_teacher=1000",
        f"train.speech_data={tiny_dataset}",
        "train.seed=1",
    )
    assert_fuser_only_training_halves("loss_fuser_teacher", tiny_dataset, tmp_path, *taught)


def test_renderer_only_training_keeps_the_fuser_exactly(tiny_dataset, tmp_path):
    run = tiny("train.steps=2", "train.train_only=renderer", "train.lambda_eyes=100")
    trainer = Trainer(run, tiny_dataset, tmp_path / "run").setup()
    generator = {k: v.clone() for k, v in trainer.model.generator.state_dict().items()}
    fuser = {k: v.clone() for k, v in trainer.model.fuser.state_dict().items()}
    trainer.fit()
    assert all(torch.equal(fuser[k], v) for k, v in trainer.model.fuser.state_dict().items())
    assert not all(torch.equal(generator[k], v) for k, v in trainer.model.generator.state_dict().items())
    records = metrics(tmp_path / "run")
    assert all(m["loss_d"] > 0 and m["loss_l1"] > 0 and m["loss_eyes"] > 0 for m in records)


def test_a_new_renderer_trains_over_a_warm_started_fuser(tiny_dataset, tmp_path):
    """init_only=fuser with train_only=renderer: a `mobile` run starts from a `skip` run's fuser, which stays exactly
    as the checkpoint has it while the new renderer learns; init_only without init_from is refused."""
    base = ("train.steps=2", "train.ckpt_interval=10")
    Trainer(
        tiny(*base, "model.generator=skip", "model.generator_width=0.25"), tiny_dataset, tmp_path / "skip"
    ).setup().fit()
    source = load_pretrained(tmp_path / "skip" / "final").model.fuser.state_dict()
    run = tiny(
        *base,
        "model.generator=mobile",
        "model.generator_width=0.25",
        "train.train_only=renderer",
        "train.init_only=fuser",
        f"train.init_from={tmp_path / 'skip' / 'final'}",
    )
    trainer = Trainer(run, tiny_dataset, tmp_path / "mobile").setup()
    generator = {k: v.clone() for k, v in trainer.model.generator.state_dict().items()}
    trainer.fit()
    assert all(torch.equal(source[k], v) for k, v in trainer.model.fuser.state_dict().items())
    assert not all(torch.equal(generator[k], v) for k, v in trainer.model.generator.state_dict().items())
    with pytest.raises(UserError, match="init_only needs init_from"):
        tiny("train.init_only=fuser")


def test_a_warm_start_into_relative_loudness_takes_c0_statistics_from_the_data(tiny_dataset, tmp_path):
    """c0 means something else with model.audio_loudness=relative: its input statistics come from the run's data
    (relative c0 is never above 0, so its mean lies below the absolute one's); the other 59 are the checkpoint's, as
    the fuser learnt them; the clips the run trains on have relative c0."""
    base = ("train.steps=1", "train.ckpt_interval=10")
    Trainer(tiny(*base), tiny_dataset, tmp_path / "abs").setup().fit()
    source = load_pretrained(tmp_path / "abs" / "final").model.fuser
    run = tiny(*base, "model.audio_loudness=relative", f"train.init_from={tmp_path / 'abs' / 'final'}")
    trainer = Trainer(run, tiny_dataset, tmp_path / "rel").setup()
    fuser = trainer.model.fuser
    mean, std = trainer.data.audio_stats()
    assert fuser.audio_mean[0].item() == pytest.approx(float(mean[0]), rel=1e-6)
    assert fuser.audio_std[0].item() == pytest.approx(float(std[0]), rel=1e-6)
    assert abs(fuser.audio_mean[0].item() - source.audio_mean[0].item()) > 1.0
    assert torch.equal(fuser.audio_mean[1:], source.audio_mean[1:])
    assert torch.equal(fuser.audio_std[1:], source.audio_std[1:])
    clip = trainer.data.clips[0]
    assert clip.features[:, 0].max() <= 0.0 < source.audio_mean[0].item() - mean[0]


def mean_geometry(data: FrameDataset, key: str) -> dict[str, np.ndarray]:
    """Identity -> the mean of its samples' `key` landmarks over one epoch."""
    points: dict[str, list[np.ndarray]] = {}
    for k in range(len(data)):
        points.setdefault(identity_of(data, k), []).append(data[k][key].numpy())
    return {name: np.mean(p, axis=0) for name, p in points.items()}


def identity_of(data: FrameDataset, k: int) -> str:
    return data.clips[int(data.clip_of[data.frame_index(k)])].identity


def test_a_shared_landmark_shape_moves_every_person_onto_one_face_shape(tmp_path):
    """landmark_shape=shared: the fuser's targets ("geometry") of every person have the named people's mean shape
    and keep their own motion; the real landmarks (the mouth and eye boxes) stay as they are."""
    data = write_tiny_dataset(tmp_path / "data", shifts={"ben": (0.04, -0.02)})
    model = tiny().model
    own = FrameDataset(data, model, seed=0)
    shared = FrameDataset(data, model, seed=0, landmark_shape="shared", shape_people=["anna", "someone else"])
    for k in range(4):
        assert torch.equal(own[k]["landmarks"], shared[k]["landmarks"])
        assert torch.equal(own[k]["geometry"], own[k]["landmarks"])
    real, moved = mean_geometry(shared, "landmarks"), mean_geometry(shared, "geometry")
    assert np.abs(real["ben"] - real["anna"]).mean() == pytest.approx(0.03, abs=0.003)
    assert np.abs(moved["ben"] - real["anna"]).max() < 1e-5
    assert np.abs(moved["anna"] - real["anna"]).max() < 1e-5
    k = next(k for k in range(len(shared)) if identity_of(shared, k) == "ben")
    motion = shared[k]["geometry"] - shared[k]["landmarks"]  # one offset for all of ben's frames
    assert torch.allclose(motion, torch.from_numpy(shared.shape_offsets["ben"]))
    everyone = FrameDataset(data, model, seed=0, landmark_shape="shared")
    halfway = mean_geometry(everyone, "geometry")
    assert np.abs(halfway["ben"] - halfway["anna"]).max() < 1e-5
    assert np.abs(halfway["anna"] - (real["anna"] + real["ben"]) / 2).max() < 1e-5
    with pytest.raises(UserError, match="none of the people whose face shape is shared"):
        FrameDataset(data, model, seed=0, landmark_shape="shared", shape_people=["carla"])
    with pytest.raises(UserError, match="landmark_shape"):
        tiny("train.landmark_shape=mine")
    with pytest.raises(ValueError, match="landmark_shape"):
        TrainConfig(landmark_shape="mine")


def test_a_warm_start_shares_its_own_peoples_face_shape(tmp_path):
    """The trainer shares init_from's people's shape: a new person (ben) is moved onto the base's (anna's), and the
    fuser is trained towards it."""
    base = ("train.steps=2", "train.ckpt_interval=10")
    data = write_tiny_dataset(tmp_path / "data", shifts={"ben": (0.04, -0.02)})
    Trainer(tiny(*base), data, tmp_path / "base").setup().fit()
    config = json.loads((tmp_path / "base" / "final" / "config.json").read_text())
    config["identities"] = ["anna"]  # a base that knew anna only
    (tmp_path / "base" / "final" / "config.json").write_text(json.dumps(config))
    run = tiny(*base, "train.landmark_shape=shared", f"train.init_from={tmp_path / 'base' / 'final'}")
    trainer = Trainer(run, data, tmp_path / "run").setup()
    assert np.abs(trainer.data.shape_offsets["anna"]).max() < 1e-6
    assert np.abs(trainer.data.shape_offsets["ben"] - np.array([-0.04, 0.02], np.float32)).mean() < 0.003
    trainer.fit()
    assert all(np.isfinite(m["loss_geometry"]) for m in metrics(tmp_path / "run"))
