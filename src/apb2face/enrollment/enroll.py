"""`apb2face enroll`: add people to a multi-face checkpoint from their own videos, keeping everyone it knew.

Stages, each recorded in the work folder (OUT.enroll-work) when done, so `--resume` continues where it stopped:

    footage   prepare the videos (the last `test_fraction` of each held out); refuse footage that     footage.py
              cannot teach (no face, too short, two people)
    train     fine-tune the base on the new people mixed with a replay of the base's own data; the    training
              schedule is fitted to the --minutes budget in the first steps, then fixed (exact resume)
    measure   re-enact the held-out footage, the base's people before and after (drift), a sample     card.py
    write     the release checkpoint with its card, enrollment.json, strips, sample MP4 and the new   card.py
              people's prepared data (a later enrolment replays it), atomically; the work folder goes

The base checkpoint is only ever read.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apb2face.config import load
from apb2face.data.format import Dataset
from apb2face.data.prepare import VideoJob
from apb2face.enrollment.config import ENROLL_PRESET, EnrollConfig
from apb2face.enrollment.footage import Footage, is_photo, photo_footage, prepare_footage
from apb2face.enrollment.replay import ReplaySource, materialise, replay_sources
from apb2face.errors import UserError
from apb2face.io import read_json, write_json
from apb2face.models.modeling import load_config
from apb2face.training.checkpoint import RUN_FILE, latest_checkpoint
from apb2face.training.config import RunConfig

log = logging.getLogger(__name__)

STATE_FILE = "enroll-state.json"
NEW_DATA_DIR = "new-people"
RUN_DIR = "run"
MEASURE_DIR = "measure"


@dataclass
class EnrollRequest:
    """Everything one `enroll` call asks for; a resumed call must ask for the same."""

    jobs: list[VideoJob]
    out: Path
    base: Path
    base_data: list[Path] = field(default_factory=list)  # replay data given by hand (else the base's meta.replay)
    overrides: list[str] = field(default_factory=list)  # train.* overrides of the enroll preset

    def fingerprint(self, cfg: EnrollConfig) -> dict[str, Any]:
        return {
            "videos": [[j.path, j.identity, *j.people] for j in self.jobs],
            "base": str(self.base.resolve()),
            "base_data": [str(p.resolve()) for p in self.base_data],
            "overrides": list(self.overrides),
            "config": dataclasses.asdict(cfg),
        }


@dataclass
class EnrollResult:
    out: Path | None  # None when stopped by a signal (the work folder holds the state)
    stopped_by: str = ""
    failures: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def work_dir(out: Path) -> Path:
    return out.with_name(out.name + ".enroll-work")


def enroll(request: EnrollRequest, cfg: EnrollConfig, resume: bool = False) -> EnrollResult:
    """Run (or continue) an enrolment; see the module docstring."""
    base_config, base_raw = load_config(request.base)
    known = set(base_raw.get("identities") or [])
    clash = sorted({name for j in request.jobs for name in (j.people or (j.identity,))} & known)
    if clash:
        raise UserError(f"the base checkpoint already has {', '.join(clash)}: choose another --name", request.base)
    work = _open_work(request, cfg, resume)
    state = read_json(work / STATE_FILE)

    if "footage" not in state:
        shutil.rmtree(work / NEW_DATA_DIR, ignore_errors=True)  # an interrupted preparation starts again
        try:
            footage = _footage(request, work / NEW_DATA_DIR, base_config.image_size, cfg)
        except UserError:
            shutil.rmtree(work, ignore_errors=True)  # nothing was learned yet: leave nothing behind
            raise
        state["footage"] = {
            "identities": footage.identities,
            "failures": footage.failures,
            "seconds": footage.seconds,
            "videos": footage.videos,
        }
        write_json(work / STATE_FILE, state)
    for line in state["footage"]["failures"]:
        log.warning("not enrolled: %s", line)

    sources, replay = _replay_data(request, base_raw)
    run = _run_config(request, base_config, cfg)
    trainer = _trainer(request, cfg, run, work, replay, resume=(work / RUN_DIR / RUN_FILE).is_file())
    if "train" not in state:
        trainer.setup().fit()
        if trainer.stopped_by and trainer.step < trainer.stop:
            return EnrollResult(None, trainer.stopped_by, state["footage"]["failures"])
        state["train"] = {
            "steps": trainer.step,
            "schedule_steps": trainer.run.train.steps,
            "seconds": round(trainer.wall_seconds, 1),
            "samples_per_epoch": {
                "new": _train_frames(work / NEW_DATA_DIR),
                "replay": sum(map(_train_frames, replay)),
            },
            "repeats": _repeats(work, replay, cfg),
            "device": trainer.device.type,
        }
        write_json(work / STATE_FILE, state)

    from apb2face.enrollment.card import measure, write_checkpoint

    final = work / RUN_DIR / "final"
    if "measure" not in state:
        state["measure"] = measure(final, request.base, work / NEW_DATA_DIR, replay, work / MEASURE_DIR, cfg)
        write_json(work / STATE_FILE, state)
    summary = write_checkpoint(final, request, cfg, state, sources, work)
    shutil.rmtree(work, ignore_errors=True)
    return EnrollResult(request.out, "", state["footage"]["failures"], summary)


def _footage(request: EnrollRequest, out: Path, size: int, cfg: EnrollConfig) -> Footage:
    """The new people's dataset: prepared from videos, or rendered from one photo."""
    photos = [j for j in request.jobs if is_photo(j.path)]
    if not photos:
        return prepare_footage(request.jobs, out, size, cfg, listen_with=request.base)
    if len(photos) != len(request.jobs) or len(photos) > 1:
        raise UserError("enrol from one photo, or from videos: one photo per call, not mixed with videos")
    return photo_footage(photos[0], out, size, cfg)


