"""Avatar clips of the built-in people: the same frames from the same seed, the face crop half of a real frame
(shoulders and background around it), the head and eyes alive."""

from __future__ import annotations

import numpy as np

from apb2face.data import face
from apb2face.data.synth.avatar import builtin_spec, idle_frames, write_idle_clip
from apb2face.data.video import probe

RECIPE = {"identities": 2, "clips_per_identity": 1, "size": 64, "seed": 0}


def test_idle_frames_are_a_pure_function_of_the_seed() -> None:
    index, spec = builtin_spec(RECIPE, "id01")
    first = idle_frames(spec, index, 64, seed=0, seconds=0.4)
    assert first.shape == (10, 128, 128, 3)
    np.testing.assert_array_equal(first, idle_frames(spec, index, 64, seed=0, seconds=0.4))
    assert not np.array_equal(first, idle_frames(spec, index, 64, seed=1, seconds=0.4))
    assert builtin_spec(RECIPE, "id02") is None and builtin_spec(RECIPE, "anna") is None


def test_the_face_sits_in_a_wider_frame_and_the_head_and_eyes_move() -> None:
    index, spec = builtin_spec(RECIPE | {"size": 128}, "id00")
    frames = idle_frames(spec, index, 128, seed=0, seconds=4.0)
    eyes, centres, sides = [], [], []
    with face.FaceMesh(video=False) as mesh:
        for frame in frames:
            points = mesh.detect(frame)
            assert points is not None
            box = face.crop_box_from_landmarks(points)
            centres.append((box.cx, box.cy))
            sides.append(box.side)
            eyes.append(np.mean(face.eye_aspect_ratios(points)))
    # the dataset's face crop is about half the 256 px frame, near its middle
    assert 0.4 < np.median(sides) / 256 < 0.6
    assert np.all(np.abs(np.asarray(centres) - 128) < 40)
    # the head sways; the eyes blink (4 s holds at least one: they come every 2-6 s from 0.2-3 s on). The mouth is
    # rendered at rest (jaw 0); what the generated mouth does in silence is tested end to end (tests/inference).
    assert np.ptp(np.asarray(centres)[:, 0]) > 1.0
    assert min(eyes) < 0.6 * np.median(eyes)


def test_a_clip_file_is_written_only_for_a_person_of_the_recipe(tmp_path) -> None:
    assert not write_idle_clip(RECIPE, "id07", tmp_path / "none.mp4") and not (tmp_path / "none.mp4").exists()
    assert write_idle_clip(RECIPE, "id00", tmp_path / "id00.mp4")
    info = probe(tmp_path / "id00.mp4")
    assert (info.width, info.height, info.fps) == (128, 128, 25.0) and not info.has_audio
