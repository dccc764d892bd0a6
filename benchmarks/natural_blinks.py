"""Do the natural-motion blinks show? Each identity speaks the same espeak-ng paragraph (about 39 s) with natural
motion (blinks every 2-6 s, apb2face.inference.motion); the face mesh reads the eyes off the generated frames as
`evaluate` reads them (EAR against the clip's own open level), and every driven blink is matched to a seen one
(blink-event matching of metrics.match_events, ±2 frames). Prints, per identity, the driven and seen blinks, F1
and the seconds between the blinks seen.

    .venv/bin/python benchmarks/natural_blinks.py --checkpoint src/apb2face/checkpoints/demo
"""

from __future__ import annotations

import argparse

import numpy as np

from apb2face.data.synth.speech import synthesize
from apb2face.evaluation.face_measure import measure_face_mesh
from apb2face.evaluation.metrics import EventCounts, blink_events, ear_closed, match_events, openness_closed
from apb2face.inference.pipeline import APB2FacePipeline

PARAGRAPH = (
    "The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore, and the shells she sells "
    "are surely sea shells. A journey of a thousand miles begins with a single step, so let us walk together for a "
    "while. Every morning the baker opens his shop before the sun comes up and the streets are quiet. "
) * 2


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=None, help="release checkpoint (default: the demo checkpoint)")
    p.add_argument("--identities", nargs="*", help="identities to drive (default: all of the checkpoint's)")
    p.add_argument("--seed", type=int, default=3, help="natural-motion seed (default 3)")
    args = p.parse_args()
    speech = synthesize(PARAGRAPH)
    pipe = APB2FacePipeline.from_pretrained(args.checkpoint)
    total = EventCounts()
    print(f"{len(speech.audio) / speech.sample_rate:.1f} s of speech, natural-motion seed {args.seed}")
    print("| identity | blinks driven | seen | matched | F1 | seconds between blinks seen |")
    print("|---|---:|---:|---:|---:|---|")
    for name in args.identities or sorted(pipe.references):
        out = pipe(name, speech.audio, sample_rate=speech.sample_rate, seed=args.seed, max_seconds=None)
        seen = blink_events(ear_closed(measure_face_mesh(out.frames, video=True).ear))
        driven = blink_events(openness_closed(out.eyes))
        counts = match_events(seen, driven)
        total = total + counts
        gaps = ", ".join(f"{g:.1f}" for g in np.diff([s for s, _ in seen]) / out.fps)
        f1 = "n/a" if counts.f1 is None else f"{counts.f1:.2f}"
        print(f"| {name} | {len(driven)} | {len(seen)} | {counts.tp} | {f1} | {gaps} |", flush=True)
    f1 = "n/a" if total.f1 is None else f"{total.f1:.2f}"
    print(f"all: {total.tp} of {total.tp + total.fn} driven blinks seen, {total.fp} not driven, F1 {f1}")


if __name__ == "__main__":
    main()
