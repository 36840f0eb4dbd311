"""Canary and shadow rollouts: the rules and the routing on their own, then real servers on
127.0.0.1 under steady load from a few client threads (every server stopped by the test)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from _helpers import asgi_post, fit_iris, split_json

requests = pytest.importorskip("requests")


def answers_of(iris: dict[str, Any], *Cs: float) -> dict[str, int]:
    """The answer body of each version (1, 2, ...) committed with these C, to X_test."""
    out = {}
    for v, C in enumerate(Cs, start=1):
        out[json.dumps({"predictions": fit_iris(iris, C).predict(iris["X_test"]).tolist()})] = v
    assert len(out) == len(Cs), "the versions must answer differently"
    return out


class Callers:
    """Client threads posting until the block ends, each as one caller: with ``keyed`` every
    thread sends its own ``X-Request-Key`` (else the body decides). ``seen[caller]`` lists the
    versions that answered it, in order; ``failures`` everything that was not a version's
    answer."""

    def __init__(self, url: str, body: str, answers: dict[str, int], threads: int = 4,
                 keyed: bool = True) -> None:
        self.url, self.body, self.answers, self.keyed = url, body, answers, keyed
        self.seen: dict[str, list[tuple[float, int]]] = {}
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(f"caller-{i}",)) for i in range(threads)]

    def _run(self, caller: str) -> None:
        seen = self.seen.setdefault(caller, [])
        headers = {"Content-Type": "application/json"}
        if self.keyed:
            headers["X-Request-Key"] = caller
        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    r = session.post(self.url, data=self.body, headers=headers, timeout=10)
                except Exception as exc:  # noqa: BLE001
                    self.failures.append(repr(exc))
                    continue
                if r.status_code != 200 or r.text not in self.answers:
                    self.failures.append(f"{r.status_code} {r.text[:200]}")
                else:
                    seen.append((time.time(), self.answers[r.text]))
                time.sleep(0.002)

    def versions(self) -> list[int]:
        return [v for s in self.seen.values() for _, v in s]

    def __enter__(self) -> Callers:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)


def wait_state(name: str, states: tuple[str, ...], timeout: float = 60.0) -> Any:
    from nbmodel.serving import _rollout

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rep = _rollout.report(name)
        if rep.state in states:
            return rep
        time.sleep(0.2)
    raise AssertionError(f"the rollout stayed {rep.state}: {rep}")


# -- the rules, without a server -------------------------------------------------------------------
def test_checks_parse_and_judge_the_candidates_figures() -> None:
    from nbmodel.errors import DeployError
    from nbmodel.serving._rollout import Check, evaluate

    assert Check.parse(" p99_ms <= 20 ") == Check("p99_ms", "<=", 20.0)
    assert evaluate(["error_rate<0.01", "p99_ms<20"], {"error_rate": 0.0, "p99_ms": 4.0})[0] is True
    ok, why = evaluate(["error_rate<0.01", "p99_ms<20"], {"error_rate": 0.05, "p99_ms": 4.0})
    assert ok is False and why == "error_rate 0.05 >= 0.01"
    ok, why = evaluate(["accuracy>=0.95"], {"accuracy": None})
    assert ok is None and "no figure" in why
    for bad in ("latency<20", "p99_ms<<20", "p99_ms<fast", ""):
        with pytest.raises(DeployError, match="METRIC OP NUMBER|not a number"):
            Check.parse(bad)


def test_steps_and_intervals() -> None:
    from nbmodel.errors import DeployError
    from nbmodel.serving._rollout import parse_interval, parse_steps

    assert parse_steps(None) == [10, 25, 50, 100]
    assert parse_steps("5, 20%") == [5, 20, 100]
    assert parse_interval("90s") == 90.0 and parse_interval("2m") == 120.0 and parse_interval(0.5) == 0.5
    for bad in ("50,10", "0,50", "10,10", "ten", "10,200"):
        with pytest.raises(DeployError, match="growing percentages"):
            parse_steps(bad)
    for bad in ("soon", "0s", "-1"):
        with pytest.raises(DeployError, match="duration"):
            parse_interval(bad)


def test_routing_is_sticky_and_a_growing_share_only_adds_callers() -> None:
    from nbmodel.serving._rollout import to_candidate

    keys = [f"caller-{i}".encode() for i in range(2000)]
    for share in (10, 25, 50):
        picked = {k for k in keys if to_candidate(k, share)}
        assert abs(len(picked) / len(keys) - share / 100) < 0.05
        assert picked == {k for k in keys if to_candidate(k, share)}  # the same caller, the same side
    small = {k for k in keys if to_candidate(k, 10)}
    assert small <= {k for k in keys if to_candidate(k, 50)}
    assert not any(to_candidate(k, 0) for k in keys) and all(to_candidate(k, 100) for k in keys)


def test_step_figures_come_from_the_steps_own_requests() -> None:
    from nbmodel.serving._rollout import step_figures

    inf = float("inf")
    base = {"requests": 100, "errors": 5, "buckets": [(0.001, 50), (0.005, 95), (0.02, 100), (inf, 100)]}
    now = {"requests": 300, "errors": 7, "buckets": [(0.001, 150), (0.005, 290), (0.02, 300), (inf, 300)]}
    f = step_figures(base, now)
    assert f["requests"] == 200 and f["error_rate"] == pytest.approx(0.01)
    assert f["p50_ms"] == pytest.approx(1.0) and f["p99_ms"] == pytest.approx(20.0)
    assert step_figures(now, now)["error_rate"] is None  # no request: nothing to judge yet


def test_a_full_shadow_queue_drops_and_counts_instead_of_slowing_requests() -> None:
    """The request path only appends to a bounded queue: when the candidate falls behind, the
    extra requests are dropped from the comparison and counted, never waited for."""
    from nbmodel.serving._rollout import Shadow

    shadow = Shadow(candidate=None)
    shadow.close()  # no thread drains the queue: a candidate that fell far behind
    shadow.thread.join(5)
    shadow.MAX_QUEUED = 3
    t0 = time.perf_counter()
    for i in range(10):
        shadow.offer([[float(i)]], [0])
    assert time.perf_counter() - t0 < 0.5
    status = shadow.status()
    assert (status["queued"], status["skipped"], status["compared"]) == (3, 7, 0)


def test_a_rollout_survives_the_record_round_trip(tmp_path: Path) -> None:
    from nbmodel.serving import _records as R

    ro = R.Rollout("canary", 4, steps=[10, 100], interval=5.0, checks=["p99_ms<20"], share=10,
                   serving=3, started=1.0)
    rec = R.DeploymentRecord(host="127.0.0.1", port=5001, store="sqlite:///x.db",
                             models=[R.ModelSpec("iris", "production", 3, rollout=ro)],
                             path=tmp_path / "5001.json")
    R.write(rec)
    back = R.read(rec.path).models[0].rollout
    assert back == ro
    assert R.update_rollout(rec.path, "iris", lambda cur: None) is None
    R.update_rollout(rec.path, "iris", lambda cur: R.Rollout(**{**cur.to_dict(), "share": 100}))
    assert R.read(rec.path).models[0].rollout.share == 100
    assert R.ModelSpec.from_json({"name": "iris", "rollout": {"kind": "blue"}}).rollout is None


def test_a_server_that_starts_during_a_rollout_serves_it(commit_iris: Any, isolated_store: Any,
                                                        tmp_path: Path) -> None:
    """A restarted server, or a worker replaced mid-canary, loads the candidate at once."""
    from nbmodel.serving import _deploy, _server
    from nbmodel.serving import _records as R

    v1, v2 = commit_iris(C=1.0), commit_iris(C=0.01)
    ro = R.Rollout("canary", v2.version, share=50, serving=v1.version, started=time.time())
    spec = R.ModelSpec("iris", None, v1.version, _deploy._local_dir(isolated_store, "iris", v1.version),
                       rollout=ro)
    record = R.DeploymentRecord(host="127.0.0.1", port=0, store=isolated_store.uri, models=[spec],
                                path=tmp_path / "0.json")
    app = _server.App(record)
    try:
        slot = app.add_slot(spec, with_pyfunc=False)
        assert slot.candidate is not None and slot.candidate.version == v2.version
        assert slot.status()["rollout"]["loaded"] is True
    finally:
        app.close()


def test_a_candidate_loaded_at_start_up_is_monitored_like_the_serving_version(
        commit_iris: Any, isolated_store: Any, tmp_path: Path) -> None:
    """A server started during a rollout loads the candidate before MLflow is imported, so
    before there is a recorder to give it: once MLflow is in, the candidate's requests are
    recorded as the serving version's are (a canary's accuracy check reads them)."""
    from nbmodel.serving import _deploy, _server
    from nbmodel.serving import _records as R

    v1, v2 = commit_iris(C=1.0), commit_iris(C=0.01)
    ro = R.Rollout("canary", v2.version, share=50, serving=v1.version, started=time.time())
    spec = R.ModelSpec("iris", None, v1.version, _deploy._local_dir(isolated_store, "iris", v1.version),
                       rollout=ro)
    record = R.DeploymentRecord(host="127.0.0.1", port=0, store=isolated_store.uri, models=[spec],
                                path=tmp_path / "0.json", monitor=True)
    app = _server.App(record)
    try:
        slot = app.add_slot(spec, with_pyfunc=False)
        assert slot.candidate is not None and slot.candidate.recorder is None  # no MLflow yet
        app.import_mlflow()
        assert slot.handle is not None and slot.handle.recorder is not None
        assert slot.candidate.recorder is not None
        assert slot.candidate.recorder.ref == f"iris/{v2.version}"
    finally:
        app.close()


def canary_app(isolated_store: Any, tmp_path: Path, serving: Any, candidate: Any, share: int = 50) -> Any:
    """The server's App serving ``serving`` with a canary of ``candidate`` at ``share``%,
    in this process."""
    from nbmodel.serving import _deploy, _server
    from nbmodel.serving import _records as R

    ro = R.Rollout("canary", candidate.version, share=share, serving=serving.version, started=time.time())
    spec = R.ModelSpec("iris", None, serving.version,
                       _deploy._local_dir(isolated_store, "iris", serving.version), rollout=ro)
    record = R.DeploymentRecord(host="127.0.0.1", port=0, store=isolated_store.uri, models=[spec],
                                path=tmp_path / "0.json")
    app = _server.App(record)
    app.add_slot(spec, with_pyfunc=False)
    return app


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_a_canarys_two_versions_answer_a_loop_turn_from_one_array(
        commit_iris: Any, iris: Any, isolated_store: Any, tmp_path: Path, monkeypatch: Any) -> None:
    """Requests that arrive together and split between the serving version and the candidate
    are converted to one array, and each version predicts its own rows from it: each answer is
    its own version's, with one predict call per version. A value the models refuse sends each
    version back to answering on its own, so only that request fails."""
    import asyncio

    from nbmodel.serving import _models as M
    from nbmodel.serving._rollout import to_candidate

    v1, v2 = commit_iris(C=1.0), commit_iris(C=0.01)
    app = canary_app(isolated_store, tmp_path, v1, v2)
    slot = app.slots["iris"]
    assert slot.handle.kernel is not None and slot.candidate.kernel is not None
    fitted = {v1.version: fit_iris(iris, 1.0), v2.version: fit_iris(iris, 0.01)}
    keys = [f"caller-{i}".encode() for i in range(12)]
    sides = [v2.version if to_candidate(k, 50) else v1.version for k in keys]
    assert set(sides) == {v1.version, v2.version}
    X = iris["X_test"]
    rows = [X.iloc[i:i + 1] for i in range(len(keys))]
    want = [fitted[v].predict(r).tolist() for v, r in zip(sides, rows)]
    assert want != [fitted[v1.version].predict(r).tolist() for r in rows]  # the split shows

    conversions = []
    own_array = M._array
    monkeypatch.setattr(M, "_array", lambda h, r: conversions.append(h.version) or own_array(h, r))
    calls = (slot.handle.batcher.calls, slot.candidate.batcher.calls)

    async def together(bodies: list[bytes]) -> list[tuple[int, bytes]]:
        return await asyncio.gather(*(asgi_post(app, b, k) for b, k in zip(bodies, keys)))

    try:
        answers = asyncio.run(together([split_json(r).encode() for r in rows]))
        assert [s for s, _ in answers] == [200] * len(keys)
        assert [json.loads(b)["predictions"] for _, b in answers] == want
        assert (slot.handle.batcher.calls, slot.candidate.batcher.calls) == (calls[0] + 1, calls[1] + 1)
        assert conversions == []  # one array for both, not one per version

        bad = json.loads(split_json(rows[0]))
        bad["dataframe_split"]["data"][0][0] = float("inf")
        bodies = [split_json(r).encode() for r in rows]
        bodies[0] = json.dumps(bad).encode()
        answers = asyncio.run(together(bodies))
        assert [s for s, _ in answers] == [400] + [200] * (len(keys) - 1)
        assert "infinity" in json.loads(answers[0][1])["message"]
        assert [json.loads(b)["predictions"] for _, b in answers[1:]] == want[1:]
    finally:
        app.close()


def test_a_tally_gives_prometheus_what_observing_each_request_would() -> None:
    """The rollout series are counted in plain integers and published in bulk: the exposition
    is the same as a histogram and counters fed one request at a time, at every publish."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from nbmodel.serving._server import ROLLOUT_BUCKETS, Tally

    def series(prefix: str) -> tuple[Any, Any, Any, CollectorRegistry]:
        reg = CollectorRegistry()
        labels = ["model", "version", "role"]
        return (Counter(f"{prefix}_requests", "r", labels, registry=reg).labels("iris", "2", "canary"),
                Counter(f"{prefix}_errors", "e", labels, registry=reg).labels("iris", "2", "canary"),
                Histogram(f"{prefix}_latency", "l", labels, registry=reg,
                          buckets=ROLLOUT_BUCKETS).labels("iris", "2", "canary"), reg)

    def exposed(reg: CollectorRegistry, prefix: str) -> list[str]:
        return sorted(line.replace(prefix, "x") for line in generate_latest(reg).decode().splitlines()
                      if not line.startswith("#") and "_created" not in line)

    *ours, our_reg = series("ours")
    *theirs, their_reg = series("ref")
    tally = Tally(*ours)
    assert tally._bulk  # this prometheus_client takes the bulk additions
    # on a bucket's bound, between bounds, above every bound, and errors
    batches = [[0.0005, 0.0004, None, 0.003, 0.0031], [], [12.0, None, 0.01, 0.0005]]
    for batch in batches:
        for elapsed in batch:
            tally.add(elapsed)
            theirs[0].inc()
            if elapsed is None:
                theirs[1].inc()
            else:
                theirs[2].observe(elapsed)
        tally.publish()
        assert exposed(our_reg, "ours") == exposed(their_reg, "ref")
    assert ours[0]._value.get() == 9


