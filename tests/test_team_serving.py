"""A team on one store: monitoring rows from many writers are never lost, deployments started
anywhere are listed everywhere, and following an alias costs the tracking server little."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import nbmodel
from nbmodel.monitoring import record

ROOT = Path(__file__).resolve().parents[1]


def _clear_monitoring_caches() -> None:
    from nbmodel.monitoring import _storage, _traffic

    _storage.clear_caches()
    _traffic.clear_caches()


# -- monitoring: one location that every writer agrees on, and readers that read all -----------
def test_rows_written_to_a_second_monitoring_run_are_read(commit_iris, iris):
    """Two writers that raced on creating the monitoring run (as on a server, where no lock
    spans machines) leave two runs: a reader counts the rows of both."""
    from nbmodel.monitoring._storage import BATCHES, MONITOR_TAG, monitor_run

    commit_iris()
    X = iris["X_test"].iloc[:10]
    record("iris/1", X, np.zeros(10, dtype=int))
    first = monitor_run("iris")
    store = nbmodel.get_store()
    # the run a racing writer on another machine created a moment later
    other = store.gateway.create_run(store.experiment_id("iris"), run_name="iris monitor",
                                     tags={MONITOR_TAG: "true"})
    from nbmodel.monitoring._record import prepare_batch
    from nbmodel.monitoring._schema import schema
    from nbmodel.monitoring._storage import MonitorRun, _local_dir

    racer = MonitorRun(store.uri, "iris", other.info.run_id, other.info.artifact_uri,
                       _local_dir(other.info.artifact_uri))
    racer.write(f"{BATCHES}/v1", prepare_batch(schema("iris", 1), iris["X_test"].iloc[:7],
                                               np.ones(7, dtype=int)))
    _clear_monitoring_caches()
    assert monitor_run("iris").run_id == first.run_id  # writers keep to the oldest
    assert len(nbmodel.monitoring.recorded("iris/1")) == 17


def test_a_writer_that_created_a_run_takes_the_oldest(commit_iris, iris, monkeypatch):
    """A writer whose creation raced another's (both found none) writes to the older run."""
    from nbmodel.monitoring import _storage

    commit_iris()
    store = nbmodel.get_store()
    exp = store.experiment_id("iris")
    earlier = store.gateway.create_run(exp, run_name="iris monitor", tags={_storage.MONITOR_TAG: "true"})
    real_find = _storage._find
    calls = []

    def blind_first(st, exp_id):  # the first search ran before the other writer's run existed
        calls.append(exp_id)
        return None if len(calls) <= 2 else real_find(st, exp_id)

    monkeypatch.setattr(_storage, "_find", blind_first)
    _clear_monitoring_caches()
    assert _storage.monitor_run("iris").run_id == earlier.info.run_id


WRITER = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import pandas as pd
    import nbmodel
    from nbmodel import store as store_mod
    if os.environ.get("NO_LOCK"):  # as on a server: no lock spans the writers' machines
        import contextlib
        store_mod.Store.write_lock = lambda self: contextlib.nullcontext()
    go = sys.argv[1]
    X = pd.read_csv(sys.argv[2])
    nbmodel.get_store().check()
    from nbmodel.monitoring import _record, _schema
    _record.prepare_batch(_schema.schema("iris", 1), X, np.zeros(len(X), dtype=int))
    nbmodel.get_store().experiment_id("iris")  # ready: the first record() only makes the run
    while not os.path.exists(go):
        time.sleep(0.005)
    for i in range(10):
        nbmodel.record("iris/1", X, np.zeros(len(X), dtype=int))
