"""Where versions live: resolving, opening and guarding the MLflow store.

The store is resolved in this order (the first that is set wins):

1. ``%model_store URI`` or :func:`set_store`;
2. the ``MLFLOW_TRACKING_URI`` environment variable;
3. ``[tool.nbmodel] tracking_uri`` in the nearest ``pyproject.toml`` (relative sqlite paths are
   read from that file's folder);
4. MLflow's own default, ``sqlite:///mlflow.db`` in the working directory.

A brand-new sqlite store is created under a file lock, in a temporary file that is renamed into
place once MLflow's schema migrations are done: MLflow's migrations race when two kernels create
the same file, and a migration killed half-way leaves a file no later open can use. Writes to a
sqlite store are serialised across processes by the same lock, so version numbers never collide.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import lineage
from .errors import BadStoreURI, StoreError, first_line
from .gateway import Gateway

if TYPE_CHECKING:
    from mlflow import MlflowClient

T = TypeVar("T")

DEFAULT_URI = "sqlite:///mlflow.db"

_explicit_uri: str | None = None
_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()
_held = threading.local()  # how deep this thread is inside write_lock(), per store
#: The store of one call in progress (see :func:`scoped`): context-local, so a server answering
#: for several notebook folders at once points each call at its folder's store.
_scoped: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "nbmodel_scoped_store", default=None)


def set_store(uri: str | None) -> Store:
    """Use ``uri`` as the store for this session (``None`` goes back to the resolution order).

    Args:
        uri: an MLflow tracking URI: ``sqlite:///path.db``, ``http://host:5000``, or a path to a
            sqlite file (``models.db``), which is read as ``sqlite:///models.db``.

    Returns:
        The opened :class:`Store`.

    Raises:
        StoreError: if the store cannot be opened or reached; the previous store stays in use.

    Example:
        >>> nbmodel.set_store("sqlite:///course.db")  # doctest: +SKIP
    """
    global _explicit_uri
    if uri is None:
        _explicit_uri = None
        return get_store()
    uri = _normalise(uri, base=Path.cwd())
    store = _open(uri, "set_store")
    store.check()
    _explicit_uri = uri
    return store


def resolve_uri(folder: Path | None = None) -> tuple[str, str]:
    """The store's URI by the resolution order, without opening anything.

    Args:
        folder: resolve as a kernel started in this folder would (JupyterLab starts a
            notebook's kernel in the notebook's folder): ``MLFLOW_TRACKING_URI`` with relative
            sqlite paths read from there, the nearest ``pyproject.toml`` above it, else
            ``mlflow.db`` in it. None: the working directory. A store chosen with
            :func:`set_store` wins either way, and so does the store of :func:`scoped`.

    Returns:
        ``(uri, origin)``: origin is ``set_store``, ``MLFLOW_TRACKING_URI``, a pyproject.toml path
        or ``default``.

    Raises:
        StoreError: the URI found is not a store URI.

    Example:
        >>> resolve_uri()  # doctest: +SKIP
        ('sqlite:////home/ann/course/mlflow.db', 'default')
        >>> resolve_uri(Path("/home/ann/other"))  # doctest: +SKIP
        ('sqlite:////home/ann/other/mlflow.db', 'default')
    """
    if folder is None:
        scoped_store = _scoped.get()
        if scoped_store is not None:
            return scoped_store
    if _explicit_uri:
        return _explicit_uri, "set_store"
    base = Path.cwd() if folder is None else folder
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return _normalise(env, base=base), "MLFLOW_TRACKING_URI"
    found = _pyproject_uri(base)
    if found:
        return found
    return _normalise(DEFAULT_URI, base=base), "default"


@contextlib.contextmanager
def scoped(uri: str, origin: str) -> Iterator[Store]:
    """Use the store ``uri`` for what runs inside, in this context only (this thread, or this
    asyncio task), leaving the session's store and every other thread's as they were.

    Args:
        uri: a store URI as :func:`resolve_uri` gives it.
        origin: where it came from, as :func:`resolve_uri` names it.

    Yields:
        The opened :class:`Store`.

    Example:
        >>> with scoped(*resolve_uri(Path("/home/ann/other"))):  # doctest: +SKIP
        ...     nbmodel.log("iris")
    """
    token = _scoped.set((uri, origin))
    try:
        yield _open(uri, origin)
    finally:
        _scoped.reset(token)


def get_store() -> Store:
    """The store in use now, opened on first use.

    Returns:
        The :class:`Store` (one object per URI, kept for the session).

    Raises:
        StoreError: the URI found is not a store URI.

    Example:
        >>> nbmodel.get_store().uri  # doctest: +SKIP
        'sqlite:////home/ann/course/mlflow.db'
    """
    uri, origin = resolve_uri()
    return _open(uri, origin)


def _scope() -> str:
    return resolve_uri()[0]


lineage.use_scope(_scope)


def _open(uri: str, origin: str) -> Store:
    with _stores_lock:
        store = _stores.get(uri)
        if store is None:
            store = _stores[uri] = Store(uri)
    store.origin = origin
    return store


def _pyproject_uri(start: Path) -> tuple[str, str] | None:
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            try:
                data = tomllib.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError):
                return None
            uri = data.get("tool", {}).get("nbmodel", {}).get("tracking_uri")
            if uri:
                return _normalise(str(uri), base=folder), f"{candidate}"
            return None
    return None


def _normalise(uri: str, *, base: Path) -> str:
    """Make sqlite URIs absolute, so a later ``cd`` does not switch stores."""
    uri = uri.strip()
    if not uri:
        raise BadStoreURI("the store URI is empty; give sqlite:///FILE.db or http://HOST:PORT")
    if "://" not in uri:
        if uri.endswith((".db", ".sqlite", ".sqlite3")):
            uri = f"sqlite:///{uri}"
        else:
            raise BadStoreURI(
                f"{uri!r} is not a store URI; give sqlite:///FILE.db for a local store "
                "or http://HOST:PORT for an mlflow server"
            )
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):]
        if path and path != ":memory:":
            path = str((base / path).resolve()) if not os.path.isabs(path) else path
            return f"sqlite:///{path}"
    return uri


@contextlib.contextmanager
def quiet_logs(*names: str, level: int = logging.WARNING) -> Iterator[None]:
    """Raise the level of some loggers for a while: MLflow and alembic log every migration step and
    every model save at INFO or WARNING, which a notebook should not show.

    Args:
        *names: the loggers' names.
        level: the level they have inside the block.

    Returns:
        A context manager; the levels are restored on leaving it.

    Example:
        >>> with quiet_logs("alembic"):
        ...     pass
    """
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        yield
    finally:
        for lg, old in zip(loggers, levels):
            lg.setLevel(old)


def _quiet_mlflow_logs() -> Any:
    return quiet_logs("mlflow.store.db.utils", "alembic", "alembic.runtime.migration", "mlflow.store")


# MLflow's settings for nbmodel's own calls: its REST client otherwise retries for minutes when a
# server is down, and it prints "View run ..." links a notebook would show. A user's own value of
# a variable wins.
CALL_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "4",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    # Downloads from a server's artifact store draw tqdm bars on stderr, into the notebook.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
# Loggers that report routine steps of a call at INFO ("Waiting up to 300 seconds for model
# version to finish creation", at every version a server registers).
QUIET_LOGGERS = ("mlflow.store.model_registry.abstract_store", "mlflow.tracking._model_registry.client")
# MLflow logs every SQL error with its traceback at ERROR before raising it; nbmodel reports the
# error itself, in one line.
SILENT_LOGGERS = ("mlflow.store.db.utils",)

_calls_lock = threading.Lock()
_calls_depth = 0
_calls_saved: list[tuple[str, str | None]] = []
_calls_levels: list[tuple[logging.Logger, int]] = []

#: How long MLflow's request headers, once resolved inside :func:`mlflow_calls`, are reused.
#: MLflow resolves them anew for every request, and its Databricks provider then tries to import
#: pyspark and Databricks' runtime each time: about 0.7 ms of the kernel's CPU per request, and a
#: commit to a team server sends 35 requests. The headers describe the process (where it runs,
#: MLflow's user agent), so a second's reuse changes nothing they say.
HEADERS_TTL = 1.0
_headers_lock = threading.Lock()
_headers_resolved: list[Any] = []  # [monotonic time, headers, resolver] of the last resolution
_headers_original: list[Any] = []  # MLflow's resolver, while the block has replaced it


def _reused_headers(request_headers: dict[str, str] | None = None) -> dict[str, str]:
    """MLflow's ``resolve_request_headers``, resolving at most once per :data:`HEADERS_TTL`."""
    now = time.monotonic()
    with _headers_lock:
        resolve = _headers_original[0] if _headers_original else None
        if resolve is not None and (not _headers_resolved or now - _headers_resolved[0] > HEADERS_TTL
                                    or _headers_resolved[2] is not resolve):
            _headers_resolved[:] = [now, dict(resolve()), resolve]
        headers = dict(_headers_resolved[1]) if _headers_resolved else {}
    if resolve is None:  # the block ended while this request was on its way
        from mlflow.tracking.request_header.registry import resolve_request_headers
        return dict(resolve_request_headers(request_headers))
    if request_headers is not None:
        headers.update(request_headers)
    return headers