def _open_work(request: EnrollRequest, cfg: EnrollConfig, resume: bool) -> Path:
    """The work folder: new (refusing an existing output or an unfinished enrolment), or the one being resumed
    (refusing a call that asks for something else)."""
    work = work_dir(request.out)
    if request.out.exists():
        raise UserError("output exists; choose a new --out (the base checkpoint is never overwritten)", request.out)
    fingerprint = request.fingerprint(cfg)
    if resume:
        if not (work / STATE_FILE).is_file():
            raise UserError("nothing to resume: no unfinished enrolment for this --out", work)
        saved = read_json(work / STATE_FILE).get("request")
        if saved != fingerprint:
            changed = sorted(k for k in fingerprint if (saved or {}).get(k) != fingerprint[k])
            raise UserError(
                f"--resume must repeat the interrupted call; these differ: {', '.join(changed)}", work / STATE_FILE
            )
        return work
    if work.exists():
        raise UserError(
            "an unfinished enrolment for this --out is here: continue it with --resume, or delete the folder", work
        )
    work.mkdir(parents=True)
    write_json(work / STATE_FILE, {"request": fingerprint})
    return work


def _replay_data(request: EnrollRequest, base_raw: dict[str, Any]) -> tuple[list[ReplaySource], list[Path]]:
    """The base's replay sources (what the new checkpoint records) and their dataset folders on this machine."""
    meta = base_raw.get("meta") if isinstance(base_raw.get("meta"), dict) else {}
    if request.base_data:
        for folder in request.base_data:
            Dataset(folder)  # a readable dataset, or one line naming it
        sources = replay_sources(meta, request.base) if meta.get("replay") else []
        return sources, list(request.base_data)
    sources = replay_sources(meta, request.base)
    return sources, [materialise(s, request.base) for s in sources]


def _run_config(request: EnrollRequest, base_config: Any, cfg: EnrollConfig) -> RunConfig:
    run = load(RunConfig, ENROLL_PRESET, request.overrides)
    run.model = base_config
    run.train.init_from = str(request.base)
    if cfg.steps is not None:
        run.train.steps = cfg.steps
    return run


def _trainer(request: EnrollRequest, cfg: EnrollConfig, run: RunConfig, work: Path, replay: list[Path], resume: bool):  # noqa: ANN202
    """The fine-tune: fitted to the budget on a fresh run; a resumed run keeps the length its last checkpoint had."""
    from apb2face.training.trainer import Trainer

    data = [*replay, work / NEW_DATA_DIR]
    repeats = _repeats(work, replay, cfg)
    if resume and (last := latest_checkpoint(work / RUN_DIR)) is not None:
        run.train.steps = int(read_json(last / RUN_FILE)["config"]["train"]["steps"])
        return Trainer(run, data, work / RUN_DIR, resume=True, data_repeats=repeats)
    if cfg.steps is not None:
        return Trainer(run, data, work / RUN_DIR, data_repeats=repeats)
    return Trainer(
        run,
        data,
        work / RUN_DIR,
        max_minutes=cfg.minutes,
        fit_schedule=True,
        fit_until_step=cfg.fit_until_step,
        data_repeats=repeats,
    )


def _train_frames(root: Path) -> int:
    return sum(r.num_frames for r in Dataset(root).clips("train"))


def _repeats(work: Path, replay: list[Path], cfg: EnrollConfig) -> list[int]:
    """Repeat counts that give the new people about `new_share` of the samples (replayed data once each)."""
    new, old = _train_frames(work / NEW_DATA_DIR), sum(map(_train_frames, replay))
    factor = max(1, round(cfg.new_share / (1 - cfg.new_share) * old / max(new, 1)))
    return [1] * len(replay) + [factor]
