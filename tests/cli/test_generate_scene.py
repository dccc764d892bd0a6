"""`apb2face generate --scene`: several people, each with their own voice, from files, channels or a timeline; the
bad inputs users bring end in one line naming the file, exit code 2, and no output file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from apb2face.cli.main import main
from apb2face.data.video import probe
from tests.inference.helpers import make_scene_checkpoint, speech, two_person_scene, write_wav


@pytest.fixture(scope="module")
def scene_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_scene_checkpoint(tmp_path_factory.mktemp("ckpt") / "scene")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("scene_cli")
    voice, rate = speech()
    short = voice[: int(0.8 * rate)]
    scene = folder / "two.png"
    cv2.imwrite(str(scene), cv2.cvtColor(two_person_scene(), cv2.COLOR_RGB2BGR))
    wall = folder / "wall.png"
    cv2.imwrite(str(wall), np.full((120, 200, 3), 90, np.uint8))
    turns = folder / "turns.csv"
    turns.write_text("start,end,name\n0,0.4,id00\n0.4,0.8,id03\n")
    overlapping = folder / "overlap.csv"
    overlapping.write_text("0,0.5,id00\n0.4,0.8,id03\n")
    return {
        "scene": scene,
        "wall": wall,
        "a": write_wav(folder / "a.wav", short, rate),
        "b": write_wav(folder / "b.wav", short[: len(short) // 2], rate),
        "stereo": write_wav(folder / "stereo.wav", np.stack([short, short[::-1]], axis=1), rate),
        "turns": turns,
        "overlap": overlapping,
    }


def generate(checkpoint: Path, out: Path, *args: str) -> int:
    return main(["generate", *args, "--checkpoint", str(checkpoint), "--out", str(out)])


@pytest.mark.parametrize("form", ["files", "channels", "timeline"])
def test_each_speech_form_writes_the_scene(scene_checkpoint: Path, inputs, tmp_path: Path, form: str) -> None:
    i = {k: str(v) for k, v in inputs.items()}
    args = {
        "files": ["--speaker", f"id03={i['b']}", "--speaker", f"id00={i['a']}"],
        "channels": ["--audio", i["stereo"], "--speaker", "id00", "--speaker", "id03"],
        "timeline": ["--audio", i["a"], "--timeline", i["turns"]],
    }[form]
    out = tmp_path / "scene.mp4"
    assert generate(scene_checkpoint, out, "--scene", i["scene"], *args) == 0
    info = probe(out)
    assert (info.width, info.height) == (320, 160) and info.has_audio and info.num_frames == 20


def test_left_to_right_gives_speakers_faces_by_position(scene_checkpoint: Path, inputs, tmp_path: Path) -> None:
    out = tmp_path / "scene.mp4"
    # id03 is the right face, but by position the first speaker takes the left one
    args = ["--scene", str(inputs["scene"]), "--speaker", f"id03={inputs['a']}", "--assign", "left-to-right"]
    assert generate(scene_checkpoint, out, *args) == 0 and out.is_file()


@pytest.mark.parametrize(
    ("args", "where", "message"),
    [
        (
            ["--speaker", "id00={a}", "--speaker", "id03={b}", "--speaker", "id01={a}"],
            "scene",
            "3 speakers (id00, id03, id01) but the scene has 2 face(s)",
        ),
        (["--speaker", "id01={a}"], "scene", "speaker id01 is no face in the scene (faces left to right: id00, id03)"),
        (["--audio", "{a}", "--timeline", "{overlap}"], "overlap", "lines 1 and 2 overlap"),
        (["--audio", "{stereo}", "--speaker", "id00"], "stereo", "audio has 2 channel(s) but 1 speaker(s) are named"),
        (["--audio", "{a}", "--speaker", "id00", "--speaker", "id03"], "a", "1 channel(s) but 2 speaker(s)"),
        (["--speaker", "id00={a}"], "wall", "no face found in the scene"),
        (["--speaker", "id00={a}", "--speaker", "id00={b}"], None, "speaker id00 is given twice"),
        (["--speaker", "id00={a}", "--reference", "id00"], None, "--reference cannot be used with --scene"),
        (["--timeline", "{turns}"], None, "--timeline needs --audio"),
    ],
)
def test_bad_scenes_are_one_line_and_write_nothing(
    scene_checkpoint: Path,
    inputs,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    where: str | None,
    message: str,
) -> None:
    out = tmp_path / "out.mp4"
    scene = inputs["wall" if where == "wall" else "scene"]
    filled = [a.format(**{k: str(v) for k, v in inputs.items()}) for a in args]
    rc = generate(scene_checkpoint, out, "--scene", str(scene), *filled)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0], err
    if where is not None:
        assert str(inputs[where]) in err[0]
    assert not out.exists() and not list(tmp_path.iterdir())


def test_scene_flags_need_a_scene(scene_checkpoint: Path, inputs, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.mp4"
    rc = generate(scene_checkpoint, out, "--reference", "id00", "--audio", str(inputs["a"]), "--speaker", "id00")
    assert rc == 2 and "--speaker needs --scene" in capsys.readouterr().err and not out.exists()
    rc = generate(scene_checkpoint, out, "--audio", str(inputs["a"]))
    assert rc == 2 and "--reference is required" in capsys.readouterr().err and not out.exists()
