"""Full-frame re-voice on real footage: how clean the paste-back is, how sharp the mouth, and the time per stage.

Each clip (default: four talking-head clips of ../shared/data/real) is re-voiced with its OWN audio, so its real
frames are the ground truth. Three renderings per clip, over its first --seconds:

  model     `revoice` with the demo checkpoint, written to MP4 and decoded back. The demo checkpoint knows only its
            built-in people, so the reference is the clip's own first frame (a photo); its faces are far outside
            what it was trained on, which these numbers show as they fall.
  crop128   the paste-back alone, with a perfect 128 px generator: the source's own face, cut at the (smoothed) box
            at 128 px and pasted back with the same mask, feather and colour match (not encoded)
  crop256   the same at 256 px: whether 512-1080p footage needs a 256 px model

Per rendering: PSNR outside the mask vs the source (pixels whose blend weight is 0; the model run includes the
H.264 re-encode), the seam (mean Sobel gradient magnitude on a 5 px band along the mask's half-level edge, divided by
the same band in the real frame), jitter (the face mesh's box track on the output, high-pass in px/frame, next to
the source's own), mouth sharpness (Laplacian variance in the lower-face box, output / source), full-frame SSIM
(every 5th frame) and lip-sync r (mouth opening vs audio RMS, output / source). The model run also prints ms per
output frame for each stage (decode, track, generate, blend, encode) and frames/s end to end.

--speed re-voices a clip scaled into a 1280x720 and a 1920x1080 frame (--speed-seconds long) twice: `serial` (the
stages one after another: the ms per stage are each stage's own cost) and `overlap` (decoding, model + blend and
encoding in their own threads, the default: its frames/s is the end-to-end rate). --threads sets torch's threads;
pin the process to N cores with `taskset` to measure on N cores. The load average of the host is printed next to
every timing.

    .venv/bin/python benchmarks/full_frame.py [--clips dfrf_cnn_anchor.mp4,...] [--seconds 8] [--region face]
        [--speed | --speed-only] [--speed-seconds 10] [--checkpoint DIR] [--threads 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"
CLIPS = ("dfrf_cnn_anchor.mp4", "edtalk_obama.mp4", "liveportrait_d9_man_glasses.mp4", "mimictalk_german_anchor.mp4")
SEAM_BAND_PX = 2  # the band is the mask's half-level edge dilated by this much on both sides (5 px wide)
SSIM_EVERY = 5
FIRST_FRAME = "first-frame"


@dataclass
class Meter:
    """Accumulates the quality figures over (source, output, mask) frames."""

    outside_sq: float = 0.0
    outside_n: int = 0
    seam_out: list[float] = field(default_factory=list)
    seam_src: list[float] = field(default_factory=list)
    sharp_out: list[float] = field(default_factory=list)
    sharp_src: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    boxes_out: list[tuple[float, float, float]] = field(default_factory=list)
    boxes_src: list[tuple[float, float, float]] = field(default_factory=list)
    mouth_out: list[float] = field(default_factory=list)
    mouth_src: list[float] = field(default_factory=list)
    frames: int = 0

    def add(self, src: np.ndarray, out: np.ndarray, mask: np.ndarray | None, points: np.ndarray | None) -> None:
        from apb2face.evaluation import metrics as M

        self.frames += 1
        outside = np.ones(src.shape[:2], bool) if mask is None else mask < 0.5 / 255
        diff = out[outside].astype(np.float64) - src[outside]
        self.outside_sq += float((diff**2).sum())
        self.outside_n += diff.size
        if mask is not None and (mask >= 0.5).any():
            band = seam_band(mask)
            self.seam_out.append(float(gradient(out)[band].mean()))
            self.seam_src.append(float(gradient(src)[band].mean()))
        if points is not None:
            box = mouth_box(points, src.shape[:2])
            if box is not None:
                self.sharp_out.append(laplacian_variance(out, box))
                self.sharp_src.append(laplacian_variance(src, box))
        if (self.frames - 1) % SSIM_EVERY == 0:
            self.ssim.append(float(M.ssim(src[None], out[None])[0]))

    def add_faces(self, src_points: np.ndarray | None, out_points: np.ndarray | None) -> None:
        from apb2face.data.face import crop_box_from_landmarks, mouth_opening

        for points, boxes, mouths in ((src_points, self.boxes_src, self.mouth_src), (out_points, self.boxes_out,
                                                                                     self.mouth_out)):  # fmt: skip
            if points is None:
                boxes.append((np.nan, np.nan, np.nan))
                mouths.append(np.nan)
            else:
                box = crop_box_from_landmarks(points)
                boxes.append((box.cx, box.cy, box.side))
                mouths.append(mouth_opening(points))

    def summary(self, rms: np.ndarray | None) -> dict[str, float | None]:
        from apb2face.evaluation import metrics as M
        from apb2face.inference.compose import high_pass_jitter

        mse = self.outside_sq / max(self.outside_n, 1) / 255.0**2
        out: dict[str, float | None] = {
            "psnr_outside_db": float(10 * np.log10(1 / mse)) if mse > 0 else float("inf"),
            "seam_ratio": ratio(self.seam_out, self.seam_src),
            "sharpness_ratio": ratio(self.sharp_out, self.sharp_src),
            "ssim": float(np.mean(self.ssim)) if self.ssim else None,
        }
        if self.boxes_out:
            b_out, b_src = np.asarray(self.boxes_out), np.asarray(self.boxes_src)
            out["jitter_out_px"] = high_pass_jitter(np.nan_to_num(b_out), np.isfinite(b_out).all(1))
            out["jitter_src_px"] = high_pass_jitter(np.nan_to_num(b_src), np.isfinite(b_src).all(1))
        if rms is not None and self.mouth_out:
            r_out, _ = M.lipsync_correlation(np.asarray(self.mouth_out), rms)
            r_src, _ = M.lipsync_correlation(np.asarray(self.mouth_src), rms)
            out["lipsync_r_out"], out["lipsync_r_src"] = r_out, r_src
        return out


def ratio(a: list[float], b: list[float]) -> float | None:
    return float(np.mean(a) / max(np.mean(b), 1e-9)) if a else None


def seam_band(mask: np.ndarray) -> np.ndarray:
    core = (mask >= 0.5).astype(np.uint8)
    kernel = np.ones((2 * SEAM_BAND_PX + 1, 2 * SEAM_BAND_PX + 1), np.uint8)
    return (cv2.dilate(core, kernel) - cv2.erode(core, kernel)).astype(bool)


def gradient(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))


def mouth_box(points: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the lower face: below the subnasale point, inside the jaw (PASTE_POINTS landmarks)."""
    from apb2face.inference.compose import NUM_OVAL

    oval, nose = points[:NUM_OVAL], points[-3]
    chin_y = float(oval[:, 1].max())
    lower = oval[oval[:, 1] > nose[1]]
    if len(lower) < 3 or chin_y - nose[1] < 8:
        return None
    x0, x1 = float(lower[:, 0].min()), float(lower[:, 0].max())
    inset = 0.2 * (x1 - x0)
    box = (int(x0 + inset), int(nose[1]), int(x1 - inset), int(chin_y - 0.1 * (chin_y - nose[1])))
    box = (max(0, box[0]), max(0, box[1]), min(shape[1], box[2]), min(shape[0], box[3]))
    return box if box[2] - box[0] >= 8 and box[3] - box[1] >= 8 else None


