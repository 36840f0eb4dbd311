"""The server process: a small ASGI app on uvicorn that speaks MLflow's scoring protocol for
one or more models, follows their aliases, and reports Prometheus metrics.

Run by :func:`nbmodel.serving.deploy` as ``python -m nbmodel.serving._server --record FILE``.
The record (a JSON file in the store's deployments folder) says where to listen and which
models to serve; the server re-reads it when it changes, so a kernel adds a model to a running
server by rewriting the record. A thread polls the registry for each model's alias and swaps
in a newly loaded version; another ends the server when the kernel that started it goes away
(unless it was started with ``--detach``). With several workers, a supervisor forks them after
the heavy imports, on one shared socket (see :func:`serve`).

The first versions load from the folders the kernel already resolved, without importing
MLflow, so the server answers as soon as scikit-learn is imported and the model read; MLflow
is imported in the background for the less common request forms.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import gc
import hmac
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from typing import Any

from ..errors import first_line
from . import _models as M
from . import _records as R
from ._models import RequestError, Slot
from ._process import parent_alive
from ._records import DeploymentRecord, ModelSpec
from ._rollout import KEY_HEADER, Controller, Shadow, to_candidate
from ._sqlite import SqliteRegistry

log = logging.getLogger("nbmodel.serving")

#: How often the follower looks at a sqlite store's aliases (read straight from its file: free).
POLL_SECONDS = 0.25
#: A store over the network (``http://``, a database) is asked at most once per this interval
#: per served model, for all the workers of a server together; they look at what was read
#: every :data:`SHARED_POLL_SECONDS`, so a move shows within about a second.
REGISTRY_SECONDS = 0.9
SHARED_POLL_SECONDS = 0.1
#: Bodies larger than this run their prediction off the event loop, so /ping stays quick.
INLINE_BYTES = 64 * 1024
RETRY_FAILED_SECONDS = 30.0
#: Served requests go to monitoring every 5 s, or sooner once this many rows wait: a flush
#: running beside the event loop slows it (the GIL, caches) more than its own work costs, so
#: few large flushes beat many small ones. At most ~10 MB waits.
RECORD_ROWS = 10_000

#: How long a thread keeps the GIL once another asks for it (CPython's default is 5 ms). The
#: event loop answers a request in a fraction of a millisecond, but each time it waits for the
#: network it lets a busy background thread (the monitoring recorder writing a batch, MLflow
#: being imported) take the GIL, and then waited up to 5 ms to have it back: that wait, every
#: time the recorder flushed, was most of the server's p99.
SWITCH_SECONDS = 0.0005
#: The collector's youngest generation runs after this many new objects (CPython's default is
#: 700). A request frees what it allocates as it ends, but the rows it hands to monitoring live
#: until the recorder turns them into arrays (woken once 1,024 wait), so the default threshold ran
#: a collection about every 200 requests and promoted the queued rows into the older
#: generations, whose collections (milliseconds each) then walked them; at this threshold the
#: youngest runs a few times a second and the queued rows are freed before it looks at them.
GC_YOUNG = 10_000

_JSON = [(b"content-type", b"application/json")]
#: Finer than the main histogram's low end: a canary's p99 check reads them.
ROLLOUT_BUCKETS = (.0005, .001, .0015, .002, .003, .004, .005, .0075, .01, .015, .02, .03, .05,
                   .075, .1, .25, .5, 1, 2.5, 5, 10)


class Tally:
    """One version's rollout traffic in one role (``nbmodel_rollout_*``), counted by the event
    loop in plain integers and added to its Prometheus series in bulk by :meth:`publish`.

    Each Prometheus increment takes a lock: the three of a rollout's request (requests, and
    the latency's sum and bucket) cost about 4 us of a one-row request's 100, about as much as
    the rest of the rollout's routing and counting together. Prometheus has no call that adds
    many observations to a histogram at once, so :meth:`publish` adds to the histogram's
    bucket and sum values themselves when they are there (``_buckets``, ``_sum``, as
    ``observe`` does, in every release since 0.1); otherwise each request observes as it
    comes.
    """

    __slots__ = ("requests", "errors", "seconds", "buckets", "_series", "_published", "_bulk")

    def __init__(self, requests: Any, errors: Any, latency: Any) -> None:
        self.requests = self.errors = 0
        self.seconds = 0.0
        self.buckets = [0] * (len(ROLLOUT_BUCKETS) + 1)  # the last: above every bound
        self._series = (requests, errors, latency)
        self._published: tuple[int, int, float, list[int]] = (0, 0, 0.0, list(self.buckets))
        values = getattr(latency, "_buckets", None)
        self._bulk = isinstance(values, list) and len(values) == len(self.buckets) and \
            callable(getattr(getattr(latency, "_sum", None), "inc", None))

    def add(self, elapsed: float | None) -> None:
        """One request answered in ``elapsed`` seconds (None: with an error)."""
        if elapsed is None:
            self.errors += 1
        elif self._bulk:
            self.seconds += elapsed
            self.buckets[bisect.bisect_left(ROLLOUT_BUCKETS, elapsed)] += 1  # as observe's ``<=``
        else:
            self._series[2].observe(elapsed)
        self.requests += 1  # last: a publish that reads it finds the rest of this request in

    def publish(self) -> None:
        """Add what was counted since the last call to the Prometheus series (the caller
        holds the metrics' lock)."""
        requests, errors, seconds, buckets = self.requests, self.errors, self.seconds, list(self.buckets)
        done = self._published
        if requests == done[0]:
            return
        self._series[0].inc(requests - done[0])
        if errors > done[1]:
            self._series[1].inc(errors - done[1])
        if self._bulk:
            latency = self._series[2]
            for i, (now, before) in enumerate(zip(buckets, done[3])):
                if now > before:
                    latency._buckets[i].inc(now - before)
            latency._sum.inc(seconds - done[2])
        self._published = (requests, errors, seconds, buckets)


class Metrics:
    """Prometheus metrics of this server (its own registry: nothing global).

    With several workers (``PROMETHEUS_MULTIPROC_DIR`` set before prometheus_client is
    imported) every worker writes its values to files in that folder, and ``/metrics`` on any
    worker sums them, as prometheus_client's multiprocess mode does.
    """

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self._served: dict[str, tuple[Any, Any]] = {}
        self._tallies: dict[tuple[str, int, str], Tally] = {}
        self._publishing = threading.Lock()
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
                             ["model", "alias"], registry=self.registry,
                             multiprocess_mode="livemostrecent")
        self.swaps = Counter("nbmodel_model_swaps", "Times a newly loaded version replaced the one serving",
                             ["model"], registry=self.registry)
        self.load_failures = Counter("nbmodel_model_load_failures",
                                     "Versions that failed to load (the previous one kept serving)",
                                     ["model"], registry=self.registry)
        # Per-version series while a canary or shadow runs (role: serving, canary or shadow):
        # the canary's checks are read from these, summed over the workers.
        self.rollout_requests = Counter("nbmodel_rollout_requests",
                                        "Requests answered per version during a rollout",
                                        ["model", "version", "role"], registry=self.registry)
        self.rollout_errors = Counter("nbmodel_rollout_errors",
                                      "Requests answered with an error per version during a rollout",
                                      ["model", "version", "role"], registry=self.registry)
        self.rollout_latency = Histogram(
            "nbmodel_rollout_latency_seconds", "Time to answer per version during a rollout",
            ["model", "version", "role"], registry=self.registry, buckets=ROLLOUT_BUCKETS)
        self.shadow_rows = Counter("nbmodel_shadow_rows",
                                   "Rows a shadow candidate predicted, by agreement with the serving version",
                                   ["model", "version", "result"], registry=self.registry)
        # A pipeline's stages (model: the pipeline, stage: the stage's model name).
        self.stage_requests = Counter("nbmodel_stage_requests", "Requests a pipeline stage answered",
                                      ["model", "stage"], registry=self.registry)
        self.stage_errors = Counter("nbmodel_stage_errors",
                                    "Requests a pipeline stage answered with an error",
                                    ["model", "stage"], registry=self.registry)
        self.stage_latency = Histogram(
            "nbmodel_stage_latency_seconds", "Time a pipeline stage took to answer",
            ["model", "stage"], registry=self.registry, buckets=ROLLOUT_BUCKETS)
        self.rollout_share = Gauge("nbmodel_rollout_share", "Percent of requests sent to the candidate",
                                   ["model", "version", "kind"], registry=self.registry,
                                   multiprocess_mode="livemostrecent")

    def served(self, name: str) -> tuple[Any, Any]:
        """The ``requests`` and ``latency`` series of one model, looked up once: ``labels()``
        takes a lock and builds a key on every call, a measurable share of a 1-row request."""
        children = self._served.get(name)
        if children is None:
            children = self._served[name] = (self.requests.labels(name), self.latency.labels(name))
        return children

    def tally(self, name: str, version: int, role: str) -> Tally:
        """The per-version rollout series of one version in one role, counted by the loop
        (see :class:`Tally`; :meth:`publish` hands the counts to Prometheus)."""
        key = (name, version, role)
        tally = self._tallies.get(key)
        if tally is None:
            labels = (name, str(version), role)
            tally = self._tallies[key] = Tally(self.rollout_requests.labels(*labels),
                                               self.rollout_errors.labels(*labels),
                                               self.rollout_latency.labels(*labels))
        return tally

    def publish(self) -> None:
        """Every tally's counts since the last call, into its Prometheus series: before
        ``/metrics`` answers and the canary's checks read them, and a moment after a request
        counted (so other workers' and ``/metrics``' readers see it within 0.1 s)."""
        with self._publishing:
            for tally in list(self._tallies.values()):
                tally.publish()

    def _exposed(self) -> Any:
        if not self.multiprocess:
            return self.registry
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return registry

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        self.publish()
        return generate_latest(self._exposed())

    def totals(self) -> dict[str, tuple[int, int]]:
        """Requests and errors per model, summed over every worker."""
        out: dict[str, list[int]] = {}
        for family in self._exposed().collect():
            if family.name not in ("nbmodel_requests", "nbmodel_request_errors"):
                continue
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts = out.setdefault(sample.labels.get("model", ""), [0, 0])
                    counts[family.name == "nbmodel_request_errors"] += int(sample.value)
        return {k: (v[0], v[1]) for k, v in out.items()}

    def version_figures(self, name: str, version: int, role: str = "canary") -> dict[str, Any]:
        """The cumulative requests, errors and latency buckets of one version's rollout
        traffic (all workers'), for the canary's checks."""
        self.publish()
        v = str(version)
        out: dict[str, Any] = {"requests": 0, "errors": 0, "buckets": []}
        buckets: dict[float, float] = {}
        for family in self._exposed().collect():
            if family.name not in ("nbmodel_rollout_requests", "nbmodel_rollout_errors",
                                   "nbmodel_rollout_latency_seconds"):
                continue
            for sample in family.samples:
                labels = sample.labels
                if labels.get("model") != name or labels.get("version") != v or labels.get("role") != role:
                    continue
                if sample.name == "nbmodel_rollout_requests_total":
                    out["requests"] += int(sample.value)
                elif sample.name == "nbmodel_rollout_errors_total":
                    out["errors"] += int(sample.value)
                elif sample.name.endswith("_bucket"):
                    le = float(labels["le"])
                    buckets[le] = buckets.get(le, 0) + sample.value
        out["buckets"] = sorted(buckets.items())
        return out


