"""Who speaks when in a scene: one audio track per speaker (silence where that speaker does not speak) and the mix
the output plays, as a `SceneAudio`.

Three forms: one file per speaker (`speakers_from_files`: shorter tracks padded with silence), one multi-channel file
(`speakers_from_channels`: channel i is the i-th name), or one mixed file and a timeline of turns
(`speakers_from_timeline`: `start,end,name` rows in seconds, read by `read_timeline`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apb2face.data import audio as A
from apb2face.errors import UserError
from apb2face.inference.pipeline import OUTPUT_SAMPLE_RATE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SceneAudio:
    """Who speaks when: `tracks[i]` drives speaker `names[i]`'s face (silence where they do not speak); `mix` is
    what the output plays. All at `sample_rate`, all of one length."""

    names: tuple[str, ...]
    tracks: np.ndarray  # (S, samples) float32
    mix: np.ndarray  # (samples,) float32 in [-1, 1]
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.mix) / self.sample_rate


@dataclass(frozen=True)
class Turn:
    """One timeline row: `name` speaks from `start` to `end` seconds (`line` of the file, for messages)."""

    start: float
    end: float
    name: str
    line: int


def parse_speaker(text: str) -> tuple[str, Path | None]:
    """A `--speaker` value: "NAME=AUDIO" (NAME's own speech) or "NAME" (a channel of --audio, or an order)."""
    name, sep, path = text.partition("=")
    name = name.strip()
    if not name or "," in name:
        raise UserError(f"--speaker needs NAME=AUDIO or NAME (a checkpoint identity), got {text!r}")
    if sep and not path:
        raise UserError(f"--speaker {name}= names no audio file")
    return name, Path(path) if sep else None


def check_names(names: list[str], where: str | Path | None = None) -> None:
    """UserError when a speaker is named twice."""
    seen = set()
    for name in names:
        if name in seen:
            raise UserError(f"speaker {name} is given twice", where)
        seen.add(name)


def mixdown(tracks: np.ndarray) -> np.ndarray:
    """The speakers' tracks summed, scaled down only if the sum would clip."""
    mixed = np.asarray(tracks, np.float32).sum(axis=0)
    peak = float(np.abs(mixed).max(initial=0.0))
    return mixed / peak if peak > 1.0 else mixed


def speakers_from_files(
    speakers: list[tuple[str, str | Path]], max_seconds: float | None = None, sample_rate: int = OUTPUT_SAMPLE_RATE
) -> SceneAudio:
    """One audio file per speaker; tracks of different lengths are padded with silence to the longest (logged)."""
    if not speakers:
        raise UserError("a scene needs at least one speaker")
    check_names([name for name, _ in speakers])
    loaded = [A.load_audio(path, sample_rate, max_seconds=max_seconds) for _, path in speakers]
    length = max(len(a) for a in loaded)
    if any(len(a) != length for a in loaded):
        lengths = ", ".join(f"{name} {len(a) / sample_rate:.2f} s" for (name, _), a in zip(speakers, loaded))
        log.info("speaker tracks differ in length (%s): padded with silence to %.2f s", lengths, length / sample_rate)
    tracks = np.zeros((len(loaded), length), np.float32)
    for i, a in enumerate(loaded):
        tracks[i, : len(a)] = a
    return SceneAudio(tuple(name for name, _ in speakers), tracks, mixdown(tracks), sample_rate)


def speakers_from_channels(
    path: str | Path, names: list[str], max_seconds: float | None = None, sample_rate: int = OUTPUT_SAMPLE_RATE
) -> SceneAudio:
    """One file with one channel per speaker: channel i is `names[i]`'s speech."""
    check_names(names, path)
    channels = A.load_channels(path, sample_rate, max_seconds=max_seconds)
    if len(channels) != len(names):
        raise UserError(
            f"audio has {len(channels)} channel(s) but {len(names)} speaker(s) are named ({', '.join(names)}); "
            "give one --speaker NAME per channel, in channel order",
            path,
        )
    return SceneAudio(tuple(names), channels, mixdown(channels), sample_rate)


def read_timeline(path: str | Path) -> list[Turn]:
    """`start,end,name` rows (seconds; a header line and # comments allowed), sorted by start. UserError naming the
    file and line for a malformed row, an empty or negative turn, or two turns that overlap."""
    path = Path(path)
    if not path.is_file():
        raise UserError("file not found", path)
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise UserError("not a text timeline (start,end,name rows expected)", path) from None
    turns: list[Turn] = []
    header_allowed = True
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(",")]
        try:
            if len(fields) != 3:
                raise ValueError
            start, end = float(fields[0]), float(fields[1])
        except ValueError:
            if header_allowed:  # the first row may be a header
                header_allowed = False
                continue
            raise UserError(
                f"line {number}: expected start,end,name (seconds, seconds, speaker), got {line!r}", path
            ) from None
        header_allowed = False
        if not (np.isfinite(start) and np.isfinite(end)) or start < 0 or end <= start or not fields[2]:
            raise UserError(f"line {number}: a turn needs 0 <= start < end and a name, got {line!r}", path) from None
        turns.append(Turn(start, end, fields[2], number))
    if not turns:
        raise UserError("timeline has no turns", path)
    turns.sort(key=lambda t: (t.start, t.end))
    for before, after in zip(turns, turns[1:]):
        if after.start < before.end:
            raise UserError(
                f"lines {before.line} and {after.line} overlap ({before.name} {before.start:g}-{before.end:g} s, "
                f"{after.name} {after.start:g}-{after.end:g} s); one speaker at a time",
                path,
            )
    return turns


def speakers_from_timeline(
    audio: str | Path,
    timeline: str | Path,
    names: list[str] | None = None,
    max_seconds: float | None = None,
    sample_rate: int = OUTPUT_SAMPLE_RATE,
) -> SceneAudio:
    """One mixed file and its turns: each speaker's track is the mix inside their turns and silence elsewhere; the
    output plays the mix as it is. Speakers are `names` in that order (every timeline name among them), or the
    timeline's names in order of first appearance."""
    turns = read_timeline(timeline)
    heard = list(dict.fromkeys(t.name for t in turns))
    if names is None:
        names = heard
    check_names(names, timeline)
    unknown = [n for n in heard if n not in names]
    if unknown:
        raise UserError(f"speaker {unknown[0]} is not among the --speaker names ({', '.join(names)})", timeline)
    mix = A.load_audio(audio, sample_rate, max_seconds=max_seconds)
    last = max(t.end for t in turns)
    if last > len(mix) / sample_rate + 0.5:
        log.warning("%s: turns run to %.2f s, the audio only to %.2f s", timeline, last, len(mix) / sample_rate)
    tracks = np.zeros((len(names), len(mix)), np.float32)
    for turn in turns:
        lo, hi = (min(len(mix), round(t * sample_rate)) for t in (turn.start, turn.end))
        tracks[names.index(turn.name), lo:hi] = mix[lo:hi]
    return SceneAudio(tuple(names), tracks, np.clip(mix, -1.0, 1.0), sample_rate)
