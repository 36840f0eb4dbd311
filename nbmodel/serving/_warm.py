"""The warm starter: one helper process per user and machine that has already imported what a
model server needs, so a deploy answers in a fraction of a second.

A fresh Python takes seconds to import scikit-learn and skops (all of scikit-learn's estimators:
skops lists them to know which types it may load), which would be most of a server's start.
The helper pays that once and forks servers that only have to read their model and bind their
port. It is shared by all of a user's kernels, the JupyterLab sidebar (the jupyter-server
process) and ``nbmodel serve``, so ten open notebooks hold one helper, not ten.

Finding it: a Unix socket in a private runtime folder (``$NBMODEL_RUNTIME_DIR``, else
``$XDG_RUNTIME_DIR/nbmodel``, else ``nbmodel-UID`` in the temporary folder; mode 0o700, owned
by the user, or nothing is shared through it), named for the Python and the nbmodel it runs
(another environment gets its own helper). The helper holds an exclusive ``flock`` on a lock
file beside the socket for as long as it lives, so a socket whose lock is free is stale (its
helper was killed) and is replaced. Kernels that race to start one serialize on a second lock
file; the first starts it, the others find its socket.

Its life: nothing starts it at ``%load_ext``; the first deploy (magic, API or sidebar) does,
and waits for its imports (as long as a fresh server would take). It binds its socket at
once, imports, answers ``{"hello"}`` with ``{"ready": pid}``, then imports MLflow while idle
(the servers it forks then need no background import at all). Every nbmodel magic tells it
the user is active; it leaves after ``IDLE_SECONDS`` without, and the next deploy starts it
again. ``NBMODEL_WARM_SERVER=0`` turns it off: every server starts as a fresh process.

A server forked here is a server started any other way: its own session, its log (or the
terminal of ``nbmodel serve``, whose descriptors come over the socket), the caller's
environment and folder, and ``--parent`` watching the kernel (not this helper). The helper
reaps the servers that end. It runs no prediction (no OpenMP pool must cross a fork), and does
not import prometheus_client, which picks its multiprocess mode at import (a server with
``--workers`` switches it on itself, see ``serve``). Anything going wrong here, or thread and
path settings that differ from the helper's, falls back to starting the server as a new
process, so a deploy never depends on the helper.

Run as ``python -m nbmodel.serving._warm`` by :class:`WarmStarter`.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import hashlib
import json
import os
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..flavors import import_skops
from ._process import server_env

#: Set to 0 (or false, no, off) to start every server as a fresh process.
ENV_SWITCH = "NBMODEL_WARM_SERVER"
#: The folder of the helper's socket and locks (default: the user's runtime folder).
RUNTIME_ENV = "NBMODEL_RUNTIME_DIR"
#: How long a deploy waits for a helper that is still importing; past it, a fresh process.
READY_TIMEOUT = 60.0
#: How long a ready helper may take to fork.
FORK_TIMEOUT = 10.0
#: How long a caller waits for its turn to start a helper, and for it to bind its socket.
START_TIMEOUT = 15.0
#: The helper leaves after this long without a deploy or any other nbmodel magic (it holds
#: about 300 MB); the next deploy starts it again.
IDLE_SECONDS = 15 * 60.0
#: Variables read when the libraries load (thread pools, import paths): a server forked by a
#: helper that imported them with other values would not honour the caller's.
IMPORT_TIME_VARS = ("OMP_", "OPENBLAS_", "MKL_", "VECLIB_", "NUMEXPR_", "SKLEARN_", "PYTHON", "LD_")
#: The helper's exit code when another helper already holds the lock.
_TAKEN = 3


def enabled() -> bool:
    """Whether servers may fork from a warm starter (``NBMODEL_WARM_SERVER`` is not off)."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def _import_time(env: dict[str, str]) -> dict[str, str]:
    """The settings of ``env`` read at import; a search path once per folder (callers whose
    path names a folder twice import the same modules)."""
    found = {k: v for k, v in env.items() if k.startswith(IMPORT_TIME_VARS)}
    if "PYTHONPATH" in found:
        folders = (p for p in found["PYTHONPATH"].split(os.pathsep) if p)
        found["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(folders))
    return found


# -- where it is found -----------------------------------------------------------------------
def runtime_dir() -> Path:
    """The user's private folder for the helper's socket and locks, made with mode 0o700.

    Returns:
        ``$NBMODEL_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/nbmodel``, else ``nbmodel-UID`` in
        the temporary folder.

    Raises:
        OSError: the folder is not a folder of this user's (a link, or someone else's): the
            helper is then not used.

    Example:
        >>> oct(runtime_dir().stat().st_mode & 0o777)
        '0o700'
    """
    if os.environ.get(RUNTIME_ENV):
        folder = Path(os.environ[RUNTIME_ENV])
    elif os.environ.get("XDG_RUNTIME_DIR") and os.path.isdir(os.environ["XDG_RUNTIME_DIR"]):
        folder = Path(os.environ["XDG_RUNTIME_DIR"], "nbmodel")
    else:
        folder = Path(tempfile.gettempdir(), f"nbmodel-{os.getuid()}")
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700, parents=True)
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise PermissionError(f"{folder} is not a folder of this user's; the warm starter is not used")
    if st.st_mode & 0o077:
        os.chmod(folder, 0o700)
    return folder


