"""Settings of `apb2face enroll` (every field can be set with key=value on the command line or from YAML)."""

from __future__ import annotations

from dataclasses import dataclass

# the training recipe of an enrolment: the base checkpoint's model, fine-tuned with these train settings (the
# `enroll` preset in src/apb2face/configs/enroll.yaml holds the train section)
ENROLL_PRESET = "enroll"


@dataclass
class EnrollConfig:
    minutes: float = 20.0  # wall-clock budget of the fine-tune (the schedule is fitted to the steps it allows)
    steps: int | None = None  # a fixed number of steps instead (the same steps give the same model on any machine)
    # the schedule length is fitted while the run is before this step and fixed from then on, so a run stopped later
    # and resumed ends exactly as an uninterrupted one
    fit_until_step: int = 20
    new_share: float = 0.5  # share of training samples from the new people (the rest replays the base's data)
    test_fraction: float = 0.2  # the last part of each video held out for the report
    min_train_seconds: float = 15.0  # less face footage than this per person is refused
    recommended_seconds: float = 60.0
    drift_frames_per_clip: int = 24  # frames per held-out base clip re-enacted to measure the old people's drift
    photo_clips: int = 16  # sentences rendered from a photo (enrolment from one photo)
    sample_seconds: float = 8.0  # length of the sample MP4 (held-out audio of the first new person)
    avatar_seconds: float = 8.0  # the start of the person's video kept as their avatar loop (full-frame output)

    def __post_init__(self) -> None:
        if not 0 < self.minutes <= 24 * 60:
            raise ValueError(f"minutes must be in (0, 1440], got {self.minutes}")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")
        if not 0.05 <= self.new_share <= 0.95:
            raise ValueError(f"new_share must be in [0.05, 0.95], got {self.new_share}")
        if not 0.05 <= self.test_fraction <= 0.5:
            raise ValueError(f"test_fraction must be in [0.05, 0.5], got {self.test_fraction}")
        if self.min_train_seconds <= 0 or self.recommended_seconds < self.min_train_seconds:
            raise ValueError("need 0 < min_train_seconds <= recommended_seconds")
        if self.fit_until_step < 2:
            raise ValueError(f"fit_until_step must be at least 2, got {self.fit_until_step}")
        if not 5 <= self.photo_clips <= 200:
            raise ValueError(f"photo_clips must be in 5..200, got {self.photo_clips}")
        if self.drift_frames_per_clip < 8 or self.sample_seconds <= 0 or self.avatar_seconds <= 0:
            raise ValueError("drift_frames_per_clip must be >= 8, sample_seconds and avatar_seconds > 0")
