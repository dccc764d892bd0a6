"""Synth recipes read from a checkpoint (untrusted): exactly the four integers, or one line naming the file."""

from __future__ import annotations

import pytest

from apb2face.data.synth.recipe import check_recipe, recipe_digest, synth_recipes
from apb2face.errors import UserError

RECIPE = {"identities": 6, "clips_per_identity": 12, "size": 128, "seed": 0}


@pytest.mark.parametrize(
    "bad",
    [None, [], {"identities": 6}, RECIPE | {"extra": 1}, RECIPE | {"size": "128"}, RECIPE | {"seed": True}],
)
def test_anything_but_the_four_integers_is_refused(bad) -> None:
    with pytest.raises(UserError, match="needs the integers identities, clips_per_identity, size, seed") as err:
        check_recipe(bad, "ckpt/config.json")
    assert err.value.path == "ckpt/config.json"


def test_recipes_are_found_among_the_replay_sources() -> None:
    meta = {"replay": [{"dataset": "data/anna"}, {"synth": dict(reversed(RECIPE.items()))}]}
    assert synth_recipes(meta, "config.json") == [RECIPE]
    assert synth_recipes({}, "config.json") == [] and synth_recipes({"replay": "x"}, "config.json") == []
    assert recipe_digest(RECIPE) == recipe_digest(dict(reversed(RECIPE.items())))
    assert recipe_digest(RECIPE) != recipe_digest(RECIPE | {"seed": 1})
