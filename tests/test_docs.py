"""Every public function and method of a public module says how to use it: a docstring with an example."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nbmodel"

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _public_modules() -> list[Path]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        if "labextension" in parts or any(p.startswith("_") and p != "__init__.py" for p in parts):
            continue
        out.append(path)
    return out


def _is_accessor(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A property's setter or deleter: documented by the property's getter."""
    return any(isinstance(d, ast.Attribute) and d.attr in ("setter", "deleter") for d in node.decorator_list)


def _without_example(path: Path) -> list[str]:
    """Public functions of ``path``, and public methods (properties too) of its public classes,
    whose docstring has no Example section."""
    found = []

    def check(node: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> None:
        if "Example" not in (ast.get_docstring(node) or ""):
            found.append(f"{path.name}:{node.lineno} {name}")

    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, _FUNCTIONS) and not node.name.startswith("_"):
            check(node, node.name)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, _FUNCTIONS) and not item.name.startswith("_") and not _is_accessor(item):
                    check(item, f"{node.name}.{item.name}")
    return found


def test_public_functions_have_docstrings_with_an_example() -> None:
    missing = [m for path in _public_modules() for m in _without_example(path)]
    assert missing == [], "add a Google-style docstring with an Example: " + ", ".join(missing)


def test_the_check_finds_a_function_without_an_example(tmp_path: Path) -> None:
    mod = tmp_path / "mod.py"
    mod.write_text('def f():\n    """Does f."""\n\n\ndef g():\n    """Does g.\n\n    Example:\n'
                   '        >>> g()\n    """\n\n\ndef _h():\n    pass\n')
    assert _without_example(mod) == ["mod.py:1 f"]


def test_the_check_finds_a_method_without_an_example(tmp_path: Path) -> None:
    mod = tmp_path / "mod.py"
    mod.write_text(
        'class C:\n'
        '    def m(self):\n        """Does m."""\n\n'
        '    def n(self):\n        """Does n.\n\n        Example:\n            >>> C().n()\n        """\n\n'
        '    @property\n    def p(self):\n        """The p."""\n\n'
        '    async def a(self):\n        """Does a."""\n\n'
        '    def _private(self):\n        pass\n\n'
        '    def __init__(self):\n        pass\n\n\n'
        'class _Hidden:\n    def m(self):\n        pass\n'
    )
    assert _without_example(mod) == ["mod.py:2 C.m", "mod.py:13 C.p", "mod.py:16 C.a"]