def test_a_rollouts_series_reach_prometheus_without_a_metrics_read(
        commit_iris: Any, iris: Any, isolated_store: Any, tmp_path: Path) -> None:
    """A worker's rollout counts are in its Prometheus series (what other workers' /metrics
    and the canary's checks read) a moment after the requests, with no /metrics request."""
    import asyncio

    v1, v2 = commit_iris(C=1.0), commit_iris(C=0.01)
    app = canary_app(isolated_store, tmp_path, v1, v2)
    body = split_json(iris["X_test"].iloc[:1]).encode()

    async def requests_then_pause() -> None:
        for i in range(20):
            assert (await asgi_post(app, body, f"caller-{i}".encode()))[0] == 200
        await asyncio.sleep(0.3)

    def counted() -> dict[tuple[str, str], float]:
        return {(s.labels["version"], s.labels["role"]): s.value
                for fam in app.metrics.registry.collect() for s in fam.samples
                if s.name == "nbmodel_rollout_requests_total"}

    try:
        asyncio.run(requests_then_pause())
        per = app.slots["iris"].per_version
        assert counted() == {(str(v1.version), "serving"): per[v1.version][0],
                             (str(v2.version), "canary"): per[v2.version][0]}
        assert per[v1.version][0] + per[v2.version][0] == 20
    finally:
        app.close()