def _reuse_headers(on: bool) -> None:
    """Put :func:`_reused_headers` in place of MLflow's resolver (``on``), or MLflow's back."""
    # Not imported here: a block that makes no request should not pay for MLflow's import, and
    # once MLflow has sent its first request the module is there for the next block.
    registry: Any = sys.modules.get("mlflow.tracking.request_header.registry")
    if registry is None:
        return
    with _headers_lock:
        if on and not _headers_original:
            _headers_original.append(registry.resolve_request_headers)
            registry.resolve_request_headers = _reused_headers
        elif not on and _headers_original:
            if registry.resolve_request_headers is _reused_headers:
                registry.resolve_request_headers = _headers_original[0]
            # The headers resolved stay for the next block within HEADERS_TTL (each magic is a
            # block of its own), and only with the same resolver.
            _headers_original.clear()


@contextlib.contextmanager
def mlflow_calls() -> Iterator[None]:
    """Bounded, quiet MLflow calls inside the block: at most one retry and 4 s per request,
    no "View run" prints, no INFO log lines, request headers resolved once a second rather than
    for every request. The environment, logger levels and MLflow's header resolver are restored
    when the last thread leaves the block, so nothing stays set in the user's session.

    Returns:
        A context manager (re-entrant and usable from several threads).

    Example:
        >>> with mlflow_calls():
        ...     os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
        '1'
    """
    global _calls_depth
    with _calls_lock:
        if _calls_depth == 0:
            _calls_saved[:] = [(k, os.environ.get(k)) for k in CALL_SETTINGS]
            for key, value in CALL_SETTINGS.items():
                os.environ.setdefault(key, value)
            loggers = [logging.getLogger(n) for n in QUIET_LOGGERS + SILENT_LOGGERS]
            _calls_levels[:] = [(lg, lg.level) for lg in loggers]
            for lg in loggers:
                lg.setLevel(logging.CRITICAL if lg.name in SILENT_LOGGERS else logging.WARNING)
            _reuse_headers(True)
        _calls_depth += 1
    try:
        yield
    finally:
        with _calls_lock:
            _calls_depth -= 1
            if _calls_depth == 0:
                for key, old in _calls_saved:
                    if old is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = old
                for lg, level in _calls_levels:
                    lg.setLevel(level)
                _reuse_headers(False)


