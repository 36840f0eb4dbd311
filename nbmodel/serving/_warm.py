"""The warm starter: a helper process that has already imported what a model server needs, so
a deploy from a notebook answers in a fraction of a second.

A fresh Python takes seconds to import scikit-learn and skops (all of scikit-learn's estimators:
skops lists them to know which types it may load), which would be most of a server's start. A
kernel that loads nbmodel starts this helper in the background (``NBMODEL_WARM_SERVER=0``
turns it off); by the time a model is trained and committed, its imports are done, and
``%model_deploy`` has it fork a server that only has to read the model and bind its port.

The helper is a plain child of the kernel, in its own session (a kernel interrupt is not
for it), talking JSON lines over its stdin and stdout. It imports, says ``{"ready": pid}``,
then imports MLflow while idle (the servers it forks then need no background import at all),
and answers each ``{"argv", "env", "cwd", "log"}`` with the ``{"pid"}`` of a forked server. A
server forked here is a server started any other way: its own session, its log, the kernel's
environment and folder, and ``--parent`` watching the kernel (not this helper). The helper
reaps the servers that end and exits when its stdin closes, that is when the kernel ends;
the servers see the kernel go on their own.

It runs no prediction (no OpenMP pool must cross a fork), and does not import
prometheus_client, which picks its multiprocess mode at import (a server with ``--workers``
switches it on itself, see ``serve``). Anything going wrong here, or thread and path settings
changed in the kernel since the helper started, falls back to starting the server as a new
process, so a deploy never depends on the helper.

Run as ``python -m nbmodel.serving._warm`` by :func:`prestart`.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from typing import Any

from ..flavors import import_skops
from ._process import server_env

#: Set to 0 (or false, no, off) to start every server as a fresh process.
ENV_SWITCH = "NBMODEL_WARM_SERVER"
#: How long a deploy waits for a helper that is still importing; past it, a fresh process.
READY_TIMEOUT = 60.0
#: How long a ready helper may take to fork.
FORK_TIMEOUT = 10.0
#: The helper leaves after this long without a deploy or any other nbmodel magic (it holds
#: about 220 MB); the next magic starts it again.
IDLE_SECONDS = 15 * 60.0
#: Variables read when the libraries load (thread pools, import paths): a server forked by a
#: helper that imported them with other values would not honour the kernel's.
IMPORT_TIME_VARS = ("OMP_", "OPENBLAS_", "MKL_", "VECLIB_", "NUMEXPR_", "SKLEARN_", "PYTHON", "LD_")


def enabled() -> bool:
    """Whether servers may fork from a warm starter (``NBMODEL_WARM_SERVER`` is not off)."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def _import_time(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(IMPORT_TIME_VARS)}


# -- in the kernel ---------------------------------------------------------------------------
class WarmStarter:
    """The kernel's handle on its helper process."""

    def __init__(self, env: dict[str, str], idle_seconds: float = IDLE_SECONDS) -> None:
        self.owner = os.getpid()
        self.imported_with = _import_time(env)
        self.lock = threading.Lock()
        self.ready = False
        self.buffer = b""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nbmodel.serving._warm", "--idle", str(idle_seconds)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
            close_fds=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None and os.getpid() == self.owner

    def spawn(self, argv: list[str], env: dict[str, str], log: str) -> int | None:
        """Fork a server running ``python -m nbmodel.serving._server *argv``: its pid, or None
        when the helper cannot, or was started with other thread or path settings than ``env``
        has now (the caller then starts a fresh process)."""
        with self.lock:
            if not self.alive() or _import_time(env) != self.imported_with:
                return None
            answer: dict[str, Any] = {}
            try:
                if not self.ready:
                    self.ready = "ready" in self._read(READY_TIMEOUT)
                if self.ready:
                    request = {"argv": argv, "env": env, "cwd": os.getcwd(), "log": log}
                    self.proc.stdin.write(json.dumps(request).encode() + b"\n")  # type: ignore[union-attr]
                    self.proc.stdin.flush()  # type: ignore[union-attr]
                    answer = self._read(FORK_TIMEOUT)
            except (OSError, ValueError):
                pass
            if not answer.get("pid"):  # it failed, hangs or is gone: a fresh one next time
                self.close(wait=0)
                return None
            return int(answer["pid"])

    def _read(self, timeout: float) -> dict[str, Any]:
        """The helper's next message; ``{}`` if it says nothing in time or is gone."""
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return {}
            chunk = os.read(fd, 65536)
            if not chunk:
                return {}
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def touch(self) -> None:
        """Tell the helper the kernel is in use (it leaves after ``IDLE_SECONDS`` without)."""
        if self.lock.acquire(blocking=False):  # a deploy in progress says it already
            try:
                self.proc.stdin.write(b"{}\n")  # type: ignore[union-attr]
                self.proc.stdin.flush()  # type: ignore[union-attr]
            except (OSError, ValueError):
                pass
            finally:
                self.lock.release()

    def close(self, wait: float = 5.0) -> None:
        """End the helper: it leaves when its stdin closes, or is killed after ``wait``
        seconds. The servers it started keep running (they watch the kernel)."""
        if os.getpid() != self.owner:
            return
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdout.close()  # type: ignore[union-attr]


