"""No inference module imports training, evaluation or cli, not even inside a function: inference runs from a
checkpoint alone (read through models); the export's INT8 check and the bench take SSIM and presets from below."""

from __future__ import annotations

import ast
from pathlib import Path

import apb2face.inference

HIGHER = ("apb2face.training", "apb2face.evaluation", "apb2face.cli")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_inference_imports_no_higher_layer():
    package = Path(apb2face.inference.__file__).parent
    offenders = {
        f"{path.name}: {name}"
        for path in sorted(package.rglob("*.py"))
        for name in imported_modules(path)
        if name.startswith(HIGHER)
    }
    assert not offenders
