"""Active-speaker detection on made-up interviews of real people: is `prepare --people` right about who speaks?

Each interview puts two real clips of ../shared/data/real (two different people, each with their own audio) side by
side in one frame (256 px panels, 25 fps, PyAV). Turns alternate, 3-6 s each (seeded). During A's turn the soundtrack
is A's own audio for those moments and A's panel shows the matching frames; B's panel keeps playing B's video from
another moment (half the interview later), so B's mouth moves too, but not with this audio; and the other way round.

The faces are tracked as `prepare --people` tracks them (track.analyse_people, people.people_left_to_right) and the
decision is the one `prepare` makes (people.detect_speakers). The tracking is slow and the decision is fast, so each
interview's per-face mouth series and audio RMS are saved to `interview_<pair>.npz` in --out and reused: rerunning
with the same --out re-decides in seconds (delete the .npz files, or pass --fresh, to track again).

The pairs are split: TUNED pairs were looked at while the detectors were designed; HELD_OUT pairs are other people,
not used to set any detector's settings (but the voice detector's design was compared on them); FRESH pairs are four
people in no other pair, added after the voice detector was settled and run once: the cleanest figure. A clip
shorter than its interview plays again from its start (frames and audio together).

Four detectors are compared on the same tracks (DETECTORS): `rms` and `fuser` decide every moment by the mouths
alone (against the audio's loudness, or the mouth the demo checkpoint's fuser draws for the audio: `prepare --people
speaker_voices=false` with `--listen-with loudness` or not); `voice-rms` and `voice` first split the speech into
voices (data/prepare/voices.py) and give each voice to the face that follows it best, with the loudness evidence or
with the fuser's and the loudness's (`prepare --people --listen-with loudness`, and `prepare --people`'s default).
The expected mouth and the voice embeddings are cached in the .npz too (`expected`, `voices`).

Per true turn the decision is the speaker the detector gave most of that turn's time to (nobody when it gave none).
Printed: per turn the truth, the decision and each face's mean score, the share of turns right per interview, per
group and over all (target >= 90 %), and the share of the frames given to a speaker that went to the right one.

    .venv/bin/python benchmarks/active_speaker.py --out outputs/active_speaker [--pairs tuned|held-out|fresh]
        [--fresh] [--detector rms,fuser,voice-rms,voice]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from apb2face.data.audio import SAMPLE_RATE, num_video_frames, rms_per_frame
from apb2face.data.prepare import PrepareConfig, VideoJob, sidecar_audio
from apb2face.data.prepare.people import detect_speakers, people_left_to_right
from apb2face.data.prepare.sync import silence_mask
from apb2face.data.prepare.track import analyse_people
from apb2face.data.prepare.video import load_job_audio
from apb2face.data.video import ConstantRateFrames, write_video
from apb2face.data.voice import VoiceEncoder, voice_per_frame
from apb2face.inference.listen import FuserListener

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
FPS = 25.0
PANEL = 256
SPF = int(SAMPLE_RATE / FPS)
LEVEL = 0.3  # each clip's speech is scaled to this 99th-percentile amplitude (the sources differ by > 30 dB)
LIPS = (0, 17, 13, 14, 61, 291, 78, 308, 81, 178, 311, 402, 33, 263)  # mesh points kept in the cache (lips, eyes)


@dataclass(frozen=True)
class Pair:
    """Two clips side by side: the left and right clip, where each starts (s), and the interview's length (s)."""

    left: str
    right: str
    left_from: float = 0.0
    right_from: float = 0.0
    seconds: float = 18.0

    @property
    def name(self) -> str:
        stem = lambda f, s: Path(f).stem + (f"@{s:g}" if s else "")  # noqa: E731
        return f"{stem(self.left, self.left_from)}+{stem(self.right, self.right_from)}"