_starter: WarmStarter | None = None
_starter_lock = threading.Lock()
#: Set once this process asked for a helper (``%load_ext nbmodel``): from then on every magic
#: keeps one running.
_wanted = False


def prestart() -> WarmStarter | None:
    """Start this kernel's helper if it is not running (instant: the imports happen in it)."""
    global _starter, _wanted
    if not enabled():
        return None
    _wanted = True
    with _starter_lock:
        if _starter is None or not _starter.alive():
            _starter = WarmStarter(server_env())
    return _starter


def keep_warm() -> None:
    """Called by every magic: restart a helper that left while idle, or tell it to stay. One
    that failed (or was killed) is not restarted: servers start afresh from then on."""
    if not _wanted or not enabled():
        return
    s = _starter
    if s is not None and s.alive():
        s.touch()
    elif s is None or s.proc.returncode == 0:
        prestart()


def current() -> WarmStarter | None:
    """The running helper of this process, if any (never starts one)."""
    s = _starter
    return s if s is not None and s.alive() and enabled() else None


def shutdown() -> None:
    """End this process's helper, if any (at exit; the servers it started keep running)."""
    global _starter
    with _starter_lock:
        if _starter is not None:
            _starter.close()
            _starter = None


atexit.register(shutdown)


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


def _import_mlflow() -> None:
    """What a server imports in the background once it answers (see ``App.import_mlflow``)."""
    import mlflow  # noqa: F401
    import mlflow.pyfunc  # noqa: F401
    import mlflow.pyfunc.scoring_server  # noqa: F401
    import mlflow.sklearn  # noqa: F401

    # the registry of a database store (SQLAlchemy, Alembic: over a second to import)
    import mlflow.store.model_registry.sqlalchemy_store  # noqa: F401
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    import sqlalchemy.dialects.sqlite  # noqa: F401

    import nbmodel.monitoring  # noqa: F401


def _say(message: dict[str, Any]) -> None:
    os.write(1, json.dumps(message).encode() + b"\n")


def _fork(request: dict[str, Any]) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the server: never returns into the helper's loop
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(null)
        os.close(out)
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


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if not pid:
            return


def main(argv: list[str] | None = None) -> int:
    """The helper's loop (``python -m nbmodel.serving._warm``): import, then fork on request.

    Returns:
        The exit code: 0 when the kernel is gone or the helper was idle too long.
    """
    import argparse

    p = argparse.ArgumentParser(prog="python -m nbmodel.serving._warm")
    p.add_argument("--idle", type=float, default=IDLE_SECONDS, help="leave after this many idle seconds")
    idle_seconds = p.parse_args(argv).idle
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _import_server()
    except Exception as exc:  # noqa: BLE001 - the kernel starts fresh processes instead
        _say({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    gc.collect()
    gc.freeze()  # the servers forked from here share these pages instead of copying them
    _say({"ready": os.getpid()})
    idle_work = [_import_mlflow]
    buffer = b""
    last_used = time.monotonic()
    while True:
        _reap()
        timeout = 0.0 if idle_work else 0.5
        if not select.select([0], [], [], timeout)[0]:  # nothing asked
            if idle_work:
                with contextlib.suppress(Exception):
                    idle_work.pop(0)()
                gc.collect()
                gc.freeze()
            elif time.monotonic() - last_used >= idle_seconds:
                return 0
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            return 0  # the kernel is gone
        buffer += chunk
        last_used = time.monotonic()
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            request = json.loads(line)
            if "argv" not in request:
                continue  # the kernel saying it is in use
            try:
                _say({"pid": _fork(request)})
            except Exception as exc:  # noqa: BLE001
                _say({"error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    sys.exit(main())
