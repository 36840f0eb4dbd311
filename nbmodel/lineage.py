"""Parents of versions: which version a model object came from, and the lineage graph.

Like git's HEAD: ``%model_checkout iris/2 --as clf`` makes iris/2 the head of that object, and
committing it records iris/2 as the parent; committing makes the new version the head.

A kernel also has a HEAD per model name, like a git working copy: the version this process last
committed or checked out for that name. A fresh object committed to ``iris`` takes it as parent,
so two kernels committing at once never record each other's versions as parents.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

_heads: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
# Objects that cannot be weakly referenced are kept by id, with the object to keep ids unique.
_heads_by_id: dict[int, tuple[Any, str]] = {}
# (store, model name) -> the version this process last committed or checked out for it.
_kernel_heads: dict[tuple[str, str], str] = {}
# Objects and kernels on a named branch (see nbmodel.branches): a commit advances only that one.
_branches: weakref.WeakKeyDictionary[Any, str | None] = weakref.WeakKeyDictionary()
_branches_by_id: dict[int, tuple[Any, str | None]] = {}
_kernel_branches: dict[tuple[str, str], str | None] = {}
# Which store is in use: told by the store layer (see use_scope), so that a kernel's HEADs of
# one store never count in another.
_scope: Callable[[], str] = str


def use_scope(scope: Callable[[], str]) -> None:
    """Tell lineage how to name the store in use (the store layer calls this once).

    Args:
        scope: returns the current store's URI.

    Example:
        >>> use_scope(lambda: "sqlite:////tmp/a.db")  # doctest: +SKIP
    """
    global _scope
    _scope = scope


def _current_scope() -> str:
    try:
        return _scope()
    except Exception:  # noqa: BLE001 - a store that cannot be named yet has no HEADs
        return ""


def set_head(obj: Any, ref: str) -> None:
    """Record that ``obj`` is (a working copy of) version ``ref``.

    Args:
        obj: the model object.
        ref: the version, ``iris/3``.

    Example:
        >>> class Model: ...
        >>> m = Model()
        >>> set_head(m, "iris/3"); head_of(m)
        'iris/3'
    """
    try:
        _heads[obj] = ref
    except TypeError:
        _heads_by_id[id(obj)] = (obj, ref)
    name, _, version = ref.rpartition("/")
    if name and version.isdigit():
        _kernel_heads[(_current_scope(), name)] = ref


def kernel_head(name: str) -> str | None:
    """The version this process last committed or checked out for model ``name``.

    Args:
        name: the registered model's name.

    Returns:
        ``iris/3``, or None when this process has not committed or checked out ``name``.

    Example:
        >>> class Model: ...
        >>> set_head(Model(), "wine/2"); kernel_head("wine")
        'wine/2'
    """
    return _kernel_heads.get((_current_scope(), name))


def set_branch(obj: Any, name: str, branch: str | None) -> None:
    """Record that ``obj`` (and this kernel's HEAD for model ``name``) is on ``branch``.

    Args:
        obj: the model object.
        name: the registered model's name.
        branch: the branch it was checked out from or committed on; None for none.

    Example:
        >>> class Model: ...
        >>> m = Model()
        >>> set_branch(m, "iris", "experiment"); branch_of(m), kernel_branch("iris")
        ('experiment', 'experiment')
    """
    try:
        _branches[obj] = branch
    except TypeError:
        _branches_by_id[id(obj)] = (obj, branch)
    _kernel_branches[(_current_scope(), name)] = branch


def branch_of(obj: Any) -> str | None:
    """The branch ``obj`` was checked out from or last committed on, if any.

    Example:
        >>> branch_of(object()) is None
        True
    """
    return _lookup(_branches, _branches_by_id, obj)


def kernel_branch(name: str) -> str | None:
    """The branch of this kernel's HEAD for model ``name`` (see :func:`kernel_head`), if any.

    Example:
        >>> kernel_branch("no-such-model") is None
        True
    """
    return _kernel_branches.get((_current_scope(), name))


def head_of(obj: Any) -> str | None:
    """The version ``obj`` was checked out from or last committed as, if any.

    Args:
        obj: the model object.

    Returns:
        ``iris/3``, or None for an object nbmodel has not seen.

    Example:
        >>> head_of(object()) is None
        True
    """
    return _lookup(_heads, _heads_by_id, obj)


def _lookup(weak: Any, by_id: dict[int, Any], obj: Any) -> str | None:
    """What ``weak`` (keyed by the object, where it can be weakly referenced) or ``by_id`` (keyed
    by its id, holding the object itself) keeps for ``obj``."""
    try:
        found = weak.get(obj)
    except TypeError:
        found = None
    if found is None:
        entry = by_id.get(id(obj))
        if entry is not None and entry[0] is obj:
            found = entry[1]
    return found


def graph(rows: Sequence[tuple[int, int | None] | tuple[int, int | None, int | None]]
          ) -> list[tuple[str, int | None]]:
    """Draw ``git log --graph`` lanes for versions of one model, newest first.

    Args:
        rows: ``(version, parent_version)`` newest first, or ``(version, parent, merged)`` for a
            merge version with a second parent; a parent of another model or none is ``None``.

    Returns:
        ``(prefix, version)`` lines; connector lines carry ``None`` as version.

    Example:
        >>> [p for p, _ in graph([(4, 2), (3, 2), (2, 1), (1, None)])]
        ['*', '| *', '|/', '*', '*']
        >>> [p for p, _ in graph([(4, 2, 3), (3, 1), (2, 1), (1, None)])]
        ['*', '|\\\\', '| *', '* |', '|/', '*']
    """
    lanes: list[int | None] = []
    out: list[tuple[str, int | None]] = []
    present = {row[0] for row in rows}
    for row in rows:
        version, parent = row[0], row[1]
        merged = row[2] if len(row) > 2 else None
        waiting = [i for i, lane in enumerate(lanes) if lane == version]
        if waiting:
            col = waiting[0]
            # Lanes that also waited for this version are branches that start here: fold them
            # into this one, right to left, the way git draws "|/".
            for j in reversed(waiting[1:]):
                out.append((_join(lanes, j), None))
                del lanes[j]
        else:
            free = [i for i, lane in enumerate(lanes) if lane is None]
            col = free[0] if free else len(lanes)
            if col == len(lanes):
                lanes.append(version)
        marks = ["*" if i == col else ("|" if lane is not None else " ") for i, lane in enumerate(lanes)]
        out.append((" ".join(marks).rstrip(), version))
        lanes[col] = parent if parent in present else None
        if merged in present and merged != parent:
            # A merge: its second parent opens a lane right of it, drawn as git's "|\\".
            lanes.insert(col + 1, merged)
            out.append((_fork(lanes, col + 1), None))
        while lanes and lanes[-1] is None:
            lanes.pop()
    return out


def _fork(lanes: list[int | None], j: int) -> str:
    """A connector line in which lane ``j`` opens to the right of the lane before it."""
    parts = ["|" if lane is not None else " " for lane in lanes[:j]] + ["\\"] * (len(lanes) - j)
    text = " ".join(parts)
    return text[: 2 * j - 1] + text[2 * j:] if j > 0 else text


def _join(lanes: list[int | None], j: int) -> str:
    """A connector line in which lane ``j`` bends left into the lane before it."""
    parts = []
    for i, lane in enumerate(lanes):
        if i < j:
            parts.append("|" if lane is not None else " ")
        else:
            parts.append("/")
    text = " ".join(parts)
    # "| /" reads as two lanes; git writes the bend right after the lane it joins: "|/".
    return text[: 2 * j - 1] + text[2 * j:] if j > 0 else text


def branches(rows: Iterable[tuple[int, int | None] | tuple[int, int | None, int | None]]) -> bool:
    """True when some version has two children, i.e. when a graph says more than a list.

    Args:
        rows: ``(version, parent_version)`` pairs.

    Returns:
        Whether two versions share a parent.

    Example:
        >>> branches([(3, 1), (2, 1), (1, None)]), branches([(2, 1), (1, None)])
        (True, False)
    """
    seen: set[int] = set()
    for row in rows:
        if len(row) > 2 and row[2] is not None:
            return True  # a merge
        parent = row[1]
        if parent is None:
            continue
        if parent in seen:
            return True
        seen.add(parent)
    return False
