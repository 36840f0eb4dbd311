"""The import graph is honest: no module imports a layer above its own.

Layers, lowest first: helpers < store/gateway < core < monitoring < serving < top. Every import
counts, also those inside functions and under ``TYPE_CHECKING``; relative ones are resolved.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nbmodel"

HELPERS, STORE, CORE, MONITORING, SERVING, TOP = range(6)
LAYER_NAMES = ["helpers", "store", "core", "monitoring", "serving", "top"]

#: The first two parts of a module's dotted name -> its layer.
LAYERS = {
    **dict.fromkeys(["errors", "metrics", "display", "refs", "data", "source", "requirements",
                     "lineage", "digests", "flavors"], HELPERS),
    **dict.fromkeys(["store", "gateway"], STORE),
    **dict.fromkeys(["versions", "commits", "history", "diffs", "aliases", "evaluate", "comparison",
                     "explain"],
                    CORE),
    **dict.fromkeys(["branches", "merges"], CORE),
    "modeltests": CORE,
    "tagpack": HELPERS,
    "monitoring": MONITORING,
    "serving": SERVING,
    **dict.fromkeys(["overview", "widgets", "magics", "handlers", "server", "commands", "cli",
                     "testing", ""], TOP),
}

#: Imports that go up a layer in modules other work is changing now, as (module, imported).
#: None are left among plain imports (the upward reaches were name look-ups, below); keep this
#: empty.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()

#: Modules that may look parts of nbmodel up by name (find_spec, import_module) instead of
#: importing them. Only the package's lazy public API (PEP 562 ``__getattr__`` over the ``_API``
#: map, so that ``import nbmodel`` stays instant) does.
KNOWN_LOOKUPS = {"nbmodel/__init__.py"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else ""
    if key not in LAYERS:
        raise AssertionError(f"{module} has no layer: add it to LAYERS in tests/test_layers.py")
    return LAYERS[key]


def _imports(path: Path) -> set[str]:
    """Every nbmodel module ``path`` imports (``from . import x`` gives the module ``x``)."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "nbmodel")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != "nbmodel":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                is_module = (PACKAGE.parent / Path(*sub.split("."))).with_suffix(".py").exists() or (
                    PACKAGE.parent / Path(*sub.split(".")) / "__init__.py").exists()
                out.add(sub if is_module else base)
    return out


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_module_imports_a_layer_above_its_own() -> None:
    up = set()
    for module, imported in _graph().items():
        for other in imported:
            if _layer(other) > _layer(module):
                up.add((module, other))
    unexpected = sorted(up - KNOWN_VIOLATIONS)
    assert unexpected == [], "imports that reach up a layer: " + ", ".join(
        f"{a} ({LAYER_NAMES[_layer(a)]}) -> {b} ({LAYER_NAMES[_layer(b)]})" for a, b in unexpected)
    assert sorted(KNOWN_VIOLATIONS - up) == [], "fixed: remove from KNOWN_VIOLATIONS"


def test_every_module_has_a_layer() -> None:
    for module in _graph():
        _layer(module)


def test_relative_imports_are_resolved() -> None:
    graph = _graph()
    assert "nbmodel.store" in graph["nbmodel.versions"]
    assert "nbmodel.lineage" in graph["nbmodel.commits"]  # from . import lineage
    assert "nbmodel.store" in graph["nbmodel.monitoring._alerts"]  # from ..store import, in a function


def test_parts_of_nbmodel_are_imported_not_looked_up_by_name() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("find_spec", "import_module"):
                found.append(rel)
    unexpected = sorted(set(found) - KNOWN_LOOKUPS)
    assert unexpected == [], f"import parts of nbmodel plainly: {unexpected}"
    assert sorted(KNOWN_LOOKUPS - set(found)) == [], "fixed: remove from KNOWN_LOOKUPS"