class App:
    """The ASGI application. Requests run on the event loop thread; the follower thread only
    ever replaces ``slot.handle`` (one assignment) and ``self.slots`` (a new dict)."""

    def __init__(self, record: DeploymentRecord) -> None:
        self.record_path = str(record.path)
        self.record = record
        self.token = record.token
        self.max_body = record.max_body
        self.slots: dict[str, Slot] = {}
        self.metrics = Metrics()
        self.started = time.time()
        self.pid = os.getpid()  # the server's pid: with workers, the supervisor's
        self.workers = record.workers
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.mlflow_ready = threading.Event()
        self.warm = threading.Event()
        self.server: Any = None
        self.recorder_cls: Any = None
        self.gateway: Any = None
        self.record_mtime = 0.0
        self._to_close: list[tuple[float, Any]] = []
        self._publish_due = False  # a publish of the rollout tallies is scheduled on the loop
        self._attach_lock = threading.Lock()
        self.importer: threading.Thread | None = None  # the thread importing MLflow
        self.sqlite = SqliteRegistry.of(record.store)
        self._alone_at = float("-inf")  # when this worker last asked the registry without the shared file
        self.stop_reason = "stopped"
        self.controller: Controller | None = None
        from importlib.metadata import version

        self.mlflow_version = version("mlflow").encode()

    # -- models ---------------------------------------------------------------------------
    def add_slot(self, spec: ModelSpec, *, with_pyfunc: bool) -> Slot:
        """Load a model named by the record (from the kernel's hints, else the registry); a
        pipeline serves once every stage has loaded."""
        if spec.chain:
            slot = Slot(name=spec.name, alias=None,
                        stages=[self._load_slot(s, with_pyfunc=with_pyfunc) for s in spec.chain])
            self.slots = {**self.slots, slot.name: slot}
            log.warning("serving pipeline %s: %s", slot.name,
                        " -> ".join(f"{s.ref} ({s.handle.version})" for s in slot.stages or []
                                    if s.handle is not None))
            return slot
        slot = self._load_slot(spec, with_pyfunc=with_pyfunc)
        slots = dict(self.slots)
        slots[slot.name] = slot
        self.slots = slots
        log.warning("serving %s: version %s", slot.ref, slot.handle.version if slot.handle else None)
        if spec.rollout is not None:
            # a server (or a replacement worker) that starts during a rollout serves it
            self._sync_rollout(slot, spec.rollout)
        return slot

    def _load_slot(self, spec: ModelSpec, *, with_pyfunc: bool) -> Slot:
        slot = Slot(name=spec.name, alias=spec.alias)
        version, path = spec.version, spec.path
        if version is None or not path or not os.path.isfile(os.path.join(path, "MLmodel")):
            if slot.alias:
                try:
                    version = self.wanted(slot)
                except Exception:  # noqa: BLE001 - a first deploy starts before its alias is set
                    if version is None:
                        raise
            if version is None:
                raise ValueError(f"{slot.ref} names no version to serve")
            path = self.model_dir(slot.name, version)
        handle = M.load_handle(slot.name, int(version), path, with_pyfunc=with_pyfunc)
        self._attach_recorder(handle)
        slot.handle = handle
        self.metrics.version.labels(slot.name, slot.alias or "").set(handle.version)
        return slot

    def followed(self) -> list[Slot]:
        """Every slot that serves a model: the models, and the stages of the pipelines."""
        out = []
        for slot in self.slots.values():
            out.extend(slot.stages if slot.stages is not None else [slot])
        return out

    def registry_gateway(self) -> Any:
        """The store's gateway to MLflow (opened on first use)."""
        if self.gateway is None:
            from ..store import set_store

            self.gateway = set_store(self.record.store).gateway
        return self.gateway

    def _mlflow_gateway(self) -> Any:
        """The store's gateway, once the import thread (if started) has imported MLflow: two
        threads importing it at once break it."""
        importer = self.importer
        if importer is not None and threading.current_thread() is not importer:
            if not self.mlflow_ready.wait(120):
                raise RuntimeError("MLflow is still being imported")
        return self.registry_gateway()

    def wanted(self, slot: Slot) -> int:
        if self.sqlite is not None:
            version = self.sqlite.alias_version(slot.name, slot.alias)  # type: ignore[arg-type]
            if version is not None:
                return version
        mv = self._mlflow_gateway().version_by_alias(slot.name, slot.alias)
        return int(mv.version)

    def model_dir(self, name: str, version: int) -> str:
        if self.sqlite is not None:
            path = self.sqlite.model_dir(name, version)
            if path is not None:
                return path
        return M.model_dir(self._mlflow_gateway(), name, version)

    def _attach_recorder(self, handle: M.Handle) -> None:
        with self._attach_lock:  # the MLflow import thread and the follower may both try
            if self.recorder_cls is None or handle.recorder is not None:
                return
            try:
                handle.recorder = self.recorder_cls(handle.name, handle.version, columns=handle.names,
                                                    max_rows=RECORD_ROWS, model=handle.native,
                                                    use_array=handle.use_array)
            except Exception as exc:  # noqa: BLE001 - monitoring must never stop serving
                log.warning("monitoring is off for %s/%s: %s", handle.name, handle.version, exc)

    def follow_once(self) -> None:
        """Re-read the record, then move every slot to the version its alias names."""
        if self.mlflow_ready.is_set():  # a model added later may need MLflow to load
            self._reload_record()
        shared = None
        slots = self.followed()
        if self.sqlite is None:
            shared = self._shared_versions([s for s in slots if s.alias])
            if shared is None:
                slots = []  # nothing read since the last look
        for slot in slots:
            if not slot.alias or self.stopping.is_set():
                continue
            try:
                found = shared.get(slot.ref) if shared is not None else self.wanted(slot)
                if found is None:
                    continue
                if isinstance(found, str):
                    raise RuntimeError(found)
                want = int(found)
            except Exception as exc:  # noqa: BLE001
                serving = slot.handle.version if slot.handle else None
                slot.error = (f"cannot read {slot.ref} from the registry ({first_line(exc)}); "
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

    def _shared_versions(self, slots: list[Slot]) -> dict[str, int | str] | None:
        """The versions the slots' aliases name (or why they cannot be read), asked of a store
        over the network at most once per :data:`REGISTRY_SECONDS` for all the workers of this
        server, which share what was read in a file beside the record. None: nothing new to
        look at."""
        refs = {s.ref for s in slots}
        now = time.time()
        try:
            with R.follow_turn(R.follow_path(self.record_path)) as (shared, write):
                ours = shared is not None and shared.get("pid") == self.pid
                versions = shared.get("versions") if shared is not None and ours else None
                at = float(shared.get("at") or 0) if shared is not None and ours else 0.0
                said = float(shared.get("published") or 0) if shared is not None and ours else 0.0
                fresh = isinstance(versions, dict) and refs <= set(versions) \
                    and now - at < REGISTRY_SECONDS
                if write is None:
                    return versions if isinstance(versions, dict) else None
                due = now - said >= R.HEARTBEAT_SECONDS
                if fresh and not due:
                    return versions
                if not fresh:
                    versions, at = self._read_versions(slots), time.time()
                if due:
                    self._publish()
                    said = now
                write({"pid": self.pid, "at": at, "versions": versions, "published": said})
                return versions
        except OSError:  # the folder cannot hold the shared file: this worker asks alone
            if now - self._alone_at < REGISTRY_SECONDS:
                return None
            self._alone_at = now
            return self._read_versions(slots)

    def _publish(self, *, stopped: bool = False) -> None:
        """Tell everyone on the store (a team's server) that this deployment runs, or stopped:
        a tag on each model served, refreshed every :data:`~._records.HEARTBEAT_SECONDS`."""
        from ..versions import _user

        now = time.time()
        entry = R.Published.of(self.record, user=_user(), seen=now)
        entry.started = entry.started or self.started
        entry.pid = self.pid
        serving = {s.name: s.handle.version for s in self.slots.values() if s.handle is not None}
        for m in entry.models:
            m.version = serving.get(m.name, m.version)
        entry.stopped = now if stopped else None
        try:
            R.publish(self._mlflow_gateway(), entry)
        except Exception as exc:  # noqa: BLE001 - being listed elsewhere never stops serving
            log.warning("could not publish this deployment on the store: %s", first_line(exc))

    def _read_versions(self, slots: list[Slot]) -> dict[str, int | str]:
        out: dict[str, int | str] = {}
        for slot in slots:
            try:
                out[slot.ref] = self.wanted(slot)
            except Exception as exc:  # noqa: BLE001 - said on the slot by follow_once
                out[slot.ref] = first_line(exc)
        return out

    def _swap(self, slot: Slot, want: int) -> None:
        old = slot.handle
        try:
            cand = slot.candidate
            if cand is not None and cand.version == want:
                new = cand  # a promoted canary: already loaded and answering
            else:
                path = self.model_dir(slot.name, want)
                # A fast-path version swaps in as soon as its estimator answers; its pyfunc
                # (for the other request forms) loads right after, off the switch's critical path.
                new = M.load_handle(slot.name, want, path, with_pyfunc=False)
        except Exception as exc:  # noqa: BLE001 - a broken version never replaces a working one
            slot.failed_version, slot.failed_at = want, time.time()
            slot.error = (f"version {want} failed to load ({first_line(exc)}); "
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
        if self.mlflow_ready.is_set():  # else the MLflow import thread loads it (never two importers)
            try:
                new.pyfunc()
            except Exception as exc:  # noqa: BLE001 - the fast path serves; other forms will say why
                log.warning("%s: version %s answers only the fast path: %s", slot.ref, want, first_line(exc))
        if slot.rollout is not None and slot.rollout.candidate == want:
            self._sync_rollout(slot, slot.rollout)  # a promoted canary is over once it serves
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
            record = R.read(self.record_path)
        except (OSError, ValueError):
            return
        self.record = record
        names = record.names
        for spec in record.models:
            slot = self.slots.get(spec.name)
            if slot is not None and _chain_of(slot) != _chain_of(spec):
                try:  # another chain under the same name: the old one serves until it loads
                    self.add_slot(spec, with_pyfunc=True)
                except Exception as exc:  # noqa: BLE001
                    slot.error = f"the new chain failed to load ({first_line(exc)})"
                    log.warning("%s: %s", slot.ref, slot.error)
                continue
            if slot is not None and slot.alias != spec.alias:
                slot.alias = spec.alias
            if slot is not None:
                self._sync_rollout(slot, spec.rollout)
            if slot is None:
                try:
                    self.add_slot(spec, with_pyfunc=True)
                except Exception as exc:  # noqa: BLE001
                    failed = Slot(name=spec.name, alias=spec.alias,
                                  error=f"failed to load ({first_line(exc)})")
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

    def _sync_rollout(self, slot: Slot, ro: Any) -> None:
        """Serve the rollout the record now says: load its candidate when it starts, let it
        go when it ends (a promoted one once the alias's new holder serves)."""
        changed = ro is not None and (slot.rollout is None or slot.rollout.started != ro.started)
        slot.rollout = ro
        cand = slot.candidate
        if ro is not None and ro.live:
            self.metrics.rollout_share.labels(slot.name, str(ro.candidate), ro.kind).set(
                ro.share if ro.kind == "canary" else 0)
        if ro is None or not ro.live or (cand is not None and cand.version != ro.candidate):
            self._end_rollout(slot)
            if ro is None or not ro.live:
                return
            cand = None
        if ro.state == "promoted":
            if slot.handle is not None and slot.handle.version == ro.candidate:
                self._end_rollout(slot)
            return
        if cand is None:
            if slot.rollout_error and slot.rollout_error.startswith(f"{slot.name}/{ro.candidate} "):
                return  # failed already: the kernel was told
            try:
                cand = M.load_handle(slot.name, ro.candidate, self.model_dir(slot.name, ro.candidate))
            except Exception as exc:  # noqa: BLE001 - the serving version keeps every request
                slot.rollout_error = f"{slot.name}/{ro.candidate} failed to load: {first_line(exc)}"
                log.warning("%s: %s", slot.ref, slot.rollout_error)
                return
            self._attach_recorder(cand)
            slot.rollout_error = None
            slot.per_version = {}
            if ro.kind == "shadow":
                slot.shadow = self._shadow(slot.name, cand, ro.candidate)
            slot.candidate = cand  # from now on requests may go (or be mirrored) to it
            log.warning("%s: %s of version %s started", slot.ref, ro.kind, ro.candidate)
            return
        # Another rollout of the candidate already loaded (a shadow promoted to a canary, a
        # canary stopped and shadowed): its figures start from its own requests.
        if changed:
            slot.per_version = {}
        if ro.kind == "canary" and slot.shadow is not None:
            slot.shadow.close()  # a shadow promoted to a canary: stop mirroring
            slot.shadow = None
        elif ro.kind == "shadow" and slot.shadow is None:
            slot.shadow = self._shadow(slot.name, cand, ro.candidate)

    def _shadow(self, name: str, cand: M.Handle, version: int) -> Shadow:
        def compared(agreed: int, differed: int, v: str = str(version)) -> None:
            self.metrics.shadow_rows.labels(name, v, "agree").inc(agreed)
            self.metrics.shadow_rows.labels(name, v, "differ").inc(differed)

        return Shadow(cand, compared)

    def _end_rollout(self, slot: Slot) -> None:
        cand, shadow = slot.candidate, slot.shadow
        slot.candidate = None  # first: no request picks it up any more
        slot.shadow = None
        if shadow is not None:
            shadow.close()
        if cand is not None and cand.recorder is not None and cand is not slot.handle:
            self._to_close.append((time.monotonic() + 5.0, cand.recorder))

    @property
    def following(self) -> bool:
        """Whether alias moves are being followed (at once for a sqlite store, read directly;
        once MLflow is imported for any other)."""
        return self.sqlite is not None or self.mlflow_ready.is_set()

    def import_mlflow(self) -> None:
        """The background import of MLflow (for the other request forms, monitoring, and
        registries other than sqlite), after uvicorn listens: it holds the GIL for seconds."""
        deadline = time.monotonic() + 30
        while not getattr(self.server, "started", True) and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            self.registry_gateway()
            # Every answered request goes to monitoring (off the request path) unless the
            # record says "monitor": false.
            if self.record.monitor:
                from ..monitoring import BackgroundRecorder

                self.recorder_cls = BackgroundRecorder
        except Exception as exc:  # noqa: BLE001
            log.warning("the registry cannot be read: %s", first_line(exc))
        # Set before the loop below: a version swapped in from now on loads its own pyfunc
        # and recorder; one swapped in earlier is covered by the loop.
        self.mlflow_ready.set()
        for slot in self.followed():
            candidate = slot.candidate  # a rollout's, loaded at start-up: monitored as well
            if candidate is not None:
                self._attach_recorder(candidate)
            handle = slot.handle
            if handle is not None:
                self._attach_recorder(handle)
                try:
                    handle.pyfunc()  # ready for the request forms the fast path leaves
                except Exception as exc:  # noqa: BLE001 - the fast path serves; other forms say why
                    log.warning("%s: version %s answers only the fast path: %s", slot.ref,
                                handle.version, first_line(exc))
        # Everything loaded so far (MLflow, pandas, scikit-learn: a large heap) lives as long
        # as the server: keep it out of the garbage collector's full passes, which otherwise
        # walk all of it every time recent objects (requests queued for monitoring) age.
        settle_heap()
        self.warm.set()  # nothing more runs in the background but the alias polls

    def follower(self) -> None:
        """The background thread that polls the registry until stopped."""
        if self.sqlite is None:
            self.mlflow_ready.wait()
        while not self.stopping.is_set():
            try:
                self.follow_once()
            except Exception as exc:  # noqa: BLE001 - keep following whatever happens
                log.warning("following the aliases failed: %s", first_line(exc))
            if self.workers == 1:
                self.drive_rollouts()
            self.wake.wait(POLL_SECONDS if self.sqlite is not None else SHARED_POLL_SECONDS)
            self.wake.clear()

    def drive_rollouts(self) -> None:
        """Take the canaries one step further when due (this server's one driver: the worker,
        or the supervisor of several)."""
        if self.controller is None:
            self.controller = Controller(self.record_path, self.metrics.version_figures,
                                         self._mlflow_gateway)
        try:
            self.controller.tick()
        except Exception as exc:  # noqa: BLE001 - try again at the next poll
            log.warning("driving the canary failed: %s", first_line(exc))

    def close(self) -> None:
        self.stopping.set()
        self.metrics.publish()  # a worker's last counts, for the others' /metrics
        self.wake.set()
        for _, rec in self._to_close:
            _close(rec)
        for slot in self.followed():
            if slot.handle is not None and slot.handle.recorder is not None:
                _close(slot.handle.recorder)
            if slot.shadow is not None:
                slot.shadow.close()
            if slot.candidate is not None and slot.candidate.recorder is not None:
                _close(slot.candidate.recorder)

    # -- status ---------------------------------------------------------------------------
    def health(self) -> tuple[int, dict[str, Any]]:
        models = [s.status() for s in self.slots.values()]
        if self.metrics.multiprocess:
            totals = self.metrics.totals()
            for m in models:
                m["requests"], m["errors"] = totals.get(m["name"], (0, 0))
        serving = all(m.get("serving", m["version"] is not None) for m in models) and bool(models)
        degraded = any(m["error"] for m in models)
        status = "ok" if serving and not degraded else ("degraded" if serving else "down")
        body = {
            "status": status, "pid": self.pid, "workers": self.workers, "worker_pid": os.getpid(),
            "port": self.record.port,
            "uptime_s": round(time.time() - self.started, 3), "following": self.following,
            "mlflow_ready": self.mlflow_ready.is_set(), "warm": self.warm.is_set(),
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
                               "message": f"the server failed: {first_line(exc)}"}).encode()
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _handle(self, scope: dict[str, Any], receive: Any) -> tuple[int, bytes, list]:
        method, path = scope["method"], scope["path"]
        ctype = clen = auth = key = None
        for k, v in scope["headers"]:
            if k == b"content-type":
                ctype = v
            elif k == b"content-length":
                clen = v
            elif k == b"authorization":
                auth = v
            elif k == KEY_HEADER:
                key = v
        if self.token is not None and not _token_ok(auth, self.token):
            raise RequestError("this server needs a token: send the header "
                               "'Authorization: Bearer <token>' that %model_deploy printed",
                               401, "UNAUTHENTICATED")
        if path == "/invocations" or (path.startswith("/models/") and path.endswith("/invocations")):
            if method != "POST":
                raise RequestError(f"{path} takes POST", 405, "METHOD_NOT_ALLOWED")
            return await self._invocations(path, ctype, clen, receive, key)
        if method != "GET":
            raise RequestError(f"{path} takes GET", 405, "METHOD_NOT_ALLOWED")
        if path == "/ping":
            primary = next(iter(self.slots.values()), None)
            ok = primary is not None and (primary.handle is not None or (
                primary.stages is not None and all(s.handle is not None for s in primary.stages)))
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
                           receive: Any, key: bytes | None = None) -> tuple[int, bytes, list]:
        t0 = time.perf_counter()
        slot = self._slot_for(path)
        if slot.stages is not None:
            return await self._pipeline(slot, ctype, clen, receive, t0)
        handle = slot.handle
        candidate = slot.candidate  # read once, as the handle: one version answers a request
        role = None
        try:
            if handle is None:
                raise RequestError(f"{slot.ref} is not serving: {slot.error}", 503, "TEMPORARILY_UNAVAILABLE")
            body = await self._read_body(clen, receive)
            if candidate is not None:
                role = "serving"
                ro = slot.rollout
                if ro is not None and ro.kind == "canary" and ro.share > 0 and \
                        to_candidate(key if key is not None else body, ro.share):
                    handle, role = candidate, "canary"
            out, frame, preds = await self._predict(handle, body, ctype)
        except RequestError as exc:
            slot.requests += 1
            slot.errors += 1
            self.metrics.served(slot.name)[0].inc()
            self.metrics.errors.labels(slot.name, str(exc.status)).inc()
            if role is not None and handle is not None:
                self._count(slot, handle, role, None)
            raise
        elapsed = time.perf_counter() - t0
        slot.requests += 1
        requests, latency = self.metrics.served(slot.name)
        requests.inc()
        latency.observe(elapsed)
        if role is not None:
            self._count(slot, handle, role, elapsed)
            shadow = slot.shadow
            if shadow is not None and role == "serving":
                shadow.offer(frame, preds)
        rec = handle.recorder
        if rec is not None:
            try:
                rec.submit(frame, preds, elapsed * 1000.0)  # rows in the model's columns, or a DataFrame
            except Exception:  # noqa: BLE001 - monitoring never fails a request
                pass
        return 200, out, _JSON

    async def _pipeline(self, slot: Slot, ctype: bytes | None, clen: bytes | None, receive: Any,
                        t0: float) -> tuple[int, bytes, list]:
        """Answer through a pipeline: the request goes to the first stage, each stage's
        predictions are the next one's input, and the last stage's are the answer. Each stage's
        handle is read once, when the request arrives, as a model's is."""
        stages = slot.stages or []
        handles = [s.handle for s in stages]
        try:
            missing = next((s for s, h in zip(stages, handles) if h is None), None)
            if missing is not None:
                raise RequestError(f"{slot.name}: stage {missing.ref} is not serving: {missing.error}",
                                   503, "TEMPORARILY_UNAVAILABLE")
            body = await self._read_body(clen, receive)
            preds: Any = None
            for k, (stage, handle) in enumerate(zip(stages, handles)):
                started = time.perf_counter()
                try:
                    if k == 0:
                        _, frame, preds = await self._predict(handle, body, ctype)  # type: ignore[arg-type]
                    else:
                        frame, preds = await self._stage(handle, preds)  # type: ignore[arg-type]
                except RequestError as exc:
                    self._stage_done(slot, stage, None)
                    if k > 0:
                        exc.status = 500 if exc.status < 500 else exc.status
                        exc.message = f"stage {k + 1} of {slot.name}: {exc.message}"
                    raise
                self._stage_done(slot, stage, time.perf_counter() - started)
                rec = handle.recorder  # type: ignore[union-attr]
                if rec is not None:
                    try:
                        rec.submit(frame, preds, (time.perf_counter() - started) * 1000.0)
                    except Exception:  # noqa: BLE001 - monitoring never fails a request
                        pass
            out = M.dump(preds)
        except RequestError as exc:
            slot.requests += 1
            slot.errors += 1
            self.metrics.served(slot.name)[0].inc()
            self.metrics.errors.labels(slot.name, str(exc.status)).inc()
            raise
        slot.requests += 1
        requests, latency = self.metrics.served(slot.name)
        requests.inc()
        latency.observe(time.perf_counter() - t0)
        return 200, out, _JSON

    def _stage_done(self, slot: Slot, stage: Slot, elapsed: float | None) -> None:
        """One request through one stage, in its figures and the ``stage`` series (None: an
        error)."""
        stage.requests += 1
        self.metrics.stage_requests.labels(slot.name, stage.name).inc()
        if elapsed is None:
            stage.errors += 1
            self.metrics.stage_errors.labels(slot.name, stage.name).inc()
        else:
            stage.seconds += elapsed
            self.metrics.stage_latency.labels(slot.name, stage.name).observe(elapsed)

    async def _stage(self, handle: M.Handle, previous: Any) -> tuple[Any, Any]:
        """A later stage's ``(input, predictions)``: the previous stage's predictions as its
        rows, on the fast path when they fit it, else as a DataFrame through MLflow's pyfunc."""
        rows = M.stage_rows(handle, previous)
        if rows is not None:
            if handle.batcher is not None:
                return rows, await handle.batcher.predict(rows)
            return rows, M.predict_rows(handle, rows)
        frame = M.stage_frame(handle, previous)
        return frame, await asyncio.to_thread(self._stage_slow, handle, frame)

    def _stage_slow(self, handle: M.Handle, frame: Any) -> Any:
        if not self.mlflow_ready.wait(120):
            raise RequestError("the server is still starting; try again in a moment", 503,
                               "TEMPORARILY_UNAVAILABLE")
        return M.predict_frame(handle, frame)

    async def _predict(self, handle: M.Handle, body: bytes, ctype: bytes | None) -> tuple[bytes, Any, Any]:
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
                return await asyncio.to_thread(M.predict_json, handle, body)
            payload, frame = M.parse_json(handle, body)
            if frame is None:
                raise M.NeedsMlflow(payload)
            if handle.batcher is not None:
                preds = await handle.batcher.predict(frame)
            else:
                preds = M.predict_rows(handle, frame)
            return M.dump(preds), frame, preds
        except M.NeedsMlflow as need:
            payload = need.payload
            return await asyncio.to_thread(self._slow, handle, body, mime, payload)

    def _count(self, slot: Slot, handle: M.Handle, role: str, elapsed: float | None) -> None:
        """One request of a rollout, in the per-version series (elapsed None: an error)."""
        self.metrics.tally(slot.name, handle.version, role).add(elapsed)
        if not self._publish_due:  # the series have it within 0.1 s, however few requests follow
            self._publish_due = True
            asyncio.get_running_loop().call_later(0.1, self._publish_tallies)
        figures = slot.per_version.get(handle.version)
        if figures is None:
            figures = slot.per_version[handle.version] = [0, 0, 0.0]
        figures[0] += 1
        if elapsed is None:
            figures[1] += 1
        else:
            figures[2] += elapsed

    def _publish_tallies(self) -> None:
        self._publish_due = False
        self.metrics.publish()

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
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                raise RequestError("the client went away", 400)
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise self._too_large(size)
            if not msg.get("more_body"):
                # the whole body in one message is the usual case: no join
                return b"".join((*chunks, chunk)) if chunks else chunk
            chunks.append(chunk)

    def _too_large(self, size: int) -> RequestError:
        return RequestError(
            f"the body is {size} bytes; this server takes at most {self.max_body} "
            "(send fewer rows per request, or deploy with a larger --max-body)",
            413, "REQUEST_LIMIT_EXCEEDED")


