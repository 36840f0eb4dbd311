"""The notebook cells that built a model, sliced from the shell's history.

Walking back from the commit, a cell is kept when it defines or changes a name that the model
still depends on (``clf = ...``, ``clf.fit(...)``, ``X_train, y_train = ...``, ``import``); its
own inputs then become names to look for. A plain assignment ends the search for that name, so
an earlier, replaced model is left out. Cells that only run nbmodel magics are left out too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from typing import Any

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

    Example:
        >>> code = ["X = load()", "y = 1", "clf = fit(X)"]
        >>> cells = [(i + 1, c, c) for i, c in enumerate(code)]
        >>> [n for n, _ in slice_cells(cells, ["clf"])]
        [1, 3]
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


class CellRecorder:
    """Keeps the raw text of every cell the shell runs.

    IPython's own history misses cells run with ``store_history=False``, which is how nbval
    runs a notebook under test; a ``pre_run_cell`` hook sees every cell, so the source recorded
    with a version is the same in JupyterLab and under nbval.
    """

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        hm = getattr(shell, "history_manager", None)
        self.cells: list[str] = [c for c in list(getattr(hm, "input_hist_raw", []) or [])[1:] if c]

    def __call__(self, info: Any) -> None:
        if not getattr(info, "silent", False):
            self.cells.append(getattr(info, "raw_cell", "") or "")


_recorders: dict[int, CellRecorder] = {}


def install(shell: Any) -> None:
    """Start recording cells (called by ``%load_ext nbmodel``).

    Args:
        shell: the IPython shell.

    Example:
        >>> install(get_ipython())  # doctest: +SKIP
    """
    if id(shell) in _recorders:
        return
    rec = _recorders[id(shell)] = CellRecorder(shell)
    shell.events.register("pre_run_cell", rec)


def uninstall(shell: Any) -> None:
    """Stop recording cells (called by ``%unload_ext nbmodel``).

    Args:
        shell: the IPython shell.

    Example:
        >>> uninstall(get_ipython())  # doctest: +SKIP
    """
    rec = _recorders.pop(id(shell), None)
    if rec is not None:
        try:
            shell.events.unregister("pre_run_cell", rec)
        except ValueError:
            pass


def _history(shell: Any) -> list[str]:
    rec = _recorders.get(id(shell))
    if rec is not None:
        # The last recorded cell is the one running now (the commit itself).
        return rec.cells[:-1]
    hm = getattr(shell, "history_manager", None)
    raw = list(getattr(hm, "input_hist_raw", []) or [])
    current = getattr(shell, "execution_count", len(raw))
    return [c for c in raw[1:current] if c]


def cells_from_shell(shell: Any, names: Iterable[str]) -> str | None:
    """The source of the cells that built ``names`` in this session, in the ``# %%`` cell format
    that Jupytext and VS Code read.

    Args:
        shell: the IPython shell (None outside IPython).
        names: the variables to explain.

    Returns:
        The cells' text, or None when there is no shell or no cell builds the names.

    Example:
        >>> print(cells_from_shell(get_ipython(), ["clf"]))  # doctest: +SKIP
        # %% In[3]
        clf = LogisticRegression().fit(X, y)
    """
    if shell is None:
        return None
    cells = []
    for i, raw in enumerate(_history(shell), start=1):
        try:
            code = shell.transform_cell(raw)
        except Exception:  # noqa: BLE001 - a cell IPython cannot read is skipped
            continue
        cells.append((i, code, raw))
    kept = slice_cells(cells, names)
    if not kept:
        return None
    return "\n\n".join(f"# %%\n{raw.rstrip()}" for _, raw in kept) + "\n"


def current_shell() -> Any:
    """The running IPython shell.

    Returns:
        The shell, or None outside IPython.

    Example:
        >>> current_shell() is None  # in plain Python
        True
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None
    return get_ipython()
