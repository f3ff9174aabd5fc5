"""The data flow is the layout: every module imports only modules to its left in FLOW, none to
its right, lazily or not; so there is no import cycle inside nlu_lite/."""
from __future__ import annotations

import ast
from pathlib import Path

from nlu_lite import _LAZY

PACKAGE = Path(__file__).parents[1] / "nlu_lite"

# left to right, as docs/DESIGN.md draws it; shared leaves first
FLOW = [
    "errors", "choices", "_env", "_optional", "_arrays", "cache",
    "convert", "registry", "artifacts", "specs", "runtime", "openvino_engine", "bundle",
    "options", "inputs", "sentences", "units", "spm", "tokenize", "int8_check", "windows", "batching", "encode", "pooling", "frame",
    "chunks", "pipeline", "stream", "group", "api", "runners", "spark", "dask", "viz", "sklearn", "cli",
]


def _step(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def _imports(path: Path) -> set[str]:
    """The nlu_lite steps ``path`` imports, at any depth (function-level imports included)."""
    inside = path.is_relative_to(PACKAGE.parent)
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts) if inside else "nlu_lite.sample"
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            if node.module:
                found.add(".".join(base + [node.module]))
            else:
                found.update(".".join(base + [a.name]) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "nlu_lite":
            # from nlu_lite import pipeline / load: a module, or a lazy export of one
            found.update("nlu_lite." + (_LAZY[a.name][0] if a.name in _LAZY else a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nlu_lite."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("nlu_lite."))
    return {_step(m) for m in found if m.startswith("nlu_lite.")}


def test_every_module_is_placed_in_the_flow():
    steps = {p.stem if p.parent == PACKAGE else p.relative_to(PACKAGE).parts[0] for p in PACKAGE.rglob("*.py")}
    assert steps - {"__init__"} == set(FLOW)


def test_no_module_imports_one_to_its_right():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "__init__.py":
            continue  # the package's lazy exports name modules as strings, not imports
        own = path.stem if path.parent == PACKAGE else path.relative_to(PACKAGE).parts[0]
        for step in _imports(path) - {own}:
            if FLOW.index(step) > FLOW.index(own):
                wrong.append(f"{path.relative_to(PACKAGE)} imports {step}")
    assert not wrong, wrong


def test_the_check_sees_lazy_and_absolute_imports(tmp_path):
    assert {"artifacts", "convert", "runtime"} <= _imports(PACKAGE / "pipeline.py")  # inside from_spec only
    (tmp_path / "sample.py").write_text("def f():\n    from nlu_lite import pipeline, load\n    import nlu_lite.cli\n")
    assert _imports(tmp_path / "sample.py") == {"pipeline", "api", "cli"}
