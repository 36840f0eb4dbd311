"""Aliases, their audit trail, and rollback.

MLflow keeps only where an alias points now. nbmodel writes every move as a tag of the
registered model, ``nbmodel.alias_log.<time>.<id>`` holding when, who, alias, from, to, why and
the kind of move, so the trail is ordinary MLflow data that survives restarts and shows in
``mlflow ui``. Rollback replays the trail like a stack: each set pushes a holder, each rollback
pops back to an earlier one, so repeated rollbacks walk further back rather than toggling.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .display import Shown
from .errors import AliasNotFound, BadReference, RetiredVersion, RollbackError
from .refs import Ref, check_alias, parse_ref
from .store import get_store
from .versions import _user, model_aliases, resolve

LOG_PREFIX = "nbmodel.alias_log."
MAX_WHY = 1000


@dataclass
class AliasMove(Shown):
    """One move of an alias, as kept in the audit trail."""

    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    at: _dt.datetime
    by: str
    why: str = ""
    kind: str = "set"
    changed: bool = True

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.alias}"

    def __str__(self) -> str:
        before = f"{self.name}/{self.from_version}" if self.from_version else "(unset)"
        after = f"{self.name}/{self.to_version}" if self.to_version else "(unset)"
        if not self.changed:
            return f"{self.ref} already points to {after}"
        verb = {"rollback": "rolled back", "deploy": "deployed"}.get(self.kind, "moved")
        why = f": {self.why}" if self.why else ""
        return f"{self.ref} {verb} from {before} to {after}{why}"

    def __repr__(self) -> str:
        return f"<AliasMove {self}>"

    def _repr_html_(self) -> str:
        return f"<div class='nbm-line'>{html.escape(str(self))}</div>"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (for REST routes).

        Returns:
            The move's fields, with ``from``/``to`` version numbers and ``at`` as ISO text.

        Example:
            >>> nbmodel.alias("iris/3", "production").to_dict()["to"]  # doctest: +SKIP
            3
        """
        return {
            "name": self.name, "alias": self.alias, "from": self.from_version,
            "to": self.to_version, "at": self.at.isoformat(), "by": self.by,
            "why": self.why, "kind": self.kind, "changed": self.changed,
        }


def _entries(store: Any, name: str, alias: str | None = None) -> list[AliasMove]:
    """The trail of model ``name`` (of one alias), oldest first."""
    tags = store.gateway.model_tags(name, LOG_PREFIX) or {}
    out = []
    for _key, value in sorted(tags.items()):
        try:
            d = json.loads(value)
        except ValueError:
            continue
        if alias is not None and d.get("alias") != alias:
            continue
        out.append(AliasMove(
            name=name, alias=d.get("alias", ""), from_version=d.get("from"),
            to_version=d.get("to"), at=_dt.datetime.fromisoformat(d["at"]),
            by=d.get("by", ""), why=d.get("why", ""), kind=d.get("kind", "set"),
        ))
    return out


def _stack(entries: list[AliasMove], current: int | None) -> list[int]:
    stack: list[int] = []
    for e in entries:
        if e.kind == "delete" or e.to_version is None:
            stack = []
        elif e.kind == "rollback" and e.to_version in stack:
            del stack[stack.index(e.to_version) + 1:]
        elif not stack or stack[-1] != e.to_version:
            if not stack and e.from_version:
                stack.append(e.from_version)
            stack.append(e.to_version)
    if current is not None and (not stack or stack[-1] != current):
        # The alias was moved outside nbmodel (mlflow ui, another client): trust the registry.
        stack.append(current)
    return stack


def _record(store: Any, move: AliasMove) -> None:
    key = f"{LOG_PREFIX}{time.time_ns():020d}.{secrets.token_hex(3)}"
    value = json.dumps({
        "alias": move.alias, "from": move.from_version, "to": move.to_version,
        "at": move.at.isoformat(timespec="milliseconds"), "by": move.by,
        "why": move.why[:MAX_WHY], "kind": move.kind,
    })
    store.gateway.set_model_tag(move.name, key, value)


