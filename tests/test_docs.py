"""Every public function of a public module says how to use it: a docstring with an example."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nbmodel"


def _public_modules() -> list[Path]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        if "labextension" in parts or any(p.startswith("_") and p != "__init__.py" for p in parts):
            continue
        out.append(path)
    return out


def _without_example(path: Path) -> list[str]:
    """Public module-level functions of ``path`` whose docstring has no Example section."""
    found = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            if "Example" not in (ast.get_docstring(node) or ""):
                found.append(f"{path.name}:{node.lineno} {node.name}")
    return found


def test_public_functions_have_docstrings_with_an_example() -> None:
    missing = [m for path in _public_modules() for m in _without_example(path)]
    assert missing == [], "add a Google-style docstring with an Example: " + ", ".join(missing)


def test_the_check_finds_a_function_without_an_example(tmp_path: Path) -> None:
    mod = tmp_path / "mod.py"
    mod.write_text('def f():\n    """Does f."""\n\n\ndef g():\n    """Does g.\n\n    Example:\n'
                   '        >>> g()\n    """\n\n\ndef _h():\n    pass\n')
    assert _without_example(mod) == ["mod.py:1 f"]
