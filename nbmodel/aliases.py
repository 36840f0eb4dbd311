"""Aliases, their audit trail, protection and rollback.

MLflow keeps only where an alias points now. nbmodel writes every move as a tag of the
registered model, ``nbmodel.alias_log.<time>.<id>`` holding when, who, alias, from, to, why and
the kind of move, so the trail is ordinary MLflow data that survives restarts and shows in
``mlflow ui``. Rollback replays the trail like a stack: each set pushes a holder, each rollback
pops back to an earlier one, so repeated rollbacks walk further back rather than toggling.

Kernels on one store take turns: every read-decide-write of an alias runs under the store's
file lock (sqlite) or a lease on the model (any other store, see
:meth:`nbmodel.gateway.Gateway.lease`), so each entry's ``from`` is the previous entry's ``to``.
A move may name the version it expects to replace (``expected=``, ``--expect``) and is refused
with :class:`AliasMoved` if another kernel moved the alias first.

The trail stays cheap however long it grows: the newest entries stay tags of the model (where
they are read); when more than ``LIVE_MAX`` pile up the oldest ``PAGE`` go, as one JSON page,
into the artifacts of a run "alias trail" in the model's experiment, from where
:func:`alias_history` pages them back. A head tag ``nbmodel.alias_head``, written only when a
page is archived, holds the pages' run and each alias's rollback stack as of the archived
entries; the live entries replay on top of it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import html
import json
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .display import Shown
from .errors import (
    AliasMoved,
    AliasNotFound,
    BadReference,
    ProtectedAlias,
    RetiredVersion,
    RollbackError,
    StoreError,
)
from .refs import Ref, branch_of_alias, check_alias, parse_ref
from .store import Store, get_store
from .versions import Version, _user, model_aliases, resolve

TAG_PREFIX = "nbmodel.alias_"
LOG_PREFIX = "nbmodel.alias_log."
HEAD_TAG = "nbmodel.alias_head"
PROTECT_PREFIX = "nbmodel.alias_protect."
MAX_WHY = 1000
#: Entries kept as tags of the model; past this, the oldest ``PAGE`` are archived.
LIVE_MAX = 100
PAGE = 50
#: Holders a rollback can walk back through, per alias.
STACK_MAX = 500
PAGE_PATH = "nbmodel/alias_trail/page-{:06d}.json"
_MOVING = ("set", "deploy", "rollback", "delete")




class _Any:
    def __repr__(self) -> str:
        return "ANY"


#: ``expected=ANY``: move the alias wherever it points now.
ANY: Any = _Any()


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
    key: str = field(default="", compare=False)

    @property
    def ref(self) -> str:
        """The alias's reference, ``name@alias``.

        Example:
            >>> nbmodel.alias("iris/3", "production").ref  # doctest: +SKIP
            'iris@production'
        """
        return f"{self.name}@{self.alias}"

    def __str__(self) -> str:
        before = f"{self.name}/{self.from_version}" if self.from_version else "(unset)"
        after = f"{self.name}/{self.to_version}" if self.to_version else "(unset)"
        if not self.changed:
            return f"{self.ref} already points to {after}"
        if self.kind in ("protect", "unprotect", "refused", "canary", "shadow"):
            return f"{self.ref}: {self.why}"
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


def _parse(name: str, key: str, value: str) -> AliasMove | None:
    try:
        d = json.loads(value)
        at = _dt.datetime.fromisoformat(d["at"])
    except (ValueError, KeyError, TypeError):
        return None
    return AliasMove(
        name=name, alias=d.get("alias", ""), from_version=d.get("from"), to_version=d.get("to"),
        at=at, by=d.get("by", ""), why=d.get("why", ""), kind=d.get("kind", "set"), key=key,
    )


def _live(name: str, tags: dict[str, str], alias: str | None = None) -> list[AliasMove]:
    """The entries still kept as tags, oldest first."""
    out = []
    for key, value in sorted(tags.items()):
        if not key.startswith(LOG_PREFIX):
            continue
        move = _parse(name, key, value)
        if move is not None and (alias is None or move.alias == alias):
            out.append(move)
    return out


def _entries(store: Any, name: str, alias: str | None = None) -> list[AliasMove]:
    """The live trail of model ``name`` (of one alias), oldest first."""
    return _live(name, store.gateway.model_tags(name, LOG_PREFIX) or {}, alias)


def _apply(stack: list[int], e: AliasMove) -> None:
    """One entry's effect on an alias's stack of holders."""
    if e.kind not in _MOVING:
        return
    if e.kind == "delete" or e.to_version is None:
        stack.clear()
    elif e.kind == "rollback" and e.to_version in stack[:-1]:
        # Back to the nearest earlier holding: a history that went 1, 2, 1, 2 walks back
        # through each of them rather than jumping to the first.
        below = stack[:-1]
        del stack[len(below) - below[::-1].index(e.to_version):]
    elif not stack or stack[-1] != e.to_version:
        if not stack and e.from_version:
            stack.append(e.from_version)
        stack.append(e.to_version)
    del stack[:-STACK_MAX]


def _stack(entries: list[AliasMove], current: int | None) -> list[int]:
    stack: list[int] = []
    for e in entries:
        _apply(stack, e)
    if current is not None and (not stack or stack[-1] != current):
        # The alias was moved outside nbmodel (mlflow ui, another client): trust the registry.
        stack.append(current)
    return stack


@dataclass
class _Trail:
    """What a move reads of a model's trail, in one read: live entries, head and protections."""

    name: str
    tags: dict[str, str]
    head: dict[str, Any]
    aliases: dict[str, int] = field(default_factory=dict)

    @classmethod
    def read(cls, store: Store, name: str) -> _Trail:
        """The trail and the aliases of ``name``, in one read of the registry.

        Raises:
            ModelNotFound: there is no such model.
        """
        state = store.gateway.model_state(name, TAG_PREFIX)
        if state is None:
            model_aliases(store, name)  # raises ModelNotFound, naming the models there are
            state = ({}, {})
        aliases, tags = state
        try:
            head = dict(json.loads(tags[HEAD_TAG]))
        except (KeyError, ValueError, TypeError):
            head = {}  # nothing archived yet (or a trail written before archiving)
        head.setdefault("pages", 0)
        head.setdefault("run", None)
        head.setdefault("stacks", {})
        head.setdefault("upto", "")
        return cls(name, tags, head, aliases)

    def live(self, alias: str | None = None) -> list[AliasMove]:
        """Live entries not yet archived, oldest first (a crash mid-archive may leave some)."""
        return [e for e in _live(self.name, self.tags, alias) if e.key > self.head["upto"]]

    def stack(self, alias: str, current: int | None) -> list[int]:
        stack = list(self.head["stacks"].get(alias, []))
        for e in self.live(alias):
            _apply(stack, e)
        if current is not None and (not stack or stack[-1] != current):
            stack.append(current)  # moved outside nbmodel: trust the registry
        return stack

    def allowed(self, alias: str) -> list[str] | None:
        """Who may move ``alias``, or None when it is not protected."""
        value = self.tags.get(PROTECT_PREFIX + alias)
        if value is None:
            return None
        try:
            return [str(u) for u in json.loads(value).get("allow", [])]
        except (ValueError, AttributeError):
            return []

    def last_move(self, alias: str) -> AliasMove | None:
        moves = [e for e in self.live(alias) if e.kind in _MOVING]
        return moves[-1] if moves else None


