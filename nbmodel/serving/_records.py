"""The deployment record: what a kernel and its server process share about one server.

Each running server has one, ``<port>.json`` in the store's deployments folder: where it
listens, which models it serves, its token. The kernel writes it to start a server, to add a
model to a running one or to switch one, and the server reads it (again whenever it changes)
and writes it once, to say why it stopped. Every write goes through :func:`write`, which owns
the file format, the atomic replace and the owner-only permission (0o600) the token needs;
changes made under the folder's lock (:func:`locked`) never cross.

On a team's store (``http://``) the server also publishes itself for every user of the
store (:class:`Published`: a tag on each model it serves, without the token, refreshed as a
heartbeat and marked stopped when it ends), while the record and the process stay with the
machine that runs it. The workers of one server share what they read of the registry in a
small file beside the record (:func:`follow_turn`).

Only the standard library is imported here (``filelock`` when a lock is taken, the store when
publishing): the server reads its record on its start-up path.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_MAX_BODY = 10 * 1024 * 1024
#: The record holds the token: nobody but its owner may read it.
MODE = 0o600


#: The states of a rollout; only a running one sends traffic to its candidate (a promoted one
#: until the alias's new holder serves).
ROLLOUT_STATES = ("running", "promoted", "rolled back", "stopped")


@dataclass
class Rollout:
    """A canary or shadow rollout of one served model: the candidate, its share of the
    requests, the steps and checks, and where it stands. The kernel writes it to start or stop
    one; the server that drives it writes each step.

    Example:
        >>> Rollout("canary", 4, steps=[10, 50, 100]).to_dict()["candidate"]
        4
    """

    kind: str  # "canary" or "shadow"
    candidate: int
    steps: list[int] = field(default_factory=lambda: [10, 25, 50, 100])
    interval: float = 60.0
    checks: list[str] = field(default_factory=list)
    share: int = 0
    step: int = 0
    state: str = "running"
    reason: str | None = None
    #: the version serving when it started: the alias move at 100 expects it
    serving: int | None = None
    started: float | None = None
    step_started: float | None = None
    changed: float | None = None

    @property
    def live(self) -> bool:
        """Whether it still sends traffic to the candidate."""
        return self.state in ("running", "promoted")

    def to_dict(self) -> dict[str, Any]:
        """The stored form."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Rollout | None:
        """The rollout of a record's model entry (None: none, or not one)."""
        if not isinstance(data, dict) or data.get("kind") not in ("canary", "shadow"):
            return None
        known = {f.name for f in fields(cls)}
        try:
            out = cls(**{k: v for k, v in data.items() if k in known})
            out.candidate = int(out.candidate)
            out.share = max(0, min(100, int(out.share)))
            out.steps = [int(s) for s in out.steps]
        except (TypeError, ValueError):
            return None
        return out


