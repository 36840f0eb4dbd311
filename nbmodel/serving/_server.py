"""The server process: a small ASGI app on uvicorn (one worker) that speaks MLflow's scoring
protocol for one or more models, follows their aliases, and reports Prometheus metrics.

Run by :func:`nbmodel.serving.deploy` as ``python -m nbmodel.serving._server --record FILE``.
The record (a JSON file in the store's deployments folder) says where to listen and which
models to serve; the server re-reads it when it changes, so a kernel adds a model to a running
server by rewriting the record. A thread polls the registry for each model's alias and swaps
in a newly loaded version; another ends the server when the kernel that started it goes away
(unless it was started with ``--detach``).

Startup stays under two seconds by loading the first versions from the folders the kernel
already resolved, without importing MLflow; MLflow is imported in the background for the alias
polling and for the less common request forms.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import importlib.util
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

from . import _models as M
from ._models import RequestError, Slot

log = logging.getLogger("nbmodel.serving")

POLL_SECONDS = 0.25
#: Bodies larger than this run their prediction off the event loop, so /ping stays quick.
INLINE_BYTES = 64 * 1024
RETRY_FAILED_SECONDS = 30.0

_JSON = [(b"content-type", b"application/json")]


def read_record(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class Metrics:
    """Prometheus metrics of this process (its own registry: nothing global)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("nbmodel_requests", "Prediction requests answered",
                                ["model"], registry=self.registry)
        self.errors = Counter("nbmodel_request_errors", "Prediction requests answered with an error",
                              ["model", "status"], registry=self.registry)
        self.latency = Histogram(
            "nbmodel_request_latency_seconds", "Time to answer a prediction request",
            ["model"], registry=self.registry,
            buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.version = Gauge("nbmodel_model_version", "The version of the model being served",
                             ["model", "alias"], registry=self.registry)
        self.swaps = Counter("nbmodel_model_swaps", "Times a newly loaded version replaced the one serving",
                             ["model"], registry=self.registry)
        self.load_failures = Counter("nbmodel_model_load_failures",
                                     "Versions that failed to load (the previous one kept serving)",
                                     ["model"], registry=self.registry)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class App:
    """The ASGI application. Requests run on the event loop thread; the follower thread only
    ever replaces ``slot.handle`` (one assignment) and ``self.slots`` (a new dict)."""

    def __init__(self, record_path: str, record: dict[str, Any]) -> None:
        self.record_path = record_path
        self.record = record
        self.token: str | None = record.get("token") or None
        self.max_body = int(record.get("max_body") or 10 * 1024 * 1024)
        self.slots: dict[str, Slot] = {}
        self.metrics = Metrics()
        self.started = time.time()
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.mlflow_ready = threading.Event()
        self.server: Any = None
        self.recorder_cls: Any = None
        self.client: Any = None
        self.record_mtime = 0.0
        self._to_close: list[tuple[float, Any]] = []
        self.stop_reason = "stopped"
        from importlib.metadata import version

        self.mlflow_version = version("mlflow").encode()

    # -- models ---------------------------------------------------------------------------
    def add_slot(self, spec: dict[str, Any], *, with_pyfunc: bool) -> Slot:
        """Load a model named by the record (from the kernel's hints, else the registry)."""
        slot = Slot(name=spec["name"], alias=spec.get("alias"))
        version, path = spec.get("version"), spec.get("path")
        if version is None or not path or not os.path.isfile(os.path.join(path, "MLmodel")):
            version = self.wanted(slot) if slot.alias else version
            path = M.model_dir(self.registry_client(), slot.name, int(version))
        handle = M.load_handle(slot.name, int(version), path, with_pyfunc=with_pyfunc)
        self._attach_recorder(handle)
        slot.handle = handle
        self.metrics.version.labels(slot.name, slot.alias or "").set(handle.version)
        slots = dict(self.slots)
        slots[slot.name] = slot
        self.slots = slots
        log.warning("serving %s: version %s", slot.ref, handle.version)
        return slot

    def registry_client(self) -> Any:
        if self.client is None:
            from ..store import set_store

            self.client = set_store(self.record["store"]).client
        return self.client

    def wanted(self, slot: Slot) -> int:
        mv = self.registry_client().get_model_version_by_alias(slot.name, slot.alias)
        return int(mv.version)

    def _attach_recorder(self, handle: M.Handle) -> None:
        if self.recorder_cls is None or handle.recorder is not None:
            return
        try:
            handle.recorder = self.recorder_cls(handle.name, handle.version)
        except Exception as exc:  # noqa: BLE001 - monitoring must never stop serving
            log.warning("monitoring is off for %s/%s: %s", handle.name, handle.version, exc)

    def follow_once(self) -> None:
        """Re-read the record, then move every slot to the version its alias names."""
        self._reload_record()
        for slot in list(self.slots.values()):
            if not slot.alias or self.stopping.is_set():
                continue
            try:
                want = self.wanted(slot)
            except Exception as exc:  # noqa: BLE001
                serving = slot.handle.version if slot.handle else None
                slot.error = (f"cannot read {slot.ref} from the registry ({M._first_line(exc)}); "
                              f"still serving version {serving}")
                continue
            current = slot.handle.version if slot.handle else None
            if want == current:
                slot.error = None
                slot.failed_version = None
                continue
            if want == slot.failed_version and time.time() - slot.failed_at < RETRY_FAILED_SECONDS:
                continue
            self._swap(slot, want)
        now = time.monotonic()
        keep = []
        for due, rec in self._to_close:
            if due <= now:
                _close(rec)
            else:
                keep.append((due, rec))
        self._to_close = keep

    def _swap(self, slot: Slot, want: int) -> None:
        old = slot.handle
        try:
            path = M.model_dir(self.registry_client(), slot.name, want)
            # A fast-path version swaps in as soon as its estimator answers; its pyfunc (for
            # the other request forms) loads right after, off the switch's critical path.
            new = M.load_handle(slot.name, want, path, with_pyfunc=False)
        except Exception as exc:  # noqa: BLE001 - a broken version never replaces a working one
            slot.failed_version, slot.failed_at = want, time.time()
            slot.error = (f"version {want} failed to load ({M._first_line(exc)}); "
                          f"still serving version {old.version if old else None}")
            self.metrics.load_failures.labels(slot.name).inc()
            log.warning("%s: %s", slot.ref, slot.error)
            return
        self._attach_recorder(new)
        slot.handle = new  # the swap: requests read slot.handle once
        slot.swaps += 1
        slot.error = None
        slot.failed_version = None
        self.metrics.version.labels(slot.name, slot.alias or "").set(want)
        self.metrics.swaps.labels(slot.name).inc()
        log.warning("%s: now serving version %s (was %s)", slot.ref, want, old.version if old else None)
        try:
            new.pyfunc()
        except Exception as exc:  # noqa: BLE001 - the fast path serves; other forms will say why
            log.warning("%s: version %s answers only the fast path: %s", slot.ref, want, M._first_line(exc))
        if old is not None and old.recorder is not None:
            # Requests that read the old handle just before the swap may still submit to it.
            self._to_close.append((time.monotonic() + 5.0, old.recorder))

    def _reload_record(self) -> None:
        try:
            mtime = os.stat(self.record_path).st_mtime_ns
        except OSError:
            return
        if mtime == self.record_mtime:
            return
        self.record_mtime = mtime
        try:
            record = read_record(self.record_path)
        except (OSError, ValueError):
            return
        self.record = record
        names = [m["name"] for m in record.get("models", [])]
        for spec in record.get("models", []):
            slot = self.slots.get(spec["name"])
            if slot is not None and slot.alias != spec.get("alias"):
                slot.alias = spec.get("alias")
            if slot is None:
                try:
                    self.add_slot(spec, with_pyfunc=True)
                except Exception as exc:  # noqa: BLE001
                    failed = Slot(name=spec["name"], alias=spec.get("alias"),
                                  error=f"failed to load ({M._first_line(exc)})")
                    failed.failed_at = time.time()
                    self.slots = {**self.slots, failed.name: failed}
                    log.warning("%s: %s", failed.ref, failed.error)
        if names:
            kept = {n: s for n, s in self.slots.items() if n in names}
            ordered = {n: kept[n] for n in names if n in kept}
            if list(ordered) != list(self.slots):
                for n, s in self.slots.items():
                    if n not in ordered and s.handle is not None and s.handle.recorder is not None:
                        self._to_close.append((time.monotonic() + 5.0, s.handle.recorder))
                self.slots = ordered

    def follower(self) -> None:
        """The background thread: import MLflow, then poll the registry until stopped."""
        # Let uvicorn start listening first: importing MLflow holds the GIL for seconds.
        deadline = time.monotonic() + 30
        while not getattr(self.server, "started", True) and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            self.registry_client()
            # Every answered request goes to monitoring (off the request path) unless the
            # record says "monitor": false.
            if self.record.get("monitor", True) and importlib.util.find_spec("nbmodel.monitoring") is not None:
                import nbmodel.monitoring as monitoring

                self.recorder_cls = getattr(monitoring, "BackgroundRecorder", None)
            for slot in list(self.slots.values()):
                if slot.handle is not None:
                    self._attach_recorder(slot.handle)
                    slot.handle.pyfunc()  # ready for the request forms the fast path leaves
        except Exception as exc:  # noqa: BLE001
            log.warning("the registry cannot be read: %s", M._first_line(exc))
        self.mlflow_ready.set()
        while not self.stopping.is_set():
            try:
                self.follow_once()
            except Exception as exc:  # noqa: BLE001 - keep following whatever happens
                log.warning("following the aliases failed: %s", M._first_line(exc))
            self.wake.wait(POLL_SECONDS)
            self.wake.clear()

    def close(self) -> None:
        self.stopping.set()
        self.wake.set()
        for _, rec in self._to_close:
            _close(rec)
        for slot in self.slots.values():
            if slot.handle is not None and slot.handle.recorder is not None:
                _close(slot.handle.recorder)

    # -- status ---------------------------------------------------------------------------
    def health(self) -> tuple[int, dict[str, Any]]:
        models = [s.status() for s in self.slots.values()]
        serving = all(m["version"] is not None for m in models) and bool(models)
        degraded = any(m["error"] for m in models)
        status = "ok" if serving and not degraded else ("degraded" if serving else "down")
        body = {
            "status": status, "pid": os.getpid(), "port": self.record.get("port"),
            "uptime_s": round(time.time() - self.started, 3), "mlflow_ready": self.mlflow_ready.is_set(),
            "models": models,
        }
        return (200 if serving else 503), body

    # -- ASGI -----------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        try:
            status, body, headers = await self._handle(scope, receive)
        except RequestError as exc:
            status, headers = exc.status, _JSON
            body = json.dumps({"error_code": exc.code, "message": exc.message}).encode()
        except Exception as exc:  # noqa: BLE001 - answer, log, and keep serving
            log.exception("unexpected error")
            status, headers = 500, _JSON
            body = json.dumps({"error_code": "INTERNAL_ERROR",
                               "message": f"the server failed: {M._first_line(exc)}"}).encode()
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _handle(self, scope: dict[str, Any], receive: Any) -> tuple[int, bytes, list]:
        method, path = scope["method"], scope["path"]
        ctype = clen = auth = None
        for k, v in scope["headers"]:
            if k == b"content-type":
                ctype = v
            elif k == b"content-length":
                clen = v
            elif k == b"authorization":
                auth = v
        if self.token is not None and not _token_ok(auth, self.token):
            raise RequestError("this server needs a token: send the header "
                               "'Authorization: Bearer <token>' that %model_deploy printed",
                               401, "UNAUTHENTICATED")
        if path == "/invocations" or (path.startswith("/models/") and path.endswith("/invocations")):
            if method != "POST":
                raise RequestError(f"{path} takes POST", 405, "METHOD_NOT_ALLOWED")
            return await self._invocations(path, ctype, clen, receive)
        if method != "GET":
            raise RequestError(f"{path} takes GET", 405, "METHOD_NOT_ALLOWED")
        if path == "/ping":
            primary = next(iter(self.slots.values()), None)
            ok = primary is not None and primary.handle is not None
            return (200 if ok else 503), b"\n", _JSON
        if path == "/health":
            status, body = self.health()
            return status, json.dumps(body).encode(), _JSON
        if path == "/version":
            return 200, self.mlflow_version, _JSON
        if path == "/metrics":
            from prometheus_client import CONTENT_TYPE_LATEST

            return 200, self.metrics.render(), [(b"content-type", CONTENT_TYPE_LATEST.encode())]
        raise RequestError(
            f"no route {path}; the routes are POST /invocations, POST /models/NAME/invocations, "
            "GET /ping, /health, /version, /metrics", 404, "ENDPOINT_NOT_FOUND")

    async def _invocations(self, path: str, ctype: bytes | None, clen: bytes | None,
                           receive: Any) -> tuple[int, bytes, list]:
        t0 = time.perf_counter()
        slot = self._slot_for(path)
        try:
            handle = slot.handle
            if handle is None:
                raise RequestError(f"{slot.ref} is not serving: {slot.error}", 503, "TEMPORARILY_UNAVAILABLE")
            body = await self._read_body(clen, receive)
            mime = _mime(ctype)
            if mime not in ("application/json", "text/csv", "application/vnd.apache.parquet"):
                raise RequestError(
                    f"the content type {ctype.decode('latin-1') if ctype else '(none)'} is not "
                    "supported; send application/json, text/csv or application/vnd.apache.parquet",
                    415, "BAD_REQUEST")
            payload = None
            try:
                if mime != "application/json":
                    raise M.NeedsMlflow(None)
                if len(body) > INLINE_BYTES:
                    out, frame, preds = await asyncio.to_thread(M.predict_json, handle, body)
                else:
                    payload, frame = M.parse_json(handle, body)
                    if frame is None:
                        raise M.NeedsMlflow(payload)
                    if handle.batcher is not None:
                        preds = await handle.batcher.predict(frame)
                    else:
                        preds = M.predict_rows(handle, frame)
                    out = M.dump(preds)
            except M.NeedsMlflow as need:
                payload = need.payload
                out, frame, preds = await asyncio.to_thread(self._slow, handle, body, mime, payload)
        except RequestError as exc:
            slot.requests += 1
            slot.errors += 1
            self.metrics.requests.labels(slot.name).inc()
            self.metrics.errors.labels(slot.name, str(exc.status)).inc()
            raise
        elapsed = time.perf_counter() - t0
        slot.requests += 1
        self.metrics.requests.labels(slot.name).inc()
        self.metrics.latency.labels(slot.name).observe(elapsed)
        rec = handle.recorder
        if rec is not None:
            try:
                rec.submit(M.as_frame(handle, frame), preds, elapsed * 1000.0)
            except Exception:  # noqa: BLE001 - monitoring never fails a request
                pass
        return 200, out, _JSON

    def _slow(self, handle: M.Handle, body: bytes, mime: str, payload: Any) -> tuple[bytes, Any, Any]:
        if not self.mlflow_ready.wait(120):
            raise RequestError("the server is still starting; try again in a moment", 503,
                               "TEMPORARILY_UNAVAILABLE")
        return M.predict_slow(handle, body, mime, payload)

    def _slot_for(self, path: str) -> Slot:
        slots = self.slots
        if path == "/invocations":
            slot = next(iter(slots.values()), None)
            if slot is None:
                raise RequestError("this server has no model yet", 503, "TEMPORARILY_UNAVAILABLE")
            return slot
        name = path[len("/models/"):-len("/invocations")]
        from urllib.parse import unquote

        name = unquote(name)
        slot = slots.get(name)
        if slot is None:
            raise RequestError(
                f"this server does not serve {name!r}; it serves "
                f"{', '.join(repr(n) for n in slots) or 'nothing'}", 404, "RESOURCE_DOES_NOT_EXIST")
        return slot

    async def _read_body(self, clen: bytes | None, receive: Any) -> bytes:
        if clen is not None:
            try:
                declared = int(clen)
            except ValueError:
                raise RequestError("the Content-Length header is not a number") from None
            if declared > self.max_body:
                raise self._too_large(declared)
        chunks, size = [], 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                raise RequestError("the client went away", 400)
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise self._too_large(size)
            chunks.append(chunk)
            if not msg.get("more_body"):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large(self, size: int) -> RequestError:
        return RequestError(
            f"the body is {size} bytes; this server takes at most {self.max_body} "
            "(send fewer rows per request, or deploy with a larger --max-body)",
            413, "REQUEST_LIMIT_EXCEEDED")


def _mime(ctype: bytes | None) -> str | None:
    if ctype is None:
        return None
    mime, _, params = ctype.decode("latin-1").partition(";")
    mime = mime.strip().lower()
    charset = params.strip().lower()
    if charset and charset.replace(" ", "") not in ("charset=utf-8", 'charset="utf-8"'):
        raise RequestError(f"only UTF-8 bodies are supported, not {charset}", 415, "BAD_REQUEST")
    return mime


def _token_ok(header: bytes | None, token: str) -> bool:
    if not header:
        return False
    scheme, _, given = header.decode("latin-1").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _close(recorder: Any) -> None:
    try:
        recorder.close()
    except Exception as exc:  # noqa: BLE001
        log.warning("closing a monitoring recorder failed: %s", exc)


def _watch_parent(app: App, parent: int) -> None:
    """End the server when the kernel that started it is gone (no orphans)."""
    while not app.stopping.wait(0.5):
        if os.getppid() != parent:
            log.warning("the kernel that started this server (pid %s) exited; stopping", parent)
            app.stop_reason = "its kernel exited"
            if app.server is not None:
                app.server.should_exit = True
            return


def _mark_stopped(path: str, reason: str) -> None:
    """Say in the record why this server ended (kept for %model_deployments), unless the
    kernel already removed it or another server took its port since."""
    try:
        record = read_record(path)
    except (OSError, ValueError):
        return
    if record.get("pid") != os.getpid():
        return
    record["stopped"] = reason
    record["stopped_at"] = time.time()
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f)
    os.replace(tmp, path)


