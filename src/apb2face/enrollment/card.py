"""What an enrolment measured, and the checkpoint it writes: model card, enrollment.json, strips, sample MP4.

The card answers in one screen whether the enrolment worked: the new people's held-out metrics next to the real
footage's own reading of the same measures, and how far the base's people moved.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from apb2face.data.format import Dataset
from apb2face.enrollment.config import EnrollConfig
from apb2face.enrollment.footage import is_photo, write_avatar_clip
from apb2face.enrollment.replay import REPLAY_KEY, ReplaySource
from apb2face.evaluation.evaluate import EvalConfig, evaluate, held_out_ssim
from apb2face.inference.avatar import AVATARS_DIR
from apb2face.io import atomic_dir, read_json, write_json

log = logging.getLogger(__name__)

ENROLLMENT_FILE = "enrollment.json"
DATA_DIR = "data"
SAMPLE_FILE = "sample.mp4"
STRIPS_DIR = "strips"
# held-out metrics on the card: key, label, format; the ones measured on real frames too are shown beside them
CARD_METRICS = (
    ("ssim", "SSIM", ".3f"),
    ("psnr", "PSNR dB", ".2f"),
    ("lmd_mouth", "M-LMD % IOD", ".2f"),
    ("detection_rate", "detection rate", ".0%"),
    ("pose_error_deg", "pose error deg", ".2f"),
    ("blink_f1", "blink F1", ".2f"),
    ("lipsync_corr", "lip-sync r", ".2f"),
    ("lipsync_corr_geometry", "lip-sync r of the fuser's mouth", ".2f"),
    ("cpbd", "sharpness (CPBD)", ".3f"),
    ("csim", "identity (CSIM)", ".3f"),
)
MAX_DRIFT = 0.01  # SSIM the base's people may lose on their held-out frames


def measure(
    final: Path, base: Path, new_data: Path, replay: list[Path], out: Path, cfg: EnrollConfig
) -> dict[str, Any]:
    """Held-out metrics of the new people, the base's people before and after, and the sample MP4."""
    new = evaluate(final, new_data, out / "new", EvalConfig(fid_weights="none")).report
    drift = {}
    for folder in replay:
        before = held_out_ssim(base, folder, max_frames_per_clip=cfg.drift_frames_per_clip)
        after = held_out_ssim(final, folder, max_frames_per_clip=cfg.drift_frames_per_clip)
        drift.update({name: {"before": before[name], "after": after[name]} for name in before})
    write_sample(final, new_data, out / SAMPLE_FILE, cfg.sample_seconds)
    return {
        "new": {key: new[key] for key, _, _ in CARD_METRICS},
        "real": {key: new["ground_truth"].get(key) for key, _, _ in CARD_METRICS},
        "protocol": {k: new["protocol"][k] for k in ("clips", "frames", "split")},
        "drift": drift,
    }


def write_sample(checkpoint: Path, data: Path, path: Path, seconds: float) -> None:
    """The first new person driven by the audio of their first held-out clip (natural head motion and blinks)."""
    from apb2face.data.video import write_video
    from apb2face.inference.pipeline import APB2FacePipeline

    dataset = Dataset(data)
    record = dataset.clips("test")[0]
    clip = dataset.load_clip(record)
    audio = np.asarray(clip.audio[: int(seconds * clip.sample_rate)])
    pipe = APB2FacePipeline.from_pretrained(checkpoint)
    result = pipe(record.identity, audio, sample_rate=clip.sample_rate)
    write_video(path, result.frames, fps=result.fps, audio=result.audio, sample_rate=result.sample_rate)


def write_checkpoint(
    final: Path, request: Any, cfg: EnrollConfig, state: dict[str, Any], sources: list[ReplaySource], work: Path
) -> dict[str, Any]:
    """The release checkpoint at request.out, written atomically: the trained weights and identities, config.json
    with the replay sources (the base's plus the new people's data, shipped inside), the card, enrollment.json,
    strips and the sample."""
    footage = state["footage"]
    tag = "-".join(footage["identities"])
    summary = {
        "base": str(request.base),
        "people": footage["identities"],
        "videos": footage["videos"],
        "seconds": footage["seconds"],
        "not_enrolled": footage["failures"],
        "budget": {"minutes": cfg.minutes, "steps": cfg.steps},
        "training": state["train"],
        "measured": state["measure"],
        "replayed": [s.describe() for s in sources],
    }
    with atomic_dir(request.out) as tmp:
        for item in final.iterdir():
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
        shutil.copytree(work / "new-people", tmp / DATA_DIR / tag, ignore=shutil.ignore_patterns("reports"))
        kept = [s for s in sources if s.dataset is None]
        for s in sources:  # an earlier enrolment's people travel on with their data
            if s.dataset is not None:
                shutil.copytree(request.base / s.dataset, tmp / s.dataset)
                kept.append(s)
        # the base's people keep the reference images users already had (the replayed data may not show them all)
        for image in sorted((request.base / "identities").glob("*.png")):
            shutil.copy2(image, tmp / "identities" / image.name)
        raw = read_json(tmp / "config.json")
        raw["identities"] = sorted({*raw["identities"], *(p.stem for p in (tmp / "identities").glob("*.png"))})
        raw["meta"][REPLAY_KEY] = [s.as_json() for s in kept] + [{"dataset": f"{DATA_DIR}/{tag}"}]
        raw["meta"]["enrollment"] = {"base": str(request.base), "people": footage["identities"]}
        write_json(tmp / "config.json", raw)
        (tmp / STRIPS_DIR).mkdir()
        for name in footage["identities"]:
            shutil.copy2(work / "measure" / "new" / "strips" / f"{name}.png", tmp / STRIPS_DIR / f"{name}.png")
        shutil.copy2(work / "measure" / SAMPLE_FILE, tmp / SAMPLE_FILE)
        for s in sources:  # an earlier enrolment's avatar loops travel on too
            if s.dataset is not None and (request.base / AVATARS_DIR).is_dir():
                shutil.copytree(request.base / AVATARS_DIR, tmp / AVATARS_DIR, dirs_exist_ok=True)
        for name in footage["identities"]:
            videos = [v for v in footage["videos"][name] if not is_photo(v)]
            shared = {v for other, vs in footage["videos"].items() if other != name for v in vs}
            videos = [v for v in videos if v not in shared]  # a video of several people is no one's avatar loop
            if videos:
                write_avatar_clip(videos[0], tmp / AVATARS_DIR / f"{name}.mp4", cfg.avatar_seconds)
        write_json(tmp / ENROLLMENT_FILE, summary)
        (tmp / "README.md").write_text(card_markdown(summary))
    return summary