@dataclass
class ModelSpec:
    """One model a server serves, with the kernel's hints for loading it fast.

    Example:
        >>> ModelSpec("iris", "production", 3).ref
        'iris@production'
    """

    name: str
    alias: str | None = None
    #: the version the kernel resolved (the server follows ``alias`` from there)
    version: int | None = None
    #: the version's local model folder, when the kernel found one
    path: str | None = None
    #: a one-row request body for the ``curl`` line
    example: str | None = None
    #: a canary or shadow rollout of a candidate version, running or ended
    rollout: Rollout | None = None
    #: a pipeline: the models it calls in order, each following its own alias (``name`` is
    #: then the pipeline's own name, with no alias or version of its own)
    chain: list[ModelSpec] | None = None

    @property
    def ref(self) -> str:
        """``name@alias``, or the bare name for a version served without an alias."""
        return f"{self.name}@{self.alias}" if self.alias else self.name

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelSpec:
        """The spec of a record's ``models`` entry (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        spec = cls(**{k: v for k, v in data.items() if k in known})
        spec.rollout = Rollout.from_json(data.get("rollout"))
        chain = data.get("chain")
        spec.chain = ([cls.from_json(s) for s in chain if isinstance(s, dict)]
                      if isinstance(chain, list) and chain else None)
        return spec


#: Addresses a server may listen on without a token.
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass
class DeploymentRecord:
    """One server: where it listens, what it serves, its process and why it stopped.

    ``path`` is the file the record lives in; it is not part of the JSON.

    Example:
        >>> rec = DeploymentRecord(host="127.0.0.1", port=5001, store="sqlite:///m.db",
        ...                        models=[ModelSpec("iris", "production")])
        >>> rec.names
        ['iris']
    """

    host: str
    port: int
    store: str
    models: list[ModelSpec] = field(default_factory=list)
    pid: int | None = None
    token: str | None = None
    #: the server outlives the kernel that started it
    detached: bool = False
    max_body: int = DEFAULT_MAX_BODY
    workers: int = 1
    started: float | None = None
    log: str | None = None
    #: why the server ended, when it said so
    stopped: str | None = None
    stopped_at: float | None = None
    #: every answered request goes to monitoring
    monitor: bool = True
    path: Path | None = field(default=None, repr=False, compare=False)

    @property
    def names(self) -> list[str]:
        """The names of the models served, in order (the first answers ``/invocations``)."""
        return [m.name for m in self.models]

    def model(self, name: str) -> ModelSpec | None:
        """The spec of model ``name``, if this server serves it."""
        return next((m for m in self.models if m.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """The record as stored (``path`` left out)."""
        data = asdict(self)
        data.pop("path")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path | str | None = None) -> DeploymentRecord:
        """A record from its stored form (unknown keys are ignored, missing ones defaulted).

        Raises:
            ValueError: not an object, or without host, port or store.
        """
        if not isinstance(data, dict) or not all(k in data for k in ("host", "port")):
            raise ValueError("not a deployment record")
        known = {f.name for f in fields(cls)} - {"models", "path"}
        values = {k: v for k, v in data.items() if k in known}
        values["port"] = int(values["port"])
        values.setdefault("store", "")
        values["max_body"] = int(values.get("max_body") or DEFAULT_MAX_BODY)
        values["workers"] = max(1, int(values.get("workers") or 1))
        values["detached"] = bool(values.get("detached"))
        values["monitor"] = values.get("monitor") is not False
        values["token"] = values.get("token") or None
        models = [ModelSpec.from_json(m) for m in data.get("models") or [] if isinstance(m, dict)]
        return cls(**values, models=models, path=Path(path) if path is not None else None)


# -- reading ---------------------------------------------------------------------------------
def read(path: Path | str) -> DeploymentRecord:
    """The record in ``path``.

    Raises:
        OSError: the file cannot be read.
        ValueError: it holds no record.

    Example:
        >>> read(state_dir / "5001.json").port  # doctest: +SKIP
        5001
    """
    with open(path, encoding="utf-8") as f:
        return DeploymentRecord.from_json(json.load(f), path)


def read_all(folder: Path) -> list[DeploymentRecord]:
    """Every readable record in ``folder``, by port.

    Example:
        >>> [r.port for r in read_all(state_dir)]  # doctest: +SKIP
        [5001, 5002]
    """
    out = []
    for path in sorted(folder.glob("*.json"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0):
        with contextlib.suppress(OSError, ValueError):
            out.append(read(path))
    return out


# -- writing ---------------------------------------------------------------------------------
def write(record: DeploymentRecord) -> None:
    """Write ``record`` to its ``path``: atomically (a reader sees the old or the new record,
    never half of one) and readable by its owner only, whatever the umask or the file's mode
    before.

    Raises:
        ValueError: the record has no path.

    Example:
        >>> write(record)  # doctest: +SKIP
    """
    if record.path is None:
        raise ValueError("the record has no file to go to")
    path = record.path
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), MODE)  # a stale temporary file keeps its mode through O_CREAT
            json.dump(record.to_json(), f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def update_rollout(path: Path, name: str, change: Any, *, create: bool = False) -> Rollout | None:
    """Change the rollout of model ``name`` in the record at ``path``, under the folder's lock:
    ``change(current)`` returns the rollout to keep (None: leave the record as it is). With
    ``create`` it is called even when the model has no rollout yet.

    Returns:
        The rollout written, or None when nothing changed.

    Raises:
        OSError, ValueError: the record cannot be read; whatever ``change`` raises.

    Example:
        >>> update_rollout(record.path, "iris", lambda ro: None)  # doctest: +SKIP
    """
    with locked(path.parent):
        record = read(path)
        spec = record.model(name)
        if spec is None or (spec.rollout is None and not create):
            return None
        new = change(spec.rollout)
        if new is None:
            return None
        spec.rollout = new
        write(record)
        return new


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the deployments folder's lock: what is read and written under it is one change.

    Example:
        >>> with locked(state_dir):  # doctest: +SKIP
        ...     write(record)
    """
    from filelock import FileLock

    with FileLock(str(folder / ".lock")):
        yield