def laplacian_variance(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = box
    grey = cv2.cvtColor(np.ascontiguousarray(image[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def decoded(path: Path) -> Iterator[np.ndarray]:
    """Every frame as the re-voice decodes it (the same RGB conversion on both sides of each comparison)."""
    from apb2face.data.video import frame_to_rgb

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in c.decode(stream):
            yield frame_to_rgb(frame)


def first_frame(path: Path) -> np.ndarray:
    return next(decoded(path))


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}/{fifteen:.1f} on {os.cpu_count()} CPUs"


# ------------------------------------------------------------------------------------------------------- runs


def run_model(pipe, clip: Path, seconds: float, region: str, out: Path, measure_faces: bool, reference: str) -> dict:
    from apb2face.data import audio as A
    from apb2face.data.face import FaceMesh
    from apb2face.inference.compose import ComposeConfig
    from apb2face.inference.faces import detect_landmarks
    from apb2face.inference.revoice import RevoiceConfig, revoice, track_video

    audio = A.load_audio(clip, 48000, max_seconds=None)[: int(seconds * 48000)]
    config = RevoiceConfig(compose=ComposeConfig(region=region))
    masks: dict[int, tuple[int, object]] = {}

    def keep(k: int, s: int, frame: np.ndarray, pasted) -> None:  # noqa: ANN001
        masks[k] = (s, None if pasted is None else (pasted.roi, (pasted.mask * 255).astype(np.uint8)))

    ref = first_frame(clip) if reference == FIRST_FRAME else reference
    report = revoice(pipe, ref, clip, audio, out, config, sample_rate=48000, on_frame=keep, allow_unknown=True)
    track = track_video(clip, config, crop_scale=pipe.crop_scale)
    meter = Meter()
    with FaceMesh(video=True) as mesh_src, FaceMesh(video=True) as mesh_out:
        for k, (src, res) in enumerate(zip(decoded(clip), decoded(out))):
            if k >= report.frames:
                break
            s, pasted = masks[k]
            if s != k:
                continue
            mask = None
            if pasted is not None:
                roi, m8 = pasted
                mask = np.zeros(src.shape[:2], np.float32)
                roi.view(mask)[...] = m8 / 255.0
            meter.add(src, res, mask, track.points[k] if track.found[k] else None)
            if measure_faces:
                meter.add_faces(detect_landmarks(mesh_src, src), detect_landmarks(mesh_out, res))
    rms = A.rms_per_frame(A.resample(audio, 48000), report.frames, report.fps)
    result = meter.summary(rms)
    result.update(stage_figures(report))
    result["pasted_box_jitter_px"] = pasted_jitter(track, report.frames)
    return result


def pasted_jitter(track, frames: int) -> float:  # noqa: ANN001
    from apb2face.inference.compose import high_pass_jitter

    return high_pass_jitter(track.boxes[:frames], track.found[:frames])


def stage_figures(report) -> dict:  # noqa: ANN001
    ms = {f"ms_{k}": 1000 * v / report.frames for k, v in report.seconds.items()}
    busy = sum(report.seconds.values())
    return {
        **ms,
        "fps_stages": report.frames / busy,
        "fps_wall": report.frames / report.wall_seconds,
        "frames": report.frames,
        "size": f"{report.size[1]}x{report.size[0]}",
    }


def run_oracle(clip: Path, seconds: float, region: str, size: int) -> dict:
    """The paste-back alone, with a perfect generator at `size` px (the source's own crop)."""
    from apb2face.data.face import crop_image
    from apb2face.inference.compose import ColourMatcher, ComposeConfig, paste
    from apb2face.inference.revoice import RevoiceConfig, track_video

    config = RevoiceConfig(compose=ComposeConfig(region=region))
    track = track_video(clip, config)
    colour = ColourMatcher(config.compose)
    meter = Meter()
    n = min(len(track), int(round(seconds * track.fps)))
    for k, src in enumerate(decoded(clip)):
        if k >= n:
            break
        if not track.found[k]:
            meter.add(src, src, None, None)
            continue
        out = src.copy()
        pasted = paste(out, crop_image(src, track.box(k), size), track.box(k), track.points[k], config.compose, colour)
        meter.add(src, out, pasted.full_mask(src.shape[:2]), track.points[k])
    return meter.summary(None)


def speed_video(clip: Path, height: int, seconds: float, out: Path) -> Path:
    """The clip scaled to `height` and centred in a 16:9 frame, with its own audio."""
    from apb2face.data import audio as A
    from apb2face.data.video import Mp4Writer

    width = height * 16 // 9
    audio = A.load_audio(clip, 48000)[: int(seconds * 48000)]
    with Mp4Writer(out, fps=25.0, audio_rate=48000, crf=18) as writer:
        writer.write_audio(audio)
        for k, frame in enumerate(decoded(clip)):
            if k >= seconds * 25:
                break
            scaled = cv2.resize(frame, (frame.shape[1] * height // frame.shape[0], height), cv2.INTER_CUBIC)
            canvas = np.full((height, width, 3), 40, np.uint8)
            x = (width - scaled.shape[1]) // 2
            canvas[:, x : x + scaled.shape[1]] = scaled[:, : width - x]
            writer.write_frame(canvas)
    return out


def run_speed(pipe, video: Path, out: Path, region: str, overlap: bool) -> dict:  # noqa: ANN001
    """One timed re-voice of `video` with its own audio. `overlap=False` runs the stages one after another, so each
    stage's ms are its own; with `overlap` they run side by side (the default) and only the end-to-end rate counts
    (a stage's time then includes waiting for a core that another stage holds)."""
    from apb2face.data import audio as A
    from apb2face.inference.compose import ComposeConfig
    from apb2face.inference.revoice import RevoiceConfig, revoice

    audio = A.load_audio(video, 48000)
    config = RevoiceConfig(compose=ComposeConfig(region=region), overlap=overlap)
    cpu = time.process_time()
    report = revoice(pipe, first_frame(video), video, audio, out, config, sample_rate=48000, allow_unknown=True)
    # CPU time of every thread of the process per frame: the work, whatever else the host runs (on N free cores
    # the end-to-end rate is at most N * 1000 / cpu_ms)
    return {**stage_figures(report), "cpu_ms": 1000 * (time.process_time() - cpu) / report.frames}


def show(name: str, figures: dict) -> None:
    cells = []
    for key, value in figures.items():
        cells.append(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}")
    print(f"  {name:8s} " + "  ".join(cells), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default=",".join(CLIPS), help="comma-separated file names in the real folder")
    parser.add_argument("--real-dir", type=Path, default=REAL)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--region", choices=("face", "mouth"), default="face")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument(
        "--reference",
        default=FIRST_FRAME,
        help=f"{FIRST_FRAME} (the clip's own first frame, as a photo) or an identity of the checkpoint",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-faces", action="store_true", help="skip the face-mesh pass on outputs (jitter, sync)")
    parser.add_argument("--no-oracle", action="store_true", help="skip the crop128 / crop256 renderings")
    parser.add_argument("--speed", action="store_true", help="also time 720p and 1080p re-voices")
    parser.add_argument("--speed-only", action="store_true", help="only the 720p and 1080p timings")
    parser.add_argument("--speed-seconds", type=float, default=10.0)
    parser.add_argument("--keep", type=Path, default=None, help="keep the re-voiced MP4s in this folder")
    args = parser.parse_args()

    import logging

    import torch

    from apb2face.inference.pipeline import APB2FacePipeline

    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    pipe = APB2FacePipeline.from_pretrained(args.checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if not args.speed_only:
            for name in args.clips.split(","):
                clip = args.real_dir / name
                if not clip.is_file():
                    print(f"{name}: not found in {args.real_dir}, skipped")
                    continue
                print(f"{name} (region {args.region}, first {args.seconds:g} s) [{load()}]", flush=True)
                out = folder / f"{clip.stem}_{args.region}.mp4"
                show("model", run_model(pipe, clip, args.seconds, args.region, out, not args.no_faces, args.reference))
                if not args.no_oracle:
                    for size in (128, 256):
                        show(f"crop{size}", run_oracle(clip, args.seconds, args.region, size))
        if args.speed or args.speed_only:
            clip = args.real_dir / args.clips.split(",")[0]
            for height in (720, 1080):
                video = speed_video(clip, height, args.speed_seconds, folder / f"speed_{height}p_source.mp4")
                outs = []
                for overlap in (False, True):
                    name = "overlap" if overlap else "serial"
                    print(f"speed {height}p from {clip.name}, {name} [{load()}]", flush=True)
                    started = time.perf_counter()
                    outs.append(folder / f"speed_{height}p_{name}.mp4")
                    show(name, run_speed(pipe, video, outs[-1], args.region, overlap))
                    print(f"  wall {time.perf_counter() - started:.1f} s [{load()}]", flush=True)
                same = outs[0].read_bytes() == outs[1].read_bytes()
                print(f"  serial and overlap outputs byte-identical: {same}", flush=True)


if __name__ == "__main__":
    main()