def _entry(trail: _Trail, move: AliasMove) -> tuple[str, str]:
    """The tag (key, value) that keeps ``move`` in the trail, after its newest entry."""
    live = [k for k in trail.tags if k.startswith(LOG_PREFIX)]
    newest = max([0] + [int(k[len(LOG_PREFIX):].split(".")[0]) for k in live])
    ns = max(time.time_ns(), newest + 1)  # keys stay in order even if clocks differ
    key = f"{LOG_PREFIX}{ns:020d}.{secrets.token_hex(3)}"
    value = json.dumps({
        "alias": move.alias, "from": move.from_version, "to": move.to_version,
        "at": move.at.isoformat(timespec="milliseconds"), "by": move.by,
        "why": move.why[:MAX_WHY], "kind": move.kind,
    })
    return key, value


def _record(store: Any, move: AliasMove, trail: _Trail | None = None) -> None:
    """Append ``move`` to the trail (under the caller's lock), archiving the oldest when due."""
    trail = trail or _Trail.read(store, move.name)
    key, value = _entry(trail, move)
    store.gateway.set_model_tag(move.name, key, value)
    _recorded(store, trail, move, key, value)


def _recorded(store: Any, trail: _Trail, move: AliasMove, key: str, value: str) -> None:
    """``move`` is stored as tag ``key``: keep it in ``trail``, and archive the oldest when due."""
    trail.tags[key] = value
    move.key = key
    live = sorted(k for k in trail.tags if k.startswith(LOG_PREFIX))
    if len(live) <= LIVE_MAX:
        return
    old = live[:max(PAGE, len(live) - LIVE_MAX)]
    head = trail.head
    for e in trail.live():
        if e.key <= old[-1]:
            _apply(head["stacks"].setdefault(e.alias, []), e)
    _archive(store, trail, old)
    head["upto"] = old[-1]
    store.gateway.set_model_tag(move.name, HEAD_TAG, json.dumps(head))
    for k in old:
        # Only once the pages and the head that covers them are stored: a crash leaves entries
        # both archived and live (read once, replayed once), never a gap.
        store.gateway.delete_model_tag(move.name, k)
        trail.tags.pop(k, None)


