"""Every public function and method of a public module says how to use it: a docstring with an example."""

from __future__ import annotations

import ast
import re
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


# -- the README's images --------------------------------------------------------------------------
README = PACKAGE.parent / "README.md"
_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)[^)]*\)|<img\b[^>]*\bsrc=\"(?P<html>[^\"]+)\"")


def _broken_images(readme: Path) -> list[str]:
    """Images the README shows (Markdown or <img>) that are not in the repository, or that have
    no alt text; web addresses are left alone."""
    problems = []
    for m in _IMAGE.finditer(readme.read_text(encoding="utf-8")):
        src = m.group("src") or m.group("html")
        if m.group("src") is not None and not m.group("alt").strip():
            problems.append(f"{src}: no alt text")
        if "://" in src:
            continue
        if not (readme.parent / src.split("#")[0]).is_file():
            problems.append(f"{src}: missing")
    return problems


def test_every_image_the_readme_shows_exists() -> None:
    assert _broken_images(README) == [], "the README links images that are not in the repository"


def test_the_readme_shows_the_sidebar_and_a_panel() -> None:
    shown = {m.group("src") or m.group("html") for m in _IMAGE.finditer(README.read_text(encoding="utf-8"))}
    assert {"docs/sidebar.png", "docs/panel.png"} <= shown


def test_the_image_check_finds_a_missing_image_and_missing_alt_text(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "here.png").write_bytes(b"\x89PNG")
    readme = tmp_path / "README.md"
    readme.write_text("![A picture](docs/here.png)\n![Gone](docs/gone.png)\n![](docs/here.png)\n"
                      '<img src="docs/lost.png" alt="x">\n![Badge](https://example.org/b.svg)\n')
    assert _broken_images(readme) == ["docs/gone.png: missing", "docs/here.png: no alt text",
                                      "docs/lost.png: missing"]
