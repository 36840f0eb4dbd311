"""Process plumbing of serving: how a server process is started (its command line and
environment), whether a process still runs, and which ports are free.

Only the standard library is imported here: the server process imports this module on its
start-up path, and the kernel's warm starter imports it before anything else.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

#: Server processes this kernel started as its own children, so that a check or a stop also
#: reaps them (a zombie is not alive).
children: dict[int, subprocess.Popen] = {}


# -- starting a server -----------------------------------------------------------------------
def server_env(store_uri: str | None = None) -> dict[str, str]:
    """The environment of a server process: the store, no telemetry, this nbmodel importable.

    Args:
        store_uri: the tracking URI the server reads its registry from (``None``: the
            environment's own).

    Returns:
        A copy of this process's environment with those settings.

    Example:
        >>> server_env("sqlite:////tmp/mlflow.db")["MLFLOW_TRACKING_URI"]
        'sqlite:////tmp/mlflow.db'
    """
    env = dict(os.environ)
    if store_uri is not None:
        env["MLFLOW_TRACKING_URI"] = store_uri
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def server_args(record: Path | str, *args: str) -> list[str]:
    """The arguments of ``python -m nbmodel.serving._server`` serving ``record``.

    Args:
        record: the deployment record file the server reads.
        *args: further options (``--parent PID``, ``--remove-record``).

    Returns:
        The argument list, without the interpreter and module.

    Example:
        >>> server_args("/tmp/5001.json", "--remove-record")
        ['--record', '/tmp/5001.json', '--remove-record']
    """
    return ["--record", str(record), *args]


def server_command(record: Path | str, *args: str) -> list[str]:
    """The whole command line of a server process serving ``record``.

    Args:
        record: the deployment record file the server reads.
        *args: further options, as for :func:`server_args`.

    Returns:
        ``[python, "-m", "nbmodel.serving._server", "--record", record, *args]``.

    Example:
        >>> server_command("/tmp/5001.json")[1:3]
        ['-m', 'nbmodel.serving._server']
    """
    return [sys.executable, "-m", "nbmodel.serving._server", *server_args(record, *args)]


class Forked:
    """A server forked by the kernel's warm starter (which reaps it): enough of ``Popen`` for
    starting a deployment and for the benchmark.

    Example:
        >>> Forked(os.getpid()).poll() is None
        True
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None  # its exit code is the helper's to read: 1 once gone

    def poll(self) -> int | None:
        """``None`` while the process runs, then 1."""
        if self.returncode is None and not pid_alive(self.pid):
            self.returncode = 1
        return self.returncode

    def wait(self, timeout: float) -> int:
        """Wait until the process ends.

        Raises:
            subprocess.TimeoutExpired: it still runs after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.02)
        return 1


# -- whether a process runs ------------------------------------------------------------------
def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` runs (a zombie does not; a child of this process is reaped).

    Args:
        pid: the process id; ``None`` or 0 is never alive.

    Returns:
        True while the process exists and is not a zombie.

    Example:
        >>> pid_alive(os.getpid()), pid_alive(None)
        (True, False)
    """
    if not pid:
        return False
    child = children.get(pid)
    if child is not None and child.poll() is not None:
        children.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def is_our_server(pid: int) -> bool:
    """Whether process ``pid`` runs nbmodel (so a reused pid is never signalled).

    Example:
        >>> is_our_server(0)
        False
    """
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"nbmodel" in f.read()
    except OSError:
        return False


def parent_alive(parent: int) -> Callable[[], bool]:
    """A check that says whether the process ``parent`` still runs: the kernel that started a
    server is its parent process, or (forked by the kernel's warm starter) is watched through a
    pidfd, which becomes readable when that process ends.

    Args:
        parent: the pid to watch.

    Returns:
        A function answering True while ``parent`` runs.

    Example:
        >>> parent_alive(os.getppid())()
        True
    """
    if os.getppid() == parent:
        return lambda: os.getppid() == parent
    try:
        fd = os.pidfd_open(parent)
    except ProcessLookupError:
        return lambda: False
    except (AttributeError, OSError):  # no pidfd here (macOS): whether the pid still exists
        return lambda: pid_alive(parent)
    return lambda: not select.select([fd], [], [], 0)[0]


def terminate(pid: int | None, timeout: float = 10.0) -> None:
    """Stop an nbmodel server process: SIGTERM, then SIGKILL after ``timeout`` seconds; a
    child of this process is reaped. Anything that is not an nbmodel server is left alone.

    Example:
        >>> terminate(None)
    """
    if not pid or not pid_alive(pid) or not is_our_server(pid):
        children.pop(pid or 0, None)
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    child = children.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)


# -- ports -----------------------------------------------------------------------------------
def port_free(host: str, port: int) -> bool:
    """Whether ``port`` on ``host`` can be bound now.

    Example:
        >>> port_free("127.0.0.1", free_port())
        True
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the system says is free on ``host``.

    Example:
        >>> 0 < free_port() < 65536
        True
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]