def mark_stopped(path: Path | str, pid: int, reason: str, at: float) -> bool:
    """Say in the record why server ``pid`` ended (kept for ``%model_deployments``), unless
    the kernel removed the record or another server took its port since. Takes no lock: the
    kernel may hold it while it waits for this server to end.

    Returns:
        Whether the record was written.

    Example:
        >>> mark_stopped(record.path, os.getpid(), "its kernel exited", time.time())  # doctest: +SKIP
        True
    """
    try:
        record = read(path)
    except (OSError, ValueError):
        record = None
    if record is not None and record.pid != pid:
        return False  # another server's port now, and its shared alias versions
    with contextlib.suppress(OSError):
        follow_path(path).unlink()
    if record is None:
        return False
    record.stopped, record.stopped_at = reason, at
    write(record)
    if record.store and not record.store.startswith("sqlite:"):
        withdraw(record, at)
    return True


def withdraw(record: DeploymentRecord, at: float) -> None:
    """Tell the store's other users that the server of ``record`` stopped (a team's server;
    beside a sqlite store everyone reads the records folder itself). Best effort: a server
    that cannot say so is listed as stale once its heartbeat is old.

    Example:
        >>> withdraw(record, time.time())  # doctest: +SKIP
    """
    from ..store import Store
    from ..versions import _user

    entry = Published.of(record, user=_user(), seen=at)
    entry.stopped = at
    with contextlib.suppress(Exception):
        publish(Store(record.store).gateway, entry)


# -- what the workers of one server share about its aliases -------------------------------------
def follow_path(record_path: Path | str) -> Path:
    """The file where the workers of the server of ``record_path`` share the versions their
    aliases name, so that the registry is asked once for all of them (``.5001.follow``).

    Example:
        >>> follow_path("/tmp/deployments/5001.json").name
        '.5001.follow'
    """
    path = Path(record_path)
    return path.with_name(f".{path.stem}.follow")


@contextlib.contextmanager
def follow_turn(path: Path) -> Iterator[tuple[dict[str, Any] | None, Any]]:
    """Read the shared alias versions and, when nobody else is asking the registry right now,
    take the turn to: yields ``(shared, write)`` where ``write`` is None unless this process
    holds the turn (then ``write(data)`` replaces the shared data before the turn ends).

    A reader that finds the file half-written (its writer holds the turn) sees None.

    Example:
        >>> with follow_turn(follow_path(record_path)) as (shared, write):  # doctest: +SKIP
        ...     if write is not None:
        ...         write({"pid": 1, "at": time.time(), "versions": {"iris@production": 3}})
    """
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield _read_follow(fd), None
            return

        def write(data: dict[str, Any]) -> None:
            body = json.dumps(data).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, body, 0)

        try:
            yield _read_follow(fd), write
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_follow(fd: int) -> dict[str, Any] | None:
    try:
        data = json.loads(os.pread(fd, 1 << 20, 0) or b"null")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


# -- what everyone on the store sees of a deployment ---------------------------------------------
#: Published deployments are tags of the models served, ``nbmodel.deployment.<machine>.<port>``.
PUBLISHED = "nbmodel.deployment."
#: A running server says it is alive this often ...
HEARTBEAT_SECONDS = 30.0
#: ... and one not heard of for this long is listed as stale (it died without saying so).
STALE_SECONDS = 3 * HEARTBEAT_SECONDS


def machine() -> str:
    """This machine's name, as published deployments name theirs.

    Example:
        >>> machine() == machine()
        True
    """
    import re
    import socket

    return re.sub(r"[^A-Za-z0-9_.-]+", "-", socket.gethostname()) or "localhost"


