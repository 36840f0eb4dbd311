"""Branches: named lines of work of one model, like git's.

A branch's head is the registered-model alias ``branch-<name>`` and its start is a tag of the
model, ``nbmodel.branch.<name>`` (where it started, who made it, when), so ``mlflow ui`` and
``mlflow.pyfunc.load_model("models:/iris@branch-experiment")`` see it. Every move of a head
(made, advanced by a commit, moved by a merge, deleted) goes through
:func:`nbmodel.aliases.move_pointer`: the store's lock or lease, a compare-and-set on the head
the move expects, and an entry in the alias audit trail (``%model_log iris --aliases``).

``main`` is the default line. Until a model has another branch it needs no alias: its head is
the newest version. Making the first branch writes ``branch-main`` at that version; from then
on main moves like any branch.

A commit advances the branch its object came from (``%model_checkout iris@experiment``), and
only if that branch's head is still the commit's parent; an object from no branch advances
``main`` only if main's head is its parent. A commit never advances a branch it did not come
from.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import lineage
from .aliases import _Trail, move_pointer
from .display import Shown
from .errors import AliasMoved, BadReference, BranchExists, BranchNotFound, NbmodelError
from .refs import BRANCH_ALIAS_PREFIX, Ref, branch_alias, branch_of_alias, check_alias, parse_ref
from .store import Store, get_store
from .versions import T_MERGE_PARENT, T_PARENT, _user, age, model_aliases, newest_version, resolve

MAIN = "main"
START_PREFIX = "nbmodel.branch."

__all__ = ["MAIN", "Branch", "BranchExists", "BranchList", "BranchNotFound", "branch", "branches",
           "create", "delete", "head", "heads"]


@dataclass(repr=False)
class Branch(Shown):
    """One branch: its head, how many versions it is ahead of main, and its last move."""

    model: str
    name: str
    head: int | None
    ahead: int = 0
    moved: _dt.datetime | None = None
    by: str = ""
    start: str | None = None
    #: What was done to it, when a command made or deleted it.
    done: str = ""

    def __str__(self) -> str:
        where = f"{self.model}/{self.head}" if self.head else "no version"
        if self.done == "deleted":
            return (f"branch {self.name} of {self.model} deleted (it was at {where}; "
                    "its versions stay)")
        ahead = f", {self.ahead} ahead of main" if self.name != MAIN else ""
        made = "made: it starts" if self.done == "made" else "is"
        return (f"branch {self.name} of {self.model} {made} at {where}{ahead}; "
                f"%model_checkout {self.ref} to work on it")

    def __repr__(self) -> str:
        return f"<Branch {self.ref} at {self.head}>"

    def _repr_html_(self) -> str:
        return f"<div class='nbm-line'>{html.escape(str(self))}</div>"

    @property
    def ref(self) -> str:
        """``iris@experiment``, the reference every command takes.

        Example:
            >>> Branch("iris", "experiment", 4).ref
            'iris@experiment'
        """
        return f"{self.model}@{self.name}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form: name, head, ahead and moved (ISO text), as the REST route gives it.

        Example:
            >>> Branch("iris", "main", 3).to_dict()["head"]
            3
        """
        return {"name": self.name, "head": self.head, "ahead": self.ahead,
                "moved": self.moved.isoformat() if self.moved else None}


@dataclass(repr=False)
class BranchList(Shown):
    """The branches of a model, main first."""

    model: str
    branches: list[Branch]

    def __iter__(self) -> Iterator[Branch]:
        return iter(self.branches)

    def __len__(self) -> int:
        return len(self.branches)

    def __getitem__(self, name: str) -> Branch:
        for b in self.branches:
            if b.name == name:
                return b
        raise KeyError(name)

    _head = ["branch", "head", "ahead of main", "moved"]

    def _rows(self) -> list[list[str]]:
        return [[b.name, f"{self.model}/{b.head}" if b.head else "-", str(b.ahead),
                 (age(b.moved) + (f" by {b.by}" if b.by else "")) if b.moved else ""]
                for b in self.branches]

    def __str__(self) -> str:
        from .display import text_table

        return f"branches of {self.model}\n" + text_table(self._head, self._rows())

    def _repr_html_(self) -> str:
        from .display import html_table

        return html_table(self._head, self._rows(), caption=f"branches of {self.model}")

    def __repr__(self) -> str:
        return f"<BranchList {self.model}: {', '.join(b.name for b in self.branches)}>"