def _chain_of(item: Slot | ModelSpec) -> list[str] | None:
    """A pipeline's stage references (None for a model), to see whether a record changed it."""
    stages = item.stages if isinstance(item, Slot) else item.chain
    return [s.ref for s in stages] if stages else None


#: Content types already read (a client sends the same one with every request); bounded.
_MIMES: dict[bytes, str] = {}


def _mime(ctype: bytes | None) -> str | None:
    if ctype is None:
        return None
    known = _MIMES.get(ctype)
    if known is not None:
        return known
    mime, _, params = ctype.decode("latin-1").partition(";")
    mime = mime.strip().lower()
    charset = params.strip().lower()
    if charset and charset.replace(" ", "") not in ("charset=utf-8", 'charset="utf-8"'):
        raise RequestError(f"only UTF-8 bodies are supported, not {charset}", 415, "BAD_REQUEST")
    if len(_MIMES) < 64:
        _MIMES[ctype] = mime
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
    alive = parent_alive(parent)
    while not app.stopping.wait(0.5):
        if not alive():
            log.warning("the kernel that started this server (pid %s) exited; stopping", parent)
            app.stop_reason = "its kernel exited"
            if app.server is not None:
                app.server.should_exit = True
            return


def serve(record_path: str, *, parent: int | None = None, sock: socket.socket | None = None,
          remove_record: bool = False) -> int:
    """Serve the record's models until stopped; returns the exit code.

    With ``"workers": N`` (N > 1) in the record this process becomes a supervisor: it binds the
    port and imports what the models need, then forks N workers that share the listening
    socket (each a whole one-worker server: its own models, alias follower and monitoring
    recorder), restarts a worker that dies, and stops them all when it stops.
    """
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", stream=sys.stdout)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    M.quiet_sklearn()
    record = R.read(record_path)
    if record.host not in R.LOOPBACK and not record.token:
        # The kernel adds a token off loopback; a record written any other way gets none.
        print(f"nbmodel serve: refusing to listen on {record.host} without a token; "
              "give one (--token) or serve on 127.0.0.1", flush=True)
        return 2
    workers = record.workers
    metrics_dir = None
    if workers > 1:
        # prometheus_client picks its value store at import, by this variable; a server forked
        # by the warm starter may have it imported already: switch it before any metric exists
        metrics_dir = tempfile.mkdtemp(prefix="nbmodel-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        values = sys.modules.get("prometheus_client.values")
        if values is not None:
            values.ValueClass = values.get_value_class()  # type: ignore[attr-defined]
    try:
        return _serve(record, workers, parent, sock, remove_record)
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _serve(record: DeploymentRecord, workers: int, parent: int | None,
           sock: socket.socket | None, remove_record: bool) -> int:
    app = App(record)
    record_path = app.record_path
    host, port = record.host, record.port
    if sock is None:
        try:
            sock = bind(host, port)
        except OSError as exc:
            print(f"nbmodel serve: cannot listen on {host}:{port}: {exc.strerror or exc}", flush=True)
            return 3
    spec: ModelSpec | None = None
    try:
        app.record_mtime = os.stat(record_path).st_mtime_ns
        for spec in record.models:
            if workers == 1:
                app.add_slot(spec, with_pyfunc=False)
            else:
                _preload(app, spec)
    except Exception as exc:  # noqa: BLE001 - nothing to serve: say why and exit
        print(f"nbmodel serve: cannot load {spec.name if spec else '?'}: {first_line(exc)}", flush=True)
        return 4
    many = f", {workers} workers" if workers > 1 else ""
    print(f"nbmodel serve: listening on http://{_url_host(host)}:{port} (pid {os.getpid()}{many})",
          flush=True)
    try:
        if workers == 1:
            _run(app, sock, parent)
        else:
            _supervise(app, sock, parent, workers)
    finally:
        if workers == 1:
            app.close()
        if remove_record:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(record_path)
            with contextlib.suppress(FileNotFoundError):
                R.follow_path(record_path).unlink()
        else:
            # kept for %model_deployments, unless the kernel removed the record or another
            # server took the port since
            R.mark_stopped(record_path, os.getpid(), app.stop_reason, time.time())
    return 0


def serving_runtime() -> None:
    """Set the interpreter up for answering requests beside background threads: short GIL
    turns (:data:`SWITCH_SECONDS`), a larger youngest generation (:data:`GC_YOUNG`), and what
    is loaded so far (the model and its library) kept out of the collector's passes."""
    sys.setswitchinterval(SWITCH_SECONDS)
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG, older, oldest)