# Looked at while the detector was tuned (people: two Obama clips, Kristi Noem, a CNN anchor, Emmanuel Macron).
TUNED = [
    Pair("edtalk_obama.mp4", "styletalk_kristinoem.mp4"),
    Pair("dfrf_cnn_anchor.mp4", "dfrf_macron_french.mp4"),
    Pair("dfrf_macron_french.mp4", "styletalk_obama_clip1.mp4", left_from=20.0),
    Pair("styletalk_kristinoem.mp4", "dfrf_cnn_anchor.mp4", right_from=30.0),
]
# Never looked at while tuning: other people (German anchor, Ted Lieu, man with glasses, Fei-Fei Li, Amy Klobuchar,
# Alexandria Ocasio-Cortez, Katie Hill).
HELD_OUT = [
    Pair("mimictalk_german_anchor.mp4", "edtalk_hdtf_tedlieu.mp4"),
    Pair("liveportrait_d9_man_glasses.mp4", "styletalk_feifeili_clip1.mp4", seconds=10.0),
    Pair("sadtalker_hdtf_aoc.mp4", "edtalk_hdtf_klobuchar.mp4", seconds=8.0),
    Pair("edtalk_hdtf_tedlieu.mp4", "sadtalker_hdtf_katiehill.mp4", left_from=20.0, seconds=8.0),
    Pair("edtalk_hdtf_tedlieu.mp4", "liveportrait_d9_man_glasses.mp4", left_from=40.0),
]
# Used by neither of the above, added after the voice-first detector was settled on the tuned pairs and run once:
# people in no other pair (Theresa May, three videoretalking speakers), whose 5-6 s clips loop to fill 12 s.
FRESH = [
    Pair("real3dportrait_may.mp4", "videoretalking_face5_woman_glasses.mp4", seconds=12.0),
    Pair("videoretalking_face1_man_suit.mp4", "videoretalking_face2_man_map.mp4", seconds=12.0),
    Pair("videoretalking_face2_man_map.mp4", "real3dportrait_may.mp4", seconds=12.0),
    Pair("videoretalking_face5_woman_glasses.mp4", "videoretalking_face1_man_suit.mp4", seconds=12.0),
]