def _archive(store: Any, trail: _Trail, keys: list[str]) -> None:
    head = trail.head
    gw = store.gateway
    if not head.get("run"):
        run = gw.create_run(store.experiment_id(trail.name), run_name="alias trail",
                            tags={"nbmodel.alias_trail": trail.name})
        head["run"] = run.info.run_id
        gw.finish_run(head["run"])
    for start in range(0, len(keys), PAGE):
        number = int(head.get("pages", 0)) + 1
        entries = [{"key": k, **json.loads(trail.tags[k])} for k in keys[start:start + PAGE]]
        gw.log_dict(head["run"], {"name": trail.name, "entries": entries}, PAGE_PATH.format(number))
        head["pages"] = number


def _page(store: Any, name: str, run_id: str, number: int) -> list[AliasMove]:
    """An archived page of the trail, oldest first."""
    with tempfile.TemporaryDirectory(prefix="nbmodel-trail-") as tmp:
        path = store.gateway.download_artifacts(run_id, PAGE_PATH.format(number), tmp)
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    out = []
    for d in data.get("entries", []):
        move = _parse(name, d.get("key", ""), json.dumps(d))
        if move is not None:
            out.append(move)
    return out


@contextlib.contextmanager
def _turn(store: Store, name: str) -> Iterator[None]:
    """This kernel's turn to read, decide and write the aliases of ``name``."""
    with store.exclusive(name, owner=_user()):
        yield


def _guard(store: Store, trail: _Trail, alias: str, current: int | None, *, expected: Any,
           wanted: str, kind: str) -> None:
    """Refuse a move this user may not make, or one that acts on a stale read."""
    allow = trail.allowed(alias)
    user = _user()
    if allow is not None and user not in allow:
        who = ", ".join(allow) or "nobody"
        refusal = AliasMove(trail.name, alias, current, current, _dt.datetime.now(_dt.UTC), user,
                            f"refused {kind} to {wanted} by {user}: only {who} may move it", "refused")
        _record(store, refusal, trail)
        raise ProtectedAlias(
            f"{trail.name}@{alias} is protected: only {who} may move it, and you are {user!r}; "
            f"ask one of them (the attempt is in %model_log {trail.name} --aliases)")
    if expected is not ANY and expected != current:
        now = f"{trail.name}/{current}" if current is not None else "nothing (unset)"
        last = trail.last_move(alias)
        if last is not None and last.to_version == current:
            who = f"by {last.by} at {last.at:%Y-%m-%d %H:%M:%S} UTC ({last.kind})"
        else:
            who = "outside nbmodel"
        raise AliasMoved(
            f"{trail.name}@{alias} was moved {who} and points to {now}, not to version {expected} "
            f"as this move expected; look at %model_log {trail.name} --aliases and try again")