#: A write that must not happen twice: MLflow's REST client re-sends any request, POSTs too,
#: whose answer timed out, so a slow server (busy, or a loaded machine) registered the same
#: version twice. Sent once, with a little more time; the caller checks what a timeout left.
SEND_ONCE_SETTINGS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "8"}


@contextlib.contextmanager
def sent_once() -> Iterator[None]:
    """Inside the block (within :func:`mlflow_calls`), MLflow's requests are sent once, never
    re-sent after a timeout. The previous settings are restored after it.

    Example:
        >>> with mlflow_calls(), sent_once():
        ...     os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
        '0'
    """
    with mlflow_calls():
        with _calls_lock:
            saved = {k: os.environ.get(k) for k in SEND_ONCE_SETTINGS}
            os.environ.update(SEND_ONCE_SETTINGS)
        try:
            yield
        finally:
            with _calls_lock:
                for key, old in saved.items():
                    if old is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = old


@contextlib.contextmanager
def unchecked_serving_input() -> Iterator[None]:
    """Inside the block, MLflow's ``log_model`` does not reload the model it just saved to try
    its input example: a failed try is only a warning in MLflow, and nbmodel has already run
    the model on the eval data. It was a quarter of a commit's time on sqlite.

    Returns:
        A context manager (the check is back when the last thread leaves the block).

    Example:
        >>> with unchecked_serving_input():
        ...     pass
    """
    import mlflow.models.utils as model_utils

    global _unchecked_depth
    with _calls_lock:
        if _unchecked_depth == 0:
            _unchecked_saved[:] = [model_utils._validate_serving_input]
            model_utils._validate_serving_input = _no_serving_check
        _unchecked_depth += 1
    try:
        yield
    finally:
        with _calls_lock:
            _unchecked_depth -= 1
            if _unchecked_depth == 0:
                model_utils._validate_serving_input = _unchecked_saved.pop()