def _key() -> str:
    """What one helper serves: this Python and this nbmodel (another venv gets its own).

    The interpreter is named by its file and environment, not by the name it was called by: a
    kernel spec's ``python`` and an entry point's ``python3`` in one venv share a helper.
    """
    root = str(Path(__file__).resolve().parents[1])
    python = os.path.realpath(sys.executable)
    prefix = os.path.realpath(sys.prefix)
    return hashlib.sha256(f"{python}\0{prefix}\0{root}".encode()).hexdigest()[:10]


def _paths(folder: Path) -> tuple[Path, Path, Path]:
    """The helper's socket, the lock it holds while it lives, and the lock of starting one."""
    stem = f"warm-{_key()}"
    return folder / f"{stem}.sock", folder / f"{stem}.lock", folder / f"{stem}.start"


def _connect(path: Path, timeout: float = 1.0) -> socket.socket | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(path))
    except OSError:  # none there, or a stale socket its killed helper left
        s.close()
        return None
    return s


def _lock_free(path: Path) -> bool:
    """Whether no helper holds the lock at ``path`` (so none runs, or one is leaving)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # releases it if taken
    return True


@contextlib.contextmanager
def _locked(path: Path, timeout: float) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path} stayed locked for {timeout:.0f} s") from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)


# -- in the caller (a kernel, jupyter-server, nbmodel serve) ---------------------------------
class WarmStarter:
    """A handle on the user's helper: connects to it, starting it first if none runs.

    Making one does nothing; :meth:`spawn` (a deploy) starts the helper when needed.

    Args:
        env: the helper's environment if this handle starts it (default: a server's).
        idle_seconds: how long a helper this handle starts stays without being used.
        folder: the runtime folder (default: :func:`runtime_dir`).

    Example:
        >>> WarmStarter().spawn(server_args(record.path), server_env(), record.log)  # doctest: +SKIP
        12345
    """

    def __init__(self, env: dict[str, str] | None = None, idle_seconds: float = IDLE_SECONDS,
                 folder: Path | None = None) -> None:
        self.env = env
        self.idle_seconds = idle_seconds
        self.folder = folder
        self.pid: int | None = None  # the helper's, once it said hello
        self.started: int | None = None  # the pid of a helper this handle started

    def _files(self) -> tuple[Path, Path, Path]:
        return _paths(self.folder or runtime_dir())

    def running(self) -> bool:
        """Whether a helper runs now (it holds its lock); starts nothing.

        Example:
            >>> WarmStarter().running()  # doctest: +SKIP
            False
        """
        try:
            return not _lock_free(self._files()[1])
        except OSError:
            return False

    def _open(self, start: bool) -> socket.socket | None:
        """A connection to the helper; with ``start``, one is started if none runs (the
        callers that race for it take turns, and only the first starts it)."""
        sock_path, lock_path, start_path = self._files()
        s = _connect(sock_path)
        if s is not None or not start:
            return s
        deadline = time.monotonic() + START_TIMEOUT
        with _locked(start_path, START_TIMEOUT):
            while time.monotonic() < deadline:
                s = _connect(sock_path)
                if s is not None:
                    return s
                if _lock_free(lock_path):  # none runs (or one just left): this caller starts it
                    self._start(sock_path.parent)
                else:
                    time.sleep(0.02)  # one is binding its socket, or leaving
        return None

    def _start(self, folder: Path) -> None:
        """Start a helper and return once it holds the lock and listens (its first process
        exits then; the helper itself is no child of this one, so it outlives it)."""
        env = dict(self.env if self.env is not None else server_env())
        env[RUNTIME_ENV] = str(folder)
        log = os.open(folder / f"warm-{_key()}.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            first = subprocess.Popen(
                [sys.executable, "-m", "nbmodel.serving._warm", "--idle", str(self.idle_seconds)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, env=env,
                start_new_session=True, close_fds=True)
        finally:
            os.close(log)
        try:
            out, _ = first.communicate(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            first.kill()
            first.wait()
            return
        if first.returncode == 0 and out.strip().isdigit():
            self.started = int(out.strip())

    def _ask(self, request: dict[str, Any], timeout: float, *, start: bool,
             fds: list[int] | None = None) -> dict[str, Any]:
        """Send one request and read its answer; ``{}`` if there is no helper or it says
        nothing in time."""
        try:
            s = self._open(start)
        except (OSError, TimeoutError, subprocess.SubprocessError):
            return {}
        if s is None:
            return {}
        with s:
            try:
                data = json.dumps(request).encode() + b"\n"
                if fds:
                    socket.send_fds(s, [data], fds)
                else:
                    s.sendall(data)
                return _read_line(s, timeout)
            except (OSError, ValueError):
                return {}

    def hello(self, timeout: float = READY_TIMEOUT, *, start: bool = True) -> bool:
        """Whether the helper is ready (its imports done), waiting up to ``timeout`` seconds;
        starts it first if none runs and ``start``.

        Example:
            >>> WarmStarter().hello()  # doctest: +SKIP
            True
        """
        answer = self._ask({"hello": True}, timeout, start=start)
        if answer.get("ready"):
            self.pid = int(answer["ready"])
            return True
        return False

    def spawn(self, argv: list[str], env: dict[str, str], log: str | None, *,
              fds: list[int] | None = None, start: bool = True) -> int | None:
        """Fork a server running ``python -m nbmodel.serving._server *argv``.

        Args:
            argv: the server's arguments (see :func:`server_args`).
            env: the server's environment.
            log: the file its output goes to; ``None`` with ``fds``.
            fds: descriptors that become the server's stdin, stdout and stderr (a terminal).
            start: start the helper if none runs.

        Returns:
            The server's pid, or None when there is no helper, it fails, or its thread and path
            settings differ from ``env``'s (the caller then starts a fresh process).

        Example:
            >>> WarmStarter().spawn(server_args(path), server_env(), "server.log")  # doctest: +SKIP
            12345
        """
        request = {"argv": argv, "env": env, "cwd": os.getcwd(), "log": log, "fds": bool(fds)}
        for _ in range(2):  # once more if the helper left just as this one asked
            if not self.hello(READY_TIMEOUT, start=start):
                return None
            answer = self._ask(request, FORK_TIMEOUT, start=False, fds=fds)
            if answer.get("pid"):
                return int(answer["pid"])
            if answer:  # it said no (other settings) or could not fork
                return None
        return None

    def touch(self) -> None:
        """Tell a running helper the user is active (it leaves after its idle time without);
        waits for nothing and starts nothing."""
        with contextlib.suppress(OSError):
            s = _connect(self._files()[0], timeout=0.2)
            if s is not None:
                with s:
                    s.sendall(b'{"touch": true}\n')

    def stop(self, wait: float = 10.0) -> bool:
        """Ask the running helper to leave (the servers it started keep running).

        Returns:
            Whether a helper was running (and has left within ``wait`` seconds).

        Example:
            >>> WarmStarter().stop()  # doctest: +SKIP
            True
        """
        if not self._ask({"stop": True}, wait, start=False):
            return False
        deadline = time.monotonic() + wait
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self.running()


def _read_line(s: socket.socket, timeout: float) -> dict[str, Any]:
    buffer = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buffer:
        left = deadline - time.monotonic()
        if left <= 0:
            return {}
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            return {}
        if not chunk:
            return {}
        buffer += chunk
    return json.loads(buffer.split(b"\n", 1)[0])


_handle: WarmStarter | None = None
_handle_lock = threading.Lock()


def current() -> WarmStarter | None:
    """A handle on the user's helper, or None when it is turned off. Starts nothing by itself:
    its :meth:`~WarmStarter.spawn` starts the helper when a deploy needs it."""
    global _handle
    if not enabled():
        return None
    with _handle_lock:
        if _handle is None:
            _handle = WarmStarter()
        return _handle


def prestart() -> WarmStarter | None:
    """Start the user's helper now if none runs, without waiting for its imports.

    Returns:
        The handle, or None when the helper is turned off or cannot be started.

    Example:
        >>> prestart()  # doctest: +SKIP
        <nbmodel.serving._warm.WarmStarter object at ...>
    """
    handle = current()
    if handle is None:
        return None
    try:
        s = handle._open(start=True)
    except (OSError, TimeoutError, subprocess.SubprocessError):
        return None
    if s is None:
        return None
    s.close()
    return handle


def keep_warm() -> None:
    """Called by every magic: tell a running helper the user is active (starts none)."""
    if enabled():
        with contextlib.suppress(OSError):
            handle = current()
            if handle is not None:
                handle.touch()


def shutdown() -> None:
    """End the helper if this process started it (the servers it started keep running)."""
    handle = _handle
    if handle is not None and handle.started is not None:
        with contextlib.suppress(OSError):
            handle.stop()


def run_server(record: Path | str, env: dict[str, str]) -> int:
    """Run ``nbmodel serve``'s server in the foreground: forked by the user's helper if one
    runs (it answers within a second), with this terminal as its output and this process
    waiting for it (Ctrl-C and SIGTERM passed on; it ends if this process is killed); else
    this process becomes the server (``exec``).

    Returns:
        0 once a forked server has ended; an exec'd one never returns.

    Example:
        >>> run_server(record.path, server_env(store.uri))  # doctest: +SKIP
    """
    from ._process import server_args, server_command

    handle = current()
    pid = None
    if handle is not None:
        with contextlib.suppress(OSError, TimeoutError):
            argv = server_args(record, "--remove-record", "--parent", str(os.getpid()))
            pid = handle.spawn(argv, env, None, fds=[0, 1, 2], start=False)
    if not pid:
        os.execve(sys.executable, server_command(record, "--remove-record"), env)
    return _wait_for(pid)


def _wait_for(pid: int) -> int:
    """Wait until process ``pid`` (not a child) ends, passing Ctrl-C and SIGTERM on."""
    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return 0
    except (AttributeError, OSError):  # no pidfd here (macOS): poll the pid
        from ._process import pid_alive

        while pid_alive(pid):
            time.sleep(0.2)
        return 0
    try:
        while not select.select([fd], [], [], 1.0)[0]:
            pass
    finally:
        os.close(fd)
    return 0


# -- in the helper ---------------------------------------------------------------------------
def _import_server() -> None:
    """What a server imports before its first answer (skops imports all of scikit-learn)."""
    import cloudpickle  # noqa: F401
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import_skops()  # without torch, which skops's walk through scikit-learn would import
    import uvicorn  # noqa: F401
    import uvicorn.lifespan.off  # noqa: F401
    import uvicorn.loops.auto  # noqa: F401
    import uvicorn.protocols.http.auto  # noqa: F401
    import uvicorn.protocols.websockets.auto  # noqa: F401

    import nbmodel.serving._server  # noqa: F401

    with contextlib.suppress(ImportError):
        import uvloop  # noqa: F401


def _import_mlflow() -> list[Callable[[], None]]:
    """What a server imports in the background once it answers (see ``App.import_mlflow``),
    in steps, so that a request arriving meanwhile waits for one step only."""

    def core() -> None:
        import mlflow  # noqa: F401

    def pyfunc() -> None:
        import mlflow.pyfunc  # noqa: F401
        import mlflow.pyfunc.scoring_server  # noqa: F401
        import mlflow.sklearn  # noqa: F401

    def registry() -> None:  # of a database store (SQLAlchemy, Alembic: over a second)
        import mlflow.store.model_registry.sqlalchemy_store  # noqa: F401
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
        import sqlalchemy.dialects.sqlite  # noqa: F401

    def monitoring() -> None:
        import nbmodel.monitoring  # noqa: F401

    return [core, pyfunc, registry, monitoring]


class _Helper:
    """The helper's state: its lock, its socket, the connections it reads."""

    def __init__(self, lock_fd: int, listener: socket.socket, sock_path: Path) -> None:
        self.lock_fd = lock_fd
        self.listener = listener
        self.sock_path = sock_path
        self.inode = os.stat(sock_path).st_ino
        self.conns: dict[socket.socket, tuple[bytes, list[int]]] = {}
        self.imported_with = _import_time(dict(os.environ))

    def close_in_child(self) -> None:
        """A forked server keeps none of the helper's descriptors (the lock above all: a
        server holding it would make its helper look alive forever)."""
        os.close(self.lock_fd)
        self.listener.close()
        for conn, (_, fds) in self.conns.items():
            conn.close()
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def leave(self) -> None:
        """Take the socket away first, so no caller connects to a helper that is gone."""
        with contextlib.suppress(OSError):
            if os.stat(self.sock_path).st_ino == self.inode:
                os.unlink(self.sock_path)
        self.listener.close()
        for conn in self.conns:
            conn.close()