def test_rollouts_need_a_running_deployment(shell: Any, commit_iris: Any, servers: Any) -> None:
    commit_iris(C=1.0)
    commit_iris(C=0.01)
    err = shell.fails("%model_canary iris/2")
    assert "deploy it first" in str(err) and "%model_deploy iris@production" in str(err)
    err = shell.fails("%model_shadow iris/2")
    assert "deploy it first" in str(err)
    err = shell.fails('%model_canary iris/2 --check "latency<5"')
    assert "METRIC OP NUMBER" in str(err)
    err = shell.fails("%model_shadow iris/2 --promote --stop")
    assert "not both" in str(err)


# -- real servers --------------------------------------------------------------------------------
@pytest.mark.slow
def test_canary_promotes_under_load_sticky_per_caller(shell: Any, commit_iris: Any, iris: Any,
                                                      servers: Any) -> None:
    """Steps 30, 60, 100 every second under load: the share grows, at 100 the alias moves;
    no request fails; a caller sent to the candidate stays there; the trail has every step."""
    import nbmodel

    commit_iris(C=1.0)
    commit_iris(C=0.01)
    answers = answers_of(iris, 1.0, 0.01)
    dep = shell.run("%model_deploy iris/1")
    with Callers(dep.url, split_json(iris["X_test"]), answers, threads=6) as calls:
        time.sleep(0.5)
        rep = shell.run('%model_canary iris/2 --steps 30,60 --interval 1s --check "error_rate<0.01" '
                        '--check "p99_ms<2000"')
        assert rep.state == "running" and rep.share == 30 and rep.steps == [30, 60, 100]
        assert "iris/1 70%, iris/2 30% (canary)" in str(shell.run("%model_deployments"))
        done = wait_state("iris", ("promoted", "rolled back", "stopped"))
        assert done.state == "promoted", done
        deadline = time.monotonic() + 10
        while nbmodel.deployments()[0].version != 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        promoted_at = time.time()
        time.sleep(1.0)
    assert not calls.failures, calls.failures[:3]
    assert 1 in calls.versions() and 2 in calls.versions()
    for caller, seen in calls.seen.items():
        versions = [v for _, v in seen]
        if 2 in versions:  # once on the candidate, never back
            assert 1 not in versions[versions.index(2):], caller
    assert all(v == 2 for s in calls.seen.values() for t, v in s if t > promoted_at)
    assert nbmodel.resolve("iris@production").version == 2
    trail = [m for m in nbmodel.alias_history("iris").moves if m.alias == "production"]
    kinds = [(m.kind, m.to_version) for m in reversed(trail)]
    assert kinds[-4:] == [("deploy", 1), ("canary", 1), ("canary", 1), ("deploy", 2)], kinds
    assert "started: 30% first" in trail[2].why
    assert "30% -> 60%" in trail[1].why and "promoted" in trail[0].why
    rollout = nbmodel.deployments()[0].to_dict()["rollout"]
    assert rollout == {"kind": "canary", "candidate": "iris/2", "share": 100, "state": "promoted",
                       "reason": None}