def settle_heap() -> None:
    """Once the background start-up is done (MLflow imported, the pyfuncs loaded): collect what
    it left, and keep the rest out of the collector's passes for the server's life."""
    gc.collect()
    gc.freeze()


def _run(app: App, sock: socket.socket, parent: int | None) -> None:
    """One worker: uvicorn on the event loop, the alias follower beside it."""
    import uvicorn

    serving_runtime()

    # loop "auto" takes uvloop when installed; no proxy headers: nothing here reads them.
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            server_header=False, timeout_keep_alive=30, proxy_headers=False)
    server = uvicorn.Server(config)
    app.server = server
    app.importer = threading.Thread(target=app.import_mlflow, name="nbmodel-mlflow", daemon=True)
    app.importer.start()
    threading.Thread(target=app.follower, name="nbmodel-follow", daemon=True).start()
    if parent:
        threading.Thread(target=_watch_parent, args=(app, parent), name="nbmodel-parent",
                         daemon=True).start()
    # uvicorn re-raises SIGTERM once it has shut down; a Python handler lets the clean-up
    # (closing the monitoring recorders) run instead of the default instant exit.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        server.run(sockets=[sock])
    except (KeyboardInterrupt, SystemExit):
        pass


def _preload(app: App, spec: ModelSpec) -> None:
    """The supervisor reads each model once, so its imports (scikit-learn's above all) are
    done before the fork; it runs no prediction, so no thread pool (OpenMP's, which does not
    survive a fork) starts before the workers do."""
    for stage in spec.chain or []:
        _preload(app, stage)
    path = spec.path
    if not path or not os.path.isfile(os.path.join(path, "MLmodel")):
        return  # the workers resolve it from the registry
    M._load_native(path, M.read_mlmodel(path))