def _move(name: str, alias: str, to: int, *, why: str, kind: str, current: int | None) -> AliasMove:
    store = get_store()
    move = AliasMove(name=name, alias=alias, from_version=current, to_version=to,
                     at=_dt.datetime.now(_dt.UTC), by=_user(), why=why or "", kind=kind)
    store.gateway.set_alias(name, alias, to)
    _record(store, move)
    return move


def set_alias(ref: str | Ref, alias: str, *, message: str = "", force: bool = False,
              kind: str = "set") -> AliasMove:
    """Point ``alias`` at the version ``ref`` names, and keep the move in the audit trail.

    Args:
        ref: the version (``iris/3``; ``iris`` is the newest).
        alias: the alias name (``production``).
        message: why, kept in the trail.
        force: allow a retired version.
        kind: the kind of move kept in the trail (``set``, or ``deploy`` when a deploy moves it).

    Returns:
        The :class:`AliasMove`; ``changed`` is False when the alias already pointed there.

    Raises:
        BadReference: the alias name is not valid.
        RetiredVersion: if the version is retired and ``force`` is not given.

    Example:
        >>> nbmodel.alias("iris/3", "production", message="best on holdout")  # doctest: +SKIP
    """
    check_alias(alias)
    v = resolve(ref)
    if v.retired and not force:
        raise RetiredVersion(
            f"{v.ref} is retired; choose another version, or pass --force to point {alias} at it anyway"
        )
    store = get_store()
    with store.write_lock():
        current = model_aliases(store, v.name).get(alias)
        if current == v.version:
            return AliasMove(v.name, alias, current, current, _dt.datetime.now(_dt.UTC),
                             _user(), message, kind, changed=False)
        return _move(v.name, alias, v.version, why=message, kind=kind, current=current)


def rollback(name: str | Ref, *, alias: str | None = None, to: int | str | None = None,
             message: str = "") -> AliasMove:
    """Move an alias back to the version that held it before, or to version ``to``.

    Args:
        name: the model (``iris``; ``iris@staging`` names the alias too).
        alias: the alias to move back; ``production`` unless the reference names one.
        to: the version to move it to, instead of the previous holder: ``2``, ``"2"``,
            ``"iris/2"`` or ``"models:/iris/2"``.
        message: why, kept in the audit trail.

    Raises:
        AliasNotFound: the alias is not set. RollbackError: no earlier holder.
        BadReference: ``to`` is not a version of this model.
        RetiredVersion, VersionNotFound: the target cannot take the alias. Nothing changes.

    Example:
        >>> nbmodel.rollback("iris")  # doctest: +SKIP
        iris@production rolled back from iris/3 to iris/2
    """
    r = parse_ref(name)
    if r.version is not None:
        raise RollbackError(
            f"roll back a model's alias, not a version: %model_rollback {r.name} --to {r.version}")
    alias = check_alias(alias or r.alias or "production")
    to_version = None
    if to is not None:
        # One reading of --to for the magic, the CLI and the REST route: a number, or a
        # reference to a version of this same model.
        text = str(to).strip()
        not_a_version = f"--to takes a version: 2, {r.name}/2 or models:/{r.name}/2, not {to!r}"
        if isinstance(to, bool) or not text:
            raise BadReference(not_a_version)
        if not text.isdigit():
            try:
                named = parse_ref(text)
            except BadReference:
                named = None
            if named is None or named.version is None:
                raise BadReference(not_a_version)
            if named.name != r.name:
                raise BadReference(
                    f"--to {text} is a version of {named.name!r}, not of {r.name!r}; "
                    f"name a version of {r.name}, such as {r.name}/{named.version}")
            text = str(named.version)
        to_version = int(text)
    store = get_store()
    with store.write_lock():
        aliases = model_aliases(store, r.name)
        current = aliases.get(alias)
        if current is None:
            known = ", ".join(f"{a} (version {v})" for a, v in sorted(aliases.items()))
            raise AliasNotFound(
                f"{r.name} has no alias {alias!r} to roll back; "
                + (f"its aliases are {known}" if known else f"set one with %model_alias {r.name}/N {alias}"))
        if to is not None:
            target = resolve(f"{r.name}/{to_version}")
            if target.version == current:
                raise RollbackError(f"{r.name}@{alias} already points to {target.ref}")
        else:
            stack = _stack(_entries(store, r.name, alias), current)
            if len(stack) < 2:
                raise RollbackError(
                    f"{r.name}@{alias} has no earlier holder to roll back to (it points to "
                    f"{r.name}/{current}); name one with --to VERSION")
            target = resolve(f"{r.name}/{stack[-2]}")
        if target.retired:
            raise RetiredVersion(
                f"cannot roll {r.name}@{alias} back to {target.ref}: it is retired; "
                "choose another with --to VERSION")
        return _move(r.name, alias, target.version, why=message, kind="rollback", current=current)