@pytest.mark.slow
def test_canary_rolls_back_when_a_check_fails(shell: Any, commit_iris: Any, iris: Any,
                                              servers: Any) -> None:
    """A p99 no server can meet: after the first step the candidate gets no more traffic, the
    alias stays, the reason is shown, and no request failed; the /metrics series per version
    show both versions' traffic."""
    from prometheus_client.parser import text_string_to_metric_families

    import nbmodel

    commit_iris(C=1.0)
    commit_iris(C=0.01)
    answers = answers_of(iris, 1.0, 0.01)
    dep = shell.run("%model_deploy iris/1")
    with Callers(dep.url, split_json(iris["X_test"]), answers, threads=4, keyed=False) as calls:
        rep = shell.run('%model_canary iris/2 --steps 100 --interval 1s --check "p99_ms<0.01"')
        assert rep.share == 100
        done = wait_state("iris", ("promoted", "rolled back", "stopped"))
        rolled_at = time.time()
        time.sleep(1.0)
    assert done.state == "rolled back", done
    assert done.reason.startswith("p99_ms") and "at 100%" in done.reason
    assert "rolled back" in str(done) and "p99_ms" in str(done)
    assert not calls.failures, calls.failures[:3]
    assert 2 in calls.versions()
    assert all(v == 1 for s in calls.seen.values() for t, v in s if t > rolled_at + 0.5)
    assert nbmodel.resolve("iris@production").version == 1
    last = nbmodel.alias_history("iris").moves[0]
    assert last.kind == "canary" and "rolled back" in last.why and last.to_version == 1
    text = requests.get(dep.base_url + "/metrics", timeout=5).text
    per = {(s.labels.get("version"), s.labels.get("role")): s.value
           for fam in text_string_to_metric_families(text) for s in fam.samples
           if s.name == "nbmodel_rollout_requests_total"}
    assert per[("2", "canary")] > 0
    assert nbmodel.deployments()[0].to_dict()["rollout"]["state"] == "rolled back"


