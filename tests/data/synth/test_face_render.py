"""The renderer's ground truth is what a real face-mesh detector sees in its pictures."""

from __future__ import annotations

import numpy as np

from apb2face.data import face, synth
from apb2face.data.synth import face_render


def test_mediapipe_agrees_with_the_truth_at_256() -> None:
    """Render varied frames (pose extremes, speech, blinks) of 4 identities; the real detector must find >= 95 %
    and its landmarks must sit close to the renderer's."""
    rng = np.random.default_rng(0)
    specs = synth.identity_specs(4, 0)
    found, total, errors = 0, 0, []
    with face.FaceMesh(video=False) as mesh:
        for spec in specs:
            model = synth.build_identity(spec, 256)
            for _ in range(8):
                e = face_render.Expression(
                    jaw=float(rng.uniform(0, 0.3)),
                    round=float(rng.uniform(-0.8, 1)),
                    close_left=float(rng.choice([0, 0, 1])),
                    yaw=float(rng.uniform(-15, 15)),
                    pitch=float(rng.uniform(-8, 8)),
                    roll=float(rng.uniform(-6, 6)),
                )
                e = face_render.Expression(**{**e.__dict__, "close_right": e.close_left})
                image, truth = face_render.render(model, e)
                points = mesh.detect(image)
                total += 1
                if points is not None:
                    found += 1
                    errors.append(np.linalg.norm(points[:, :2] - truth, axis=1).mean() / face.inter_ocular(truth))
    print(f"detected {found}/{total}, mean landmark error {100 * np.mean(errors):.2f} % IOD")
    assert found / total >= 0.95
    assert np.mean(errors) < 0.06