""")


@pytest.mark.slow
def test_eight_writers_at_once_lose_no_row(commit_iris, iris, tmp_path):
    """8 processes record 300 rows each at once, on a model nobody recorded for yet (they race
    on creating its monitoring run), without a lock between them: all 2,400 rows read back."""
    commit_iris()
    X = iris["X"].iloc[:30]
    X.to_csv(tmp_path / "x.csv", index=False)
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_LOCK": "1",
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(go), str(tmp_path / "x.csv")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for _ in range(8)]
    time.sleep(8)  # let them all import and wait at the start line
    go.touch()
    for p in procs:
        out, _ = p.communicate(timeout=240)
        assert p.returncode == 0, out.decode()[-2000:]
    _clear_monitoring_caches()
    assert len(nbmodel.monitoring.recorded("iris/1")) == 2400


# -- alias following: few requests to a store over the network, a move seen within a second ----
class CountingRegistry:
    """Stands in for the gateway of an ``http://`` store: counts the alias reads."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.calls = 0

    def version_by_alias(self, name: str, alias: str) -> object:
        from types import SimpleNamespace

        self.calls += 1
        return SimpleNamespace(version=str(self.version))

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        self.tags = {**getattr(self, "tags", {}), (name, key): value}
        self.writes = getattr(self, "writes", 0) + 1


def _worker(record_path: Path, registry: CountingRegistry) -> object:
    """One worker of a server over an http:// store, following iris@production (version 3)."""
    from types import SimpleNamespace

    from nbmodel.serving import _records as R
    from nbmodel.serving._models import Slot
    from nbmodel.serving._server import App

    app = App(R.read(record_path))
    app.gateway = registry
    app.mlflow_ready.set()
    slot = Slot(name="iris", alias="production")
    slot.handle = SimpleNamespace(version=3, recorder=None)  # type: ignore[assignment]
    app.slots = {"iris": slot}
    app.switched = []  # type: ignore[attr-defined]

    def swap(s: object, want: int) -> None:
        app.switched.append((time.monotonic(), want))  # type: ignore[attr-defined]
        slot.handle = SimpleNamespace(version=want, recorder=None)  # type: ignore[assignment]

    app._swap = swap  # type: ignore[method-assign]
    return app


@pytest.fixture
def http_record(tmp_path):
    from nbmodel.serving import _records as R

    rec = R.DeploymentRecord(host="127.0.0.1", port=5999, store="http://127.0.0.1:9",
                             pid=os.getpid(), path=tmp_path / "5999.json")
    R.write(rec)
    return rec.path


def _follow(apps: list, seconds: float) -> None:
    import threading

    threads = [threading.Thread(target=a.follower, daemon=True) for a in apps]
    for t in threads:
        t.start()
    time.sleep(seconds)
    for a in apps:
        a.stopping.set()
        a.wake.set()
    for t in threads:
        t.join(5)


def test_an_idle_deployment_asks_the_registry_about_once_a_second(http_record):
    registry = CountingRegistry(3)
    _follow([_worker(http_record, registry)], 3.0)
    assert 2 <= registry.calls <= 4  # was 12: five polls a second


def test_workers_of_one_server_share_one_registry_read(http_record):
    registry = CountingRegistry(3)
    _follow([_worker(http_record, registry) for _ in range(4)], 3.0)
    assert 2 <= registry.calls <= 5  # was 48: five polls a second per worker


def test_a_server_on_a_team_store_publishes_itself_once_per_heartbeat(http_record):
    import json

    from nbmodel.serving import _records as R

    registry = CountingRegistry(3)
    rec = R.read(http_record)
    rec.models = [R.ModelSpec("iris", "production", 3)]
    R.write(rec)
    _follow([_worker(http_record, registry) for _ in range(2)], 1.5)
    assert registry.writes == 1  # one worker says it for the server; again in 30 s
    (key, value), = ((k, v) for (_, k), v in registry.tags.items())
    entry = R.Published.from_json(json.loads(value))
    assert key == f"nbmodel.deployment.{R.machine()}.5999"
    assert (entry.port, entry.pid, [(m.name, m.version) for m in entry.models]) == \
        (5999, os.getpid(), [("iris", 3)])
    assert entry.stopped is None and "token" not in value


def test_a_move_is_followed_within_about_a_second(http_record):
    import threading

    registry = CountingRegistry(3)
    apps = [_worker(http_record, registry) for _ in range(2)]
    done = threading.Thread(target=_follow, args=(apps, 4.0))
    done.start()
    time.sleep(1.3)
    moved = time.monotonic()
    registry.version = 4
    done.join()
    for app in apps:
        assert [w for _, w in app.switched] == [4]  # type: ignore[attr-defined]
        assert app.switched[0][0] - moved < 1.5  # type: ignore[attr-defined]


