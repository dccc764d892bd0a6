"""Build src/apb2face/assets/canonical_face_478.npy: a frontal 3D face in mediapipe's 478-point order.

Derived from mediapipe face mesh's own 3D output on two public-domain portraits shipped in installed packages
(scikit-image's `astronaut`, NASA; matplotlib's `grace_hopper`, US Navy): each mesh is centred on the nose tip,
scaled to unit inter-ocular distance, rotated to frontal (eye line horizontal and parallel to the image plane,
forehead-chin line in the image plane) and the two are averaged. Run: .venv/bin/python scripts/build_canonical_face.py
"""

from pathlib import Path

import matplotlib.cbook
import matplotlib.image
import numpy as np
from skimage import data

from apb2face.data import face


def frontalize(points: np.ndarray) -> np.ndarray:
    p = points - points[face.NOSE_TIP]
    p = p / np.linalg.norm(p[face.LEFT_EYE_OUTER] - p[face.RIGHT_EYE_OUTER])
    x_axis = p[face.LEFT_EYE_OUTER] - p[face.RIGHT_EYE_OUTER]
    x_axis /= np.linalg.norm(x_axis)
    down = p[face.CHIN] - p[face.FOREHEAD]
    z_axis = np.cross(x_axis, down)
    z_axis /= np.linalg.norm(z_axis)
    y_axis = np.cross(z_axis, x_axis)
    return p @ np.stack([x_axis, y_axis, z_axis]).T


def main() -> None:
    images = [
        data.astronaut(),
        np.asarray(matplotlib.image.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg"))),
    ]
    meshes = []
    with face.FaceMesh(video=False) as mesh:
        for image in images:
            points = mesh.detect(image[..., :3].copy())
            assert points is not None
            meshes.append(frontalize(points.astype(np.float64)))
    canonical = np.mean(meshes, axis=0).astype(np.float32)
    out = Path(__file__).resolve().parents[1] / "src/apb2face/assets/canonical_face_478.npy"
    np.save(out, canonical)
    print(f"wrote {out} {canonical.shape}; spread between sources {np.abs(meshes[0] - meshes[1]).mean():.3f} IOD")


if __name__ == "__main__":
    main()
