"""The notebook cells that built a model, sliced from the shell's history.

Walking back from the commit, a cell is kept when it defines or changes a name that the model
still depends on (``clf = ...``, ``clf.fit(...)``, ``X_train, y_train = ...``, ``import``); its
own inputs then become names to look for. A plain assignment ends the search for that name, so
an earlier, replaced model is left out. Cells that only run nbmodel magics are left out too.
"""

from __future__ import annotations

import ast
from typing import Any, Iterable

_NBMODEL_MAGIC = ("model_",)


class _Names(ast.NodeVisitor):
    def __init__(self) -> None:
        self.assigned: set[str] = set()  # bound afresh: earlier definitions no longer matter
        self.changed: set[str] = set()  # mutated in place: earlier definitions still matter
        self.used: set[str] = set()

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store):
            self.assigned.add(node.id)
        elif isinstance(node.ctx, ast.Del):
            self.changed.add(node.id)
        else:
            self.used.add(node.id)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        base = _base_name(node.target)
        if base:
            self.changed.add(base)
            self.used.add(base)
        self.visit(node.value)

    def _store_base(self, target: ast.AST) -> None:
        if isinstance(target, (ast.Attribute, ast.Subscript)):
            base = _base_name(target)
            if base:
                self.changed.add(base)
                self.used.add(base)

    def visit_Assign(self, node: ast.Assign) -> None:
        for t in node.targets:
            self._store_base(t)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        # clf.fit(X, y), pipe.steps.append(...): the object the method belongs to may change.
        if isinstance(node.func, ast.Attribute):
            base = _base_name(node.func)
            if base:
                self.changed.add(base)
        self.generic_visit(node)

    def _bind(self, name: str) -> None:
        self.assigned.add(name.split(".")[0])

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self._bind(a.asname or a.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for a in node.names:
            if a.name != "*":
                self._bind(a.asname or a.name)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._bind(node.name)
        inner = _Names()
        for stmt in node.body:
            inner.visit(stmt)
        self.used |= inner.used - inner.assigned

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._bind(node.name)
        for b in node.bases:
            self.visit(b)
        inner = _Names()
        for stmt in node.body:
            inner.visit(stmt)
        self.used |= inner.used - inner.assigned


def _base_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _is_nbmodel_only(code: str) -> bool:
    lines = [ln.strip() for ln in code.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return bool(lines) and all(
        ln.startswith("%model_") or ln.startswith("%load_ext") or ln.startswith("%reload_ext")
        or "run_line_magic('model_" in ln or "run_line_magic('load_ext'" in ln
        for ln in lines
    )


def slice_cells(cells: Iterable[tuple[int, str, str]], names: Iterable[str]) -> list[tuple[int, str]]:
    """The cells, oldest first, that the given names depend on.

    Args:
        cells: ``(number, python_code, raw_text)`` for each cell, oldest first.
        names: the names to explain (the model's variable, its training data).

    Returns:
        ``(number, raw_text)`` of the cells kept.
    """
    needed = {n for n in names if n}
    kept: list[tuple[int, str]] = []
    for number, code, raw in reversed(list(cells)):
        if not code.strip() or _is_nbmodel_only(raw):
            continue
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        v = _Names()
        v.visit(tree)
        touched = (v.assigned | v.changed) & needed
        if not touched:
            continue
        kept.append((number, raw))
        needed = (needed - (v.assigned - v.changed - v.used)) | v.used
    kept.reverse()
    return kept


def cells_from_shell(shell: Any, names: Iterable[str]) -> str | None:
    """The source text of the cells that built ``names`` in this IPython session."""
    if shell is None:
        return None
    hm = getattr(shell, "history_manager", None)
    code_hist = list(getattr(hm, "input_hist_parsed", []) or shell.user_ns.get("In", []) or [])
    raw_hist = list(getattr(hm, "input_hist_raw", []) or code_hist)
    current = getattr(shell, "execution_count", len(code_hist))
    cells = [
        (i, code_hist[i], raw_hist[i] if i < len(raw_hist) else code_hist[i])
        for i in range(1, min(len(code_hist), current))
    ]
    kept = slice_cells(cells, names)
    if not kept:
        return None
    return "\n\n".join(f"# In[{n}]\n{raw.rstrip()}" for n, raw in kept) + "\n"


def current_shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None
    return get_ipython()