def test_the_shared_versions_go_when_the_server_stops(http_record):
    from nbmodel.serving import _records as R

    _follow([_worker(http_record, CountingRegistry(3))], 0.5)
    assert R.follow_path(http_record).exists()
    assert R.mark_stopped(http_record, os.getpid(), "stopped", time.time())
    assert not R.follow_path(http_record).exists()


# -- deployments: started anywhere, listed everywhere; the process stays with its machine -------
def _publish_elsewhere(name: str = "iris", *, seen: float | None = None, port: int = 5001) -> object:
    from nbmodel.serving import _records as R

    entry = R.Published(machine="gpu-box-2", port=port, host="127.0.0.1", user="alice",
                        started=time.time() - 120, seen=time.time() if seen is None else seen,
                        models=[R.ModelSpec(name, "production", 1)], pid=4242)
    R.publish(nbmodel.get_store().gateway, entry)
    return entry


def test_a_deployment_published_by_another_machine_is_listed(commit_iris):
    commit_iris()
    _publish_elsewhere()
    deps = nbmodel.deployments()
    assert [(d.ref, d.version, d.port, d.user, d.machine, d.health) for d in deps] == \
        [("iris@production", 1, 5001, "alice", "gpu-box-2", "ok")]
    assert deps[0].pid is None  # the process handle stays with its machine
    assert deps[0].to_dict()["user"] == "alice"
    assert "gpu-box-2" in str(deps) and "alice" in str(deps)
    assert [d.ref for d in nbmodel.deployments("iris")] == ["iris@production"]
    assert nbmodel.deployments("other") == []


def test_a_published_deployment_not_heard_of_is_stale_and_a_stopped_one_goes(commit_iris):
    from nbmodel.serving import _records as R

    commit_iris()
    entry = _publish_elsewhere(seen=time.time() - 600)
    assert nbmodel.deployments()[0].health.startswith("stale (last heard 10 min ago)")
    entry.stopped = time.time()  # type: ignore[attr-defined]
    R.publish(nbmodel.get_store().gateway, entry)  # type: ignore[arg-type]
    assert nbmodel.deployments() == []


def test_this_machines_server_that_died_unsaid_is_withdrawn(commit_iris):
    from nbmodel.serving import _records as R

    commit_iris()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    entry = R.Published(machine=R.machine(), port=5002, host="127.0.0.1", user="me",
                        started=time.time(), seen=time.time(), pid=gone.pid,
                        models=[R.ModelSpec("iris", "production", 1)])
    R.publish(nbmodel.get_store().gateway, entry)
    assert nbmodel.deployments() == []
    assert R.published(nbmodel.get_store().gateway) == []


@pytest.mark.slow
def test_a_local_deployment_still_stops_beside_a_published_one(commit_iris, warm_starter, monkeypatch):
    import nbmodel.serving as serving

    monkeypatch.setenv("NBMODEL_WARM_SERVER", "1")
    commit_iris()
    _publish_elsewhere(port=5003)
    try:
        dep = nbmodel.deploy("iris/1", alias="staging")
        listed = {(d.ref, d.machine) for d in nbmodel.deployments()}
        assert listed == {("iris@staging", None), ("iris@production", "gpu-box-2")}
        assert serving.stop("iris@staging") == [f"iris@staging at http://127.0.0.1:{dep.port}"]
        assert [d.machine for d in nbmodel.deployments()] == ["gpu-box-2"]
    finally:
        serving.stop("all")


def test_copies_of_a_remote_stores_files_are_removed(commit_iris, iris, monkeypatch):
    """Files read from a store whose artifacts are not local are copied to a temporary folder,
    which clear_caches (and the end of the process) removes."""
    from nbmodel.monitoring import _storage

    commit_iris()
    record("iris/1", iris["X_test"].iloc[:5], np.zeros(5, dtype=int))
    run = _storage.monitor_run("iris")
    path = run.list(f"{_storage.BATCHES}/v1")[0]
    run.local_dir = None  # read as from a served artifact store
    assert len(run.read(path)["ts"]) == 5
    copies = run._download_dir
    assert copies is not None and os.path.isdir(copies)
    _storage.clear_caches()
    assert not os.path.exists(copies)
