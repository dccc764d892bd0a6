"""The package's one-way layering, checked on the source: data -> models -> training -> inference -> evaluation ->
enrollment -> serve -> cli. A module may import its own layer and any lower one, never a higher one; the top-level
modules (config, errors, io, assets, configs, checkpoints) are the base every layer may use. Imports inside functions
count too: a lazy import is still a dependency. And no module uses another module's private (`_name`) objects.

This guard reads the source with `ast` (nothing is imported), so it reports every violation at once.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "apb2face"
SRC = Path(__file__).resolve().parents[1] / "src" / PACKAGE
LAYERS = {
    "data": 0,
    "models": 1,
    "training": 2,
    "inference": 3,
    "evaluation": 4,
    "enrollment": 5,
    "serve": 6,
    "cli": 7,
}
BASE = -1  # config, errors, io, assets, ...: usable by every layer
ENTRY_POINTS = {"__main__": LAYERS["cli"]}  # `python -m apb2face` runs the CLI


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module, dotted
    names: tuple[str, ...]  # names taken from it (`from target import a, b`); empty for `import target`
    line: int


def module_name(path: Path, src: Path = SRC) -> str:
    parts = path.relative_to(src.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    parts = module.split(".")
    if len(parts) < 2:
        return BASE
    if parts[1] in ENTRY_POINTS and len(parts) == 2:
        return ENTRY_POINTS[parts[1]]
    return LAYERS.get(parts[1], BASE)


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module of `from ... import` (relative imports counted from the importing module)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(path: Path, src: Path = SRC) -> list[Import]:
    module = module_name(path, src)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, (), node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = resolve(module, path.name == "__init__.py", node)
            found.append(Import(module, target, tuple(a.name for a in node.names), node.lineno))
    return [i for i in found if i.target == PACKAGE or i.target.startswith(PACKAGE + ".")]


def package_modules(src: Path = SRC) -> set[str]:
    return {module_name(p, src) for p in src.rglob("*.py")}


def all_imports(src: Path = SRC) -> list[Import]:
    return [i for path in sorted(src.rglob("*.py")) for i in imports_of(path, src)]


def imported_module(imp: Import, name: str, modules: set[str]) -> str:
    """`from a.b import c` takes module a.b.c when it exists, otherwise the object c of a.b."""
    return f"{imp.target}.{name}" if f"{imp.target}.{name}" in modules else imp.target


def upward_imports(src: Path = SRC) -> list[str]:
    modules = package_modules(src)
    problems = []
    for imp in all_imports(src):
        own = layer_of(imp.module)
        targets = [imported_module(imp, n, modules) for n in imp.names] if imp.names else [imp.target]
        for target in targets:
            if layer_of(target) > own:
                problems.append(f"{imp.module}:{imp.line} imports {target} (a higher layer)")
    return problems


def private_definitions(tree: ast.Module) -> set[str]:
    """Private names a module defines: functions, methods, classes, assigned names and `self._x` attributes."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return {n for n in names if is_private(n)}


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(src: Path = SRC) -> list[str]:
    """`from other import _name`, and `anything._name` where `_name` is defined by another module of the package
    and not by this one (`face_render._smoothstep(...)`, `pipeline._sway_centre(...)` on another module's object)."""
    trees = {module_name(p, src): ast.parse(p.read_text(), str(p)) for p in sorted(src.rglob("*.py"))}
    defined = {module: private_definitions(tree) for module, tree in trees.items()}
    problems = []
    for path in sorted(src.rglob("*.py")):
        module = module_name(path, src)
        for imp in imports_of(path, src):
            for name in imp.names:
                if is_private(name) and imp.target != module:
                    problems.append(f"{module}:{imp.line} imports private {imp.target}.{name}")
        for node in ast.walk(trees[module]):
            if not isinstance(node, ast.Attribute) or not is_private(node.attr) or node.attr in defined[module]:
                continue
            owners = sorted(m for m, names in defined.items() if node.attr in names)
            if owners:
                problems.append(f"{module}:{node.lineno} uses private {node.attr} of {', '.join(owners)}")
    return problems


def test_the_guard_sees_the_package() -> None:
    """The checks below pass vacuously if nothing is parsed: make sure the package and its layers are found."""
    modules = package_modules()
    assert {"apb2face.evaluation.evaluate", "apb2face.cli.main", "apb2face.data.format"} <= modules
    assert layer_of("apb2face.cli.main") == LAYERS["cli"] and layer_of("apb2face.data.format") == 0
    assert layer_of("apb2face.io") == BASE and layer_of("apb2face.__main__") == LAYERS["cli"]
    assert any(i.target == "apb2face.evaluation.metrics" for i in all_imports())


def test_the_guard_finds_known_violations(tmp_path: Path) -> None:
    """A small package with one of each violation: a lazy upward import, a relative upward import, a private
    function imported and a private method called on another module's object."""
    root = tmp_path / PACKAGE
    files = {
        "__init__.py": "",
        "io.py": "",
        "data/__init__.py": "",
        "data/face.py": "def _helper():\n    return 1\n",
        "data/truth.py": "def f():\n    from apb2face.evaluation.metrics import score\n    return score\n",
        "evaluation/__init__.py": "",
        "evaluation/metrics.py": "from ..cli import main\nfrom apb2face.data.face import _helper\nscore = 1\n",
        "inference/__init__.py": "",
        "inference/pipeline.py": "class P:\n    def _centre(self):\n        return 0\n",
        "inference/streaming.py": "from apb2face import io\n\ndef g(pipeline):\n    return pipeline._centre()\n",
        "cli/__init__.py": "",
        "cli/main.py": "from apb2face.evaluation import metrics\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    upward = upward_imports(root)
    assert len(upward) == 2
    assert upward[0].startswith("apb2face.data.truth:2 imports apb2face.evaluation.metrics")
    assert upward[1].startswith("apb2face.evaluation.metrics:1 imports apb2face.cli.main")
    private = private_uses(root)
    assert private == [
        "apb2face.evaluation.metrics:2 imports private apb2face.data.face._helper",
        "apb2face.inference.streaming:4 uses private _centre of apb2face.inference.pipeline",
    ]


def test_imports_go_one_way_down_the_layers() -> None:
    problems = upward_imports()
    assert not problems, "imports from a higher layer:\n" + "\n".join(problems)


def test_no_module_uses_another_modules_private_names() -> None:
    problems = private_uses()
    assert not problems, "private names used across modules:\n" + "\n".join(problems)


def test_inference_does_not_import_the_prepare_batch_tool() -> None:
    """Inference takes its face defaults from data.face (FaceSettings), not from the batch tool `data.prepare`:
    generating one video must not load the machinery that prepares a dataset."""
    problems = [
        f"{imp.module}:{imp.line} imports {imp.target}"
        for imp in all_imports()
        if imp.module.startswith(f"{PACKAGE}.inference")
        and (imp.target == f"{PACKAGE}.data.prepare" or imp.target.startswith(f"{PACKAGE}.data.prepare."))
    ]
    assert not problems, "\n".join(problems)
