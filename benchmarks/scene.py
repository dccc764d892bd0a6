"""Two people in one scene, each with their own voice: does each face talk with its own track and listen to the other?

Builds a still scene of two built-in people of the demo checkpoint side by side (their identity crops, upscaled to
--side px each), gives them two different espeak-ng speech tracks (different sentences and voices) laid out as
turns: A alone, B alone, A alone, then both at once, with silent gaps; runs `apb2face generate --scene` (the CLI, as a
user would) and measures the output with the face mesh, each face in its own half of the frame:

  r own        Pearson r between the face's mouth opening and its own track's RMS per frame, best lag in +-3 frames
               (`evaluation.metrics.lipsync_correlation`, the repo's lip-sync measure), over the whole video
  |r| other    the largest |r| (same lags) between the face's mouth and the OTHER track's RMS, over the frames
               where the other speaks alone (target <= 0.1)
  closed       the face's closed range: its largest mouth opening in the frames where nobody speaks; while the other
               speaks alone, the share of frames whose opening stays within it (+0.02 tolerance) and the largest
               opening seen, next to the face's own median opening while it speaks

    .venv/bin/python benchmarks/scene.py [--left id00] [--right id03] [--side 192] [--keep DIR] [--picture PNG]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

FPS = 25.0
RATE = 16000
GAP_S = 0.6  # silence between turns
LEAD_S = 1.0  # silence before the first turn
CLOSED_TOLERANCE = 0.02  # mouth opening units (inner-lip gap / mouth width)
SILENT_RMS = 0.01  # a track quieter than this in a frame is silent there
MEASURE_SIDE = 320  # each half is upscaled to this for the face mesh
# (speaker, sentence, espeak voice); the last two overlap (both at once)
TURNS = (
    ("A", "Good morning, everyone. Thank you all for coming here today.", "en-us"),
    ("B", "It is a pleasure to be here. Shall we begin with the first question?", "en+f3"),
    ("A", "Yes, please. Tell us about your work on the new bridge across the river.", "en-us"),
    ("B", "We finished the design last winter, and building starts in the spring.", "en+f3"),
)
OVERLAP_S = 1.5  # the last turn starts this long before the one before it ends


@dataclass
class FaceResult:
    name: str
    r_own: float | None
    lag_own: int
    r_other_alone: float | None
    closed_max: float
    listening_within: float
    listening_max: float
    speaking_median: float
    found: float


def build_tracks() -> tuple[np.ndarray, np.ndarray, list[tuple[str, float, float]]]:
    """(A track, B track) at 16 kHz and the turns (speaker, start s, end s)."""
    from apb2face.data.synth.speech import synthesize

    pieces = [(who, synthesize(text, voice=voice).audio) for who, text, voice in TURNS]
    starts, t = [], LEAD_S
    for i, (_who, audio) in enumerate(pieces):
        if i == len(pieces) - 1:
            t -= GAP_S + OVERLAP_S  # the last turn overlaps the one before
        starts.append(t)
        t += len(audio) / RATE + GAP_S
    total = int((max(s + len(a) / RATE for s, (_w, a) in zip(starts, pieces)) + GAP_S) * RATE)
    tracks = {"A": np.zeros(total, np.float32), "B": np.zeros(total, np.float32)}
    turns = []
    for start, (who, audio) in zip(starts, pieces):
        lo = int(start * RATE)
        tracks[who][lo : lo + len(audio)] += audio
        turns.append((who, start, start + len(audio) / RATE))
    return tracks["A"], tracks["B"], turns


def build_scene(left: str, right: str, side: int) -> np.ndarray:
    from apb2face.inference.faces import read_image
    from apb2face.inference.pipeline import default_checkpoint

    folder = default_checkpoint() / "identities"
    crops = [read_image(folder / f"{name}.png") for name in (left, right)]
    return np.concatenate([cv2.resize(c, (side, side), interpolation=cv2.INTER_CUBIC) for c in crops], axis=1)


def mouth_track(frames: list[np.ndarray]) -> np.ndarray:
    """Mouth opening per frame of one face's half (NaN where the mesh finds no face)."""
    from apb2face.data.face import FaceMesh, mouth_opening

    out = np.full(len(frames), np.nan)
    with FaceMesh(video=True) as mesh:
        for i, frame in enumerate(frames):
            points = mesh.detect(cv2.resize(frame, (MEASURE_SIDE, MEASURE_SIDE), interpolation=cv2.INTER_CUBIC))
            if points is not None:
                out[i] = mouth_opening(points)
    return out


def max_abs_r(mouth: np.ndarray, rms: np.ndarray) -> float | None:
    """The largest |r| over lags in +-3 frames (lipsync_correlation takes the largest r: ask it for both signs)."""
    from apb2face.evaluation.metrics import lipsync_correlation

    rs = [lipsync_correlation(mouth, sign * rms)[0] for sign in (1.0, -1.0)]
    rs = [r for r in rs if r is not None]
    return max(rs) if rs else None