_unchecked_depth = 0
_unchecked_saved: list[Any] = []


def _no_serving_check(model_uri: Any, serving_input: Any) -> None:
    return None


def _is_unreachable(exc: BaseException) -> bool:
    """Whether an error of MLflow's REST client means the server did not answer at all."""
    text = str(exc)
    return any(s in text for s in ("Max retries exceeded", "Failed to establish a new connection",
                                   "Connection refused", "Read timed out", "ConnectionError",
                                   "RemoteDisconnected", "Connection aborted"))


def _unreachable_reason(exc: BaseException) -> str:
    text = str(exc)
    for needle, reason in (("Connection refused", "connection refused"), ("timed out", "timed out"),
                           ("Connection aborted", "connection closed"),
                           ("RemoteDisconnected", "connection closed")):
        if needle in text:
            return reason
    return first_line(exc)[:120]


def _is_locked_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text


# What sqlite (or the file system under it) says when it refuses a read or a write, and what the
# user can do about it: the one line a magic shows instead of MLflow's pages of SQL.
_REFUSALS = (
    (("readonly database", "read-only file system", "permission denied", "access denied"),
     "is read-only here ({why}): ask for write access, or choose a store you can write with "
     "%model_store"),
    (("database or disk is full", "no space left on device", "disk quota exceeded"),
     "has no room left ({why}): free some disk space and try again"),
    (("no such table", "no such column", "malformed", "file is not a database", "disk i/o error"),
     "is damaged ({why}): restore it from a backup, or choose another store with %model_store"),
    (("unable to open database file",),
     "cannot be opened ({why}): check that its file and folder exist and can be written"),
)