def check_branch(name: str) -> str:
    """Return ``name`` if it can name a branch (an alias name, see :func:`check_alias`).

    Example:
        >>> check_branch("experiment")
        'experiment'
    """
    if not isinstance(name, str):
        raise BadReference("a branch name is a string such as experiment")
    check_alias(name)
    if name.startswith(BRANCH_ALIAS_PREFIX):
        raise BadReference(f"{name!r}: a branch name cannot start with {BRANCH_ALIAS_PREFIX!r}")
    return name


def heads(store: Store, name: str) -> dict[str, int]:
    """Branch -> head version of model ``name``; ``main`` is always there once it has a version.

    Args:
        store: the store to read.
        name: the model.

    Returns:
        The heads, main first.

    Raises:
        ModelNotFound: there is no such model.

    Example:
        >>> heads(get_store(), "iris")  # doctest: +SKIP
        {'main': 3, 'experiment': 4}
    """
    aliases = model_aliases(store, name)
    found = {b: v for a, v in aliases.items() if (b := branch_of_alias(a))}
    if MAIN not in found:
        newest = newest_version(store, name)
        if newest is None:
            return dict(sorted(found.items()))
        found[MAIN] = newest
    return {MAIN: found.pop(MAIN), **dict(sorted(found.items()))}


def head(model: str, branch: str, *, store: Store | None = None) -> int:
    """The head version of one branch.

    Raises:
        BranchNotFound: no such branch (the message lists them).

    Example:
        >>> head("iris", "experiment")  # doctest: +SKIP
        4
    """
    store = store or get_store()
    found = heads(store, model)
    if branch not in found:
        raise BranchNotFound(_unknown(model, branch, found))
    return found[branch]


def _unknown(model: str, branch: str, found: dict[str, int]) -> str:
    listing = ", ".join(found) or "none"
    return (f"{model} has no branch {branch!r}; its branches are {listing} "
            f"(make one with %model_branch {model} {branch})")


def parents(store: Store, name: str) -> dict[int, list[int]]:
    """Every version of ``name`` -> its parents of the same model (a merge has two).

    Example:
        >>> parents(get_store(), "iris")  # doctest: +SKIP
        {3: [2], 2: [1], 1: []}
    """
    rows, _ = store.gateway.versions(name)
    out: dict[int, list[int]] = {}
    for row in rows:
        mine = []
        for key in (T_PARENT, T_MERGE_PARENT):
            text = (row.tags or {}).get(key)
            if not text:
                continue
            try:
                p = parse_ref(text)
            except NbmodelError:
                continue
            if p.name == name and p.version is not None:
                mine.append(p.version)
        out[row.version] = mine
    return out


def ancestors(graph: dict[int, list[int]], version: int | None) -> set[int]:
    """``version`` and every version it descends from.

    Example:
        >>> sorted(ancestors({4: [2, 3], 3: [1], 2: [1], 1: []}, 4))
        [1, 2, 3, 4]
    """
    seen: set[int] = set()
    todo = [version] if version is not None else []
    while todo:
        v = todo.pop()
        if v in seen:
            continue
        seen.add(v)
        todo.extend(graph.get(v, []))
    return seen


