"""What the reference warp does, as a picture: per held-out frame of each identity, the reference, the rendered
face before the paste, the share of the reference pasted (mask x agreement), the warped reference, the output and
the real frame; prints the mean share and flow.

    .venv/bin/python scripts/warp_maps.py --checkpoint runs/sharp/final --data data/builtin128 --out warp_maps.png
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch

from apb2face.data import audio as A
from apb2face.data.format import Dataset
from apb2face.evaluation.figures import tile, write_png
from apb2face.inference.pipeline import APB2FacePipeline

COLUMNS = ("reference", "rendered", "share pasted", "warped reference", "output", "real")


def to_uint8(image: torch.Tensor) -> np.ndarray:
    return ((image.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def warp_row(pipe: APB2FacePipeline, dataset: Dataset, identity: str, position: float) -> tuple[list, float, float]:
    """The six images of one frame (`position` along the identity's first test clip), its mean mask and flow (px)."""
    record = dataset.clips("test", identity)[0]
    clip = dataset.load_clip(record)
    frame = int(position * (record.num_frames - 1))
    reference = pipe.prepare_reference(identity)
    seen: dict[str, torch.Tensor] = {}

    def keep(module, inputs, output):  # the warp's inputs: half-resolution features, reference pixels, image
        seen["features"], seen["pixels"], seen["image"] = inputs
        seen["output"] = output

    warp = pipe.model.generator.warp
    handle = warp.register_forward_hook(keep)
    try:
        windows = pipe.audio_windows(A.audio_features(clip.audio, clip.sample_rate), np.array([frame]), clip.fps)
        pipe.step(reference, windows, clip.pose[[frame]], clip.eyes[[frame]])
    finally:
        handle.remove()
    with torch.no_grad():
        flow, _ = warp.flow_and_mask(seen["features"])
        warped, share = warp.paste(seen["features"], seen["pixels"], seen["image"])
    size = seen["pixels"].shape[-1]
    mask_image = np.repeat((share[0, 0].clamp(0, 1) * 255).round().byte().numpy()[..., None], 3, axis=2)
    real = cv2.resize(np.asarray(clip.frames[frame]), (size, size), interpolation=cv2.INTER_AREA)
    images = [to_uint8(seen["pixels"][0]), to_uint8(seen["image"][0]), mask_image, to_uint8(warped[0])]
    images += [to_uint8(seen["output"][0]), real]
    flow_px = (flow[0].norm(dim=0) * size / 2).mean().item()
    return images, share.clamp(0, 1).mean().item(), flow_px


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--position", type=float, default=0.5, help="where in each first test clip (0..1)")
    args = parser.parse_args()
    pipe = APB2FacePipeline.from_pretrained(args.checkpoint)
    if getattr(pipe.model.generator, "warp", None) is None:
        raise SystemExit(f"{args.checkpoint}: this checkpoint has no reference warp (model.reference_warp)")
    dataset = Dataset(args.data)
    rows, labels = [], []
    for identity in pipe.identities:
        images, mask, flow = warp_row(pipe, dataset, identity, args.position)
        rows.append(images)
        labels.append(identity)
        print(f"{identity}: mean share pasted {mask:.2f}, mean flow {flow:.2f} px")
    write_png(args.out, tile(rows, header=list(COLUMNS), row_labels=labels, side=2 * rows[0][0].shape[0]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
