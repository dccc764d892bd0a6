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