def _refusal(uri: str, exc: BaseException) -> StoreError | None:
    """The one-line :class:`StoreError` for a store that refused a call, or None for any other
    error (a missing model, a bad argument: the caller's concern)."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 5:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for err in chain:
        lowered = str(err).lower()
        for needles, advice in _REFUSALS:
            for needle in needles:
                if needle in lowered:
                    why = needle
                    if isinstance(err, OSError) and err.strerror:
                        why = err.strerror.lower()
                    return StoreError(f"the store {uri} " + advice.format(why=why))
    return None


@dataclass
class Store:
    """An MLflow tracking store and model registry, opened lazily.

    Attributes:
        uri: the absolute tracking URI.
        origin: where the URI came from (``set_store``, ``MLFLOW_TRACKING_URI``, a
            pyproject.toml path, or ``default``).
    """

    uri: str
    origin: str = "default"
    _client: Any = field(default=None, repr=False)
    _open_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _gateway: Gateway | None = field(default=None, repr=False)
    #: True once this session created the store's sqlite file (a new, empty store).
    created: bool = field(default=False, repr=False)

    @property
    def gateway(self) -> Gateway:
        """The one way to MLflow for this store (see :mod:`nbmodel.gateway`).

        Example:
            >>> nbmodel.get_store().gateway.aliases("iris")  # doctest: +SKIP
            {'production': 3}
        """
        if self._gateway is None:
            self._gateway = Gateway(self)
        return self._gateway

    @property
    def registry(self) -> Gateway:
        """The same object as :attr:`gateway` (its older name).

        Example:
            >>> nbmodel.get_store().registry is nbmodel.get_store().gateway  # doctest: +SKIP
            True
        """
        return self.gateway

    @property
    def is_sqlite(self) -> bool:
        """True when the URI is a ``sqlite:`` URI.

        Example:
            >>> Store("sqlite:///mlflow.db").is_sqlite
            True
        """
        return self.uri.startswith("sqlite:")

    @property
    def db_path(self) -> Path | None:
        """The sqlite file of a ``sqlite:///`` URI, or ``None`` for any other store.

        Example:
            >>> Store("sqlite:////tmp/m.db").db_path
            PosixPath('/tmp/m.db')
            >>> Store("http://127.0.0.1:5000").db_path is None
            True
        """
        if self.uri.startswith("sqlite:///"):
            return Path(self.uri[len("sqlite:///"):])
        return None

    @property
    def artifact_root(self) -> str | None:
        """The ``mlruns`` folder beside a sqlite store's file, or ``None`` for any other store.

        Artifacts of a sqlite store live beside its file, wherever the kernel runs.

        Example:
            >>> Store("sqlite:////tmp/m.db").artifact_root
            '/tmp/mlruns'
        """
        path = self.db_path
        return str(path.parent / "mlruns") if path else None

    @property
    def exists(self) -> bool:
        """False for a sqlite store whose file has not been created yet; True for any other store.

        Example:
            >>> Store("http://127.0.0.1:5000").exists
            True
        """
        path = self.db_path
        return path.exists() if path else True

    def check(self) -> None:
        """Open the store now, creating a sqlite file if needed.

        Raises:
            StoreError: the store cannot be opened or reached.

        Example:
            >>> nbmodel.get_store().check()  # doctest: +SKIP
        """
        self.client  # noqa: B018 - opening is the check

    @property
    def client(self) -> MlflowClient:
        """MLflow's client, opened on first use; everything else reaches it through :attr:`gateway`.

        Raises:
            StoreError: the store cannot be opened or reached (a file store, which has no model
                registry, is refused too).

        Example:
            >>> nbmodel.get_store().client  # doctest: +SKIP
            <mlflow.tracking.client.MlflowClient object at 0x...>
        """
        if self._client is None:
            with self._open_lock:
                if self._client is None:
                    self._client = self._connect()
        return self._client

    def _connect(self) -> MlflowClient:
        if self.uri.startswith(("http://", "https://")):
            self._ping()
        elif self.is_sqlite:
            self._create_sqlite()
        elif self.uri.startswith("file:") or self.uri.startswith("/"):
            raise StoreError(
                f"{self.uri}: MLflow's file store has no model registry; use "
                "sqlite:///mlflow.db or an mlflow server"
            )
        from mlflow import MlflowClient

        with _quiet_mlflow_logs():
            try:
                client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
                self.retry(client.search_registered_models, max_results=1)
            except StoreError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure here means "cannot open"
                raise StoreError(f"cannot open the store {self.uri}: {first_line(exc)}") from exc
        use_in_mlflow(self.uri)
        return client

    def _ping(self) -> None:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(self.uri.rstrip("/") + "/health", timeout=5) as resp:
                resp.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StoreError(
                f"cannot reach the store at {self.uri} ({reason}); start it with "
                "`mlflow server --backend-store-uri ...` or choose another with %model_store"
            ) from exc

    def _create_sqlite(self) -> None:
        path = self.db_path
        if path is None:
            return
        if path.is_dir():
            raise BadStoreURI(
                f"cannot open the store {self.uri}: {path} is a folder, not a store file; give a "
                f"file such as {path / 'mlflow.db'}"
            )
        if not path.parent.is_dir():
            raise BadStoreURI(
                f"cannot open the store {self.uri}: the folder {path.parent} does not exist; "
                "create it or choose another store with %model_store"
            )
        if path.exists():
            if path.stat().st_size == 0:
                # Not a store: MLflow would silently make a new empty one in its place.
                raise BadStoreURI(
                    f"cannot open the store {self.uri}: {path} is an empty file, not a store; "
                    "delete it to start a new store there, or choose another with %model_store"
                )
            return
        if not os.access(path.parent, os.W_OK):
            raise BadStoreURI(
                f"cannot create the store {self.uri}: the folder {path.parent} cannot be written; "
                "choose a store in a folder you can write with %model_store"
            )
        with self.write_lock(), _quiet_mlflow_logs():
            if path.exists():
                return
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

                store = SqlAlchemyStore(f"sqlite:///{tmp}", self.artifact_root)
                store.engine.dispose()
                os.replace(tmp, path)
                self.created = True
            except Exception as exc:  # noqa: BLE001
                raise StoreError(f"cannot create the store {self.uri}: {first_line(exc)}") from exc
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()

    @contextlib.contextmanager
    def exclusive(self, name: str, owner: str) -> Iterator[None]:
        """One kernel at a time reads, decides and writes what model ``name`` carries (its
        aliases, their trail, its versions' retirement): the file lock on sqlite, a lease on a
        server.

        Args:
            name: the registered model's name.
            owner: who holds it, shown to those who wait.

        Returns:
            A context manager.

        Raises:
            LeaseBusy: another kernel kept the lease past the wait.

        Example:
            >>> with nbmodel.get_store().exclusive("iris", owner="ann"):  # doctest: +SKIP
            ...     pass
        """
        if self.is_sqlite:
            with self.write_lock():
                yield
        else:
            with self.gateway.lease(name, owner=owner):
                yield

    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        """Serialise writes to a sqlite store across kernels; a no-op for a server.

        The lock is an OS file lock, so a process killed while holding it releases it. A thread that
        holds it already goes on (the lock is re-entrant per thread).

        Returns:
            A context manager.

        Example:
            >>> with nbmodel.get_store().write_lock():  # doctest: +SKIP
            ...     pass
        """
        path = self.db_path
        depth = getattr(_held, self.uri, 0)
        if path is None or depth:
            # A server orders writes itself; a thread already holding the lock goes on.
            setattr(_held, self.uri, depth + 1)
            try:
                yield
            finally:
                setattr(_held, self.uri, depth)
            return
        from filelock import FileLock

        lock = FileLock(str(path.with_name(f".{path.name}.lock")))
        with lock:
            setattr(_held, self.uri, 1)
            try:
                yield
            finally:
                setattr(_held, self.uri, 0)

    @property
    def is_server(self) -> bool:
        """True when the URI is an ``http://`` or ``https://`` tracking server.

        Example:
            >>> Store("http://127.0.0.1:5000").is_server
            True
        """
        return self.uri.startswith(("http://", "https://"))

    def unreachable(self, exc: BaseException) -> StoreError:
        """The one-line error for a server that did not answer.

        Args:
            exc: MLflow's error.

        Returns:
            A :class:`~nbmodel.errors.StoreError` naming the URI.

        Example:
            >>> Store("http://127.0.0.1:9").unreachable(OSError("Connection refused")).args[0][:44]
            'cannot reach the store at http://127.0.0.1:9'
        """
        return StoreError(
            f"cannot reach the store at {self.uri} ({_unreachable_reason(exc)}); start the server "
            "or choose another store with %model_store"
        )

    def retry(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn``, retrying for up to 30 seconds while sqlite says "database is locked".

        The call runs inside :func:`mlflow_calls` (bounded and quiet); a server that does not
        answer raises :class:`~nbmodel.errors.StoreError` within seconds.

        Args:
            fn: the function to call.
            *args: its positional arguments.
            **kwargs: its keyword arguments.

        Returns:
            What ``fn`` returns.

        Raises:
            StoreError: a server store did not answer.
            Exception: whatever ``fn`` raised last, when it is not a lock error or time is up.

        Example:
            >>> Store("sqlite:///x.db").retry(max, 1, 2)
            2
        """
        delay = 0.02
        deadline = time.monotonic() + 30
        with mlflow_calls():
            while True:
                try:
                    return fn(*args, **kwargs)
                except Exception as exc:
                    if self.is_server and _is_unreachable(exc):
                        raise self.unreachable(exc) from exc
                    if not _is_locked_error(exc) or time.monotonic() > deadline:
                        refused = _refusal(self.uri, exc)
                        if refused is not None:
                            raise refused from exc
                        raise
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)

    def experiment_id(self, name: str) -> str:
        """The id of the experiment that holds the runs of model ``name`` (created if needed).

        Args:
            name: the registered model's name.

        Returns:
            The experiment id (see :meth:`nbmodel.gateway.Gateway.experiment_id`).

        Example:
            >>> nbmodel.get_store().experiment_id("iris")  # doctest: +SKIP
            '1'
        """
        return self.gateway.experiment_id(name)


def use_in_mlflow(uri: str) -> None:
    """Make plain MLflow calls in this kernel (``mlflow.pyfunc.load_model("models:/iris/3")``) use
    ``uri``, without touching the environment: MLflow's setters also write MLFLOW_TRACKING_URI,
    which would then outrank the user's own resolution order.

    Args:
        uri: the tracking and registry URI.

    Example:
        >>> use_in_mlflow("sqlite:////tmp/models.db")  # doctest: +SKIP
    """
    import mlflow

    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    try:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