def _move(store: Store, trail: _Trail, alias: str, to: int, *, why: str, kind: str,
          current: int | None) -> AliasMove:
    name = trail.name
    move = AliasMove(name=name, alias=alias, from_version=current, to_version=to,
                     at=_dt.datetime.now(_dt.UTC), by=_user(), why=why or "", kind=kind)
    key, value = _entry(trail, move)
    gw = store.gateway
    # Under this kernel's turn nobody else writes the alias or its trail, so the two writes go
    # at once; if either fails, the other is undone and the store is left as it was.
    try:
        gw.together(lambda: gw.set_alias(name, alias, to), lambda: gw.set_model_tag(name, key, value))
    except Exception as exc:
        if not isinstance(exc, StoreError):  # a store that does not answer takes no undo either
            _undo_move(store, name, alias, current, key)
        if _missing(exc):
            resolve(f"{name}/{to}")  # raises VersionNotFound, listing the versions there are
        raise
    _recorded(store, trail, move, key, value)
    if store.is_server:
        _LAST_STACKS[(store.uri, name, alias)] = trail.stack(alias, to)
    return move


#: (store, model, alias) -> the alias's stack of holders after this kernel's last move of it.
_LAST_STACKS: dict[tuple[str, str, str], list[int]] = {}


def _guess(store: Store, name: str, alias: str) -> int | None:
    """The version a rollback of ``alias`` will likely go to, from this kernel's last move of
    it on a server (None without one; only server moves are kept): read alongside the trail,
    it saves a round trip."""
    stack = _LAST_STACKS.get((store.uri, name, alias))
    return stack[-2] if stack and len(stack) >= 2 else None


def _missing(exc: BaseException) -> bool:
    return (getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"
            or "not found" in str(exc).lower())


def _undo_move(store: Store, name: str, alias: str, current: int | None, key: str) -> None:
    """Put the alias back where it was and drop the trail entry of a move that half failed."""
    gw = store.gateway
    with contextlib.suppress(Exception):
        if current is None:
            gw.delete_alias(name, alias)
        else:
            gw.set_alias(name, alias, current)
    with contextlib.suppress(Exception):
        gw.delete_model_tag(name, key)


def set_alias(ref: str | Ref, alias: str, *, message: str = "", force: bool = False,
              kind: str = "set", expected: int | None = ANY) -> AliasMove:
    """Point ``alias`` at the version ``ref`` names, and keep the move in the audit trail.

    Args:
        ref: the version (``iris/3``; ``iris`` is the newest).
        alias: the alias name (``production``).
        message: why, kept in the trail.
        force: allow a retired version.
        kind: the kind of move kept in the trail (``set``, or ``deploy`` when a deploy moves it).
        expected: the version the alias should point to now (None: unset); the move is refused
            if another kernel moved it since. By default the move replaces whatever holds it.

    Returns:
        The :class:`AliasMove`; ``changed`` is False when the alias already pointed there.

    Raises:
        BadReference: the alias name is not valid.
        RetiredVersion: if the version is retired and ``force`` is not given.
        AliasMoved: the alias does not point to ``expected``. Nothing changes.
        ProtectedAlias: the alias is protected and this user may not move it (the attempt is
            kept in the trail).

    Example:
        >>> nbmodel.alias("iris/3", "production", message="best on holdout")  # doctest: +SKIP
    """
    check_alias(alias)
    if branch_of_alias(alias) is not None:
        raise BadReference(f"{alias!r} holds the head of branch {branch_of_alias(alias)!r}; "
                           "branches move by commits and %model_merge, or choose another alias")
    store = get_store()
    name = parse_ref(ref).name
    with _turn(store, name):
        # Read under the turn: a version retired by another kernel a moment ago is refused. The
        # version and the trail are independent reads, at once on a server.
        v, trail = store.gateway.together(lambda: resolve(ref), lambda: _Trail.read(store, name))
        if v.retired and not force:
            raise RetiredVersion(
                f"{v.ref} is retired; choose another version, or pass --force to point {alias} at it anyway"
            )
        current = trail.aliases.get(alias)
        _guard(store, trail, alias, current, expected=expected, wanted=v.ref, kind=kind)
        if current == v.version:
            return AliasMove(v.name, alias, current, current, _dt.datetime.now(_dt.UTC),
                             _user(), message, kind, changed=False)
        if kind == "set" and trail.allowed(alias) is not None:
            message = _tests_gate(store, trail, alias, v, current, force=force, message=message)
        return _move(store, trail, alias, v.version, why=message, kind=kind, current=current)