def _peer_is_us(conn: socket.socket) -> bool:
    """Whether the other end runs as this user (the folder's mode already says so)."""
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (AttributeError, OSError):  # no SO_PEERCRED here: the folder's mode decides
        return True
    return struct.unpack("3i", creds)[1] == os.getuid()


def _bind(folder: Path) -> _Helper | None:
    """Take the lock and the socket, or None when another helper holds them."""
    sock_path, lock_path, _ = _paths(folder)
    lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        return None
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sock_path)  # a killed helper's: nobody holds the lock
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock_path))
    os.chmod(sock_path, 0o600)
    listener.listen(64)
    return _Helper(lock_fd, listener, sock_path)


def _fork(helper: _Helper, request: dict[str, Any], fds: list[int]) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the server: never returns into the helper's loop
        os.setsid()
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if request.get("fds") and len(fds) >= 3:
            streams = fds[:3]
        else:
            null = os.open(os.devnull, os.O_RDONLY)
            out = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            streams = [null, out, out]
        for target, fd in enumerate(streams):
            os.dup2(fd, target)
        for fd in {*streams, *fds} - {0, 1, 2}:
            with contextlib.suppress(OSError):
                os.close(fd)
        helper.close_in_child()
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        from nbmodel.serving import _server

        sys.argv = ["nbmodel.serving._server", *request["argv"]]
        code = _server.main(request["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - say why in the server's log
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    return 0


def _answer(helper: _Helper, request: dict[str, Any], fds: list[int]) -> dict[str, Any] | None:
    """The answer to one request; None for a touch (which needs none)."""
    if request.get("stop"):
        return {"stopping": os.getpid()}
    if request.get("hello"):
        return {"ready": os.getpid()}
    if "argv" not in request:
        return None
    if _import_time(request["env"]) != helper.imported_with:
        return {"error": "other thread or path settings than this helper imported with"}
    return {"pid": _fork(helper, request, fds)}


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if not pid:
            return


def _serve_requests(helper: _Helper, idle_seconds: float) -> None:
    """Answer requests until idle for ``idle_seconds`` or asked to stop."""
    idle_work = _import_mlflow()
    last_used = time.monotonic()
    while True:
        _reap()
        timeout = 0.0 if idle_work else 0.5
        ready = select.select([helper.listener, *helper.conns], [], [], timeout)[0]
        if not ready:  # nothing asked
            if idle_work:
                with contextlib.suppress(Exception):
                    idle_work.pop(0)()
                gc.collect()
                gc.freeze()
            elif time.monotonic() - last_used >= idle_seconds:
                return
            continue
        last_used = time.monotonic()
        for s in ready:
            if s is helper.listener:
                with contextlib.suppress(OSError):
                    conn, _ = helper.listener.accept()
                    if _peer_is_us(conn):
                        helper.conns[conn] = (b"", [])
                    else:
                        conn.close()
                continue
            if _read_request(helper, s):
                return


def _read_request(helper: _Helper, conn: socket.socket) -> bool:
    """Read from one connection, answering its request once whole; True when told to stop."""
    buffer, fds = helper.conns[conn]
    try:
        chunk, new_fds, _, _ = socket.recv_fds(conn, 65536, 3)
    except OSError:
        chunk, new_fds = b"", []
    fds = fds + list(new_fds)
    if chunk and b"\n" not in buffer + chunk:
        helper.conns[conn] = (buffer + chunk, fds)
        return False
    helper.conns[conn] = (b"", [])  # a server forked now closes it, and takes the fds itself
    stop = False
    try:
        if chunk:
            request = json.loads((buffer + chunk).split(b"\n", 1)[0])
            try:
                answer = _answer(helper, request, fds)
            except Exception as exc:  # noqa: BLE001 - the caller starts a fresh process
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            stop = bool(request.get("stop"))
            if answer is not None:
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps(answer).encode() + b"\n")
    except ValueError:
        pass
    finally:
        del helper.conns[conn]
        conn.close()
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
    return stop


def main(argv: list[str] | None = None) -> int:
    """The helper (``python -m nbmodel.serving._warm``): take the lock and the socket, leave
    the process that started it, import, then fork servers on request until idle.

    Returns:
        0 once idle or stopped; 3 when another helper already runs.
    """
    import argparse

    p = argparse.ArgumentParser(prog="python -m nbmodel.serving._warm")
    p.add_argument("--idle", type=float, default=IDLE_SECONDS, help="leave after this many idle seconds")
    idle_seconds = p.parse_args(argv).idle
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    helper = _bind(runtime_dir())
    if helper is None:
        return _TAKEN
    pid = os.fork()  # the helper is no child of its starter: it serves others after it ends
    if pid:
        os.write(1, f"{pid}\n".encode())
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        try:
            _import_server()
        except Exception:  # noqa: BLE001 - callers start fresh processes instead
            traceback.print_exc()
            return 1
        gc.collect()
        gc.freeze()  # the servers forked from here share these pages instead of copying them
        _serve_requests(helper, idle_seconds)
    finally:
        helper.leave()
    return 0


if __name__ == "__main__":
    sys.exit(main())