def delete_alias(name: str | Ref, alias: str, *, message: str = "") -> AliasMove:
    """Remove an alias (kept in the trail as a move to nothing).

    Args:
        name: the model.
        alias: the alias to remove.
        message: why, kept in the trail.

    Returns:
        The :class:`AliasMove` to nothing.

    Raises:
        AliasNotFound: the model has no such alias.

    Example:
        >>> nbmodel.delete_alias("iris", "staging")  # doctest: +SKIP
    """
    r = parse_ref(name)
    store = get_store()
    with store.write_lock():
        current = model_aliases(store, r.name).get(alias)
        if current is None:
            raise AliasNotFound(f"{r.name} has no alias {alias!r}")
        store.gateway.delete_alias(r.name, alias)
        move = AliasMove(r.name, alias, current, None, _dt.datetime.now(_dt.UTC), _user(),
                         message, "delete")
        _record(store, move)
        return move


@dataclass(repr=False)
class AliasHistory(Shown):
    """The audit trail of a model's aliases, newest first."""

    name: str
    moves: list[AliasMove]

    def __iter__(self) -> Iterator[AliasMove]:
        return iter(self.moves)

    def __len__(self) -> int:
        return len(self.moves)

    def _rows(self) -> list[list[str]]:
        return [[f"{m.at:%Y-%m-%d %H:%M:%S}", m.alias,
                 str(m.from_version or "-"), str(m.to_version or "-"), m.kind, m.by, m.why]
                for m in self.moves]

    _head = ["when (UTC)", "alias", "from", "to", "kind", "who", "why"]

    def __str__(self) -> str:
        from .display import text_table

        if not self.moves:
            return f"{self.name}: no alias moves yet"
        return f"alias moves of {self.name}, newest first\n" + text_table(self._head, self._rows())

    def _repr_html_(self) -> str:
        from .display import html_table

        if not self.moves:
            return f"<div class='nbm-line'>{html.escape(self.name)}: no alias moves yet</div>"
        return html_table(self._head, self._rows(), caption=f"alias moves of {self.name}")


def alias_history(name: str | Ref, alias: str | None = None) -> AliasHistory:
    """Every alias move of a model (or of one alias), newest first.

    Args:
        name: the model (``iris@production`` names the alias too).
        alias: only the moves of this alias.

    Returns:
        An :class:`AliasHistory`, shown as a table.

    Raises:
        ModelNotFound: there is no such model.

    Example:
        >>> nbmodel.alias_history("iris", "production")  # doctest: +SKIP
    """
    r = parse_ref(name)
    store = get_store()
    model_aliases(store, r.name)
    moves = _entries(store, r.name, alias or r.alias)
    moves.reverse()
    return AliasHistory(r.name, moves)