def _version(store: Store, name: str, number: int, aliases: dict[str, int]) -> Version:
    """Version ``number`` of ``name``, with the aliases the caller has just read (one request)."""
    rows, _ = store.gateway.versions(name, version=number)
    if not rows:
        return resolve(f"{name}/{number}")  # raises VersionNotFound, listing the versions there are
    return Version.from_row(rows[0], aliases)


def move_pointer(name: str, alias: str, to: int | None, *, expected: int | None = ANY,
                 kind: str, message: str = "") -> AliasMove:
    """Move (``to=None``: remove) an alias another module keeps as its own pointer, such as a
    branch head (:mod:`nbmodel.branches`), with the same turn, compare-and-set and audit trail
    as :func:`set_alias`.

    Args:
        name: the model.
        alias: the alias (``branch-experiment``).
        to: the version to point it at, or None to remove it.
        expected: the version it should point to now (None: unset); refused if it does not.
        kind: the kind of move kept in the trail (``branch``, ``commit``, ``merge``...).
        message: why, kept in the trail.

    Returns:
        The :class:`AliasMove`; ``changed`` is False when it pointed there already.

    Raises:
        AliasMoved: the alias does not point to ``expected``. Nothing changes.
        ProtectedAlias: the alias is protected and this user may not move it.

    Example:
        >>> move_pointer("iris", "branch-exp", 4, expected=3, kind="commit")  # doctest: +SKIP
        iris@branch-exp moved from iris/3 to iris/4
    """
    store = get_store()
    with _turn(store, name):
        trail = _Trail.read(store, name)
        current = trail.aliases.get(alias)
        wanted = f"{name}/{to}" if to is not None else "nothing"
        _guard(store, trail, alias, current, expected=expected, wanted=wanted, kind=kind)
        if current == to:
            return AliasMove(name, alias, current, current, _dt.datetime.now(_dt.UTC), _user(),
                             message, kind, changed=False)
        if to is not None:
            return _move(store, trail, alias, to, why=message, kind=kind, current=current)
        store.gateway.delete_alias(name, alias)
        move = AliasMove(name, alias, current, None, _dt.datetime.now(_dt.UTC), _user(), message, kind)
        _record(store, move, trail)
        return move


def note(name: str, alias: str, message: str, *, kind: str) -> AliasMove:
    """Keep a step that does not move the alias in its audit trail (a canary's share growing,
    a shadow starting), so the trail tells the whole rollout.

    Args:
        name: the model.
        alias: the alias the rollout is on.
        message: what happened.
        kind: ``canary`` or ``shadow``.

    Returns:
        The entry kept (``from`` and ``to`` are the alias's holder).

    Example:
        >>> note("iris", "production", "canary of iris/4: 10% -> 25%", kind="canary")  # doctest: +SKIP
    """
    store = get_store()
    with _turn(store, name):
        trail = _Trail.read(store, name)
        current = trail.aliases.get(alias)
        move = AliasMove(name, alias, current, current, _dt.datetime.now(_dt.UTC), _user(), message, kind)
        _record(store, move, trail)
        return move


def _to_version(r: Ref, to: int | str) -> int:
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
    return int(text)


