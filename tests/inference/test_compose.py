"""Paste-back: the crop goes back where it came from, masks follow the landmarks and stay soft, colour is matched,
the box track is smoothed without lag, and nothing outside the mask changes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from apb2face.data.face import CropBox, FaceMesh, crop_box_from_landmarks, crop_image
from apb2face.errors import UserError
from apb2face.inference.compose import (
    PASTE_POINTS,
    ColourMatcher,
    ComposeConfig,
    box_roi,
    high_pass_jitter,
    paste,
    region_mask,
    runs,
    smooth_track,
    warp_crop,
)
from apb2face.inference.faces import align_face, detect_landmarks
from tests.inference.helpers import astronaut


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray, CropBox]:
    """A real face in a 320x400 frame, its PASTE_POINTS landmarks (real face mesh) and its crop box."""
    face, _ = align_face(astronaut(), 180)
    frame = np.zeros((320, 400, 3), np.uint8)
    frame[...] = (70, 110, 150)
    frame[60:240, 130:310] = face
    with FaceMesh(video=False) as mesh:
        points = detect_landmarks(mesh, frame)
    assert points is not None
    return frame, points[list(PASTE_POINTS), :2], crop_box_from_landmarks(points)


def test_warp_crop_puts_a_crop_back_where_it_was_cut(scene) -> None:
    frame, _points, box = scene
    crop = crop_image(frame, box, 128)
    roi = box_roi(box, frame.shape[:2])
    back = warp_crop(crop, box, roi).astype(float)
    real = roi.view(frame).astype(float)
    inner = (slice(8, -8), slice(8, -8))
    assert back.shape == real.shape
    assert np.abs(back[inner] - real[inner]).mean() < 6.0  # a 128 px round trip: resampling blur only
    shifted = warp_crop(crop, CropBox(box.cx + 6, box.cy, box.side), roi).astype(float)
    assert np.abs(shifted[inner] - real[inner]).mean() > 2 * np.abs(back[inner] - real[inner]).mean()


def test_face_mask_covers_the_face_and_is_feathered(scene) -> None:
    frame, points, box = scene
    roi = box_roi(box, frame.shape[:2])
    mask = region_mask(points, box, roi, ComposeConfig())
    nose = np.round(points[-3] - (roi.x0, roi.y0)).astype(int)
    assert mask[nose[1], nose[0]] > 0.99 and mask[0, 0] == 0.0 and mask[-1, -1] == 0.0
    edge = (mask > 0.02) & (mask < 0.98)
    assert edge.sum() > 200  # a soft edge, not a hard cut-out
    gy, gx = np.gradient(mask)
    sigma = ComposeConfig().feather * box.side
    assert np.hypot(gx, gy).max() < 1.0 / (np.sqrt(2 * np.pi) * sigma) + 0.02  # no steeper than the Gaussian's


def test_mouth_mask_keeps_everything_above_the_nose(scene) -> None:
    frame, points, box = scene
    roi = box_roi(box, frame.shape[:2])
    mask = region_mask(points, box, roi, ComposeConfig(region="mouth"))
    local = points - (roi.x0, roi.y0)
    eye_row = int(round(local[-2:, 1].mean()))
    assert mask[: eye_row + 1].max() < 1e-3  # eyes and everything above: the frame's own
    chin = local[list(range(0, 36))][:, 1].max()
    mouth_row = int(round((local[-3, 1] + chin) / 2))
    assert mask[mouth_row].max() > 0.97


def test_paste_changes_nothing_outside_the_mask(scene) -> None:
    frame, points, box = scene
    out = frame.copy()
    crop = np.full((128, 128, 3), (250, 20, 20), np.uint8)
    pasted = paste(out, crop, box, points, ComposeConfig(colour_match=False))
    full = pasted.full_mask(frame.shape[:2])
    assert (out[full == 0] == frame[full == 0]).all()
    inside = full > 0.999
    assert inside.sum() > 2000 and np.abs(out[inside].astype(int) - (250, 20, 20)).max() <= 1


def test_colour_matcher_takes_the_real_skin_tone() -> None:
    rng = np.random.default_rng(0)
    real = np.clip(rng.normal((170, 120, 100), 12, (120, 120, 3)), 0, 255).astype(np.uint8)
    generated = np.clip(real.astype(int) + (-40, 10, 30), 0, 255).astype(np.uint8)  # same texture, wrong tone
    mask = np.zeros((120, 120), np.float32)
    mask[20:100, 20:100] = 1.0
    matched = ColourMatcher(ComposeConfig(colour_smoothing=0.0))(generated, real, mask, side=120)
    band = mask > 0
    before = np.abs(generated[band].astype(float).mean(0) - real[band].mean(0)).max()
    after = np.abs(matched[band].astype(float).mean(0) - real[band].mean(0)).max()
    assert before > 25 and after < 3


def test_colour_matcher_smooths_over_frames_and_resets() -> None:
    real = np.full((60, 60, 3), 150, np.uint8)
    mask = np.zeros((60, 60), np.float32)
    mask[10:50, 10:50] = 1.0
    matcher = ColourMatcher(ComposeConfig(colour_smoothing=0.5))
    matcher(np.full_like(real, 150), real, mask, side=60)
    jumped = matcher(np.full_like(real, 110), real, mask, side=60)  # a sudden change is followed half-way
    assert 120 < float(jumped.mean()) < 140
    matcher.reset()
    assert abs(float(matcher(np.full_like(real, 110), real, mask, side=60).mean()) - 150) < 3


def test_smooth_track_removes_jitter_without_lag_and_respects_gaps() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(200, dtype=float)
    truth = np.stack([100 + 0.8 * t, 50 + 10 * np.sin(t / 30)], axis=1)
    noisy = truth + rng.normal(0, 1.5, truth.shape)
    found = np.ones(200, bool)
    found[100:110] = False
    smooth = smooth_track(noisy, found, sigma=2.0)
    ok = found.copy()
    assert np.abs(smooth - truth)[ok].mean() < 0.6 * np.abs(noisy - truth)[ok].mean()
    assert abs(float((smooth - truth)[20:90, 0].mean())) < 0.3  # a steady motion is not delayed
    assert high_pass_jitter(smooth, found) < 0.3 * high_pass_jitter(noisy, found)
    assert (smooth[100:110] == noisy[100:110]).all()  # rows without a face are left alone
    assert runs(found) == [(0, 100), (110, 200)]
    assert high_pass_jitter(truth[:, :1]) < 1e-9  # a steady motion has no jitter


def test_compose_config_validates_itself() -> None:
    with pytest.raises(UserError, match="region"):
        ComposeConfig(region="eyes")
    with pytest.raises(UserError, match="feather"):
        ComposeConfig(feather=0.5)
    with pytest.raises(UserError, match="colour_smoothing"):
        ComposeConfig(colour_smoothing=1.0)


def test_hull_of_a_rolled_face_still_cuts_below_the_nose(scene) -> None:
    """A head rolled by 25 degrees: the mouth region's top follows the face's axes, not the image rows."""
    frame, _points, _box = scene
    h, w = frame.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), 25, 1.0)
    turned = cv2.warpAffine(frame, rot, (w, h), borderMode=cv2.BORDER_REPLICATE)
    with FaceMesh(video=False) as mesh:
        lm = detect_landmarks(mesh, turned)
    points, box = lm[list(PASTE_POINTS), :2], crop_box_from_landmarks(lm)
    roi = box_roi(box, turned.shape[:2])
    mask = region_mask(points, box, roi, ComposeConfig(region="mouth"))
    for eye in points[-2:] - (roi.x0, roi.y0):
        x, y = np.round(eye).astype(int)
        assert mask[y - 3 : y + 4, x - 3 : x + 4].max() < 1e-3


@pytest.mark.parametrize("region", ["face", "mouth"])
def test_blending_only_inside_the_mask_gives_the_whole_blend(scene, region: str) -> None:
    """`paste` blends only the mask's bounding rectangle: the frame is the same, byte for byte, as a blend of the
    whole box."""
    frame, points, box = scene
    config = ComposeConfig(region=region)
    crop = np.random.default_rng(3).integers(0, 256, (128, 128, 3), np.uint8)
    out = frame.copy()
    pasted = paste(out, crop, box, points, config)
    expected = frame.copy()
    real = pasted.roi.view(expected)
    real[...] = cv2.blendLinear(warp_crop(crop, box, pasted.roi), real, pasted.mask, 1.0 - pasted.mask)
    assert np.array_equal(out, expected)
    assert (pasted.mask == 0).mean() > 0.2  # there was something to leave out