def clip(name: str, start: float, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """`frames` frames of a clip at 25 fps from `start` s, centre-cropped square and scaled to PANEL, and its audio
    (16 kHz mono, aligned to the first frame as `prepare` aligns it); a clip shorter than that plays again from
    `start` (frames and audio together, so the mouth stays in sync)."""
    path = REAL / name
    reader = ConstantRateFrames(path, FPS)
    skip = int(round(start * FPS))
    out = []
    for k, image in enumerate(reader):
        if k < skip:
            continue
        h, w = image.shape[:2]
        s = min(h, w)
        square = image[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        out.append(cv2.resize(square, (PANEL, PANEL), interpolation=cv2.INTER_AREA))
        if len(out) == frames:
            break
    side = sidecar_audio(path)
    job = VideoJob(str(path), "x", "x", None if side is None else str(side))
    audio = load_job_audio(job, PrepareConfig(), reader.first_pts).samples[skip * SPF :]
    got = len(out)
    if got < 2 * FPS:
        raise SystemExit(f"{name}: only {got} frames from {start:g} s, need at least {int(2 * FPS)}")
    audio = np.pad(audio, (0, max(0, got * SPF - len(audio))))[: got * SPF]
    loops = -(-frames // got)
    video = np.concatenate([np.stack(out)] * loops)[:frames]
    audio = np.tile(audio, loops)[: frames * SPF]
    audio = audio * (LEVEL / max(float(np.percentile(np.abs(audio), 99)), 1e-6))  # both people equally loud
    return video, audio


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


def interview(pair: Pair, seed: int, path: Path) -> list[tuple[int, int, int]]:
    """Write the interview of `pair` to `path`; the true turns."""
    n = int(pair.seconds * FPS)
    (fa, aa), (fb, ab) = clip(pair.left, pair.left_from, n), clip(pair.right, pair.right_from, n)
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


def expected_mouth(video: Path, cfg: PrepareConfig, n: int, listener: FuserListener) -> np.ndarray:
    """The mouth opening the fuser draws for the interview's soundtrack, per frame (what `prepare` gives the
    detector by default)."""
    job = VideoJob(str(video), "interview", "interview", None, True, ("left", "right"))
    audio = load_job_audio(job, cfg, ConstantRateFrames(video, cfg.fps).first_pts)
    return listener(audio.samples, n, cfg.fps)


def track_interview(video: Path, cfg: PrepareConfig, work: Path) -> dict[str, np.ndarray]:
    """What `prepare --people` measures before it decides: per face (left to right) the mouth opening, the share of
    frames it is seen in and a few mesh points; the audio RMS per frame and the silence mask."""
    job = VideoJob(str(video), "interview", "interview", None, True, ("left", "right"))
    reader = ConstantRateFrames(video, cfg.fps)
    stores: list = []
    try:
        tracks = analyse_people(reader, cfg, work, stores, 1 << 40, lambda k: None)
    finally:
        for store in stores:
            store.discard()
    audio = load_job_audio(job, cfg, reader.first_pts)
    n = min(tracks[0].n if tracks else 0, num_video_frames(len(audio.samples), cfg.fps, cfg.sample_rate))
    order = people_left_to_right(job, tracks, n, cfg)
    rms = rms_per_frame(audio.samples, n, cfg.fps, cfg.sample_rate)
    return {
        "mouths": np.stack([tracks[k].mouth[:n] for k in order]),
        "points": np.stack([tracks[k].landmarks[:n][:, LIPS] for k in order]).astype(np.float32),
        "all_seen": np.array([t.face[:n].mean() for t in tracks]),
        "rms": rms,
        "silent": silence_mask(rms, cfg.silence_db),
    }


def voice_embeddings(video: Path, cfg: PrepareConfig, n: int) -> np.ndarray:
    """The voice around each frame of the interview's soundtrack (what `prepare` gives the detector by default)."""
    job = VideoJob(str(video), "interview", "interview", None, True, ("left", "right"))
    audio = load_job_audio(job, cfg, ConstantRateFrames(video, cfg.fps).first_pts)
    return voice_per_frame(audio.samples, n, cfg.fps, VoiceEncoder.pretrained()).astype(np.float16)


def judge(truth: list[tuple[int, int, int]], labels: np.ndarray, scores: np.ndarray) -> list[tuple]:
    """Per true turn: (start, end, truth, decision, mean score per face over the turn)."""
    out = []
    for a, b, s in truth:
        got = labels[a:b]
        counts = np.bincount(got[got >= 0], minlength=len(scores))
        decision = int(np.argmax(counts)) if counts.sum() else -1
        mean = [float(np.nanmean(f[a:b])) if np.isfinite(f[a:b]).any() else float("nan") for f in scores]
        out.append((a, b, s, decision, mean))
    return out


# rms / fuser: every moment decided by the mouths alone, against the loudness or the fuser's expected mouth
# (`prepare --people speaker_voices=false`, with `--listen-with loudness` or not); voice-rms / voice: the voices
# found first, each given to the face that follows it best (`--listen-with loudness` / the default)
DETECTORS = ("rms", "fuser", "voice-rms", "voice")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="interviews and tracking cache (default: a temporary folder)")
    parser.add_argument("--pairs", choices=("all", "tuned", "held-out", "fresh"), default="all")
    parser.add_argument("--fresh", action="store_true", help="track again even where a cached .npz exists")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--detector", default="all", help=f"comma-separated, from {', '.join(DETECTORS)}; or all (default)"
    )
    args = parser.parse_args()
    if not REAL.is_dir():
        raise SystemExit(f"real clips not found at {REAL}")
    detectors = DETECTORS if args.detector == "all" else tuple(args.detector.split(","))
    if unknown := set(detectors) - set(DETECTORS):
        raise SystemExit(f"--detector: unknown {', '.join(sorted(unknown))} (choose from {', '.join(DETECTORS)})")
    cfg = PrepareConfig(size=64)
    groups = [("tuned", TUNED), ("held-out", HELD_OUT), ("fresh", FRESH)]
    groups = [g for g in groups if args.pairs in ("all", g[0])]
    listener = FuserListener()  # the demo checkpoint
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        summary = []
        for detector in detectors:
            for group, pairs in groups:
                turns_right = turns_all = frames_right = frames_given = 0
                for i, pair in enumerate(pairs):
                    seed = args.seed + i + {"tuned": 0, "held-out": 100, "fresh": 200}[group]
                    cache = folder / f"interview_{group}{i}.npz"
                    video = folder / f"interview_{group}{i}.mp4"
                    if args.fresh or not cache.exists():
                        truth = interview(pair, seed, video)
                        signals = track_interview(video, cfg, folder / "work")
                        np.savez_compressed(cache, truth=np.array(truth), pair=pair.name, **signals)
                    data = dict(np.load(cache))
                    n = data["mouths"].shape[1]
                    if "expected" not in data or "voices" not in data:  # a cache from before these detectors
                        if "expected" not in data:
                            data["expected"] = expected_mouth(video, cfg, n, listener)
                        if "voices" not in data:
                            data["voices"] = voice_embeddings(video, cfg, n)
                        np.savez_compressed(cache, **data)
                    truth = [tuple(int(v) for v in t) for t in data["truth"]]
                    mouths, rms, silent = data["mouths"], data["rms"], data["silent"]
                    expected = data["expected"] if detector in ("fuser", "voice") else None
                    voices = data["voices"].astype(np.float32) if detector.startswith("voice") else None
                    decision = detect_speakers(mouths, rms, silent, cfg, expected, voices)
                    labels = decision.labels
                    rows = judge(truth, labels, decision.scores)
                    seen = ", ".join(f"{v:.0%}" for v in data["all_seen"])
                    lags = decision.lags or (decision.lag,)
                    print(f"\n{detector} {group} {i}: {pair.name} (faces seen in {seen} of the frames; lag {lags})")
                    print("   start-end s   truth  decision   score left  score right")
                    names = ("left", "right", "nobody")
                    for a, b, s, d, r in rows:
                        mark = "ok" if s == d else "WRONG"
                        extra = "".join(f"   {v:+.2f}    " for v in r)
                        print(f"  {a / FPS:5.1f}-{b / FPS:5.1f}   {names[s]:>5}  {names[d]:>8}   {extra} {mark}")
                    got = sum(s == d for _a, _b, s, d, _r in rows)
                    print(f"  turns right: {got} / {len(rows)}")
                    summary.append((detector, group, pair.name, got, len(rows)))
                    turns_all, turns_right = turns_all + len(rows), turns_right + got
                    true_at = np.concatenate([np.full(b - a, s) for a, b, s in truth])[: len(labels)]
                    given = labels >= 0
                    frames_right += int((labels[given] == true_at[given]).sum())
                    frames_given += int(given.sum())
                    (folder / f"interview_{group}{i}.truth.json").write_text(json.dumps(truth))
                print(
                    f"\n{detector} {group}: {turns_right} / {turns_all} turns right "
                    f"({turns_right / max(turns_all, 1):.0%}; target >= 90 %); frames given to a speaker: "
                    f"{frames_right / max(frames_given, 1):.1%} to the right one"
                )
        print("\n| detector | group | interview (left + right) | turns right |\n|---|---|---|---|")
        for detector, group, name, got, total in summary:
            print(f"| {detector} | {group} | {name} | {got} / {total} |")


if __name__ == "__main__":
    main()