def rollback(name: str | Ref, *, alias: str | None = None, to: int | str | None = None,
             message: str = "", expected: int | None = ANY, force: bool = False) -> AliasMove:
    """Move an alias back to the version that held it before, or to version ``to``.

    Args:
        name: the model (``iris``; ``iris@staging`` names the alias too).
        alias: the alias to move back; ``production`` unless the reference names one.
        to: the version to move it to, instead of the previous holder: ``2``, ``"2"``,
            ``"iris/2"`` or ``"models:/iris/2"``.
        message: why, kept in the audit trail.
        expected: the version meant to be undone; refused if the alias points elsewhere now.
        force: onto a protected alias, move to a version whose tests fail (kept in the trail).

    Raises:
        AliasNotFound: the alias is not set. RollbackError: no earlier holder.
        BadReference: ``to`` is not a version of this model.
        RetiredVersion, VersionNotFound: the target cannot take the alias. Nothing changes.
        AliasMoved: another kernel moved the alias away from ``expected``.
        ProtectedAlias: this user may not move the alias (the attempt is kept in the trail).

    Example:
        >>> nbmodel.rollback("iris")  # doctest: +SKIP
        iris@production rolled back from iris/3 to iris/2
    """
    r = parse_ref(name)
    if r.version is not None:
        raise RollbackError(
            f"roll back a model's alias, not a version: %model_rollback {r.name} --to {r.version}")
    alias = check_alias(alias or r.alias or "production")
    to_version = None if to is None else _to_version(r, to)
    store = get_store()
    with _turn(store, r.name):
        # With --to, the trail and the target version are independent reads, made at once on a
        # server; otherwise the target comes from the trail and is read after it. (Searching for
        # every retired version instead costs a server time that grows with the model's length.)
        # Without --to, a server also reads at once the version this kernel's own last move
        # of the alias implies (both reads under the turn: as fresh as each other); a guess
        # the trail does not confirm is dropped, and the right version read after it.
        guess = _guess(store, r.name, alias) if to_version is None else None
        if to_version is not None or guess is not None:
            wanted_version = to_version if to_version is not None else guess
            trail, target_rows = store.gateway.together(
                lambda: _Trail.read(store, r.name),
                lambda: store.gateway.versions(r.name, version=wanted_version)[0])
        else:
            trail, target_rows = _Trail.read(store, r.name), None
        aliases = trail.aliases
        current = aliases.get(alias)
        if current is None:
            known = ", ".join(f"{a} (version {v})" for a, v in sorted(aliases.items()))
            raise AliasNotFound(
                f"{r.name} has no alias {alias!r} to roll back; "
                + (f"its aliases are {known}" if known else f"set one with %model_alias {r.name}/N {alias}"))
        wanted = f"{r.name}/{to_version}" if to_version is not None else "its previous holder"
        _guard(store, trail, alias, current, expected=expected, wanted=wanted, kind="rollback")
        if to_version is not None:
            number = to_version
            if number == current:
                raise RollbackError(f"{r.name}@{alias} already points to {r.name}/{number}")
        else:
            stack = trail.stack(alias, current)
            if len(stack) < 2:
                raise RollbackError(
                    f"{r.name}@{alias} has no earlier holder to roll back to (it points to "
                    f"{r.name}/{current}); name one with --to VERSION")
            number = stack[-2]
            if number != guess:
                target_rows = None
        if target_rows:
            target = Version.from_row(target_rows[0], aliases)
        else:
            target = _version(store, r.name, number, aliases)  # VersionNotFound if there is none
        if target.retired:
            raise RetiredVersion(
                f"cannot roll {r.name}@{alias} back to {target.ref}: it is retired; "
                "choose another with --to VERSION")
        if trail.allowed(alias) is not None:
            message = _tests_gate(store, trail, alias, target, current, force=force, message=message)
        return _move(store, trail, alias, target.version, why=message, kind="rollback", current=current)


def _tests_gate(store: Store, trail: _Trail, alias: str, v: Any, current: int | None, *,
                force: bool, message: str, kind: str = "set") -> str:
    """Refuse a version whose tests fail or never ran on its cases (the refusal is kept in the
    trail), or with ``force`` let it through and return the message that says so."""
    from .modeltests import gate_problem, refusal

    problem = gate_problem(v)
    if problem is None:
        return message
    if force:
        return f"{message} [--force: {v.ref} {problem}]".strip()
    why = f"refused {kind} to {v.ref} by {_user()}: it {problem}"
    _record(store, AliasMove(trail.name, alias, current, current, _dt.datetime.now(_dt.UTC),
                             _user(), why, "refused"), trail)
    raise refusal(v.ref, problem)


