"""Benchmarks for issue 12 (teams): a shared ``mlflow server`` and sqlite, side by side in one run.

    NBMODEL_TEAM_URI=http://127.0.0.1:PORT python benchmarks/bench_team.py [--repeat 5] [--versions 200]

Prints, each measured alternately with its baseline in the same run:
  * on the team server: a warm ``nbmodel.commit`` against ``mlflow.sklearn.log_model(...,
    registered_model_name=...)`` of the same model, and the ratio (target >= 15x);
  * on the team server: ``%model_log`` of N versions and a rollback there (target < 60 ms each);
  * on sqlite: a full warm ``nbmodel.commit`` (fingerprint, reference statistics, source, lineage)
    against MLflow's bare ``log_model(pip_requirements=...)`` + ``register_model`` (target <= 1.5x).
Without NBMODEL_TEAM_URI (``.ci/team-server start`` prints one) only the sqlite part runs. Model
names are unique per run; the sqlite store is temporary; nothing of the user's is touched.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.pop("MLFLOW_TRACKING_URI", None)


class _Requests:
    """Every HTTP request MLflow's client makes while counting: method, path, ms, bytes."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, float, int]] = []
        self.spans: list[tuple[float, float]] = []  # when each request was under way

    def __enter__(self) -> _Requests:
        import requests

        real = self._real = requests.Session.request
        seen, spans = self.seen, self.spans

        def counted(session: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            response = real(session, method, url, *args, **kwargs)
            end = time.perf_counter()
            seen.append((method, url.split("/api/", 1)[-1].split("?")[0],
                         (end - t) * 1000, len(response.content)))
            spans.append((t, end))
            return response

        requests.Session.request = counted  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: Any) -> None:
        import requests

        requests.Session.request = self._real  # type: ignore[method-assign]

    def waiting_ms(self) -> float:
        """How long at least one request was under way (requests sent at once count once)."""
        total, until = 0.0, float("-inf")
        for start, end in sorted(self.spans):
            if end > until:
                total += end - max(start, until)
                until = end
        return total * 1000

    def summary(self, what: str, total_ms: float) -> str:
        in_requests = self.waiting_ms()
        size = sum(s[3] for s in self.seen)
        kinds: dict[str, int] = {}
        for method, path, _, _ in self.seen:
            key = f"{method} {path.rsplit('/artifacts/', 1)[0] if 'artifacts/' in path else path}"
            kinds[key] = kinds.get(key, 0) + 1
        detail = ", ".join(f"{k} x{n}" if n > 1 else k for k, n in kinds.items())
        return (f"  {what}: {total_ms:.0f} ms, {len(self.seen)} requests under way for {in_requests:.0f} ms "
                f"({size / 1024:.0f} KiB answered), {total_ms - in_requests:.0f} ms in the kernel alone: "
                f"{detail}")


def _requests_of(what: str, fn: Any) -> None:
    from nbmodel.store import get_store

    get_store().gateway.settle()  # no earlier operation's lease release among them
    with _Requests() as r:
        t = time.perf_counter()
        fn()
        total = (time.perf_counter() - t) * 1000
    print(r.summary(what, total))


def _ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


