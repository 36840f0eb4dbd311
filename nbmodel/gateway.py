"""The one gateway to MLflow: every registry and tracking call nbmodel makes goes through it.

Sqlite, PostgreSQL and ``http://`` stores differ only here. Every call is retried while
sqlite says "database is locked".

MLflow's SQLAlchemy registry builds ORM objects for every version and every tag: listing a
model with 1000 versions costs most of a second, and each alias move first loads the whole
registered model (with its latest versions) several times. For SQL-backed stores (the embedded
sqlite store, a PostgreSQL backend opened directly) nbmodel reads MLflow's own tables with
three plain SELECTs, and writes aliases and tags through MLflow's store methods (MLflow's own
write logic, without the client's extra prompt checks). Any other store (an ``http://`` server),
or any error on the fast path (a schema MLflow changed), falls back to the public client API.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from .errors import LeaseBusy
from .tagpack import PACK, unpack, without

T = TypeVar("T")

_log = logging.getLogger(__name__)

#: Registered models named so are leases (see :meth:`Gateway.lease`), never listed.
LEASE_PREFIX = "nbmodel.lock."
#: A server's whole history of a model is read in up to SPLIT_MAX ranges of SPLIT_PAGE or more
#: versions at once (the ranges come from the newest version seen before).
SPLIT_PAGE = 50
SPLIT_MAX = 2
#: What :meth:`Gateway._state_json` answers when a server's answer is not what it expects.
_UNEXPECTED = object()
#: Call sites of :meth:`Gateway.together` that ran once already (their imports are done).
_SITES_SEEN: set[tuple[Any, ...]] = set()
_BREAK_PREFIX = "nbmodel.lockbreak."  # not under LEASE_PREFIX: no model's lease can be named so
_LEASE_TAG = "nbmodel.lease"
#: A model tag nbmodel sets anew after each write of a version's tags: MLflow keeps no time of
#: such writes, and a server's cached history (see :meth:`Gateway.history`) must see them.
VERSIONS_CHANGED_TAG = "nbmodel.versions_changed"
#: A read of a server's cached history asks for this many of the most recently changed versions.
PROBE = 5
#: After a read served from the cache, the whole history is read again in the background, at most
#: this often per model (seconds): what only a whole read sees shows on the next read after it.
REFRESH_EVERY = 1.0


def _total(read: int, newest: int, token: str | None) -> int:
    """How many versions a model has, from ``read`` of them (newest first, the newest numbered
    ``newest``): exactly ``read`` without a next page's ``token``; otherwise the newest's number
    (versions are numbered from 1), an estimate that a deleted version makes too high."""
    return read if not token else max(newest, read)


def _one_by_one(calls: tuple[Callable[[], Any], ...]) -> list[Any]:
    """Each call in turn, all to their end; then the first error, if any, is raised."""
    results: list[Any] = []
    error: BaseException | None = None
    for call in calls:
        try:
            results.append(call())
        except BaseException as exc:  # noqa: BLE001 - raised once the others are done
            error = error or exc
            results.append(None)
    if error is not None:
        raise error
    return results


class Connection(Protocol):
    """What the gateway needs of a store: its MLflow client, retries and the write lock."""

    @property
    def client(self) -> Any:
        """MLflow's client for the store, opened on first use.

        Example:
            >>> nbmodel.get_store().client  # doctest: +SKIP
            <mlflow.tracking.client.MlflowClient object at 0x...>
        """
        ...

    @property
    def artifact_root(self) -> str | None:
        """Where new runs keep their artifacts, or ``None`` to let MLflow choose.

        Example:
            >>> nbmodel.get_store().artifact_root  # doctest: +SKIP
            '/home/ann/course/mlruns'
        """
        ...

    @property
    def is_server(self) -> bool:
        """Whether the store is reached over HTTP (an ``mlflow server``).

        Example:
            >>> nbmodel.get_store().is_server  # doctest: +SKIP
            False
        """
        ...

    def retry(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` with its arguments, retrying while the store is busy.

        Args:
            fn: the function to call.
            *args: its positional arguments.
            **kwargs: its keyword arguments.

        Returns:
            What ``fn`` returns.

        Example:
            >>> nbmodel.get_store().retry(max, 1, 2)  # doctest: +SKIP
            2
        """
        ...

    def write_lock(self) -> contextlib.AbstractContextManager[None]:
        """A context manager that serialises writes to the store.

        Example:
            >>> with nbmodel.get_store().write_lock():  # doctest: +SKIP
            ...     pass
        """
        ...



@dataclass
class Row:
    """One model version as stored, with its tags."""

    name: str
    version: int
    created_ms: int
    description: str | None
    user_id: str | None
    run_id: str | None
    source: str | None
    tags: dict[str, str] = field(default_factory=dict)
    updated_ms: int = 0  # MLflow's last_updated_timestamp


@dataclass(frozen=True)
class _Cached:
    """A server's whole history of one model as last read (see :meth:`Gateway.history`).

    ``model_updated`` and ``changed`` are the model's ``last_updated_timestamp`` and
    :data:`VERSIONS_CHANGED_TAG` read *before* the rows (``verified``), so that the rows hold every
    change they stand for.
    """

    rows: tuple[Row, ...]  # newest first
    model_created: int  # the model's creation_timestamp: a model deleted and made anew is another
    model_updated: int
    changed: str
    verified: bool
    read_at: float  # time.monotonic() of the last whole read

    @property
    def updated(self) -> int:
        """The newest ``last_updated_timestamp`` among the rows."""
        return max((r.updated_ms for r in self.rows), default=0)


