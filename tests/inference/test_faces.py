"""Reference photos are checked by their header before decoding, and every refusal names the file."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from apb2face.errors import UserError
from apb2face.inference.faces import MAX_IMAGE_PIXELS, read_image
from tests.inference.helpers import astronaut


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny valid PNG whose IHDR header claims `width` x `height` pixels (CRC fixed, so readers trust it)."""
    ok, encoded = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))
    data = bytearray(encoded.tobytes())
    data[16:24] = struct.pack(">II", width, height)  # IHDR data starts after signature (8) + length (4) + type (4)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def test_a_png_claiming_40000_squared_pixels_is_refused_by_its_header(tmp_path):
    path = png_claiming(tmp_path / "bomb.png", 40000, 40000)
    with pytest.raises(UserError, match="larger than 100 megapixels") as err:
        read_image(path)
    assert str(path) in str(err.value)


def test_a_header_just_over_the_cap_reports_its_size(tmp_path):
    path = png_claiming(tmp_path / "big.png", 12000, 9000)
    assert 12000 * 9000 > MAX_IMAGE_PIXELS
    with pytest.raises(UserError, match="image is 12000x9000 pixels, more than 100 megapixels") as err:
        read_image(path)
    assert str(path) in str(err.value)


def test_a_1x1_image_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "dot.png"
    cv2.imwrite(str(path), np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(UserError, match="1x1 pixels") as err:
        read_image(path)
    assert str(path) in str(err.value)


def test_truncated_and_fake_images_are_refused_naming_the_file(tmp_path):
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
    truncated = tmp_path / "half.png"
    truncated.write_bytes(encoded.tobytes()[: len(encoded) // 2])
    fake = tmp_path / "notes.png"
    fake.write_text("not an image\n")
    for path in (truncated, fake):
        with pytest.raises(UserError, match="cannot read image") as err:
            read_image(path)
        assert str(path) in str(err.value)


def test_a_normal_photo_reads_as_rgb(tmp_path):
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(read_image(path), astronaut())


@pytest.mark.parametrize(
    "variant",
    ["greyscale", "small 150 px", "large 4000 px", "face fills the frame", "off-centre on a wide canvas"],
)
def test_photo_faces_are_found_in_any_framing(variant):
    """The portraits users enrol from: the mesh on the whole photo, else the full-range detector and the mesh on its
    box; the landmarks come back in the photo's own pixels (checked against the face's known place)."""
    from apb2face.data import face
    from apb2face.inference.faces import detect_photo_landmarks
    from tests.data.helpers import portrait

    image = portrait("astronaut")  # 260 px, the face about 110 px wide around (130, 120)
    centre, width = np.array([130.0, 120.0]), 110.0
    if variant == "greyscale":
        image = np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    elif variant == "small 150 px":
        image, centre, width = cv2.resize(image, (150, 150), interpolation=cv2.INTER_AREA), centre * 150 / 260, 63
    elif variant == "large 4000 px":
        image, centre, width = (
            cv2.resize(image, (4000, 4000), interpolation=cv2.INTER_CUBIC),
            centre * 4000 / 260,
            1690,
        )
    elif variant == "face fills the frame":
        image, centre = np.ascontiguousarray(image[65:185, 70:190]), centre - np.array([70, 65])
    else:
        canvas = np.full((700, 1100, 3), 140, np.uint8)
        canvas[400:660, 800:1060] = image
        image, centre = canvas, centre + np.array([800, 400])
    with face.FaceMesh(video=False) as mesh:
        points = detect_photo_landmarks(mesh, image)
    assert points is not None
    found = points[:, :2].mean(0)
    assert np.linalg.norm(found - centre) < 0.25 * width, (found, centre)


def test_the_mesh_on_a_detector_box_maps_back_to_the_photo():
    """The fallback for photos the mesh alone misses: the full-range detector's box, the mesh on a square around it,
    landmarks in the photo's pixels (here the same photo the mesh alone reads, so both must agree)."""
    from apb2face.data import face
    from apb2face.inference.faces import detect_landmarks, landmarks_in_box
    from tests.data.helpers import portrait

    image = np.ascontiguousarray(portrait("astronaut")[65:185, 70:190])  # the face fills the frame
    box = face.full_range_face_box(image)
    assert box is not None
    with face.FaceMesh(video=False) as mesh:
        direct = detect_landmarks(mesh, image)
        boxed = landmarks_in_box(mesh, image, box)
    assert direct is not None and boxed is not None
    assert np.abs(boxed[:, :2] - direct[:, :2]).mean() < 3.0
