"""The built-in people differ from each other, in their specs and in their rendered faces."""

from __future__ import annotations

import numpy as np

from apb2face.data import synth
from apb2face.data.synth import face_render


def test_identities_are_distinct() -> None:
    specs = synth.identity_specs(8, 0)
    assert len({s.name for s in specs}) == 8 and len({s.voice + str(s.pitch) for s in specs}) >= 6
    looks = {(s.base, s.mirrored, s.skin, s.hair, s.accessories, s.background) for s in specs}
    assert len(looks) == 8
    for a in range(8):
        for b in range(a + 1, 8):
            sa, sb = specs[a], specs[b]
            differences = sum(
                [
                    sa.skin != sb.skin,
                    sa.hair != sb.hair,
                    sa.iris != sb.iris,
                    sa.lips != sb.lips,
                    sa.accessories != sb.accessories,
                    (sa.base, sa.mirrored) != (sb.base, sb.mirrored),
                ]
            )
            assert differences >= 3, (sa.name, sb.name)
    models = [synth.build_identity(s, 64) for s in specs[:4]]
    tiles = [face_render.render(m, face_render.Expression())[0].astype(np.float32) for m in models]
    for a in range(4):
        for b in range(a + 1, 4):
            assert np.abs(tiles[a] - tiles[b]).mean() > 12
    assert synth.identity_specs(8, 0) == specs and synth.identity_specs(8, 1) != specs