def _supervise(app: App, sock: socket.socket, parent: int | None, workers: int) -> None:
    """Fork ``workers`` workers on the shared socket, keep that many running, stop them all."""
    from prometheus_client.multiprocess import mark_process_dead

    reason: list[str] = []

    def on_signal(signum: int, frame: Any) -> None:
        if not reason:
            reason.append("stopped")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    children: set[int] = set()
    deaths: list[float] = []
    parent_check = parent_alive(parent) if parent else None
    for _ in range(workers):
        children.add(_fork_worker(app, sock, replacement=False))
    driven = 0.0
    while not reason:
        if time.monotonic() - driven > 0.5:
            app.drive_rollouts()  # the workers' summed metrics are read here
            driven = time.monotonic()
        if parent_check is not None and not parent_check():
            log.warning("the kernel that started this server (pid %s) exited; stopping", parent)
            reason.append("its kernel exited")
            break
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pid, status = 0, 0
        if pid not in children:
            time.sleep(0.1)
            continue
        children.discard(pid)
        mark_process_dead(pid)
        code = os.waitstatus_to_exitcode(status)
        if code == WORKER_CANNOT_LOAD:
            reason.append("its workers cannot load the models (see the log)")
            break
        now = time.monotonic()
        deaths = [t for t in deaths if now - t < 60] + [now]
        if len(deaths) > 3 * workers:
            reason.append("its workers kept dying")
            break
        log.warning("worker %s ended (%s); starting another", pid,
                    f"signal {-code}" if code < 0 else f"exit code {code}")
        children.add(_fork_worker(app, sock, replacement=True))
    app.stop_reason = reason[0]
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while children and time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid:
            children.discard(pid)
            mark_process_dead(pid)
        else:
            time.sleep(0.05)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