def _data() -> tuple[Any, Any, Any, Any, Any]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    X, y = load_iris(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    return LogisticRegression(max_iter=500).fit(X_train, y_train), X_train, X_test, y_train, y_test


def bench_server_commit(uri: str, repeat: int, tag: str) -> None:
    import mlflow

    import nbmodel

    nbmodel.set_store(uri)
    clf, X_train, X_test, y_train, y_test = _data()
    name, base_name = f"bench_{tag}", f"bench_{tag}_mlflow"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(f"bench_{tag}_baseline")
    nbmodel.commit(clf, name, message="warm", eval=(X_test, y_test), train=(X_train, y_train))
    with mlflow.start_run():
        mlflow.sklearn.log_model(clf, name="model", registered_model_name=base_name)
    ours, base = [], []
    for i in range(repeat):
        t = time.perf_counter()
        nbmodel.commit(clf, name, message=f"run {i}", eval=(X_test, y_test), train=(X_train, y_train))
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        with mlflow.start_run():
            mlflow.sklearn.log_model(clf, name="model", registered_model_name=base_name)
        base.append(time.perf_counter() - t)
    ratio = statistics.median(base) / statistics.median(ours)
    print(f"team server commit (warm, median of {repeat}): nbmodel {_ms(ours):.0f} ms, "
          f"mlflow.sklearn.log_model+register {_ms(base):.0f} ms: {ratio:.1f}x faster "
          f"(target >= 15x)")


def bench_server_log(uri: str, n: int, tag: str, repeat: int) -> None:
    import nbmodel
    from nbmodel import versions as V
    from nbmodel.store import get_store
    from nbmodel.tagpack import pack, unpack

    nbmodel.set_store(uri)
    clf, X_train, X_test, y_train, y_test = _data()
    name = f"bench_{tag}_log"
    nbmodel.commit(clf, name, message="v1", eval=(X_test, y_test), train=(X_train, y_train))
    client = get_store().client
    mv = client.get_model_version(name, "1")
    # The other versions share the first one's artifacts: %model_log reads registry rows.
    for i in range(2, n + 1):
        tags = unpack(mv.tags)  # stored as a commit stores them: nbmodel's fields in one tag
        tags[V.T_PARENT] = f"{name}/{i - 1}"
        tags[V.T_METRICS] = json.dumps({"accuracy": 0.9 + i / 1e5, "f1_macro": 0.9})
        client.create_model_version(name, mv.source, run_id=mv.run_id, tags=pack(tags),
                                    description=f"version {i}",
                                    model_id=mv.model_id or mv.source.rsplit("/", 1)[-1])
    for v in (n - 10, n - 5, n - 2, n - 1):
        nbmodel.alias(f"{name}/{v}", "production")
    gw = get_store().gateway
    # For the machine's state at the time, MLflow's own client side by side: the same reads of
    # the history (every version, and the model for its aliases), and a bare alias move with the
    # read it needs (no lease, no trail: nothing a team could rely on).
    client_logs, client_moves = [], []
    logs, rollbacks = [], []  # back to back: each right after the previous operation
    settled_logs, settled_rollbacks = [], []  # each once the previous one's lease release is done
    whole_logs = []  # with no history kept: every version read
    # As a user types magics, an alias move's lease is released off the calling thread; back to
    # back, that release shares the server with the next operation's requests. Both ways are
    # timed in each round, so a noisy moment touches both alike.
    for _ in range(repeat):
        for settled, log_times, rollback_times in ((False, logs, rollbacks),
                                                   (True, settled_logs, settled_rollbacks)):
            if settled:
                gw.settle()
            t = time.perf_counter()
            h = nbmodel.log(name)
            str(h)
            log_times.append(time.perf_counter() - t)
            if settled:
                gw.settle()
            t = time.perf_counter()
            nbmodel.rollback(name)
            rollback_times.append(time.perf_counter() - t)
            nbmodel.alias(f"{name}/{n - 1}", "production")
        # A read with no history kept (a kernel's first, or one after nbmodel wrote versions' tags).
        gw.settle()
        gw._histories.pop(name, None)
        t = time.perf_counter()
        str(nbmodel.log(name))
        whole_logs.append(time.perf_counter() - t)
        gw.settle()
        t = time.perf_counter()
        assert len(client.search_model_versions(f"name = '{name}'", max_results=10000)) == n
        client.get_registered_model(name)
        client_logs.append(time.perf_counter() - t)
        t = time.perf_counter()
        held = client.get_registered_model(name).aliases["production"]
        client.set_registered_model_alias(name, "production", held)
        client_moves.append(time.perf_counter() - t)
    assert len(h) == n
    gw.settle()
    print("team server, requests per operation (one run each):")
    # Each operation's own requests (a move's lease release, sent off the calling thread after
    # it answers, is left out: settled first).
    _requests_of(f"%model_log of {n} versions", lambda: str(nbmodel.log(name)))
    _requests_of("rollback", lambda: nbmodel.rollback(name))
    gw.settle()
    _requests_of("commit", lambda: nbmodel.commit(clf, name, message="counted", eval=(X_test, y_test),
                                                  train=(X_train, y_train)))
    print(f"team server %model_log of {n} versions (query + table, median of {repeat}): "
          f"{_ms(settled_logs):.0f} ms; rollback: {_ms(settled_rollbacks):.0f} ms (targets < 60 ms each); "
          f"back to back with the previous operation: {_ms(logs):.0f} ms and {_ms(rollbacks):.0f} ms")
    print(f"  %model_log with no history kept (a kernel's first read, or the first after nbmodel "
          f"wrote versions' tags): {_ms(whole_logs):.0f} ms")
    print(f"  the same moments, MLflow's own client: the history's reads {_ms(client_logs):.0f} ms, "
          f"a bare alias move and its read {_ms(client_moves):.0f} ms")


def bench_sqlite_commit(folder: Path, repeat: int) -> None:
    import mlflow

    import nbmodel

    uri = f"sqlite:///{folder / 'commit.db'}"
    nbmodel.set_store(uri)
    mlflow.set_tracking_uri(uri)
    clf, X_train, X_test, y_train, y_test = _data()
    mlflow.set_experiment("bare")
    reqs = [f"scikit-learn=={__import__('sklearn').__version__}"]

    def bare() -> None:
        with mlflow.start_run() as run:
            mlflow.sklearn.log_model(clf, name="model", pip_requirements=reqs)
        mlflow.register_model(f"runs:/{run.info.run_id}/model", "iris_bare")

    from mlflow.models import infer_signature
    from sklearn.metrics import accuracy_score, f1_score

    from nbmodel.requirements import pinned_requirements

    def bare_same_records() -> None:
        """MLflow asked to keep what an nbmodel commit with ``eval=`` keeps: pinned requirements,
        signature, input example, params and eval metrics (not the profile, digests or lineage)."""
        pred = clf.predict(X_test)
        with mlflow.start_run() as run:
            info = mlflow.sklearn.log_model(
                clf, name="model", pip_requirements=pinned_requirements(clf, serializer="skops"),
                signature=infer_signature(X_test[:5], pred[:5]), input_example=X_test[:5])
            mlflow.log_params(clf.get_params())
            mlflow.log_metrics({"accuracy": accuracy_score(y_test, pred),
                                "f1_macro": f1_score(y_test, pred, average="macro")},
                               model_id=info.model_id)
        mlflow.register_model(f"runs:/{run.info.run_id}/model", "iris_bare_full")

    def plain(i: int) -> None:  # the full commit: fingerprint, reference statistics, source, lineage
        nbmodel.commit(clf, "iris", message=f"plain {i}", train=(X_train, y_train))

    def evaluated(i: int) -> None:  # and eval metrics with permutation importance
        nbmodel.commit(clf, "iris", message=f"eval {i}", eval=(X_test, y_test), train=(X_train, y_train))

    plain(-1)  # warm every side once
    evaluated(-1)
    bare()
    bare_same_records()
    t_plain: list[float] = []
    t_eval: list[float] = []
    t_bare: list[float] = []
    t_full: list[float] = []
    for i in range(repeat):  # interleaved, so load on the machine falls on every side alike
        sides: list[tuple[Any, list[float]]] = [
            (functools.partial(plain, i), t_plain), (bare, t_bare),
            (functools.partial(evaluated, i), t_eval), (bare_same_records, t_full)]
        for fn, out in sides:
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    r1 = statistics.median(t_plain) / statistics.median(t_bare)
    r2 = statistics.median(t_eval) / statistics.median(t_bare)
    r3 = statistics.median(t_eval) / statistics.median(t_full)
    print(f"sqlite full commit (warm, median of {repeat}): nbmodel {_ms(t_plain):.0f} ms against bare "
          f"log_model(pip_requirements)+register_model {_ms(t_bare):.0f} ms: {r1:.2f}x (target <= 1.5x)")
    print(f"  with eval= (metrics and permutation importance too): nbmodel {_ms(t_eval):.0f} ms: {r2:.2f}x "
          f"the bare one; against MLflow asked for the same records (pinned requirements, signature, "
          f"input example, params, metrics) {_ms(t_full):.0f} ms: {r3:.2f}x")


def _machine_state(uri: str) -> None:
    """The server's /health round trip (no database work): this machine's figures move with its
    state, and this says which state a run met."""
    import requests

    with requests.Session() as session:
        times = []
        for _ in range(21):
            t = time.perf_counter()
            session.get(f"{uri}/health", timeout=10)
            times.append(time.perf_counter() - t)
    print(f"team server /health round trip: median {_ms(times):.1f} ms of 21")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--versions", type=int, default=200)
    ap.add_argument("--only", choices=["server", "sqlite"])
    args = ap.parse_args()
    uri = os.environ.get("NBMODEL_TEAM_URI")
    tag = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        if args.only in (None, "sqlite"):
            bench_sqlite_commit(Path(tmp), args.repeat)
        if args.only in (None, "server"):
            if not uri:
                print("team server: skipped (set NBMODEL_TEAM_URI; `.ci/team-server start` prints one)",
                      file=sys.stderr)
                return
            _machine_state(uri)
            bench_server_commit(uri, args.repeat, tag)
            bench_server_log(uri, args.versions, tag, args.repeat)
            _machine_state(uri)


if __name__ == "__main__":
    main()
