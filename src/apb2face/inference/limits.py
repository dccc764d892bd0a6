"""Bounds on one generation job, in one place (the pipeline enforces them; the CLI shows them in --help).

Memory stays flat with the audio's duration, but time does not: a mistaken hour-long input, or a frame rate of 1e9,
should fail in a second with one line rather than run for hours.
"""

from __future__ import annotations

MIN_FPS = 1.0
MAX_FPS = 120.0
DEFAULT_MAX_SECONDS = 600.0  # driving audio longer than this is refused unless the caller raises the limit