#: A worker's exit code when it cannot load the models it must serve (the supervisor stops).
WORKER_CANNOT_LOAD = 4


def _fork_worker(app: App, sock: socket.socket, *, replacement: bool) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:  # the worker: never returns into the supervisor's code
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        spec: ModelSpec | None = None
        if replacement:  # the kernel may have added models or versions since the start
            with contextlib.suppress(OSError, ValueError):
                app.record_mtime = os.stat(app.record_path).st_mtime_ns
                app.record = R.read(app.record_path)
        try:
            for spec in app.record.models:
                app.add_slot(spec, with_pyfunc=False)
        except Exception as exc:  # noqa: BLE001
            log.warning("worker %s cannot load %s: %s", os.getpid(), spec.name if spec else "?",
                        first_line(exc))
            code = WORKER_CANNOT_LOAD
            raise
        if replacement:
            # The alias may have moved, or the record changed, since the supervisor started:
            # catch up before taking a request.
            try:
                app.follow_once()
            except Exception as exc:  # noqa: BLE001 - the follower thread tries again
                log.warning("worker %s could not check the aliases: %s", os.getpid(), first_line(exc))
        _run(app, sock, parent=app.pid)  # ends when the supervisor is gone
    except BaseException:  # noqa: BLE001
        code = code or 1
    finally:
        with contextlib.suppress(BaseException):
            app.close()
        sys.stdout.flush()
        os._exit(code)
    return 0


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def bind(host: str, port: int) -> socket.socket:
    """The listening TCP socket on ``host:port``, inheritable by forked workers.

    Raises:
        OSError: the address cannot be bound.
    """
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
    """``python -m nbmodel.serving._server --record FILE``: serve until stopped.

    Returns:
        The exit code (see :func:`serve`).
    """
    p = argparse.ArgumentParser(prog="python -m nbmodel.serving._server")
    p.add_argument("--record", required=True)
    p.add_argument("--parent", type=int, default=None, help="end when this parent pid exits")
    p.add_argument("--remove-record", action="store_true", help="delete the record on exit")
    args = p.parse_args(argv)
    return serve(args.record, parent=args.parent, remove_record=args.remove_record)


if __name__ == "__main__":
    sys.exit(main())
