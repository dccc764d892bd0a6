"""Training samples from an apb2face dataset, in an order that is a pure function of (seed, sample number).

Sample number k (counted over the whole run, all processes) lives in epoch k // N at position k % N of that epoch's
seeded permutation of the N training frames. Its reference frame is drawn from a generator seeded by (seed, k). A
resumed run therefore sees exactly the samples an uninterrupted one would, whatever the number of workers or
processes. Step s of a run with global batch B uses samples [s*B, (s+1)*B); DDP rank r takes its contiguous share.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import Sampler

from apb2face.data.audio import HOP, SAMPLE_RATE, audio_features, frame_centre, frame_windows, resample
from apb2face.data.audio_augment import active_rms, change_voice, degrade
from apb2face.data.face import mouth_opening
from apb2face.data.format import Dataset
from apb2face.errors import UserError
from apb2face.models.config import GEOMETRY_POINTS, GEOMETRY_SCHEME, ModelConfig
from apb2face.training.losses import lip_shape

log = logging.getLogger(__name__)


@dataclass
class ClipArrays:
    """One training clip: frames stay on disk (memory map opened lazily per process), the rest in memory."""

    key: str
    identity: str
    frames_path: Path
    source_size: int  # side of the stored frames
    source: int  # which of the run's datasets it comes from
    features: np.ndarray  # (T, 60) audio features of the whole clip
    landmarks: np.ndarray  # (N, K, 2) geometry subset, normalised
    pose: np.ndarray  # (N, 3)
    eyes: np.ndarray  # (N, 2)
    mouth: np.ndarray  # (N,) mouth opening (inner-lip gap / width), to pick neutral frames
    audio: np.ndarray | None = None  # mono audio at SAMPLE_RATE, kept only when training degrades it
    speech_rms: float = 0.0


# feature rows of audio recomputed before / after a degraded window: a 1 s reverberation tail before it, and the
# 25 ms analysis window plus two delta passes (2 + 2 rows) on each side
AUGMENT_PREROLL = 100
BLINK_CLOSED = 0.3  # eye openness below which a frame counts as a blink (train.blink_repeat)
AUGMENT_MARGIN = 8


class FrameDataset(TorchDataset):
    """Indexable by the global sample number k (see the module docstring)."""

    def __init__(
        self,
        root: str | Path | Sequence[str | Path],
        config: ModelConfig,
        seed: int,
        split: str = "train",
        reference_mouth_quantile: float = 1.0,
        audio_augment: float = 0.0,
        voice_augment: float = 0.0,
        repeats: Sequence[int] | None = None,
        speech: str | Path | None = None,
        blink_repeat: int = 1,
        landmark_shape: str = "own",
        shape_people: Sequence[str] = (),
    ) -> None:
        roots = [root] if isinstance(root, str | Path) else list(root)
        self.datasets = [Dataset(r) for r in roots]
        self.dataset = self.datasets[0]  # the first dataset names the run's data (release metadata)
        self.repeats = list(repeats) if repeats is not None else [1] * len(roots)
        if len(self.repeats) != len(roots) or any(not isinstance(r, int) or r < 1 for r in self.repeats):
            raise ValueError(f"need one repeat count >= 1 per dataset, got {self.repeats} for {len(roots)}")
        self.audio_augment = audio_augment
        self.voice_augment = voice_augment
        self.blink_repeat = blink_repeat
        for dataset in self.datasets:
            self._check_meta(dataset, config)
        self.config = config
        self.seed = seed
        self.fps = self.dataset.meta.fps
        self.clips = [clip for i in range(len(self.datasets)) for clip in self._load_clips(i, split)]
        self._index_frames(reference_mouth_quantile)
        # per identity, added to its landmarks where the fuser learns them (TrainConfig.landmark_shape)
        self.shape_offsets = self._shape_offsets(shape_people) if landmark_shape == "shared" else {}
        self._babble = np.concatenate([c.audio for c in self.clips]) if audio_augment > 0 else None
        # real talking faces that teach only the fuser (audio -> lip shape): their frames are never read
        self.speech = (
            FrameDataset(speech, config, seed + 1, split, 1.0, audio_augment, voice_augment)
            if speech not in (None, "")
            else None
        )
        # per speech identity: its mean lip shape minus the rendered people's (see losses.lip_shape_l1)
        self.speech_offsets = (
            {name: mean - self.mean_lip_shape() for name, mean in self.speech.mean_lip_shapes().items()}
            if self.speech is not None
            else {}
        )
        self._frames: dict[int, np.ndarray] = {}
        self._perm_epoch = -1
        self._perm = np.zeros(0, np.int64)
        log.info(
            "training data: %d frames in %d clips of %d identities%s",
            len(self.clip_of),
            len(self.clips),
            len(self.identities),
            f" ({len(self)} samples per epoch with repeats {self.repeats})" if len(self) != len(self.clip_of) else "",
        )

    @property
    def _augments(self) -> bool:
        """Whether some windows are recomputed from changed audio (the clips then keep their audio)."""
        return self.audio_augment > 0 or self.voice_augment > 0

    def _check_meta(self, dataset: Dataset, config: ModelConfig) -> None:
        meta = dataset.meta
        if meta.landmark_scheme != GEOMETRY_SCHEME:
            raise UserError(
                f"landmark scheme {meta.landmark_scheme!r} is not supported (need {GEOMETRY_SCHEME})",
                dataset.root / "dataset.json",
            )
        if meta.image_size < config.image_size:
            raise UserError(
                f"dataset images are {meta.image_size} px, smaller than the model's "
                f"{config.image_size} px (train at model.image_size={meta.image_size} or lower)",
                dataset.root / "dataset.json",
            )
        if meta.fps != self.datasets[0].meta.fps:
            raise UserError(
                f"dataset is at {meta.fps:g} fps, the first one at {self.datasets[0].meta.fps:g} fps: "
                "datasets trained together need one frame rate",
                dataset.root / "dataset.json",
            )

    def _load_clips(self, source: int, split: str) -> list[ClipArrays]:
        """Dataset `source`'s clips of the split with frames (frames stay on disk; features, landmarks, pose, eyes in
        memory)."""
        dataset = self.datasets[source]
        records = dataset.clips(split)
        if not records:
            raise UserError(f"dataset has no {split!r} clips", dataset.root / "dataset.json")
        clips = []
        for record in records:
            clip = dataset.load_clip(record)
            if len(clip.frames) == 0:
                continue
            clips.append(
                ClipArrays(
                    key=record.key,
                    identity=record.identity,
                    frames_path=dataset.clip_dir(record) / "frames.npy",
                    source_size=dataset.meta.image_size,
                    source=source,
                    features=audio_features(clip.audio, clip.sample_rate, loudness=self.config.audio_loudness),
                    landmarks=np.ascontiguousarray(clip.landmarks[:, list(GEOMETRY_POINTS)], dtype=np.float32),
                    pose=clip.pose.astype(np.float32),
                    eyes=clip.eyes.astype(np.float32),
                    mouth=np.array([mouth_opening(p) for p in clip.landmarks], dtype=np.float32),
                )
            )
            if self._augments:
                clips[-1].audio = resample(clip.audio, clip.sample_rate)
                clips[-1].speech_rms = active_rms(clips[-1].audio)
        if not clips:
            raise UserError(f"dataset has no frames in split {split!r}", dataset.root / "dataset.json")
        return clips

    def _index_frames(self, reference_mouth_quantile: float) -> None:
        """Flat frame index -> (clip, frame), and each identity's frames and reference pool."""
        self.clip_of = np.concatenate([np.full(len(c.pose), i, np.int64) for i, c in enumerate(self.clips)])
        self.frame_of = np.concatenate([np.arange(len(c.pose), dtype=np.int64) for c in self.clips])
        self.identities = sorted({c.identity for c in self.clips})
        by_identity: dict[str, list[np.ndarray]] = {name: [] for name in self.identities}
        for i, c in enumerate(self.clips):
            by_identity[c.identity].append(np.flatnonzero(self.clip_of == i))
        self.identity_frames = {k: np.concatenate(v) for k, v in by_identity.items()}
        self.reference_frames = {
            k: self._closed_mouth(v, reference_mouth_quantile) for k, v in self.identity_frames.items()
        }
        # sample slots of an epoch: every frame of dataset i appears repeats[i] times (replay and enrolment weights)
        source = np.array([c.source for c in self.clips])[self.clip_of]
        slots = [np.tile(np.flatnonzero(source == i), r) for i, r in enumerate(self.repeats)]
        if self.blink_repeat > 1:  # blinks are ~2 % of frames: seen this many times more often
            closed = np.array(
                [self.clips[int(c)].eyes[int(f)].min() < BLINK_CLOSED for c, f in zip(self.clip_of, self.frame_of)]
            )
            slots.append(np.tile(np.flatnonzero(closed), self.blink_repeat - 1))
        self.slots = np.concatenate(slots)

    def _shape_offsets(self, people: Sequence[str]) -> dict[str, np.ndarray]:
        """Identity -> the shared shape minus its own mean shape ((K, 2) float32). The shared shape is the mean of
        `people`'s mean shapes (every identity's when `people` is empty), each person weighing the same."""
        anchors = [name for name in people if name in self.identities] if people else self.identities
        if not anchors:
            raise UserError(
                f"train.landmark_shape=shared: none of the people whose face shape is shared ({', '.join(people)}) "
                f"is in the training data ({', '.join(self.identities)})",
                self.dataset.root / "dataset.json",
            )
        means = {name: self._identity_points(name).mean(0) for name in self.identities}
        shared = np.mean([means[name] for name in anchors], axis=0)
        return {name: (shared - mean).astype(np.float32) for name, mean in means.items()}

    def __len__(self) -> int:
        return len(self.slots)

    def _closed_mouth(self, frames: np.ndarray, quantile: float) -> np.ndarray:
        """The frames whose mouth opening is at most the identity's `quantile` (1.0 keeps all)."""
        if quantile >= 1.0:
            return frames
        mouth = np.array([self.clips[int(self.clip_of[f])].mouth[int(self.frame_of[f])] for f in frames])
        return frames[mouth <= np.quantile(mouth, quantile)]

    def __getstate__(self) -> dict:
        # workers open their own memory maps
        state = self.__dict__.copy()
        state["_frames"] = {}
        return state

    def audio_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature mean and std over all training audio (for the fuser's input normalisation)."""
        feats = np.concatenate([c.features for c in self.clips]).astype(np.float64)
        return feats.mean(0).astype(np.float32), feats.std(0).astype(np.float32)

    def frame_index(self, k: int) -> int:
        epoch, pos = divmod(int(k), len(self))
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(len(self))
            self._perm_epoch = epoch
        return int(self.slots[self._perm[pos]])

    def image(self, flat: int) -> np.ndarray:
        """(S, S, 3) uint8 RGB at the model size."""
        ci = int(self.clip_of[flat])
        frames = self._frames.get(ci)
        if frames is None:
            frames = self._frames[ci] = np.load(self.clips[ci].frames_path, mmap_mode="r")
        img = np.asarray(frames[int(self.frame_of[flat])])
        if self.clips[ci].source_size != self.config.image_size:
            img = cv2.resize(img, (self.config.image_size,) * 2, interpolation=cv2.INTER_AREA)
        return img

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        flat = self.frame_index(k)
        clip = self.clips[int(self.clip_of[flat])]
        frame = int(self.frame_of[flat])
        rng = np.random.default_rng([self.seed, int(k), 1])
        pool = self.reference_frames[clip.identity]
        ref = flat
        if len(pool) > 1:
            while ref == flat:
                ref = int(pool[rng.integers(len(pool))])
        sample = {
            "reference": to_tensor(self.image(ref)),
            "target": to_tensor(self.image(flat)),
            **self.driving(clip, frame, rng),
        }
        offset = self.shape_offsets.get(clip.identity)
        sample["geometry"] = sample["landmarks"] if offset is None else sample["landmarks"] + torch.from_numpy(offset)
        if self.speech is not None:
            # the speech set's sample k: its own seeded order, so it too is a pure function of k
            speech = self.speech
            s_flat = speech.frame_index(k)
            s_clip = speech.clips[int(speech.clip_of[s_flat])]
            s_rng = np.random.default_rng([self.seed, int(k), 2])
            driving = speech.driving(s_clip, int(speech.frame_of[s_flat]), s_rng)
            sample.update({f"speech_{key}": v for key, v in driving.items()})
            sample["speech_offset"] = torch.from_numpy(self.speech_offsets[s_clip.identity])
        return sample

    def driving(self, clip: ClipArrays, frame: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """The fuser's inputs and target of one frame: audio window (degraded with probability audio_augment),
        pose, eye openness, geometry landmarks."""
        # no draw for an augmentation that is off, so runs without voice_augment see the samples they always did
        voice = self.voice_augment > 0 and rng.random() < self.voice_augment
        degraded = self.audio_augment > 0 and rng.random() < self.audio_augment
        if voice or degraded:

            def transform(x: np.ndarray) -> np.ndarray:
                x = change_voice(x, rng) if voice else x
                return degrade(x, rng, clip.speech_rms, self._babble) if degraded else x.astype(np.float32)

            audio = self.window_from_audio(clip, frame, transform)
        else:
            audio = frame_windows(
                clip.features, np.array([frame]), self.fps, self.config.audio_window, self.config.audio_lookahead
            )[0]
        return {
            "audio": torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None],
            "pose": torch.from_numpy(clip.pose[frame].copy()),
            "eyes": torch.from_numpy(clip.eyes[frame].copy()),
            "landmarks": torch.from_numpy(clip.landmarks[frame].copy()),
        }

    def mean_lip_shapes(self) -> dict[str, np.ndarray]:
        """Identity -> its mean lip shape over all its frames ((40, 2) float32, `losses.lip_shape`)."""
        return {
            name: lip_shape(torch.from_numpy(self._identity_points(name))).mean(0).numpy().astype(np.float32)
            for name in self.identities
        }

    def _identity_points(self, name: str) -> np.ndarray:
        """(N, K, 2) geometry landmarks of all of identity `name`'s frames."""
        frames = self.identity_frames[name]
        return np.stack([self.clips[int(self.clip_of[f])].landmarks[int(self.frame_of[f])] for f in frames])

    def mean_lip_shape(self) -> np.ndarray:
        """The mean lip shape over all identities (each weighted by its frames)."""
        shapes = self.mean_lip_shapes()
        weights = np.array([len(self.identity_frames[n]) for n in shapes], np.float64)
        return (np.stack(list(shapes.values())) * weights[:, None, None]).sum(0).astype(np.float32) / weights.sum()

    def window_from_audio(self, clip: ClipArrays, frame: int, transform) -> np.ndarray:  # noqa: ANN001
        """Frame `frame`'s feature window recomputed from `transform` (audio -> audio) of the audio around it.

        The stretch starts AUGMENT_PREROLL feature rows before the window (a reverberation tail from before the
        window is in it), or at the clip's start when c0 is relative (the level tracker then has the same history
        as on the whole clip), and ends AUGMENT_MARGIN rows after; features there are those of the whole clip, so
        the identity transform gives exactly `frame_windows` of the precomputed features (tested)."""
        window, lookahead = self.config.audio_window, self.config.audio_lookahead
        total = len(clip.features)
        centre = int(frame_centre(frame, self.fps))
        rows = np.clip(centre + np.arange(-(window - lookahead), lookahead), 0, total - 1)
        first = 0 if self.config.audio_loudness == "relative" else max(0, int(rows[0]) - AUGMENT_PREROLL)
        last = min(total - 1, int(rows[-1]) + AUGMENT_MARGIN)
        # whole-clip features are centred on row * HOP; a stretch starting at first * HOP keeps that grid
        stretch = clip.audio[first * HOP : min(len(clip.audio), last * HOP + 1)]
        features = audio_features(transform(stretch), SAMPLE_RATE, loudness=self.config.audio_loudness)
        return features[np.clip(rows - first, 0, len(features) - 1)]

    def neutral_references(self) -> dict[str, np.ndarray]:
        """One reference crop per identity: the frame with the mouth most closed, eyes most open, head most frontal,
        from the first dataset that has the identity (a dataset added to a run, e.g. the same people in other voices,
        does not change the references a checkpoint bundles)."""
        out = {}
        for name in self.identities:
            frames = self.identity_frames[name]
            sources = np.array([self.clips[int(self.clip_of[flat])].source for flat in frames])
            pool = frames[sources == sources.min()]
            costs = []
            for flat in pool:
                c = self.clips[int(self.clip_of[flat])]
                f = int(self.frame_of[flat])
                costs.append(3.0 * c.mouth[f] + (1.0 - float(c.eyes[f].min())) + float(np.abs(c.pose[f]).sum()) / 30)
            out[name] = self.image(int(pool[int(np.argmin(costs))]))
        return out


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(S, S, 3) uint8 -> (3, S, S) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(127.5).sub_(1.0)


class StepBatches(Sampler[list[int]]):
    """Yields, for steps start..stop-1, this rank's sample numbers of each step's global batch."""

    def __init__(self, start: int, stop: int, global_batch: int, rank: int = 0, world: int = 1) -> None:
        if global_batch % world:
            raise UserError(f"train.batch_size={global_batch} must be divisible by the number of processes ({world})")
        self.start, self.stop, self.global_batch, self.rank = start, stop, global_batch, rank
        self.local = global_batch // world

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self):
        for step in range(self.start, self.stop):
            first = step * self.global_batch + self.rank * self.local
            yield list(range(first, first + self.local))