@pytest.mark.slow
def test_canary_stopped_by_hand(shell: Any, commit_iris: Any, iris: Any, servers: Any) -> None:
    import nbmodel

    commit_iris(C=1.0)
    commit_iris(C=0.01)
    shell.run("%model_deploy iris/1")
    shell.run("%model_canary iris/2 --steps 50 --interval 1h")
    err = shell.fails("%model_shadow iris/2")
    assert "stop it first" in str(err)
    rep = shell.run("%model_canary iris/2 --stop")
    assert rep.state == "stopped" and rep.share == 0 and rep.reason == "stopped by hand"
    assert nbmodel.resolve("iris@production").version == 1
    assert "stopped by hand" in nbmodel.alias_history("iris").moves[0].why


@pytest.mark.slow
def test_shadow_reports_where_a_different_candidate_disagrees(shell: Any, commit_iris: Any, iris: Any,
                                                              servers: Any) -> None:
    """Answers always from the serving version; the candidate's predictions compared off the
    request path: agreement below 1, the differing rows listed, both latencies; --promote
    turns it into a canary."""
    from sklearn.linear_model import LogisticRegression

    commit_iris(C=1.0)
    commit_iris(C=0.01)
    answers = answers_of(iris, 1.0, 0.01)
    X = iris["X_test"]
    a = LogisticRegression(C=1.0, max_iter=500).fit(iris["X_train"], iris["y_train"]).predict(X)
    b = LogisticRegression(C=0.01, max_iter=500).fit(iris["X_train"], iris["y_train"]).predict(X)
    dep = shell.run("%model_deploy iris/1")
    with Callers(dep.url, split_json(X), answers, threads=3) as calls:
        shell.run("%model_shadow iris/2")
        time.sleep(2.0)
        rep = shell.run("%model_shadow iris/2")
    assert not calls.failures, calls.failures[:3]
    assert set(calls.versions()) == {1}
    sh = rep.live["shadow"]
    assert sh["compared"] > 0 and sh["compared"] % len(X) == 0
    assert sh["agreement"] == pytest.approx((a == b).mean(), abs=1e-5)
    assert sh["differing"] and all(d["serving"] != d["candidate"] for d in sh["differing"])
    assert sh["candidate_ms"] is not None and rep.live["versions"]["1"]["mean_ms"] is not None
    text = str(rep)
    assert "agreement" in text and "differs" in text and "candidate latency" in text
    listed = shell.run("%model_deployments")[0]
    assert listed.to_dict()["rollout"]["kind"] == "shadow"
    from nbmodel.widgets.deployments import _row

    assert _row(listed)[1] == "iris/1, shadow iris/2"  # the panel's Deployments tab
    canary = shell.run("%model_shadow iris/2 --promote")
    assert canary.kind == "canary" and canary.state == "running" and canary.share == 10