def measure_face(name: str, mouth: np.ndarray, own: np.ndarray, other: np.ndarray) -> FaceResult:
    from apb2face.evaluation.metrics import lipsync_correlation

    r_own, lag = lipsync_correlation(mouth, own)
    own_on, other_on = own > SILENT_RMS, other > SILENT_RMS
    # frames at least 3 frames away from any speech of either: the mouth has settled
    near = np.convolve((own_on | other_on).astype(float), np.ones(7), mode="same") > 0
    nobody = ~near
    other_alone = other_on & ~np.convolve(own_on.astype(float), np.ones(7), mode="same").astype(bool)
    closed_max = float(np.nanmax(mouth[nobody]))
    listening = mouth[other_alone]
    listening = listening[np.isfinite(listening)]
    r_other = max_abs_r(np.where(other_alone, mouth, np.nan), other)
    return FaceResult(
        name=name,
        r_own=r_own,
        lag_own=lag,
        r_other_alone=r_other,
        closed_max=closed_max,
        listening_within=float((listening <= closed_max + CLOSED_TOLERANCE).mean()),
        listening_max=float(listening.max()),
        speaking_median=float(np.nanmedian(mouth[own_on])),
        found=float(np.isfinite(mouth).mean()),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--left", default="id00")
    parser.add_argument("--right", default="id03")
    parser.add_argument("--side", type=int, default=192, help="px per person in the scene")
    parser.add_argument("--keep", type=Path, help="keep the scene, tracks and output video in this folder")
    parser.add_argument("--picture", type=Path, help="write one frame (both talking) as a PNG here")
    args = parser.parse_args(argv)

    import soundfile as sf

    from apb2face.cli.main import main as apb2face
    from apb2face.data import audio as A
    from apb2face.data.video import iter_frames

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        track_a, track_b, turns = build_tracks()
        scene = folder / "scene.png"
        cv2.imwrite(str(scene), cv2.cvtColor(build_scene(args.left, args.right, args.side), cv2.COLOR_RGB2BGR))
        sf.write(folder / "a.wav", track_a, RATE, subtype="PCM_16")
        sf.write(folder / "b.wav", track_b, RATE, subtype="PCM_16")
        out = folder / "scene.mp4"
        command = [
            "generate", "--scene", str(scene), "--speaker", f"{args.right}={folder / 'b.wav'}",
            "--speaker", f"{args.left}={folder / 'a.wav'}", "--out", str(out),
        ]  # fmt: skip
        print("apb2face " + " ".join(command), flush=True)
        if apb2face(command) != 0:
            return 1
        frames = [frame for _t, frame in iter_frames(out)]
        n = len(frames)
        rms_a = A.rms_per_frame(track_a, n, FPS, RATE)
        rms_b = A.rms_per_frame(track_b, n, FPS, RATE)
        half = frames[0].shape[1] // 2
        mouth_left = mouth_track([f[:, :half] for f in frames])
        mouth_right = mouth_track([f[:, half:] for f in frames])
        results = [
            measure_face(f"{args.left} (left, A)", mouth_left, rms_a, rms_b),
            measure_face(f"{args.right} (right, B)", mouth_right, rms_b, rms_a),
        ]
        if args.picture is not None:
            both = [k for k in range(n) if rms_a[k] > 0.05 and rms_b[k] > 0.05]
            k = both[len(both) // 2] if both else n // 2
            cv2.imwrite(str(args.picture), cv2.cvtColor(frames[k], cv2.COLOR_RGB2BGR))
    print(f"\n{n} frames at {FPS:g} fps; turns: " + ", ".join(f"{w} {s:.1f}-{e:.1f} s" for w, s, e in turns))
    header = (
        f"{'face':<16} {'found':>6} {'r own':>6} {'lag':>4} {'|r| other':>10} {'closed max':>11} "
        f"{'listening within':>17} {'listening max':>14} {'speaking median':>16}"
    )
    print(header)
    for r in results:
        print(
            f"{r.name:<16} {r.found:>6.0%} {fmt(r.r_own):>6} {r.lag_own:>4d} {fmt(r.r_other_alone):>10} "
            f"{r.closed_max:>11.3f} {r.listening_within:>17.0%} {r.listening_max:>14.3f} {r.speaking_median:>16.3f}"
        )
    ok = all(
        r.r_own is not None and r.r_own >= 0.3 and r.r_other_alone is not None and r.r_other_alone <= 0.1
        for r in results
    )
    print(f"\ntargets (r own >= 0.3, |r| other <= 0.1 while the other speaks alone): {'met' if ok else 'MISSED'}")
    return 0


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    sys.exit(main())