def tests_gate(v: Any, alias: str, *, force: bool = False, message: str = "") -> str:
    """What a deploy checks before it serves ``v`` behind ``alias``: its tests (see
    :func:`nbmodel.modeltests.gate_problem`).

    Args:
        v: the :class:`~nbmodel.versions.Version` to deploy.
        alias: the alias the deploy would move.
        force: deploy it even though its tests fail.
        message: the deploy's message.

    Returns:
        The message to keep in the trail (noting the override under ``force``).

    Raises:
        GateRefused: its tests fail or never ran on its current cases (the refusal is in the
            trail).

    Example:
        >>> tests_gate(nbmodel.resolve("iris/4"), "production")  # doctest: +SKIP
        ''
    """
    store = get_store()
    with _turn(store, v.name):
        trail = _Trail.read(store, v.name)
        current = trail.aliases.get(alias)
        return _tests_gate(store, trail, alias, v, current, force=force, message=message,
                           kind="deploy")


def delete_alias(name: str | Ref, alias: str, *, message: str = "", expected: int | None = ANY) -> AliasMove:
    """Remove an alias (kept in the trail as a move to nothing).

    Args:
        name: the model.
        alias: the alias to remove.
        message: why, kept in the trail.
        expected: the version it should point to now; refused if another kernel moved it.

    Returns:
        The :class:`AliasMove` to nothing.

    Raises:
        AliasNotFound: the model has no such alias.
        AliasMoved, ProtectedAlias: as for :func:`set_alias`.

    Example:
        >>> nbmodel.delete_alias("iris", "staging")  # doctest: +SKIP
    """
    r = parse_ref(name)
    store = get_store()
    with _turn(store, r.name):
        trail = _Trail.read(store, r.name)
        current = trail.aliases.get(alias)
        if current is None:
            raise AliasNotFound(f"{r.name} has no alias {alias!r}")
        _guard(store, trail, alias, current, expected=expected, wanted="nothing", kind="delete")
        store.gateway.delete_alias(r.name, alias)
        move = AliasMove(r.name, alias, current, None, _dt.datetime.now(_dt.UTC), _user(),
                         message, "delete")
        _record(store, move, trail)
        return move


def protect(name: str | Ref, alias: str, allow: list[str] | str, *, message: str = "") -> AliasMove:
    """Let only the users in ``allow`` move or roll back ``alias`` (kept in the trail).

    Users are named as nbmodel names the mover: ``NBMODEL_USER``, else the login.

    Args:
        name: the model (``iris``).
        alias: the alias (``production``); it need not be set yet.
        allow: the users, as a list or ``"alice,bob"``.
        message: why, kept in the trail.

    Returns:
        The trail's entry for it.

    Raises:
        ProtectedAlias: the alias is protected already and this user is not allowed.
        BadReference: no users given, or a bad alias name.

    Example:
        >>> nbmodel.protect("iris", "production", "alice,bob")  # doctest: +SKIP
    """
    users = _users(allow)
    if not users:
        raise BadReference(f"name who may move {alias}: --allow alice,bob")
    return _protection(name, alias, users, message)


def unprotect(name: str | Ref, alias: str, *, message: str = "") -> AliasMove:
    """Let anyone move ``alias`` again (only an allowed user may do so).

    Args:
        name: the model.
        alias: the protected alias.
        message: why, kept in the trail.

    Returns:
        The trail's entry for it.

    Raises:
        ProtectedAlias: this user is not among those allowed.
        AliasNotFound: the alias is not protected.

    Example:
        >>> nbmodel.unprotect("iris", "production")  # doctest: +SKIP
    """
    return _protection(name, alias, None, message)


def _users(allow: list[str] | str) -> list[str]:
    items = allow.split(",") if isinstance(allow, str) else allow
    return sorted({u.strip() for u in items if u and u.strip()})


