"""Does a checkpoint visibly talk on speech it never heard? Face-mesh detection rate and lip-sync r per video.

For each (identity, driving audio) pair: generate with natural motion, run the face mesh on every generated frame,
and correlate the mouth opening (inner-lip gap / mouth width) with the audio RMS per frame (Pearson r, best lag
within +-3 frames; real speakers in ../shared/data/real score 0.24-0.58 with this measure). Driving audio: espeak-ng
voices the built-in data never used, speaking sentences it never spoke, and, when ../shared is present, real
recordings (first --seconds of each).

    .venv/bin/python benchmarks/talking_check.py --out outputs/talking_check   # the packaged demo checkpoint
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from apb2face.data import audio as audio_lib
from apb2face.data.face import FaceMesh, mouth_opening
from apb2face.data.synth.speech import synthesize
from apb2face.data.video import write_video
from apb2face.evaluation.metrics import lipsync_correlation
from apb2face.inference.pipeline import APB2FacePipeline

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
UNSEEN_TTS = [  # voices absent from data/synth/identities.py, sentences absent from data/synth/sentences.py
    ("tts_en-us+m3", "en-us+m3", "Please remember to water the tomatoes before the weekend, or they will dry out."),
    ("tts_en-us+f3", "en-us+f3", "My brother bought a yellow bicycle, and now he rides it to work every morning."),
]
REAL_SPEECH = ["styletalk_obama_clip1.wav", "sadtalker_hdtf_radio31_en.wav", "edtalk_hdtf_klobuchar.wav"]


def driving_audio(seconds: float) -> list[tuple[str, np.ndarray]]:
    out = [(name, synthesize(text, voice=voice).audio) for name, voice, text in UNSEEN_TTS]
    for name in REAL_SPEECH:
        if (REAL / name).is_file():
            out.append((Path(name).stem, audio_lib.load_audio(REAL / name)[: int(seconds * audio_lib.SAMPLE_RATE)]))
    return out


def measure(frames: np.ndarray, speech: np.ndarray, fps: float) -> dict:
    mouth = np.full(len(frames), np.nan)
    with FaceMesh(video=True) as mesh:
        for i, frame in enumerate(frames):
            big = np.repeat(np.repeat(frame, 2, 0), 2, 1) if frame.shape[0] < 256 else frame
            points = mesh.detect(big)
            if points is not None:
                mouth[i] = mouth_opening(points)
    rms = audio_lib.rms_per_frame(speech, len(frames), fps)
    r, lag = lipsync_correlation(mouth, rms, max_lag=3)
    return {
        "frames": len(frames),
        "face_rate": float(np.isfinite(mouth).mean()),
        "lipsync_r": r,
        "lag": lag,
        "mouth_p10": float(np.nanpercentile(mouth, 10)),
        "mouth_p90": float(np.nanpercentile(mouth, 90)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="checkpoint directory (default: the packaged demo)")
    parser.add_argument("--identities", default=None, help="comma-separated (default: the first two bundled)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each real recording used")
    parser.add_argument("--out", type=Path, default=Path("outputs/talking_check"))
    args = parser.parse_args()
    pipe = APB2FacePipeline.from_pretrained(args.checkpoint)
    identities = args.identities.split(",") if args.identities else pipe.identities[:2]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    jobs = [(i, name, speech) for i in identities for name, speech in driving_audio(args.seconds)]
    for identity, name, speech in tqdm(jobs, desc="talking check"):
        result = pipe(identity, speech, sample_rate=audio_lib.SAMPLE_RATE, seed=0)
        write_video(
            args.out / f"{identity}_{name}.mp4",
            result.frames,
            fps=result.fps,
            audio=speech,
            sample_rate=audio_lib.SAMPLE_RATE,
        )
        rows.append({"identity": identity, "audio": name, **measure(result.frames, speech, result.fps)})
    (args.out / "talking_check.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"{'identity':10s} {'audio':32s} {'frames':>6s} {'face %':>7s} {'r':>6s} {'lag':>4s} {'mouth p10-p90':>14s}")
    for row in rows:
        r = "n/a" if row["lipsync_r"] is None else f"{row['lipsync_r']:.2f}"
        print(
            f"{row['identity']:10s} {row['audio']:32s} {row['frames']:6d} {100 * row['face_rate']:6.1f}% {r:>6s} "
            f"{row['lag']:4d} {row['mouth_p10']:6.3f}-{row['mouth_p90']:.3f}"
        )
    rs = [row["lipsync_r"] for row in rows if row["lipsync_r"] is not None]
    print(
        f"mean face rate {100 * np.mean([row['face_rate'] for row in rows]):.1f}%, "
        f"mean r {np.mean(rs):.3f}, min r {np.min(rs):.3f} over {len(rows)} videos"
    )


if __name__ == "__main__":
    main()