@dataclass
class Published:
    """A deployment as every user of the store sees it: where it runs, who started it, since
    when, and when it last said it was alive. No token and no local file: the process handle
    stays with the machine that runs it.

    Example:
        >>> p = Published(machine="gpu-1", port=5001, host="127.0.0.1", user="alice",
        ...               started=0.0, seen=0.0, models=[ModelSpec("iris", "production", 3)])
        >>> p.key
        'nbmodel.deployment.gpu-1.5001'
    """

    machine: str
    port: int
    host: str
    user: str
    started: float | None
    seen: float
    models: list[ModelSpec] = field(default_factory=list)
    pid: int | None = None
    workers: int = 1
    #: when the server said it stopped
    stopped: float | None = None

    @property
    def key(self) -> str:
        """The tag it is published under."""
        return f"{PUBLISHED}{self.machine}.{self.port}"

    def stale(self, now: float) -> bool:
        """Whether the server has not said it is alive for :data:`STALE_SECONDS`."""
        return now - self.seen > STALE_SECONDS

    def to_json(self) -> dict[str, Any]:
        """The published form (the models without their local folders)."""
        data = asdict(self)
        data["models"] = [{"name": m.name, "alias": m.alias, "version": m.version} for m in self.models]
        return data

    @classmethod
    def from_json(cls, data: Any) -> Published:
        """A published deployment from its tag's value.

        Raises:
            ValueError: not a published deployment.
        """
        if not isinstance(data, dict) or not all(k in data for k in ("machine", "port", "seen")):
            raise ValueError("not a published deployment")
        known = {f.name for f in fields(cls)} - {"models"}
        values = {k: v for k, v in data.items() if k in known}
        values["port"] = int(values["port"])
        values["seen"] = float(values["seen"])
        values.setdefault("host", "127.0.0.1")
        values.setdefault("user", "")
        values.setdefault("started", None)
        models = [ModelSpec.from_json(m) for m in data.get("models") or [] if isinstance(m, dict)]
        return cls(**values, models=models)

    @classmethod
    def of(cls, record: DeploymentRecord, *, user: str, seen: float) -> Published:
        """What this machine publishes of its record ``record``."""
        return cls(machine=machine(), port=record.port, host=record.host, user=user,
                   started=record.started, seen=seen, pid=record.pid, workers=record.workers,
                   models=[ModelSpec(m.name, m.alias, m.version) for m in record.models])


def publish(gateway: Any, entry: Published) -> None:
    """Publish ``entry`` on every model it serves (again, to say it is alive or stopped).

    Args:
        gateway: the store's gateway (:mod:`nbmodel.gateway`).
        entry: the deployment.

    Example:
        >>> publish(store.gateway, Published.of(record, user="alice", seen=time.time()))  # doctest: +SKIP
    """
    value = json.dumps(entry.to_json(), separators=(",", ":"))
    for name in dict.fromkeys(m.name for m in entry.models):
        gateway.set_model_tag(name, entry.key, value)


def published(gateway: Any, name: str | None = None) -> list[Published]:
    """The deployments published on the store (of model ``name``), stopped ones left out.

    Args:
        gateway: the store's gateway.
        name: only those serving this model.

    Returns:
        One entry per server, by machine and port.

    Example:
        >>> [p.key for p in published(store.gateway, "iris")]  # doctest: +SKIP
        ['nbmodel.deployment.gpu-1.5001']
    """
    if name is not None:
        tag_sets = [gateway.model_tags(name, PUBLISHED) or {}]
    else:
        tag_sets = [{k: v for k, v in (rm.tags or {}).items() if k.startswith(PUBLISHED)}
                    for rm in gateway.list_models()]
    found: dict[str, Published] = {}
    for tags in tag_sets:
        for value in tags.values():
            try:
                entry = Published.from_json(json.loads(value))
            except (ValueError, TypeError):
                continue
            have = found.get(entry.key)
            if have is None or entry.seen > have.seen:  # each model served holds a copy
                found[entry.key] = entry
    return sorted((e for e in found.values() if e.stopped is None), key=lambda e: (e.machine, e.port))