def _protection(name: str | Ref, alias: str, users: list[str] | None, message: str) -> AliasMove:
    r = parse_ref(name)
    check_alias(alias)
    store = get_store()
    with _turn(store, r.name):
        trail = _Trail.read(store, r.name)
        current = trail.aliases.get(alias)
        kind = "protect" if users is not None else "unprotect"
        if users is None and trail.allowed(alias) is None:
            raise AliasNotFound(f"{r.name}@{alias} is not protected")
        _guard(store, trail, alias, current, expected=ANY, wanted=kind, kind=kind)
        key = PROTECT_PREFIX + alias
        if users is None:
            store.gateway.delete_model_tag(r.name, key)
            trail.tags.pop(key, None)
            why = "anyone may move it now"
        else:
            value = json.dumps({"allow": users, "by": _user(), "at": _dt.datetime.now(_dt.UTC).isoformat()})
            store.gateway.set_model_tag(r.name, key, value)
            trail.tags[key] = value
            why = f"protected: only {', '.join(users)} may move it"
        if message:
            why = f"{why} ({message})"
        move = AliasMove(r.name, alias, current, current, _dt.datetime.now(_dt.UTC), _user(), why, kind)
        _record(store, move, trail)
        return move


@dataclass(repr=False)
class AliasHistory(Shown):
    """The audit trail of a model's aliases, newest first (one page of it when ``more``)."""

    name: str
    moves: list[AliasMove]
    more: bool = False
    offset: int = 0

    def __iter__(self) -> Iterator[AliasMove]:
        return iter(self.moves)

    def __len__(self) -> int:
        return len(self.moves)

    def _rows(self) -> list[list[str]]:
        return [[f"{m.at:%Y-%m-%d %H:%M:%S}", m.alias,
                 str(m.from_version or "-"), str(m.to_version or "-"), m.kind, m.by, m.why]
                for m in self.moves]

    _head = ["when (UTC)", "alias", "from", "to", "kind", "who", "why"]

    def _next(self) -> str:
        return (f"older moves: nbmodel.alias_history({self.name!r}, limit={len(self.moves)}, "
                f"offset={self.offset + len(self.moves)})")

    def __str__(self) -> str:
        from .display import text_table

        if not self.moves:
            return f"{self.name}: no alias moves yet"
        text = f"alias moves of {self.name}, newest first\n" + text_table(self._head, self._rows())
        return text + ("\n" + self._next() if self.more else "")

    def _repr_html_(self) -> str:
        from .display import html_table

        if not self.moves:
            return f"<div class='nbm-line'>{html.escape(self.name)}: no alias moves yet</div>"
        table = html_table(self._head, self._rows(), caption=f"alias moves of {self.name}")
        return table + (f"<div class='nbm-line'>{html.escape(self._next())}</div>" if self.more else "")


def alias_history(name: str | Ref, alias: str | None = None, *, limit: int | None = None,
                  offset: int = 0) -> AliasHistory:
    """Alias moves of a model (or of one alias), newest first: all of them, or one page.

    The newest entries are read from the model's tags, in the same time however long the
    trail is; older pages come from the archive only when the page asked for reaches them.

    Args:
        name: the model (``iris@production`` names the alias too).
        alias: only the moves of this alias.
        limit: at most this many moves (all when None).
        offset: skip this many of the newest.

    Returns:
        An :class:`AliasHistory`, shown as a table.

    Raises:
        ModelNotFound: there is no such model.

    Example:
        >>> nbmodel.alias_history("iris", "production", limit=20)  # doctest: +SKIP
    """
    r = parse_ref(name)
    alias = alias or r.alias
    store = get_store()
    model_aliases(store, r.name)
    trail = _Trail.read(store, r.name)
    moves = _live(r.name, trail.tags, alias)
    moves.reverse()
    want = None if limit is None else offset + limit
    seen = {m.key for m in moves}
    page = int(trail.head.get("pages", 0))
    while page >= 1 and (want is None or len(moves) < want):
        older = [m for m in _page(store, r.name, trail.head["run"], page)
                 if m.key not in seen and (alias is None or m.alias == alias)]
        moves.extend(reversed(older))
        seen.update(m.key for m in older)
        page -= 1
    more = want is not None and (len(moves) > want or page >= 1)
    return AliasHistory(r.name, moves[offset:want], more=more, offset=offset)
