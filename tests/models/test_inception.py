"""The one resolver of the FID Inception's weights, shared by evaluation (FID) and training (the perceptual loss)."""

from __future__ import annotations

from pathlib import Path

import pytest

from apb2face.errors import UserError
from apb2face.models.inception import (
    bundled_inception_weights,
    load_inception,
    open_inception,
    resolve_inception_weights,
)


def test_no_setting_means_the_bundled_network() -> None:
    assert resolve_inception_weights(None, "FID weights") == bundled_inception_weights()
    assert resolve_inception_weights("", "FID weights") == bundled_inception_weights()


def test_a_set_file_must_exist_and_the_message_names_the_setting(tmp_path: Path) -> None:
    present = tmp_path / "inception.pt"
    present.write_bytes(b"x")
    assert resolve_inception_weights(str(present), "FID weights") == present
    with pytest.raises(UserError, match="perceptual weights not found") as caught:
        resolve_inception_weights(tmp_path / "missing.pt", "perceptual weights")
    assert "missing.pt" in str(caught.value)


def test_a_file_that_is_no_inception_is_a_user_error_naming_it(tmp_path: Path) -> None:
    junk = tmp_path / "weights.pt"
    junk.write_bytes(b"not a network")
    with pytest.raises(UserError, match="not a TorchScript FID Inception") as caught:
        open_inception(junk, load_inception)
    assert "weights.pt" in str(caught.value)
