"""Active-speaker detection on made-up interviews of real people: is `prepare --people` right about who speaks?

Each interview puts two real clips of ../shared/data/real (two different people, each with their own audio) side by
side in one frame (256 px panels, 25 fps, PyAV). Turns alternate, 3-6 s each (seeded). During A's turn the soundtrack
is A's own audio for those moments and A's panel shows the matching frames; B's panel keeps playing B's video from
another moment (half the interview later), so B's mouth moves too, but not with this audio; and the other way round.
Only the detector, through `apb2face prepare --people left,right`, decides who speaks.

Per true turn the decision is the speaker the detector gave most of that turn's time to (nobody when it gave none).
Printed: per turn the truth, the decision and each face's mean r, the share of turns right per interview and over
all (target >= 90 %), and the share of speech frames labelled right.

    .venv/bin/python benchmarks/active_speaker.py [--out outputs/active_speaker] [--seconds 18]

The interviews are written to --out (default: a temporary folder, removed at the end).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np

from apb2face.data.audio import SAMPLE_RATE
from apb2face.data.prepare import PrepareConfig, VideoJob, run_jobs, sidecar_audio
from apb2face.data.prepare.video import load_job_audio
from apb2face.data.video import ConstantRateFrames, write_video

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
FPS = 25.0
PANEL = 256
SPF = int(SAMPLE_RATE / FPS)
PAIRS = [  # (left, right): different people, each clip at least 18 s with its own audio
    ("edtalk_obama.mp4", "styletalk_kristinoem.mp4"),
    ("dfrf_cnn_anchor.mp4", "dfrf_macron_french.mp4"),
    ("mimictalk_german_anchor.mp4", "edtalk_hdtf_tedlieu.mp4"),
    ("liveportrait_d9_man_glasses.mp4", "styletalk_obama_clip1.mp4"),
]


def clip(name: str, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `frames` frames of a clip at 25 fps, centre-cropped square and scaled to PANEL, and its audio
    (16 kHz mono, aligned to the first frame as `prepare` aligns it)."""
    path = REAL / name
    reader = ConstantRateFrames(path, FPS)
    out = []
    for image in reader:
        h, w = image.shape[:2]
        s = min(h, w)
        square = image[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        out.append(cv2.resize(square, (PANEL, PANEL), interpolation=cv2.INTER_AREA))
        if len(out) == frames:
            break
    side = sidecar_audio(path)
    job = VideoJob(str(path), "x", "x", None if side is None else str(side))
    audio = load_job_audio(job, PrepareConfig(), reader.first_pts).samples
    audio = np.pad(audio, (0, max(0, frames * SPF - len(audio))))[: frames * SPF]
    if len(out) < frames:
        raise SystemExit(f"{name}: only {len(out)} frames, need {frames}")
    return np.stack(out), audio


def turn_plan(frames: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """Alternating turns (start, end, speaker 0 = left / 1 = right) of 3-6 s covering `frames`."""
    turns, t, speaker = [], 0, int(rng.integers(2))
    while t < frames:
        n = int(rng.uniform(3.0, 6.0) * FPS)
        if frames - (t + n) < 2 * FPS:  # no stub of a turn at the end
            n = frames - t
        turns.append((t, t + n, speaker))
        t, speaker = t + n, 1 - speaker
    return turns


def interview(left: str, right: str, seconds: float, seed: int, path: Path) -> list[tuple[int, int, int]]:
    """Write the interview of `left` and `right` to `path`; the true turns."""
    n = int(seconds * FPS)
    (fa, aa), (fb, ab) = clip(left, n), clip(right, n)
    turns = turn_plan(n, np.random.default_rng(seed))
    later = n // 2  # the listener's panel shows its own video from this many frames later (wrapping round)
    frames, audio = [], np.zeros(n * SPF, np.float32)
    speaker_at = np.zeros(n, int)
    for a, b, s in turns:
        speaker_at[a:b] = s
        audio[a * SPF : b * SPF] = (aa, ab)[s][a * SPF : b * SPF]
    for j in range(n):
        at = (j, (j + later) % n)
        left_j = at[0] if speaker_at[j] == 0 else at[1]
        right_j = at[0] if speaker_at[j] == 1 else at[1]
        frames.append(np.concatenate([fa[left_j], fb[right_j]], axis=1))
    write_video(path, frames, fps=FPS, audio=audio, sample_rate=SAMPLE_RATE, crf=18)
    return turns


def judge(truth: list[tuple[int, int, int]], report: dict) -> list[tuple[int, int, int, int, dict]]:
    """Per true turn: (start, end, truth, decision, mean r per face over the decided frames in it)."""
    names = report["speakers"]["faces"]
    labels = np.full(truth[-1][1], -1)
    for t in report["speakers"]["turns"]:
        labels[t["start_frame"] : t["end_frame"]] = names.index(t["speaker"])
    out = []
    for a, b, s in truth:
        counts = np.bincount(labels[a:b][labels[a:b] >= 0], minlength=len(names))
        decision = int(np.argmax(counts)) if counts.sum() else -1
        evidence = {}
        for t in report["speakers"]["turns"]:
            overlap = min(b, t["end_frame"]) - max(a, t["start_frame"])
            if overlap > 0:
                for name, r in t["r"].items():
                    evidence.setdefault(name, []).append((overlap, r))
        mean_r = {k: sum(w * (r or 0) for w, r in v) / sum(w for w, _ in v) for k, v in evidence.items()}
        out.append((a, b, s, decision, mean_r))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="where the interviews are written (default: a temporary folder)")
    parser.add_argument("--seconds", type=float, default=18.0, help="length of each interview (default 18)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not REAL.is_dir():
        raise SystemExit(f"real clips not found at {REAL}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        total = right = frames_right = frames_speech = 0
        for i, (left, right_clip) in enumerate(PAIRS):
            video = folder / f"interview{i}.mp4"
            truth = interview(left, right_clip, args.seconds, args.seed + i, video)
            job = VideoJob(str(video), f"interview{i}", f"interview{i}", None, True, ("left", "right"))
            results = run_jobs([job], folder / f"prepared{i}", PrepareConfig(size=64))
            failed = [r.error for r in results if r.error]
            ok = [r for r in results if r.error is None]
            if not ok:
                raise SystemExit(f"interview {i}: {failed}")
            report = ok[0].report
            rows = judge(truth, report)
            print(f"\ninterview {i}: left {left}, right {right_clip} (lag {report['speakers']['lag_frames']} frames)")
            print("   start-end s   truth  decision   r left  r right")
            for a, b, s, d, r in rows:
                names = ("left", "right", "nobody")
                mark = "ok" if s == d else "WRONG"
                print(
                    f"  {a / FPS:5.1f}-{b / FPS:5.1f}   {names[s]:>5}  {names[d]:>8}   {r.get('left', 0):+.2f}    "
                    f"{r.get('right', 0):+.2f}  {mark}"
                )
            got = sum(s == d for *_, s, d, _r in rows)
            print(f"  turns right: {got} / {len(rows)}" + (f"; {'; '.join(failed)}" if failed else ""))
            total, right = total + len(rows), right + got
            labels = np.full(truth[-1][1], -1)
            for t in report["speakers"]["turns"]:
                labels[t["start_frame"] : t["end_frame"]] = report["speakers"]["faces"].index(t["speaker"])
            true_at = np.concatenate([np.full(b - a, s) for a, b, s in truth])
            decided = labels >= 0
            frames_right += int((labels[decided] == true_at[decided]).sum())
            frames_speech += int(decided.sum())
            (folder / f"interview{i}.truth.json").write_text(json.dumps(truth))
        print(f"\nall interviews: {right} / {total} turns right ({right / total:.0%}; target >= 90 %)")
        print(f"frames given to a speaker: {frames_right / max(frames_speech, 1):.1%} of them to the right one")


if __name__ == "__main__":
    main()
