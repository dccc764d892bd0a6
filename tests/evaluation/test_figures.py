"""The shared figure helpers: output names that cannot leave their folder, tile layout, even sides for H.264."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from apb2face.errors import UserError
from apb2face.evaluation import figures as F


@pytest.mark.parametrize("name", ["../escape", "../../escape", "..", ".", ".hidden", "/abs/x", "a/b", "", " id00"])
def test_output_file_refuses_names_that_are_not_plain(name: str, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot name an output file") as info:
        F.output_file(tmp_path / "strips", name, ".png", source=tmp_path / "dataset.json")
    assert str(tmp_path / "dataset.json") in str(info.value)


def test_output_file_keeps_plain_names_inside_the_folder(tmp_path: Path) -> None:
    path = F.output_file(tmp_path / "strips", "id00 (take 2)", ".png")
    assert path == tmp_path / "strips" / "id00 (take 2).png"
    assert path.resolve().parent == (tmp_path / "strips").resolve()


def test_tile_lays_out_cells_with_header_and_padding() -> None:
    cell = np.zeros((64, 64, 3), np.uint8)
    image = F.tile([[cell, None], [cell, cell]], header=["a", "b"], title="t")
    side = F.display_size(64)
    assert side == 128  # 64 px frames are shown enlarged x2
    assert image.shape[1] == 2 * side + 3 * F.PAD
    assert image.shape[0] == (F.CAPTION_PX + 4) + F.CAPTION_PX + 2 * (side + F.PAD) + F.PAD
    # the empty cell stays background, the filled ones hold the (black) frames
    top = F.CAPTION_PX + 4 + F.CAPTION_PX + F.PAD
    assert (image[top : top + side, F.PAD : F.PAD + side] == 0).all()
    right = 2 * F.PAD + side
    assert (image[top : top + side, right : right + side] == F.BACKGROUND).all()


def test_even_sides_and_resize_frames() -> None:
    odd = np.zeros((5, 7, 3), np.uint8)
    assert F.even_sides(odd).shape == (6, 8, 3)
    frames = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    assert F.resize_frames(frames, 32).shape == (2, 32, 32, 3)
    assert np.array_equal(F.resize_frames(frames, 64), frames)