def _fmt(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def card_markdown(summary: dict[str, Any]) -> str:
    """The model card: what was enrolled from what, the budget, the held-out result next to the real footage, and
    the base people's drift."""
    measured, training = summary["measured"], summary["training"]
    people = summary["people"]
    lines = [
        f"# Enrolled checkpoint: {', '.join(people)}",
        "",
        f"Fine-tuned from `{summary['base']}` by `apb2face enroll`; it renders the new people and every person the "
        "base had.",
        "",
        "## Data",
        "",
    ]
    for name in people:
        s = summary["seconds"][name]
        sources = summary["videos"][name]
        videos = ", ".join(Path(v).name for v in sources)
        if all(is_photo(v) for v in sources):
            lines.append(
                f"- **{name}**: rendered from one photo ({videos}) by the built-in renderer (espeak-ng sentences, "
                f"natural blinks and head motion): {s['train']:.1f} s for training, {s['test']:.1f} s held out"
            )
            continue
        lines.append(
            f"- **{name}**: {s['train']:.1f} s for training, {s['test']:.1f} s held out (the last part of each "
            f"video) from {videos}"
        )
    for line in summary["not_enrolled"]:
        lines.append(f"- not enrolled: {line}")
    lines += [f"- replayed so the base's people keep their looks: {r}" for r in summary["replayed"]]
    budget = summary["budget"]
    budget_text = f"{budget['steps']} steps" if budget["steps"] else f"{budget['minutes']:g} minutes"
    lines += [
        "",
        "## Training",
        "",
        f"- budget: {budget_text}; "
        f"ran {training['steps']} steps of a {training['schedule_steps']}-step schedule in "
        f"{training['seconds'] / 60:.1f} min on {training['device']}",
        f"- samples per epoch: {training['samples_per_epoch']['new']} new-person frames x "
        f"{training['repeats'][-1]} + {training['samples_per_epoch']['replay']} replayed frames",
        "",
        "## Result on the held-out footage",
        "",
        f"{measured['protocol']['frames']} frames in {measured['protocol']['clips']} clips never trained on, each "
        "re-enacted from its own audio, pose and blinks; the real frames read by the same tools in the right "
        "column.",
        "",
        "| metric | generated | real footage |",
        "|---|---:|---:|",
    ]
    for key, label, spec in CARD_METRICS:
        real = measured["real"].get(key)
        lines.append(f"| {label} | {_fmt(measured['new'][key]['mean'], spec)} | {_fmt(_mean(real), spec)} |")
    drift = measured["drift"]
    if drift:
        worst = max(drift, key=lambda n: drift[n]["before"] - drift[n]["after"])
        loss = drift[worst]["before"] - drift[worst]["after"]
        verdict = "within" if loss <= MAX_DRIFT else "MORE than"
        lines += [
            "",
            "## The base's people",
            "",
            f"Held-out SSIM before -> after (largest drop {loss:+.3f} for {worst}, {verdict} the "
            f"{MAX_DRIFT} allowed): "
            + ", ".join(f"{n} {v['before']:.3f} -> {v['after']:.3f}" for n, v in sorted(drift.items())),
        ]
    lines += [
        "",
        f"Strips (reference | generated | real): `{STRIPS_DIR}/<name>.png`. Sample: `{SAMPLE_FILE}` (held-out audio).",
        "",
        f"Use: `apb2face generate --checkpoint DIR --reference {people[0]} --audio speech.wav --out out.mp4`.",
        "",
    ]
    return "\n".join(lines)


def _mean(table: Any) -> Any:
    return table.get("mean") if isinstance(table, dict) else None