def serve(record_path: str, *, parent: int | None = None, sock: socket.socket | None = None) -> int:
    """Serve the record's models until stopped; returns the exit code."""
    import uvicorn

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", stream=sys.stdout)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    M.quiet_sklearn()
    record = read_record(record_path)
    app = App(record_path, record)
    host, port = record["host"], int(record["port"])
    if sock is None:
        try:
            sock = bind(host, port)
        except OSError as exc:
            print(f"nbmodel serve: cannot listen on {host}:{port}: {exc.strerror or exc}", flush=True)
            return 3
    try:
        app.record_mtime = os.stat(record_path).st_mtime_ns
        for spec in record.get("models", []):
            app.add_slot(spec, with_pyfunc=False)
    except Exception as exc:  # noqa: BLE001 - nothing to serve: say why and exit
        print(f"nbmodel serve: cannot load {spec.get('name')}: {M._first_line(exc)}", flush=True)
        return 4
    # loop "auto" takes uvloop when installed; no proxy headers: nothing here reads them.
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            server_header=False, timeout_keep_alive=30, proxy_headers=False)
    server = uvicorn.Server(config)
    app.server = server
    threading.Thread(target=app.follower, name="nbmodel-follow", daemon=True).start()
    if parent:
        threading.Thread(target=_watch_parent, args=(app, parent), name="nbmodel-parent",
                         daemon=True).start()
    # uvicorn re-raises SIGTERM once it has shut down; a Python handler lets the clean-up
    # below run (closing the monitoring recorders) instead of the default instant exit.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    print(f"nbmodel serve: listening on http://{_url_host(host)}:{port} (pid {os.getpid()})", flush=True)
    try:
        server.run(sockets=[sock])
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        app.close()
        _mark_stopped(record_path, app.stop_reason)
    return 0


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio turns on TCP_NODELAY for accepted connections only
    # when the listening socket says TCP, and without it every answer waits ~40 ms for
    # Nagle's algorithm (the bug behind uvicorn's slow multi-worker mode).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nbmodel.serving._server")
    p.add_argument("--record", required=True)
    p.add_argument("--parent", type=int, default=None, help="end when this parent pid exits")
    args = p.parse_args(argv)
    return serve(args.record, parent=args.parent)


if __name__ == "__main__":
    sys.exit(main())
