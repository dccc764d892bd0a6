"""Pass 2's source frames: `FrameReader` serves decoded frames by index for a play order that runs forward and
backward (sequential decoding, short backward chunks by seeking), in a cache sized by `cache_frames`."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from apb2face.data.video import frame_to_rgb
from apb2face.errors import UserError
from apb2face.inference.revoice.timing import StageTimer


class FrameReader:
    """Decoded upright RGB frames of a video by index, for a play order that runs forward and backward.

    Forward requests decode sequentially; a request behind the decoder seeks to the keyframe before a chunk of
    `chunk` frames ending at the request, decodes that chunk into a small cache, and the following backward requests
    are served from it. Memory: `chunk` + 2 frames. Indices are those of `FaceTrack.pts` (one per decoded frame).
    """

    def __init__(self, path: str | Path, pts: np.ndarray, chunk: int, timer: StageTimer | None = None) -> None:
        self.path = Path(path)
        self.pts = np.asarray(pts, np.int64)
        self.index_of = {int(p): i for i, p in enumerate(self.pts)}
        self.chunk = max(1, int(chunk))
        self.timer = timer or StageTimer()
        self.seeks = 0
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._container: av.container.InputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._decoded: Iterator[av.VideoFrame] | None = None
        self._next = 0  # index of the next frame the decoder will produce

    def __enter__(self) -> FrameReader:
        self._container = av.open(str(self.path))
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._decoded = self._container.decode(self._stream)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._container is not None:
            self._container.close()
        self._cache.clear()

    def __getitem__(self, index: int) -> np.ndarray:
        """Frame `index` (a cached array: copy it before changing it)."""
        index = int(index)
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        with self.timer("decode"):
            keep_from = index
            if index < self._next:
                keep_from = max(0, index - self.chunk + 1)
                self._seek(keep_from)
            while True:
                frame = next(self._decoded, None)
                if frame is None:
                    raise UserError(f"video ended before frame {index} on the second pass", self.path)
                i = self._index(frame)
                self._next = i + 1
                if i >= keep_from:
                    self._cache[i] = frame_to_rgb(frame)
                    while len(self._cache) > self.chunk + 2:
                        self._cache.popitem(last=False)
                if i >= index:
                    break
        return self._cache[index]

    def _index(self, frame: av.VideoFrame) -> int:
        if frame.pts is None:  # no timestamps: frames are counted from wherever decoding (re)started
            return self._next
        return self.index_of.get(int(frame.pts), self._next)

    def _seek(self, target: int) -> None:
        """Restart decoding at the keyframe at or before frame `target` (or at the start when that fails)."""
        self.seeks += 1
        self._cache.clear()
        try:
            self._container.seek(int(self.pts[target]), stream=self._stream, backward=True, any_frame=False)
        except av.error.FFmpegError:
            target = 0
            self._container.seek(int(self.pts[0]), stream=self._stream, backward=True, any_frame=False)
        self._decoded = self._container.decode(self._stream)
        first = next(self._decoded, None)
        if first is None or first.pts is None or self.index_of.get(int(first.pts), target + 1) > target:
            # landed after the target (or cannot tell): decode from the very start, counting frames
            self._container.seek(int(self.pts[0]), stream=self._stream, backward=True, any_frame=False)
            self._decoded = self._container.decode(self._stream)
            self._next = 0
            return
        self._next = self.index_of[int(first.pts)]
        self._decoded = _chain(first, self._decoded)


def _chain(first: av.VideoFrame, rest: Iterator[av.VideoFrame]) -> Iterator[av.VideoFrame]:
    yield first
    yield from rest


def cache_frames(shape: tuple[int, int], megabytes: int) -> int:
    """How many upright RGB frames of `shape` fit in `megabytes` (2 to 32)."""
    return int(np.clip(megabytes * 2**20 // (shape[0] * shape[1] * 3), 2, 32))
