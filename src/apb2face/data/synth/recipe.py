"""A synth recipe: the few integers from which `apb2face synth` regenerates the built-in people byte for byte.

A checkpoint trained on built-in people names its recipe in config.json (`meta.replay`, see
`apb2face.enrollment.replay`), so whatever needs those people again (an enrolment replaying them, an avatar clip
for full-frame output) makes them on this machine instead of downloading them. A checkpoint is untrusted input:
`check_recipe` accepts exactly these keys, all integers.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from apb2face.errors import UserError

SYNTH_KEYS = ("identities", "clips_per_identity", "size", "seed")


def check_recipe(recipe: Any, where: str | Path) -> dict[str, int]:
    """The recipe as {key: int} in SYNTH_KEYS order; UserError naming `where` when it is anything else."""
    if not isinstance(recipe, dict) or set(recipe) != set(SYNTH_KEYS):
        raise UserError(f"a synth replay source needs the integers {', '.join(SYNTH_KEYS)}", where)
    if not all(isinstance(recipe[k], int) and not isinstance(recipe[k], bool) for k in SYNTH_KEYS):
        raise UserError(f"a synth replay source needs the integers {', '.join(SYNTH_KEYS)}", where)
    return {k: recipe[k] for k in SYNTH_KEYS}


def recipe_digest(recipe: dict[str, Any]) -> str:
    """A short name for the recipe's outputs in the cache (equal recipes, equal names)."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def synth_recipes(meta: dict[str, Any], where: str | Path) -> list[dict[str, int]]:
    """The synth recipes among a checkpoint's `meta.replay` sources (none when it names none; other kinds of
    source are skipped here and checked by the enrolment that replays them)."""
    raw = meta.get("replay")
    if not isinstance(raw, list):
        return []
    return [check_recipe(item["synth"], where) for item in raw if isinstance(item, dict) and "synth" in item]