class Gateway:
    """Every registry and tracking call for one store, retried while sqlite is locked.

    Reached as ``store.gateway``; nothing else in nbmodel touches MLflow's client.

    Example:
        >>> gw = nbmodel.get_store().gateway  # doctest: +SKIP
        >>> gw.aliases("iris")  # doctest: +SKIP
        {'production': 3}
    """

    def __init__(self, store: Connection) -> None:
        self.store = store
        self._sql_store: Any = None
        self._engine: Any = None
        self._workspace: str | None = None
        self._fast: bool | None = None  # unknown until first use
        self._experiments: dict[str, str] = {}
        self._newest: dict[str, int] = {}  # per model: the newest version a whole read saw
        self._histories: dict[str, _Cached] = {}  # per model: a server's history (see history)
        self._refreshing: dict[str, Any] = {}  # per model: its history's re-read under way (a thread)
        self._releasing: dict[str, Any] = {}  # lease name -> its release under way (a server's)
        self._release_pool: Any = None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """MLflow's client method ``method``, retried while sqlite says "database is locked"."""
        return self.store.retry(getattr(self.store.client, method), *args, **kwargs)

    def _registry_call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A registry write straight to MLflow's registry client, retried like :meth:`_call`.

        ``MlflowClient`` reads the whole registered model before each registry write, to refuse
        prompts; nbmodel never writes to a prompt, and on a team server that read is a round trip
        of its own in every alias move.
        """
        registry = self.store.client._get_registry_client()
        return self.store.retry(getattr(registry, method), *args, **kwargs)

    # -- plumbing ----------------------------------------------------------------------------
    def _sql(self) -> Any:
        if self._fast is None:
            self._fast = False
            try:
                reg = self.store.client._get_registry_client().store
                engine = getattr(reg, "engine", None)
                if engine is not None:
                    self._sql_store = reg
                    self._engine = engine
                    ws = getattr(reg, "_get_active_workspace", None)
                    self._workspace = ws() if callable(ws) else None
                    self._fast = True
            except Exception:  # noqa: BLE001 - any surprise: use the public API
                self._fast = False
        return self._engine if self._fast else None

    def _query(self, sql: str, **params: Any) -> list[Any]:
        from sqlalchemy import text

        engine = self._sql()
        where_ws = " AND workspace = :ws" if self._workspace is not None else ""
        with engine.connect() as conn:
            return list(conn.execute(text(sql.format(ws=where_ws)), {**params, "ws": self._workspace}))

    def _disable(self, exc: BaseException) -> None:
        _log.debug("nbmodel: fast registry path off (%s); using the MLflow client", exc)
        self._fast = False

    def together(self, *calls: Callable[[], Any]) -> list[Any]:
        """Make independent calls at once on a server (each is a round trip), one by one otherwise.

        On a server every call runs to its end; then the first error, in the order given, is
        raised. The first run of each call site in a process is one by one there too, on the
        calling thread, so that MLflow's lazy imports never run in two threads at once.

        Args:
            *calls: functions without arguments, each making its own requests.

        Returns:
            What each call returned, in order.

        Example:
            >>> aliases, tags = store.gateway.together(  # doctest: +SKIP
            ...     lambda: store.gateway.aliases("iris"), lambda: store.gateway.model_tags("iris"))
        """
        if not self.store.is_server or len(calls) < 2:
            return [call() for call in calls]
        site = tuple(getattr(call, "__code__", call) for call in calls)
        if site not in _SITES_SEEN:
            # The first run of a call site is one by one, on the calling thread: a first request
            # imports much of MLflow (and protobuf files) lazily, and two threads importing at
            # once can hand each other half-built modules ("Couldn't build proto file into
            # descriptor pool"). Later runs find everything imported.
            _SITES_SEEN.add(site)
            return _one_by_one(calls)
        from concurrent.futures import ThreadPoolExecutor

        # Threads of its own for each call (a few microseconds against a round trip of
        # milliseconds): a call that itself sends requests at once cannot starve a shared pool.
        with ThreadPoolExecutor(len(calls) - 1, thread_name_prefix="nbmodel-store") as pool:
            futures = [pool.submit(call) for call in calls[1:]]
            # the first call on this thread, then each other's result: all run to their end
            return _one_by_one((calls[0], *(future.result for future in futures)))

    def _rest(self, endpoint: str, **params: Any) -> Any:
        """The JSON answer of a GET to the server's REST API, through MLflow's own request code
        (its credentials, TLS settings and retries): ``{}`` when what it names does not exist,
        None on any other answer but 200."""
        from mlflow.utils.rest_utils import http_request

        response = http_request(self._host_creds(), endpoint, "GET", params=params)
        if response.status_code == 200:
            return response.json()
        return {} if _error(response).get("error_code") == "RESOURCE_DOES_NOT_EXIST" else None

    def _host_creds(self) -> Any:
        """The registry's REST credentials as MLflow reads them now (None: not a REST store)."""
        get_creds = getattr(self.store.client._get_registry_client().store, "get_host_creds", None)
        return get_creds() if get_creds is not None else None

    # -- reads -------------------------------------------------------------------------------
    def aliases(self, name: str) -> dict[str, int] | None:
        """Alias -> version of a model.

        Args:
            name: the registered model's name.

        Returns:
            A dict, or None if the model does not exist.

        Example:
            >>> store.gateway.aliases("iris")  # doctest: +SKIP
        """
        if self._sql() is not None:
            try:
                if not self._query("SELECT 1 FROM registered_models WHERE name = :n{ws}", n=name):
                    return None
                rows = self._query(
                    "SELECT alias, version FROM registered_model_aliases WHERE name = :n{ws}", n=name)
                return {a: int(v) for a, v in rows}
            except Exception as exc:  # noqa: BLE001
                self._disable(exc)
        if self.store.is_server:
            state = self._state_json(name, None)
            if state is not _UNEXPECTED:
                return None if state is None else state[0]
        rm = self.model(name)
        return None if rm is None else {a: int(v) for a, v in (rm.aliases or {}).items()}

    def _model_json(self, name: str) -> Any:
        """A server's registered model ``name`` as plain JSON: its dict, ``{}`` when there is no
        such model, or None on any other answer."""
        got = self._rest("/api/2.0/mlflow/registered-models/get", name=name)
        if got is None or got == {}:
            return got
        return got.get("registered_model") if isinstance(got, dict) else None

    def _state_json(self, name: str, prefix: str | None) -> Any:
        """A server's aliases and tags of ``name`` (those starting with ``prefix``; none when it is
        None) read as plain JSON: ``(aliases, tags)``, None when there is no such model, or
        ``_UNEXPECTED`` on any other answer (the caller then asks MLflow's client).

        MLflow's client turns the answer (the whole live alias trail, and the newest version's
        tags) into protobuf messages and then entities, which costs the kernel more than reading
        it; an alias move and ``%model_log`` read it every time.
        """
        rm = self.store.retry(self._model_json, name)
        if rm == {}:
            return None
        try:
            if rm is None:
                return _UNEXPECTED
            return _aliases_json(rm), _tags_json(rm, prefix)
        except (KeyError, TypeError, ValueError) as exc:
            _log.debug("nbmodel: unexpected answer from %s (%s); asking the MLflow client", self.store, exc)
            return _UNEXPECTED

    def model_state(self, name: str, prefix: str = "") -> tuple[dict[str, int], dict[str, str]] | None:
        """Aliases and tags (those starting with ``prefix``) of a registered model, in one read.

        An alias move reads both before it decides; on a team server this is one request.

        Args:
            name: the registered model's name.
            prefix: keep only tags whose key starts with it.

        Returns:
            ``(aliases, tags)``, or None if the model does not exist.

        Example:
            >>> store.gateway.model_state("iris", "nbmodel.alias_log.")  # doctest: +SKIP
            ({'production': 3}, {...})
        """
        if self._sql() is not None:
            aliases = self.aliases(name)
            tags = self.model_tags(name, prefix) if aliases is not None else None
            return None if aliases is None or tags is None else (aliases, tags)
        if self.store.is_server:
            state = self._state_json(name, prefix)
            if state is not _UNEXPECTED:
                return state
        rm = self.model(name)
        if rm is None:
            return None
        return ({a: int(v) for a, v in (rm.aliases or {}).items()},
                {k: v for k, v in (rm.tags or {}).items() if k.startswith(prefix)})

    def model_tags(self, name: str, prefix: str = "") -> dict[str, str] | None:
        """Tags of a registered model (those starting with ``prefix``).

        Args:
            name: the registered model's name.
            prefix: keep only tags whose key starts with it.

        Returns:
            A dict, or None if the model does not exist.

        Example:
            >>> store.gateway.model_tags("iris", "nbmodel.alias_log.")  # doctest: +SKIP
        """
        if self._sql() is not None:
            try:
                if not self._query("SELECT 1 FROM registered_models WHERE name = :n{ws}", n=name):
                    return None
                rows = self._query(
                    "SELECT key, value FROM registered_model_tags WHERE name = :n"
                    " AND key LIKE :p{ws}", n=name, p=prefix.replace("%", r"\%") + "%")
                return {k: v for k, v in rows if k.startswith(prefix)}
            except Exception as exc:  # noqa: BLE001
                self._disable(exc)
        rm = self.model(name)
        if rm is None:
            return None
        return {k: v for k, v in (rm.tags or {}).items() if k.startswith(prefix)}

    def versions(self, name: str, *, limit: int | None = None, offset: int = 0,
                 version: int | None = None) -> tuple[list[Row], int]:
        """Versions newest first (or one version), with their tags.

        Args:
            name: the registered model's name.
            limit: at most this many (all when None).
            offset: skip this many of the newest.
            version: only this version.

        Returns:
            ``(rows, total)``: :class:`Row` objects and how many versions there are.

        Example:
            >>> rows, total = store.gateway.versions("iris", limit=10)  # doctest: +SKIP
        """
        if self._sql() is not None:
            try:
                return self._versions_sql(name, limit, offset, version)
            except Exception as exc:  # noqa: BLE001
                self._disable(exc)
        if self.store.is_server:
            found = self.store.retry(self._versions_json, name, limit, offset, version)
            if found is not None:
                return found
        return self._versions_client(name, limit, offset, version)

    def history(self, name: str, *, limit: int | None = None,
                offset: int = 0) -> tuple[dict[str, int], list[Row], int] | None:
        """A model's aliases and versions, newest first: what ``%model_log`` shows.

        On a team server the whole history is kept from the last read, and a read asks only the
        model (for its aliases) and the few most recently changed versions, at once: a version
        registered, its description edited or its stage moved since shows by its
        ``last_updated_timestamp``; a change to versions' tags by nbmodel, by
        :data:`VERSIONS_CHANGED_TAG`. Anything those cannot account for (a deleted version, more
        changes than the read asked for) reads the whole history again. Two changes keep no trace
        a read can see: a tag that another MLflow client sets on an old version, and a version
        deleted just before another is registered. After a read served from what was kept, the
        whole history is read again in the background (see :data:`REFRESH_EVERY`), and the next
        read shows them.

        Args:
            name: the registered model's name.
            limit: at most this many versions (all when None).
            offset: skip this many of the newest.

        Returns:
            ``(aliases, rows, total)``, or None if the model does not exist.

        Example:
            >>> aliases, rows, total = store.gateway.history("iris", limit=10)  # doctest: +SKIP
        """
        if self.store.is_server and self._sql() is None:
            found = self.store.retry(self._history_json, name)
            if found is None:
                return None
            if found is not _UNEXPECTED:
                aliases, rows = found
                want = None if limit is None else offset + limit
                # copies: a caller that changes a version's tags changes nothing kept here
                shown = [replace(r, tags=dict(r.tags)) for r in rows[offset:want]]
                return aliases, shown, len(rows)
        aliases, (rows, total) = self.together(
            lambda: self.aliases(name), lambda: self.versions(name, limit=limit, offset=offset))
        return None if aliases is None else (aliases, rows, total)

    def _history_json(self, name: str) -> Any:
        """``(aliases, rows)`` of ``name`` on a server, from the kept history where it still holds
        (see :meth:`history`); None when there is no such model, ``_UNEXPECTED`` on an answer
        that is not what it expects."""
        kept = self._histories.get(name)
        try:
            if kept is None:
                # Nothing kept: the model and every version at once. The model's state may be
                # newer than the rows, so it is kept unverified and read again in the background.
                rm, rows = self.together(lambda: self._model_json(name),
                                         lambda: self._every_version_json(name))
                if rm == {}:
                    return None
                if rm is None or rows is None:
                    return _UNEXPECTED
                self._keep(name, rm, rows, verified=False)
                self._refresh_soon(name)
                return _aliases_json(rm), rows
            rm, probe = self.together(
                lambda: self._model_json(name),
                lambda: self._search_json(name, PROBE, "last_updated_timestamp DESC"))
            if rm == {}:
                self._histories.pop(name, None)
                return None
            if rm is None or probe is None:
                return _UNEXPECTED
            rows = _brought_up_to_date(kept, rm, probe[0])
            if rows is None:
                # The probe cannot account for every change: the whole history, read after the
                # model's state, which it then stands for.
                rows = self._every_version_json(name)
                if rows is None:
                    return _UNEXPECTED
                self._keep(name, rm, rows, verified=True)
            else:
                self._histories[name] = replace(
                    kept, rows=tuple(rows), model_updated=int(rm.get("last_updated_timestamp") or 0))
                self._refresh_soon(name)
            return _aliases_json(rm), rows
        except (KeyError, TypeError, ValueError) as exc:
            _log.debug("nbmodel: unexpected answer from %s (%s); asking the MLflow client", self.store, exc)
            self._histories.pop(name, None)
            return _UNEXPECTED

    def _keep(self, name: str, rm: dict[str, Any], rows: list[Row], *, verified: bool) -> None:
        """Keep a whole history read from a server, with the model's state read before it (when
        ``verified``) or at the same time."""
        self._histories[name] = _Cached(
            tuple(rows), int(rm.get("creation_timestamp") or 0), int(rm.get("last_updated_timestamp") or 0),
            _tags_json(rm, VERSIONS_CHANGED_TAG).get(VERSIONS_CHANGED_TAG, ""), verified, time.monotonic())

    def _refresh_soon(self, name: str) -> None:
        """Read ``name``'s whole history again in the background, unless a re-read is under way
        or the last whole read is younger than :data:`REFRESH_EVERY` (and verified)."""
        kept = self._histories.get(name)
        running = self._refreshing.get(name)
        if kept is None or (running is not None and running.is_alive()):
            return
        if kept.verified and time.monotonic() - kept.read_at < REFRESH_EVERY:
            return

        def refresh() -> None:
            try:
                rm = self.store.retry(self._model_json, name)
                if not rm:
                    return
                rows = self.store.retry(self._every_version_json, name)
                if rows is not None:
                    self._keep(name, rm, rows, verified=True)
            except Exception as exc:  # noqa: BLE001 - the next read reads what it needs itself
                _log.debug("nbmodel: reading the history of %s again failed: %s", name, exc)

        # A daemon thread: a server that stopped answering never holds up the kernel's exit. It
        # sends its requests with the credentials and context of now.
        thread = threading.Thread(target=contextvars.copy_context().run, args=(refresh,),
                                  name="nbmodel-history", daemon=True)
        self._refreshing[name] = thread
        thread.start()

    def _versions_json(self, name: str, limit: int | None, offset: int,
                       version: int | None) -> tuple[list[Row], int] | None:
        """:meth:`_versions_client`'s answer read as plain JSON straight into rows, or None on
        anything unexpected (the client then asks again and reports what went wrong).

        MLflow's client turns each answer into protobuf messages and then into entities: for a
        model of 200 versions that costs more than the server takes to answer.
        """
        try:
            if version is not None:
                got = self._rest("/api/2.0/mlflow/model-versions/get", name=name, version=str(version))
                if got is None:
                    return None
                found = [got["model_version"]] if got else []
                return [_row(d) for d in found], len(found)
            want = None if limit is None else offset + limit
            if want is None and offset == 0:
                whole = self._every_version_json(name)
                if whole is None:
                    return None
                return whole, len(whole)
            got = self._search_json(name, want)
            if got is None:
                return None
            found, token = got
            rows = [_row(d) for d in found]
        except (KeyError, TypeError, ValueError) as exc:
            _log.debug("nbmodel: unexpected answer from %s (%s); asking the MLflow client", self.store, exc)
            return None
        return rows[offset:want], _total(len(rows), rows[0].version if rows else 0, token)

    def _every_version_json(self, name: str) -> list[Row] | None:
        """Every version of ``name`` on a server, newest first, or None on an unexpected answer
        (raises KeyError, TypeError or ValueError on a malformed one)."""
        hint = self._newest.get(name, 0)
        k = min(SPLIT_MAX, hint // SPLIT_PAGE)
        if k >= 2:
            # The whole history of a long model: ranges of version numbers read at once by
            # the server's workers. The number seen last time only sets the ranges; the top
            # one is open, so versions registered since are read as well.
            bounds = [hint - i * (hint // k) for i in range(1, k)]
            ranges = ([f"version_number > {bounds[0]}"]
                      + [f"version_number > {lo} AND version_number <= {hi}"
                         for hi, lo in zip(bounds, bounds[1:])]
                      + [f"version_number <= {bounds[-1]}"])
            pages = self.together(*(lambda f=f: self._search_json(name, None, also=f) for f in ranges))
            if any(p is None for p in pages):
                return None
            found = [d for p in pages if p is not None for d in p[0]]
        else:
            got = self._search_json(name, None)
            if got is None:
                return None
            found = got[0]
        rows = [_row(d) for d in found]
        if rows:
            self._newest[name] = rows[0].version
        return rows

    def _search_json(self, name: str, want: int | None, order_by: str = "version_number DESC", *,
                     also: str = "") -> tuple[list[dict[str, Any]], str | None] | None:
        """Versions of model ``name`` (that match ``also`` too), newest first (or in ``order_by``),
        page by page until ``want`` of them: ``(versions, token of the next page)``, or None on an
        unexpected answer."""
        found: list[dict[str, Any]] = []
        token = None
        where = _name_where(name) + (f" AND {also}" if also else "")
        while True:
            params: dict[str, Any] = {"filter": where, "max_results": min(want or 10000, 10000),
                                      "order_by": order_by}
            if token:
                params["page_token"] = token
            page = self._rest("/api/2.0/mlflow/model-versions/search", **params)
            if page is None:
                return None
            found.extend(_named(name, page.get("model_versions", [])))
            token = page.get("next_page_token")
            if not token or (want is not None and len(found) >= want):
                return found, token

    def _versions_sql(self, name: str, limit: int | None, offset: int,
                      version: int | None) -> tuple[list[Row], int]:
        cond = ("name = :n AND current_stage != 'Deleted_Internal'"
                + (" AND version = :v" if version is not None else ""))
        total = self._query(f"SELECT COUNT(*) FROM model_versions WHERE {cond}{{ws}}",
                            n=name, v=version)[0][0]
        page = ""
        if limit is not None:
            page = f" LIMIT {int(limit)} OFFSET {int(offset)}"
        elif offset:
            page = f" LIMIT -1 OFFSET {int(offset)}"
        rows = self._query(
            "SELECT version, creation_time, description, user_id, run_id, source, last_updated_time"
            f" FROM model_versions WHERE {cond}{{ws}}"
            f" ORDER BY version DESC{page}", n=name, v=version)
        out = [Row(name, int(r[0]), int(r[1] or 0), r[2], r[3], r[4], r[5], updated_ms=int(r[6] or 0))
               for r in rows]
        if out:
            lo, hi = out[-1].version, out[0].version
            by_version = {r.version: r for r in out}
            for v, key, value in self._query(
                    "SELECT version, key, value FROM model_version_tags WHERE name = :n"
                    " AND version BETWEEN :lo AND :hi{ws}", n=name, lo=lo, hi=hi):
                row = by_version.get(int(v))
                if row is not None:
                    row.tags[key] = value
            for row in out:
                row.tags = unpack(row.tags)
        return out, int(total)

    def _versions_client(self, name: str, limit: int | None, offset: int,
                         version: int | None) -> tuple[list[Row], int]:
        from mlflow.exceptions import MlflowException

        if version is not None:
            try:
                mvs = [self._call("get_model_version", name, str(version))]
            except MlflowException:
                mvs = []
            total = len(mvs)
        else:
            mvs, token = [], None
            want = None if limit is None else offset + limit
            while True:
                page = self._call(
                    "search_model_versions", _name_where(name),
                    max_results=min(want or 10000, 10000), order_by=["version_number DESC"],
                    page_token=token)
                mvs.extend(_named(name, page))
                token = page.token
                if not token or (want is not None and len(mvs) >= want):
                    break
            total = _total(len(mvs), int(mvs[0].version) if mvs else 0, token)
            mvs = mvs[offset:want]
        rows = [Row(mv.name, int(mv.version), int(mv.creation_timestamp or 0), mv.description,
                    mv.user_id, mv.run_id, mv.source, unpack(mv.tags or {}),
                    int(mv.last_updated_timestamp or 0)) for mv in mvs]
        return rows, total

    def model(self, name: str) -> Any:
        """MLflow's registered model ``name`` (with its tags, aliases and latest versions).

        Args:
            name: the registered model's name.

        Returns:
            A ``RegisteredModel``, or None if there is none.

        Example:
            >>> store.gateway.model("iris").tags  # doctest: +SKIP
        """
        from mlflow.exceptions import MlflowException

        try:
            return self._call("get_registered_model", name)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower():
                return None
            raise

    def list_models(self, *, limit: int | None = None, order_by: str | None = "name ASC") -> list[Any]:
        """Registered models, read page by page.

        Args:
            limit: stop after this many (all when None).
            order_by: MLflow's ordering clause; None for the store's own order.

        Returns:
            ``RegisteredModel`` objects (with tags, aliases and latest versions).

        Example:
            >>> [m.name for m in store.gateway.list_models(limit=3)]  # doctest: +SKIP
            ['iris']
        """
        out: list[Any] = []
        token = None
        while True:
            size = 1000 if limit is None else max(1, min(1000, limit - len(out)))
            kwargs: dict[str, Any] = {"max_results": size, "page_token": token}
            if order_by:
                kwargs["order_by"] = [order_by]
            page = self._call("search_registered_models", **kwargs)
            # Leases are registered models only so that the server refuses a second one.
            out.extend(m for m in page if not str(m.name).startswith((LEASE_PREFIX, _BREAK_PREFIX)))
            token = page.token
            if not token or (limit is not None and len(out) >= limit):
                return out if limit is None else out[:limit]

    def version_by_alias(self, name: str, alias: str) -> Any:
        """MLflow's model version that ``alias`` of ``name`` points to.

        Args:
            name: the registered model's name.
            alias: the alias.

        Returns:
            A ``ModelVersion``.

        Raises:
            MlflowException: the alias is not set.

        Example:
            >>> store.gateway.version_by_alias("iris", "production").version  # doctest: +SKIP
        """
        return self._call("get_model_version_by_alias", name, alias)

    def version_download_uri(self, name: str, version: int) -> str:
        """Where the files of a version are.

        Args:
            name: the registered model's name.
            version: the version number.

        Returns:
            A local path or an artifact URI.

        Example:
            >>> store.gateway.version_download_uri("iris", 3)  # doctest: +SKIP
        """
        return str(self._call("get_model_version_download_uri", name, str(version)))

    # -- registry writes ---------------------------------------------------------------------
    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` of model ``name`` at ``version`` (no audit trail: see nbmodel.aliases).

        Args:
            name: the registered model's name.
            alias: the alias.
            version: the version it points to.

        Example:
            >>> store.gateway.set_alias("iris", "production", 3)  # doctest: +SKIP
        """
        if self._sql() is not None and self._sql_store is not None:
            self.store.retry(self._sql_store.set_registered_model_alias, name, alias, str(version))
        else:
            self._registry_call("set_registered_model_alias", name, alias, str(version))

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias`` from model ``name``.

        Args:
            name: the registered model's name.
            alias: the alias.

        Example:
            >>> store.gateway.delete_alias("iris", "staging")  # doctest: +SKIP
        """
        self._registry_call("delete_registered_model_alias", name, alias)

    # -- leases: short exclusive locks any store can hold -----------------------------------
    # MLflow's REST API has no transactions, but every backend refuses to create a second
    # registered model of one name: creating ``nbmodel.lock.KEY`` acquires the lease, deleting
    # it releases it, and a tag holds its owner and expiry so a lease left by a dead kernel
    # can be broken once it lapses.
    @contextlib.contextmanager
    def lease(self, key: str, *, owner: str, ttl: float = 30.0, wait: float = 30.0) -> Iterator[None]:
        """Hold the lease ``key`` for the block: one holder at a time across kernels and machines.

        Args:
            key: what is locked (a model's name).
            owner: who holds it, shown to those who wait.
            ttl: seconds after which a holder that did not release it may be broken.
            wait: seconds to wait for a held lease before giving up.

        Returns:
            A context manager; the lease is released on leaving it.

        Raises:
            LeaseBusy: another holder kept it for more than ``wait`` seconds.

        Example:
            >>> with store.gateway.lease("iris", owner="ann"):  # doctest: +SKIP
            ...     pass
        """
        name = LEASE_PREFIX + key
        self._released(name)  # this process's last hold of it is gone first
        token = secrets.token_hex(8)
        deadline = time.monotonic() + wait
        delay = 0.01
        while not self._lease_create(name, owner, token, ttl):
            holder = self._lease_holder(name)
            if holder is None:
                continue  # released between our attempt and our look
            if holder.get("expires", 0) < time.time() and self._lease_break(name, holder.get("token"), owner):
                continue
            if time.monotonic() > deadline:
                since = time.strftime("%H:%M:%S", time.gmtime(holder.get("since", 0)))
                raise LeaseBusy(
                    f"{key} is being changed by {holder.get('owner', 'another kernel')} (since "
                    f"{since} UTC); try again in a moment (a stuck lease lapses after {ttl:.0f} s)")
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.2)
        held_at = time.time()
        try:
            yield
        finally:
            # Within its ttl (less a margin for clocks) nobody may break the lease, so it is still
            # ours and goes without a look; past it, only if it still carries our token.
            if time.time() - held_at < ttl * 0.5:
                if self.store.is_server:
                    # The block's writes are done: the delete (a round trip) goes on a thread
                    # of its own while the caller goes on; this process's next hold of the
                    # lease, and its exit, wait for it. It is sent as the holder: with the
                    # credentials and context of now, whatever the session sets meanwhile.
                    self._releasing[name] = self._releaser().submit(
                        contextvars.copy_context().run, self.store.retry, self._release_as_holder(name))
                else:
                    self._lease_delete(name)
            else:
                holder = self._lease_holder(name)
                if holder is not None and holder.get("token") == token:
                    self._lease_delete(name)

    def _releaser(self) -> Any:
        if self._release_pool is None:
            from concurrent.futures import ThreadPoolExecutor

            # its thread is joined when the interpreter ends, so no release is lost at exit
            self._release_pool = ThreadPoolExecutor(1, thread_name_prefix="nbmodel-release")
        return self._release_pool

    def settle(self) -> None:
        """Wait for every release of a lease this process still has on its way, and every read
        of a history again in the background (a server's).

        Example:
            >>> store.gateway.settle()  # doctest: +SKIP
        """
        for name in list(self._releasing):
            self._released(name)
        for name in list(self._refreshing):
            thread = self._refreshing.pop(name, None)
            if thread is not None:
                thread.join(60)

    def _released(self, name: str) -> None:
        """Wait for this process's release of lease ``name`` still on its way, if any (a
        release that failed leaves a lease that lapses after its ttl)."""
        pending = self._releasing.pop(name, None)
        if pending is not None:
            try:
                pending.result(60)
            except Exception as exc:  # noqa: BLE001 - the lease lapses; acquiring it breaks it
                _log.debug("nbmodel: releasing %s failed: %s", name, exc)

    def _lease_create(self, name: str, owner: str, token: str, ttl: float) -> bool:
        from mlflow.exceptions import MlflowException

        now = time.time()
        value = json.dumps({"owner": owner, "token": token, "since": now, "expires": now + ttl})
        try:
            self._call("create_registered_model", name, description=None, tags={_LEASE_TAG: value})
        except MlflowException as exc:
            code = getattr(exc, "error_code", "")
            if code == "RESOURCE_ALREADY_EXISTS" or "already exists" in str(exc).lower():
                return False
            if code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower():
                # MLflow's SQL store answers a lost insert race by reading the winner's row; when
                # the winner released its lease in between, that read fails with "not found".
                return False
            raise
        return True

    def _lease_holder(self, name: str) -> dict[str, Any] | None:
        tags = self.model_tags(name, _LEASE_TAG)
        if tags is None:
            return None
        try:
            return dict(json.loads(tags.get(_LEASE_TAG, "{}")))
        except ValueError:
            return {}  # a lease without a readable owner has lapsed

    def _lease_delete(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self._registry_call("delete_registered_model", name)
        except MlflowException as exc:
            code = getattr(exc, "error_code", "")
            if code != "RESOURCE_DOES_NOT_EXIST" and "not found" not in str(exc).lower():
                raise

    def _release_as_holder(self, name: str) -> Callable[[], None]:
        """Lease ``name``'s delete, to be sent later as its holder sends it now: a REST store
        reads its credentials anew for each request, and a session may change them before a
        release sent off the calling thread goes."""
        creds = self._host_creds()
        if creds is None:  # not a REST store: nothing is read at request time
            return lambda: self._lease_delete(name)
        return lambda: self._lease_delete_as(name, creds)

    def _lease_delete_as(self, name: str, creds: Any) -> None:
        """:meth:`_lease_delete` with the given credentials (MLflow's client reads them anew)."""
        from mlflow.exceptions import MlflowException
        from mlflow.utils.rest_utils import http_request

        response = http_request(creds, "/api/2.0/mlflow/registered-models/delete", "DELETE",
                                json={"name": name})
        if response.status_code == 200:
            return
        error = _error(response)
        if error.get("error_code") == "RESOURCE_DOES_NOT_EXIST":
            return
        raise MlflowException(f"releasing {name} failed with HTTP {response.status_code}: "
                              f"{error.get('message') or response.text[:200]}")

    def _lease_break(self, name: str, token: Any, owner: str) -> bool:
        # Two kernels may both see a lapsed lease: breaking it under a second lease, and only if
        # it is still the same one, keeps one of them from deleting the other's fresh lease.
        breaker = _BREAK_PREFIX + name[len(LEASE_PREFIX):]
        if not self._lease_create(breaker, owner, secrets.token_hex(8), 5.0):
            held = self._lease_holder(breaker)
            if held is not None and held.get("expires", 0) < time.time():
                self._lease_delete(breaker)
                return True
            return False  # another kernel is breaking it: wait as for a held lease
        try:
            holder = self._lease_holder(name)
            if holder is not None and holder.get("token") == token:
                self._lease_delete(name)
        finally:
            self._lease_delete(breaker)
        return True

    def delete_model_tag(self, name: str, key: str) -> None:
        """Remove a tag of registered model ``name``.

        Args:
            name: the registered model's name.
            key: the tag's key.

        Example:
            >>> store.gateway.delete_model_tag("iris", "team")  # doctest: +SKIP
        """
        if self._sql() is not None and self._sql_store is not None:
            self.store.retry(self._sql_store.delete_registered_model_tag, name, key)
        else:
            self._registry_call("delete_registered_model_tag", name, key)

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        """Set a tag of registered model ``name``.

        Args:
            name: the registered model's name.
            key: the tag's key.
            value: its value.

        Example:
            >>> store.gateway.set_model_tag("iris", "team", "vision")  # doctest: +SKIP
        """
        if self._sql() is not None and self._sql_store is not None:
            from mlflow.entities.model_registry import RegisteredModelTag

            self.store.retry(self._sql_store.set_registered_model_tag, name, RegisteredModelTag(key, value))
        else:
            self._registry_call("set_registered_model_tag", name, key, value)

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        """Set a tag of a version.

        Args:
            name: the registered model's name.
            version: the version number.
            key: the tag's key.
            value: its value.

        Example:
            >>> store.gateway.set_version_tag("iris", 3, "stage", "candidate")  # doctest: +SKIP
        """
        self._call("set_model_version_tag", name, str(version), key, value)
        self._versions_changed(name)

    def _versions_changed(self, name: str) -> None:
        """Mark that a version's tags of ``name`` changed, once the change is stored: MLflow keeps
        no time of it, and every kernel's kept history (see :meth:`history`) reads it anew."""
        self._histories.pop(name, None)
        self.set_model_tag(name, VERSIONS_CHANGED_TAG, f"{time.time_ns():x}.{secrets.token_hex(3)}")

    def delete_version_tag(self, name: str, version: int, key: str) -> None:
        """Remove a tag of a version; one of nbmodel's fields is removed from the version's
        packed tag too (see :mod:`nbmodel.tagpack`), so that it does not come back from there.

        Args:
            name: the registered model's name.
            version: the version number.
            key: the tag's key.

        Example:
            >>> store.gateway.delete_version_tag("iris", 3, "stage")  # doctest: +SKIP
        """
        if key.startswith("nbmodel.") and key != PACK:
            rest = without(self._stored_tags(name, version), key)
            if rest is not None:
                self._call("set_model_version_tag", name, str(version), PACK, rest)
        self._call("delete_model_version_tag", name, str(version), key)
        self._versions_changed(name)

    def _stored_tags(self, name: str, version: int) -> dict[str, str]:
        """The tags of one version exactly as MLflow stores them (nothing unpacked)."""
        if self._sql() is not None:
            try:
                return {str(k): str(v) for k, v in self._query(
                    "SELECT key, value FROM model_version_tags WHERE name = :n AND version = :v{ws}",
                    n=name, v=int(version))}
            except Exception as exc:  # noqa: BLE001
                self._disable(exc)
        return dict(self._call("get_model_version", name, str(version)).tags or {})

    def create_model(self, name: str, tags: dict[str, str] | None = None) -> bool:
        """Register model ``name`` unless it exists already.

        Args:
            name: the registered model's name.
            tags: tags of a new model.

        Returns:
            True if this call created it.

        Example:
            >>> store.gateway.create_model("iris", {"nbmodel.managed": "true"})  # doctest: +SKIP
        """
        from mlflow.exceptions import MlflowException

        try:
            self._call("create_registered_model", name, description=None, tags=tags)
        except MlflowException as exc:
            exists = getattr(exc, "error_code", "") == "RESOURCE_ALREADY_EXISTS"
            if not exists and "already exists" not in str(exc).lower():
                raise
            return False
        return True

    def delete_model(self, name: str) -> None:
        """Delete registered model ``name`` (a failed commit's, before it had a version).

        Args:
            name: the registered model's name.

        Example:
            >>> store.gateway.delete_model("iris")  # doctest: +SKIP
        """
        self._call("delete_registered_model", name)

    def create_version(self, name: str, model_uri: str, *, run_id: str, tags: dict[str, str],
                       description: str | None, model_id: str | None) -> Any:
        """Register the logged model at ``model_uri`` as the next version of ``name``.

        Args:
            name: the registered model's name.
            model_uri: the logged model (``runs:/...`` or ``models:/m-...``).
            run_id: the run that logged it.
            tags: the version's tags.
            description: the commit message.
            model_id: MLflow's logged-model id.

        Returns:
            MLflow's new ``ModelVersion``.

        Example:
            >>> mv = store.gateway.create_version(  # doctest: +SKIP
            ...     "iris", uri, run_id=rid, tags={}, description=None, model_id=None)
        """
        from .errors import StoreError
        from .store import sent_once

        try:
            with sent_once():  # a re-sent create would register the model a second time
                return self._call("create_model_version", name, model_uri, run_id=run_id,
                                  tags=tags, description=description, model_id=model_id)
        except StoreError:
            if not self.store.is_server:
                raise
            made = self._version_of_run(name, run_id)  # the answer was lost, not the write?
            if made is None:
                raise
            return made

    def _version_of_run(self, name: str, run_id: str) -> Any:
        """The version of ``name`` registered from run ``run_id`` (None: there is none, or the
        server does not answer); a server may finish a write whose answer timed out."""
        deadline = time.monotonic() + 10
        while True:
            try:
                found = _named(name, self._call("search_model_versions",
                                                f"{_name_where(name)} AND run_id = '{run_id}'"))
            except Exception:  # noqa: BLE001 - the caller reports the first error
                return None
            if found or time.monotonic() > deadline:
                return found[0] if found else None
            time.sleep(0.5)

    # -- tracking ----------------------------------------------------------------------------
    def experiment_id(self, name: str) -> str:
        """The id of the experiment that holds the runs of model ``name`` (created if needed;
        a deleted one is restored; artifacts of a sqlite store live beside its file).

        Args:
            name: the registered model's name.

        Returns:
            The experiment's id.

        Example:
            >>> store.gateway.experiment_id("iris")  # doctest: +SKIP
        """
        cached = self._experiments.get(name)
        if cached:
            return cached
        from mlflow.exceptions import MlflowException

        exp = self._call("get_experiment_by_name", name)
        if exp is None:
            location = None
            if self.store.artifact_root:
                slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
                location = str(Path(self.store.artifact_root) / f"nbmodel-{slug}")
            try:
                exp_id = self._call("create_experiment", name, artifact_location=location)
            except MlflowException:
                exp = self._call("get_experiment_by_name", name)
                if exp is None:
                    raise
                exp_id = exp.experiment_id
        else:
            exp_id = exp.experiment_id
            if exp.lifecycle_stage == "deleted":
                self._call("restore_experiment", exp_id)
        self._experiments[name] = exp_id
        return str(exp_id)

    def has_experiment(self, name: str) -> bool:
        """Whether the experiment of model ``name`` exists (deleted or not).

        Args:
            name: the registered model's name.

        Returns:
            True if it exists.

        Example:
            >>> store.gateway.has_experiment("iris")  # doctest: +SKIP
            True
        """
        return name in self._experiments or self._call("get_experiment_by_name", name) is not None

    def purge(self, *, run_id: str | None = None, logged_models: list[str] = (),  # type: ignore[assignment]
              experiment: str | None = None) -> None:
        """Remove for good what a failed commit wrote: its logged models, its run and, when the
        commit created it, the experiment of model ``experiment`` (rows and local files). A
        store without MLflow's hard deletes (a server) gets them marked deleted instead.

        Each step is tried on its own; a step that fails is skipped (the error that led here
        matters more).

        Args:
            run_id: the run to remove.
            logged_models: the logged models to remove.
            experiment: the name of the model whose experiment to remove.

        Example:
            >>> store.gateway.purge(run_id=run_id, experiment="iris")  # doctest: +SKIP
        """
        tracking = self._tracking_store()
        folders: list[str] = []

        def step(soft: str, hard: str, key: str) -> None:
            with contextlib.suppress(Exception):
                if hasattr(tracking, hard):
                    if soft == "delete_experiment":
                        self._call(soft, key)
                    self.store.retry(getattr(tracking, hard), key)
                else:
                    self._call(soft, key)

        ids = [i for i in (run_id, *logged_models) if i]
        if ids and hasattr(tracking, "ManagedSessionMaker"):
            # The links between a run and the models it logged: MLflow's hard deletes keep them.
            with contextlib.suppress(Exception):
                self.store.retry(_delete_links, tracking, ids)
        for model_id in logged_models:
            with contextlib.suppress(Exception):
                folders.append(_owner(self._call("get_logged_model", model_id).artifact_location))
            step("delete_logged_model", "_hard_delete_logged_model", model_id)
        if run_id is not None:
            with contextlib.suppress(Exception):
                folders.append(_owner(self._call("get_run", run_id).info.artifact_uri))
            step("delete_run", "_hard_delete_run", run_id)
        if experiment is not None:
            exp_id = self._experiments.pop(experiment, None)
            with contextlib.suppress(Exception):
                exp = self._call("get_experiment_by_name", experiment)
                if exp is not None:
                    exp_id = exp.experiment_id
                    folders.append(exp.artifact_location)  # removed only if nothing else is in it
            if exp_id is not None:
                step("delete_experiment", "_hard_delete_experiment", str(exp_id))
        for folder in folders:
            _remove_local(folder)

    def _tracking_store(self) -> Any:
        with contextlib.suppress(Exception):
            return self.store.client._tracking_client.store
        return None

    def get_run(self, run_id: str) -> Any:
        """MLflow's run ``run_id`` (its params, metrics, tags and info).

        Args:
            run_id: the run's id.

        Returns:
            A ``Run``.

        Raises:
            MlflowException: there is no such run.

        Example:
            >>> store.gateway.get_run(v.run_id).data.params  # doctest: +SKIP
        """
        return self._call("get_run", run_id)

    def create_run(self, experiment_id: str, *, run_name: str, tags: dict[str, str] | None = None) -> Any:
        """Start a run.

        Args:
            experiment_id: the experiment.
            run_name: the run's name.
            tags: the run's tags.

        Returns:
            MLflow's ``Run``; its id is ``run.info.run_id``.

        Example:
            >>> store.gateway.create_run(exp_id, run_name="iris commit")  # doctest: +SKIP
        """
        return self._call("create_run", experiment_id, run_name=run_name, tags=tags)

    def search_runs(self, experiment_ids: list[str], filter_string: str, *, max_results: int = 1000,
                    order_by: list[str] | None = None) -> list[Any]:
        """Runs matching MLflow's filter (one page).

        Args:
            experiment_ids: the experiments to search.
            filter_string: MLflow's run filter.
            max_results: at most this many.
            order_by: MLflow's ordering clauses.

        Returns:
            A list of ``Run``.

        Example:
            >>> store.gateway.search_runs([exp_id], "tags.`k` = 'v'")  # doctest: +SKIP
        """
        return list(self._call("search_runs", experiment_ids, filter_string, max_results=max_results,
                               order_by=order_by))

    def finish_run(self, run_id: str, *, name: str | None = None, status: str = "FINISHED") -> None:
        """Mark a run done (and rename it when ``name`` is given).

        Args:
            run_id: the run's id.
            name: the run's new name.
            status: the final status.

        Example:
            >>> store.gateway.finish_run(run_id, name="iris/3")  # doctest: +SKIP
        """
        if name is None:
            self._call("set_terminated", run_id, status)
        else:
            self._call("update_run", run_id, status=status, name=name)

    def set_run_tag(self, run_id: str, key: str, value: str) -> None:
        """Set a tag of a run.

        Args:
            run_id: the run's id.
            key: the tag's key.
            value: its value.

        Example:
            >>> store.gateway.set_run_tag(run_id, "nbmodel.version", "iris/3")  # doctest: +SKIP
        """
        self._call("set_tag", run_id, key, value)

    def delete_run(self, run_id: str) -> None:
        """Delete a run (and, with it, the models it logged).

        Args:
            run_id: the run's id.

        Example:
            >>> store.gateway.delete_run(run_id)  # doctest: +SKIP
        """
        self._call("delete_run", run_id)

    def log_batch(self, run_id: str, *, metrics: list[Any] | None = None, params: list[Any] | None = None,
                  tags: list[Any] | None = None) -> None:
        """Log MLflow ``Metric``, ``Param`` and ``RunTag`` objects to a run in one call.

        Args:
            run_id: the run's id.
            metrics: ``Metric`` objects.
            params: ``Param`` objects (at most 100).
            tags: ``RunTag`` objects.

        Example:
            >>> store.gateway.log_batch(run_id, metrics=[Metric("accuracy", 0.9, now, 0)])  # doctest: +SKIP
        """
        self._call("log_batch", run_id, metrics=metrics or [], params=params or [], tags=tags or [])

    def log_text(self, run_id: str, text: str, path: str) -> None:
        """Store text as an artifact of a run.

        Args:
            run_id: the run's id.
            text: the text.
            path: the artifact's path.

        Example:
            >>> store.gateway.log_text(run_id, "clf.fit(X, y)", "nbmodel/source.py")  # doctest: +SKIP
        """
        self._call("log_text", run_id, text, path)

    def log_dict(self, run_id: str, data: dict[str, Any], path: str) -> None:
        """Store a dict as a JSON artifact of a run.

        Args:
            run_id: the run's id.
            data: the dict.
            path: the artifact's path.

        Example:
            >>> store.gateway.log_dict(run_id, {"rows": 150}, "nbmodel/data_profile.json")  # doctest: +SKIP
        """
        self._call("log_dict", run_id, data, path)

    def log_artifacts(self, run_id: str, local_dir: str, path: str | None = None) -> None:
        """Copy the files of a folder into a run's artifacts.

        Args:
            run_id: the run's id.
            local_dir: the folder.
            path: the folder inside the artifacts.

        Example:
            >>> store.gateway.log_artifacts(run_id, tmp, "nbmodel")  # doctest: +SKIP
        """
        self._call("log_artifacts", run_id, local_dir, path)

    def download_artifacts(self, run_id: str, path: str, dst_path: str | None = None) -> str:
        """Download an artifact of a run.

        Args:
            run_id: the run's id.
            path: the artifact's path.
            dst_path: where to put it (a temporary folder when None).

        Returns:
            The local path of the downloaded file or folder.

        Example:
            >>> store.gateway.download_artifacts(run_id, "nbmodel/data_profile.json", tmp)  # doctest: +SKIP
        """
        return str(self._call("download_artifacts", run_id, path, dst_path))


def _error(response: Any) -> dict[str, Any]:
    """The MLflow error an HTTP answer carries (``error_code``, ``message``); ``{}`` when its
    body is not one (a proxy's page, say)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _row(d: dict[str, Any]) -> Row:
    """A :class:`Row` from one model version of MLflow's REST answer, as the client reads it."""
    return Row(str(d["name"]), int(d["version"]), int(d.get("creation_timestamp") or 0),
               d.get("description", ""), d.get("user_id", ""), d.get("run_id", ""), d.get("source", ""),
               unpack({str(t["key"]): str(t.get("value", "")) for t in d.get("tags", [])}),
               int(d.get("last_updated_timestamp") or 0))


def _brought_up_to_date(kept: _Cached, rm: dict[str, Any],
                        probe: list[dict[str, Any]]) -> list[Row] | None:
    """A kept history with the most recently changed versions (``probe``, read at the same time as
    the model ``rm``) put in, newest first; None when they cannot account for every change since.

    MLflow's registry sets a version's ``last_updated_timestamp`` when it is registered, its
    description edited or its stage moved, and the model's when a version is registered, deleted or
    moved: a model's time that none of the changed versions carries (a deletion) is unaccounted for;
    so is a tag nbmodel wrote (:data:`VERSIONS_CHANGED_TAG` changed), a probe that may have left
    changes out (all of it changed since), and a model made anew under the same name.
    """
    if not kept.verified or int(rm.get("creation_timestamp") or 0) != kept.model_created:
        return None
    changed = _tags_json(rm, VERSIONS_CHANGED_TAG).get(VERSIONS_CHANGED_TAG, "")
    if changed != kept.changed:
        return None
    fresh = [d for d in probe if int(d.get("last_updated_timestamp") or 0) >= kept.updated]
    if len(fresh) >= PROBE:
        return None
    model_updated = int(rm.get("last_updated_timestamp") or 0)
    if model_updated != kept.model_updated and model_updated not in {
            int(d.get("last_updated_timestamp") or 0) for d in fresh}:
        return None
    if not fresh:
        return list(kept.rows)
    by_version = {r.version: r for r in kept.rows}
    for d in fresh:
        row = _row(d)
        by_version[row.version] = row
    return sorted(by_version.values(), key=lambda r: r.version, reverse=True)


def _aliases_json(rm: dict[str, Any]) -> dict[str, int]:
    """Alias -> version of a registered model in MLflow's REST answer."""
    return {str(a["alias"]): int(a["version"]) for a in rm.get("aliases", [])}


def _tags_json(rm: dict[str, Any], prefix: str | None) -> dict[str, str]:
    """The tags of a registered model in MLflow's REST answer starting with ``prefix`` (none when
    it is None)."""
    return {str(t["key"]): str(t.get("value", "")) for t in rm.get("tags", [])
            if prefix is not None and str(t["key"]).startswith(prefix)}


def _delete_links(tracking: Any, ids: list[str]) -> None:
    from mlflow.store.tracking.dbmodels.models import SqlInput

    with tracking.ManagedSessionMaker() as session:
        session.query(SqlInput).filter(
            SqlInput.source_id.in_(ids) | SqlInput.destination_id.in_(ids)
        ).delete(synchronize_session=False)


def _owner(uri: str) -> str:
    """The folder of one run or logged model: its ``artifacts`` folder's parent."""
    return uri[: -len("/artifacts")] if uri.rstrip("/").endswith("/artifacts") else uri


def _remove_local(uri: str | None) -> None:
    """Delete a local artifact folder (``file:`` URI or path) of a failed commit; a folder that
    still holds other files after its own empty folders are gone (an experiment's, shared by
    models whose names differ only in punctuation) is kept. Anything not local is left alone."""
    import os
    import shutil
    from urllib.parse import unquote, urlparse

    if not uri or not (uri.startswith("file:") or uri.startswith("/")):
        return
    path = Path(unquote(urlparse(uri).path) if uri.startswith("file:") else uri)
    if not path.is_dir():
        return
    if path.name.startswith("nbmodel-"):  # an experiment's folder: only what is empty goes
        for folder, _, _ in sorted(os.walk(path), key=lambda t: -len(t[0])):
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        return
    shutil.rmtree(path, ignore_errors=True)


def _name_where(name: str) -> str:
    """A search filter for the model ``name``, exact where MLflow's filter can say it: its strings
    are quoted with ``'`` or ``"`` and take no escapes, so a name holding both quotes (or a
    backslash) is matched by a LIKE with ``_`` in their place, which may match other names as well;
    callers keep only the results of ``name`` itself (see :func:`_named`)."""
    if "\\" not in name:
        if "'" not in name:
            return f"name = '{name}'"
        if '"' not in name:
            return f'name = "{name}"'
    pattern = "".join("_" if c in "'\\" else c for c in name)
    return f"name LIKE '{pattern}'"


def _named(name: str, found: list[Any]) -> list[Any]:
    """The results of a search by :func:`_name_where` that are of ``name`` itself (dicts of a
    REST answer, or MLflow entities)."""
    return [f for f in found if (f.get("name") if isinstance(f, dict) else getattr(f, "name", None)) == name]
