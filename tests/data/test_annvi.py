"""AnnVI import on tiny AnnVI-shaped trees built here: official crops + crop landmark file, or full frames + source
landmarks (our crop), an AAC .m4a audio track, label ranges with a gap, the 113-token landmark lines."""

from __future__ import annotations

import math
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from skimage import data as skdata

from apb2face.cli.main import main
from apb2face.data import annvi
from apb2face.data.format import Dataset
from apb2face.data.video import write_video

FPS = 25
W, H = 640, 480


def _points(n: int) -> np.ndarray:
    """106 points around the astronaut's face (a stand-in for the real layout), drifting with n, source pixels."""
    t = np.linspace(0, 2 * np.pi, annvi.NUM_POINTS, endpoint=False)
    cx, cy = 305 + 3 * math.sin(n / 5), 120 + 2 * math.cos(n / 7)
    pts = np.stack([cx + 50 * np.cos(t) * (0.6 + 0.4 * np.sin(3 * t) ** 2), cy + 65 * np.sin(t)], 1)
    return pts


def _pose(n: int) -> np.ndarray:  # stored order pitch, roll, yaw in radians
    return np.array([0.1 * math.sin(n / 9), -0.05, 0.2 * math.cos(n / 11)])


def _blink(n: int) -> np.ndarray:
    return np.array([0.12, 0.1]) if n % 10 == 0 else np.array([0.36, 0.34])


def _line(name: str, size: tuple[int, int], pts: np.ndarray, pose: np.ndarray, blink: np.ndarray) -> str:
    return (
        " ".join(
            [name, f"{size[0]}-{size[1]}"]
            + [f"{x}-{y}" for x, y in pts]
            + [str(v) for v in pose]
            + [str(v) for v in blink]
        )
        + "\n"
    )


def _write_m4a(path: Path, seconds: float, rate: int = 44100) -> None:
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=rate)
        s.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]).reshape(1, -1), format="flt", layout="stereo")
        frame.sample_rate = rate
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)


def _full_frame() -> np.ndarray:
    canvas = np.full((H, W, 3), 90, np.uint8)
    canvas[:, 80:560] = cv2.resize(skdata.astronaut(), (480, 480))
    return canvas


FRAMES = list(range(100, 140))  # annotated frames; label ranges cut 100-119 and 125-139 (a gap at 120-124)


