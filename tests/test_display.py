"""One display mixin (display.Shown) and one first-line helper (errors.first_line)."""

from __future__ import annotations

import ast
import datetime as _dt
from pathlib import Path

from IPython.lib.pretty import pretty

from nbmodel.display import Shown

PACKAGE = Path(__file__).resolve().parents[1] / "nbmodel"

#: Classes in modules other engineers are changing still carry their own copy; empty it after
#: those land.
STILL_COPYING: set[str] = set()


def _copies(path: Path) -> list[str]:
    """Classes that define ``_repr_pretty_`` themselves (Shown is the one that may)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"{node.name}:{node.lineno}" for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
            and node.name != "Shown"
            and any(isinstance(f, ast.FunctionDef) and f.name == "_repr_pretty_" for f in node.body)]


def test_no_class_copies_the_display_mixin() -> None:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).as_posix()
        if rel not in STILL_COPYING and _copies(path):
            found[rel] = _copies(path)
    assert found == {}, f"inherit nbmodel.display.Shown instead: {found}"
    assert [rel for rel in STILL_COPYING if not _copies(PACKAGE.parent / rel)] == []


def test_version_prints_its_card_and_keeps_a_short_repr() -> None:
    from nbmodel.versions import Version

    v = Version("iris", 3, message="more trees", created=_dt.datetime(2026, 1, 1, tzinfo=_dt.UTC))
    assert isinstance(v, Shown)
    assert repr(v) == "<Version iris/3>"
    assert pretty(v) == str(v) and str(v).startswith("iris/3\n  message")


def test_alias_move_prints_its_sentence() -> None:
    from nbmodel.aliases import AliasMove

    move = AliasMove("iris", "production", 2, 3, _dt.datetime(2026, 1, 1, tzinfo=_dt.UTC), "ann")
    assert isinstance(move, Shown)
    assert pretty(move) == "iris@production moved from iris/2 to iris/3"
    assert repr(move) == "<AliasMove iris@production moved from iris/2 to iris/3>"


def test_private_first_line_copies_are_gone_from_the_core() -> None:
    core = ["store.py", "gateway.py", "versions.py", "commits.py", "history.py", "aliases.py", "diffs.py"]
    for name in core:
        text = (PACKAGE / name).read_text(encoding="utf-8")
        assert "def _first_line" not in text and "str(exc).splitlines()" not in text, name