def branches(name: str | Ref) -> BranchList:
    """The branches of a model: heads, versions ahead of main, and when each last moved.

    Args:
        name: the model (``iris``).

    Returns:
        A :class:`BranchList`, main first; it shows as a table.

    Raises:
        ModelNotFound: there is no such model.

    Example:
        >>> nbmodel.branch("iris")  # doctest: +SKIP
    """
    model = parse_ref(name).name
    store = get_store()
    found = heads(store, model)
    graph = parents(store, model)
    trail = _Trail.read(store, model)
    starts = store.gateway.model_tags(model, START_PREFIX) or {}
    main = ancestors(graph, found.get(MAIN))
    out = []
    for b, v in found.items():
        moves = trail.live(branch_alias(b))
        moved, by = (moves[-1].at, moves[-1].by) if moves else (None, "")
        if moved is None and v is not None:
            moved = resolve(f"{model}/{v}", store=store).created
        try:
            start = json.loads(starts.get(START_PREFIX + b, "{}")).get("from")
        except ValueError:
            start = None
        out.append(Branch(model, b, v, len(ancestors(graph, v) - main), moved, by, start))
    return BranchList(model, out)


def create(name: str | Ref, branch: str, *, start: str | Ref | None = None, message: str = "") -> Branch:
    """Make a named line of work starting at a version (default: main's head).

    Args:
        name: the model (``iris``).
        branch: the new branch's name (``experiment``).
        start: the version it starts at (``iris/3``, ``iris@production``, ``iris@main``).
        message: why, kept in the audit trail.

    Returns:
        The new :class:`Branch`.

    Raises:
        BranchExists: a branch or an alias of that name exists. Nothing changes.
        BadReference: a bad branch name, or ``start`` is a version of another model.

    Example:
        >>> nbmodel.branch("iris", "experiment", start="iris/3")  # doctest: +SKIP
    """
    model = parse_ref(name).name
    check_branch(branch)
    store = get_store()
    aliases = model_aliases(store, model)
    found = heads(store, model)
    if branch in found or branch in aliases:
        what = "a branch" if branch in found else "an alias"
        raise BranchExists(f"{model} has {what} named {branch!r} already; choose another name "
                           f"(%model_branch {model} lists the branches)")
    if not found:
        raise NbmodelError(f"{model} has no versions yet; commit one before making a branch")
    at = resolve(start if start is not None else f"{model}@{MAIN}", store=store)
    if at.name != model:
        raise BadReference(f"--from {start} is a version of {at.name!r}, not of {model!r}")
    _materialize_main(store, model)
    try:
        move_pointer(model, branch_alias(branch), at.version, expected=None, kind="branch",
                     message=message or f"branch {branch} from {at.ref}")
    except AliasMoved as exc:
        raise BranchExists(f"another kernel made branch {branch!r} of {model} just now; "
                           f"%model_branch {model} lists it") from exc
    store.gateway.set_model_tag(model, START_PREFIX + branch, json.dumps({
        "from": at.ref, "by": _user(), "at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}))
    made = branches(model)[branch]
    made.done = "made"
    return made


def delete(name: str | Ref, branch: str, *, message: str = "") -> Branch:
    """Remove a branch's name; its versions stay (like ``git branch -d`` of a merged line).

    Raises:
        BranchNotFound: no such branch. BadReference: ``main`` cannot be deleted.

    Example:
        >>> nbmodel.branch("iris", "experiment", delete=True)  # doctest: +SKIP
    """
    model = parse_ref(name).name
    if branch == MAIN:
        raise BadReference(f"main is {model}'s default line and cannot be deleted")
    store = get_store()
    found = heads(store, model)
    if branch not in found:
        raise BranchNotFound(_unknown(model, branch, found))
    gone = branches(model)[branch]
    move_pointer(model, branch_alias(branch), None, expected=found[branch], kind="delete",
                 message=message or f"branch {branch} deleted")
    store.gateway.delete_model_tag(model, START_PREFIX + branch)
    gone.done = "deleted"
    return gone


def branch(name: str | Ref, branch: str | None = None, *, start: str | Ref | None = None,
           delete: bool = False, message: str = "") -> Any:
    """``%model_branch``: list a model's branches, make one, or delete one.

    Args:
        name: the model.
        branch: the branch to make (or delete); None lists them.
        start: where a new branch starts (default: main's head).
        delete: delete ``branch`` instead (its versions stay).
        message: why, kept in the audit trail.

    Returns:
        A :class:`BranchList`, or the :class:`Branch` made or deleted.

    Example:
        >>> nbmodel.branch("iris", "experiment", start="iris/3")  # doctest: +SKIP
    """
    if branch is None:
        if delete or start is not None:
            raise BadReference("name the branch: %model_branch iris experiment [--from REF | --delete]")
        return branches(name)
    if delete:
        if start is not None:
            raise BadReference("--delete takes no --from")
        return _delete(name, branch, message=message)
    return create(name, branch, start=start, message=message)


_delete = delete


def _materialize_main(store: Store, model: str) -> None:
    """Give main its alias at its implicit head (the newest version), once branches begin."""
    aliases = model_aliases(store, model)
    if branch_alias(MAIN) in aliases:
        return
    newest = newest_version(store, model)
    if newest is None:
        return
    try:
        move_pointer(model, branch_alias(MAIN), newest, expected=None, kind="branch",
                     message="main, the default line")
    except AliasMoved:
        pass  # another kernel did it first


# -- the hooks a commit calls ---------------------------------------------------------------
def default_parent(store: Store, name: str) -> str | None:
    """The parent of a fresh object's commit: main's head (the newest version until branches).

    Example:
        >>> default_parent(get_store(), "iris")  # doctest: +SKIP
        'iris/3'
    """
    aliases = store.gateway.aliases(name) or {}
    main = aliases.get(branch_alias(MAIN))
    if main is None:
        main = newest_version(store, name)
    return f"{name}/{main}" if main else None


def after_commit(store: Store, model: Any, name: str, ref: str, parent: str | None) -> str | None:
    """Advance the branch a commit came from (called by :func:`nbmodel.commit` once the new
    version is registered, before the object's head moves to it).

    The object's branch if it was checked out or committed before; for a fresh object whose
    parent is this kernel's HEAD, that HEAD's branch; else main, if main's head is the parent.
    A branch moves only from the parent to the new version (compare-and-set): if another kernel
    advanced it meanwhile, it stays and the object is on no branch.

    Returns:
        The branch advanced, or None.

    Example:
        >>> after_commit(get_store(), clf, "iris", "iris/5", "iris/4")  # doctest: +SKIP
        'experiment'
    """
    if lineage.head_of(model) is not None:
        on = lineage.branch_of(model)
    elif parent is not None and parent == lineage.kernel_head(name):
        on = lineage.kernel_branch(name)
    else:
        on = None
    aliases = store.gateway.aliases(name) or {}
    if on is None and parent is not None and aliases.get(branch_alias(MAIN)) == _number(parent, name):
        on = MAIN
    moved = None
    if on is not None and branch_alias(on) in aliases:
        try:
            move_pointer(name, branch_alias(on), _number(ref, name), expected=_number(parent, name),
                         kind="commit", message=f"commit {ref}")
            moved = on
        except AliasMoved:
            moved = None
            # The version is registered all the same; say that it is on no branch, and how to name one.
            print(f"{ref} is on no branch: another kernel advanced {on} while it was committed; "
                  f"%model_branch {name} NEW --from {ref} names a line for it", file=sys.stderr)
    elif on == MAIN:
        moved = MAIN  # main without an alias: its head is the newest version, this one
    lineage.set_branch(model, name, moved)
    return moved


def _number(ref: str | None, name: str) -> int | None:
    if ref is None:
        return None
    r = parse_ref(ref)
    return r.version if r.name == name else None