def make_annvi(root: Path, kind: str) -> None:
    """kind 'crops': feature/<idt>/256_image_crop + 256_landmark_crop.txt; 'images': feature/<idt>/image only;
    'video': video/<idt>.mp4 only (frames 0..139, of which 100..139 are annotated)."""
    idt = "man1"
    for d in ("label", "landmark", "audio"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "label" / f"{idt}.txt").write_text("100 119\n125 139\n")
    _write_m4a(root / "audio" / f"{idt}.m4a", 6.0)
    full = _full_frame()
    src_lines, crop_lines = [], []
    feat = root / "feature" / idt
    for n in FRAMES:
        pts = _points(n)
        src_lines.append(_line(f"{n}.jpg", (W, H), pts, _pose(n), _blink(n)))
        box = annvi.official_crop_box(pts)
        if kind == "crops":
            (feat / "256_image_crop").mkdir(parents=True, exist_ok=True)
            crop = cv2.resize(
                full[
                    int(box.cy - box.side / 2) : int(box.cy + box.side / 2),
                    int(box.cx - box.side / 2) : int(box.cx + box.side / 2),
                ],
                (256, 256),
            )
            cv2.imwrite(str(feat / "256_image_crop" / f"{n}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
            x0, y0, zoom = box.cx - box.side / 2, box.cy - box.side / 2, box.side / 256
            crop_lines.append(_line(f"{n}.jpg", (256, 256), (pts - [x0, y0]) / zoom, _pose(n), _blink(n)))
        elif kind == "images":
            (feat / "image").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(feat / "image" / f"{n}.jpg"), cv2.cvtColor(full, cv2.COLOR_RGB2BGR))
    if kind == "video":
        (root / "video").mkdir()
        write_video(root / "video" / f"{idt}.mp4", (full for _ in range(FRAMES[-1] + 1)), fps=FPS)
    (root / "landmark" / f"{idt}.txt").write_text("".join(src_lines))
    if crop_lines:
        (feat / "256_landmark_crop.txt").write_text("".join(crop_lines))
    (root / "feature" / "jaime").mkdir(parents=True)  # a leftover the official loaders skip


@pytest.mark.parametrize("kind", ["crops", "images", "video"])
def test_import_annvi_layouts(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "AnnVI"
    make_annvi(root, kind)
    out = tmp_path / "ds"
    assert main(["import-annvi", str(root), "--out", str(out)]) == 0
    ds = Dataset(out)
    assert ds.meta.landmark_scheme == "face++-106"
    assert ds.identities == ["man1"]
    assert ds.meta.fps == 25 and ds.meta.image_size == 256 and ds.meta.sample_rate == 16000
    assert [(c.name, c.num_frames) for c in ds.clips()] == [("man1_000100", 20), ("man1_000125", 15)]
    assert sorted(ds.meta.splits["train"] + ds.meta.splits["test"]) == [c.key for c in ds.clips()]
    assert len(ds.meta.splits["test"]) == 1  # by clip: two clips, one held out
    clip = ds.load_clip("man1/man1_000125")
    assert clip.landmarks.shape == (15, 106, 2)
    # the official crop rule: landmark box centred, its longer side 1/1.4 of the crop
    lo, hi = clip.landmarks.min(1), clip.landmarks.max(1)
    np.testing.assert_allclose((lo + hi) / 2, 0.5, atol=2e-3)
    np.testing.assert_allclose((hi - lo).max(1), 1 / annvi.CROP_FACTOR, atol=2e-3)
    # pose: stored (pitch, roll, yaw) radians -> (yaw, pitch, roll) degrees
    expected = np.array([np.rad2deg(_pose(n)[[2, 0, 1]]) for n in range(125, 140)])
    np.testing.assert_allclose(clip.pose, expected, atol=1e-3)
    # eyes: open level (90th percentile) -> 1, the blink frame (130) -> 0.12 / 0.36
    assert np.allclose(clip.eyes[clip.eyes.mean(1) > 0.5], 1.0)
    np.testing.assert_allclose(clip.eyes[5], [0.12 / 0.36, 0.1 / 0.34], atol=1e-4)
    # audio: 16 kHz mono, exactly the clip's frames, cut at the clip's time (frame 125 = 5.0 s of a 6 s tone)
    assert clip.audio.shape == (15 * 640,)
    assert 0.1 < float(np.sqrt(np.mean(clip.audio[:-2000] ** 2))) < 0.2
    # frames: the face region of the astronaut (not padding): crop centre matches the source at the box centre
    full = _full_frame()
    box = annvi.official_crop_box(_points(125))
    centre = full[int(box.cy) - 8 : int(box.cy) + 8, int(box.cx) - 8 : int(box.cx) + 8].mean((0, 1))
    assert np.abs(clip.frames[0, 120:136, 120:136].mean((0, 1)) - centre).max() < 25


def test_landmark_parser_accepts_negative_coordinates(tmp_path: Path) -> None:
    pts = _points(0)
    pts[0] = (-3.5, -10.25)
    pts[1] = (4.0, -1.0)
    path = tmp_path / "x.txt"
    path.write_text(_line("7.jpg", (W, H), pts, _pose(0), _blink(0)))
    ann = annvi.parse_landmark_file(path)[7]
    np.testing.assert_allclose(ann.points[:2], [(-3.5, -10.25), (4.0, -1.0)])
    assert ann.image_size == (W, H)


def test_pose_in_degrees_is_detected(tmp_path: Path) -> None:
    cfg = annvi.AnnviConfig()
    scale, text = annvi._pose_scale(cfg, np.array([[10.0, -3.0, 25.0]]))
    assert scale == 1.0 and "degrees" in text
    scale, _ = annvi._pose_scale(cfg, np.array([[0.3, -0.1, 0.5]]))
    assert scale == pytest.approx(180 / math.pi)


def test_bad_landmark_line_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "AnnVI"
    make_annvi(root, "images")
    lines = (root / "landmark" / "man1.txt").read_text().splitlines(keepends=True)
    lines[3] = lines[3].replace(" ", " x", 5)
    (root / "landmark" / "man1.txt").write_text("".join(lines))
    out = tmp_path / "ds"
    assert main(["import-annvi", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "man1.txt" in err[0] and "line 4" in err[0]
    assert not out.exists()


def test_missing_root_is_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import-annvi", str(tmp_path / "nope"), "--out", str(tmp_path / "ds")]) == 2
    assert "nope" in capsys.readouterr().err
