"""End-to-end generation speed on CPU: what `apb2face generate` spends per step, and frames per second overall.

Builds a randomly initialised model of a config (speed does not depend on the weights), saves it as a release
checkpoint with one bundled identity (the scikit-image astronaut photo, cropped like the dataset), then times the
pipeline on espeak-ng speech: reference preparation (face mesh + crop + encoder, once per reference), audio
features, motion, fuse + render + postprocess per batch, and H.264/AAC encoding.

    .venv/bin/python benchmarks/bench_generate.py [--config default] [--seconds 10] [--threads 2] [--batch 16]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default")
    parser.add_argument("--checkpoint", type=Path, default=None, help="time a real checkpoint instead")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the driving speech (approx.)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from skimage import data

    from apb2face.config import load
    from apb2face.data.synth.speech import synthesize
    from apb2face.data.video import write_video
    from apb2face.inference.faces import align_face
    from apb2face.inference.pipeline import APB2FacePipeline
    from apb2face.models.apb2face import APB2Face
    from apb2face.models.modeling import save_pretrained
    from apb2face.training.config import RunConfig

    sentence = "The quick brown fox jumps over the lazy dog, and then it rests in the sun for a while. "
    speech = synthesize(sentence * max(1, round(args.seconds / 5)))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint
        if ckpt is None:
            config = load(RunConfig, args.config).model
            torch.manual_seed(0)
            crop, _ = align_face(data.astronaut(), config.image_size)
            ckpt = save_pretrained(APB2Face(config), Path(tmp) / "ckpt", references={"astronaut": crop})
        pipe = APB2FacePipeline.from_pretrained(ckpt)
        name = pipe.identities[0]
        photo = data.astronaut()

        t0 = time.perf_counter()
        ref = pipe.prepare_reference(photo)
        t_ref = time.perf_counter() - t0
        t0 = time.perf_counter()
        audio = pipe.prepare_audio(speech.audio, speech.sample_rate, 25.0)
        t_audio = time.perf_counter() - t0
        n = audio.num_frames
        t0 = time.perf_counter()
        motion = pipe.prepare_motion(n, 25.0, seed=0, reference=ref)
        t_motion = time.perf_counter() - t0
        frames = []
        t0 = time.perf_counter()
        for idx, windows in pipe.window_batches(audio.chunks(), n, 25.0, args.batch):
            frames.append(pipe.step(ref, windows, motion.pose[idx], motion.eyes[idx])[0])
        t_model = time.perf_counter() - t0
        video = np.concatenate(frames)
        t0 = time.perf_counter()
        write_video(Path(tmp) / "out.mp4", video, fps=25.0, audio=audio.audio, sample_rate=audio.sample_rate)
        t_encode = time.perf_counter() - t0
        t0 = time.perf_counter()
        pipe(name, speech.audio, sample_rate=speech.sample_rate, seed=0, batch_size=args.batch)
        t_call = time.perf_counter() - t0

    s = pipe.image_size
    total = t_ref + t_audio + t_motion + t_model + t_encode
    print(
        f"{'checkpoint ' + str(args.checkpoint) if args.checkpoint else 'config ' + args.config}: {s}x{s}, "
        f"{n} frames ({n / 25:.1f} s of speech), batch {args.batch}, {args.threads} torch threads"
    )
    print(f"  reference photo (detect, crop, encode) {t_ref * 1000:8.0f} ms  (once per reference)")
    print(f"  audio features                         {t_audio * 1000:8.0f} ms")
    print(f"  motion (natural)                       {t_motion * 1000:8.0f} ms")
    print(f"  fuse + render + postprocess            {t_model * 1000:8.0f} ms  = {n / t_model:6.1f} frames/s")
    print(f"  H.264 + AAC encode                     {t_encode * 1000:8.0f} ms")
    print(
        f"  total                                  {total * 1000:8.0f} ms  = {n / total:6.1f} frames/s, "
        f"{total / (n / 25):.2f} x real time"
    )
    print(
        f"  pipe(identity, audio) call             {t_call * 1000:8.0f} ms  = {n / t_call:6.1f} frames/s "
        "(bundled identity: its pose measured once, then cached)"
    )


if __name__ == "__main__":
    main()
