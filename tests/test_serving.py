"""Serving: %model_deploy, %model_deployments, the server over real HTTP on 127.0.0.1.

Every test that starts a server stops it (the ``servers`` fixture stops everything the test's
store runs, even when the test fails)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from _helpers import asgi_post, fit_iris, post, split, wait_for

requests = pytest.importorskip("requests")


def mlflow_answer(uri: str, body: Any, ctype: str = "application/json") -> Any:
    """What MLflow's own scoring server code answers, run in this process."""
    import mlflow.pyfunc
    from mlflow.pyfunc import scoring_server

    model = mlflow.pyfunc.load_model(uri)
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    res = scoring_server.invocations(data, ctype, model, model.metadata.get_input_schema())
    return res.status, res.response


def in_process_app(store: Any, version: Any) -> Any:
    """The server's App serving ``version`` of iris, without a process or a socket."""
    from nbmodel.serving import _deploy, _server
    from nbmodel.serving._records import DeploymentRecord, ModelSpec

    path = _deploy._local_dir(store, "iris", version.version)
    record = DeploymentRecord(host="127.0.0.1", port=0, store=store.uri,
                              models=[ModelSpec("iris", None, version.version, path)],
                              path=Path("/nonexistent.json"))
    app = _server.App(record)
    return app, record


# -- the API without a server ------------------------------------------------------------------
def test_importing_serving_and_its_magics_imports_no_mlflow() -> None:
    code = ("import sys, nbmodel.serving, nbmodel.magics.deploy; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mlflow', 'pandas', 'sklearn')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).parents[1], check=True)
    assert out.stdout.strip() == "[]"


def test_deploying_from_python_without_magics() -> None:
    import nbmodel
    import nbmodel.serving as serving

    assert nbmodel.deploy is serving.deploy and nbmodel.deployments is serving.deployments
    assert nbmodel.undeploy is serving.stop


def test_deploy_help_and_usage_errors(shell: Any) -> None:
    shell.run("%model_deploy --help")
    assert "--if-better" in shell.stdout
    err = shell.fails("%model_deploy iris/1 --if-better")
    assert err.kind == "usage" and "--eval" in str(err)
    err = shell.fails("%model_deploy nosuch/1")
    assert err.kind == "model-not-found"
    err = shell.fails("%model_deploy iris/1 --workers 0")
    assert err.kind == "deploy" and "--workers takes a count from 1 to 64" in str(err)


def test_unknown_version_retired_and_port_in_use(shell: Any, commit_iris: Any, stop_servers: Any) -> None:
    import nbmodel

    commit_iris(C=1.0)
    commit_iris(C=0.5)
    err = shell.fails("%model_deploy iris/9")
    assert err.kind == "version-not-found" and "versions are 1-2" in str(err)
    nbmodel.retire("iris/1")
    err = shell.fails("%model_deploy iris/1")
    assert err.kind == "retired"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        err = shell.fails(f"%model_deploy iris/2 --port {port}")
    assert err.kind == "deploy" and "in use" in str(err)
    assert "\n" not in str(err)


def test_no_deployments_listed(shell: Any) -> None:
    assert "no deployments" in str(shell.run("%model_deployments"))


# -- the server ------------------------------------------------------------------------------
@pytest.mark.slow
def test_deploy_serves_mlflow_protocol_exactly(shell: Any, commit_iris: Any, iris: Any,
                                               servers: Any) -> None:
    v = commit_iris(C=1.0)
    dep = shell.run("%model_deploy iris/1")
    assert dep.version == 1 and dep.ref == "iris@production"
    assert dep.url.startswith("http://127.0.0.1:") and "curl -s" in str(dep)
    assert "<div class='nbm-card'>" in dep._repr_html_()
    X = iris["X_test"].iloc[:7]
    records = json.loads(X.to_json(orient="records"))
    bodies = [
        split(X),
        {"dataframe_split": {"columns": list(X.columns), "index": list(range(7)), "data": X.values.tolist()}},
        {"dataframe_split": {"columns": list(X.columns)[::-1], "data": X[X.columns[::-1]].values.tolist()}},
        {"dataframe_records": records},
        {"instances": records},
        {"inputs": {c: X[c].tolist() for c in X.columns}},
        {"dataframe_split": {"columns": list(X.columns), "data": [[5, 3, 1, 0]]}},
        {"dataframe_split": {"columns": list(X.columns), "data": X.values.tolist()}, "params": {}},
    ]
    for body in bodies:
        r = post(dep.url, body)
        status, want = mlflow_answer(v.uri, body)
        assert (r.status_code, r.text) == (status, want), body
    csv = X.to_csv(index=False)
    r = post(dep.url, csv, "text/csv")
    assert (r.status_code, r.text) == mlflow_answer(v.uri, csv, "text/csv")
    r = post(dep.url, split(X), "application/json; charset=utf-8")
    assert r.status_code == 200
    # MLflow's own client
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    client = ScoringServerClient("127.0.0.1", dep.port)
    client.wait_server_ready(timeout=10)
    got = client.invoke(X).get_predictions()
    assert got.iloc[:, 0].tolist() == v_predict(iris, C=1.0, X=X)
    assert client.get_version() == __import__("importlib.metadata").metadata.version("mlflow")
    assert requests.get(dep.base_url + "/ping", timeout=5).text == "\n"
    health = requests.get(dep.base_url + "/health", timeout=5).json()
    assert health["status"] == "ok" and health["models"][0]["version"] == 1


def v_predict(iris: Any, C: float, X: Any) -> list[int]:
    return fit_iris(iris, C).predict(X).tolist()


@pytest.mark.slow
def test_bad_requests_get_a_4xx_that_names_the_problem(commit_iris: Any, iris: Any, servers: Any) -> None:
    commit_iris(C=1.0)
    dep = servers.deploy("iris/1", max_body=4096)
    url = dep.url
    cols = list(iris["X"].columns)

    def err(body: Any, ctype: str = "application/json", status: int = 400) -> str:
        r = post(url, body, ctype)
        assert r.status_code == status, r.text
        payload = r.json()
        assert payload["error_code"] and payload["message"]
        return payload["message"]

    assert "not valid JSON" in err("{bad json")
    assert "unknown key 'rows'" in err({"rows": [[1, 2, 3, 4]]})
    assert "exactly one of" in err({})
    assert "must be a JSON object" in err("[1, 2]")
    msg = err({"dataframe_split": {"columns": cols[:3], "data": [[1, 2, 3]]}})
    assert "missing column 'petal width (cm)'" in msg
    msg = err({"dataframe_split": {"columns": cols + ["colour"], "data": [[1, 2, 3, 4, "red"]]}})
    assert "unknown column 'colour'" in msg
    msg = err({"dataframe_records": [{c: 1 for c in cols[1:]}]})
    assert "missing column 'sepal length (cm)'" in msg
    msg = err({"dataframe_split": {"columns": cols, "data": [[1, "wide", 3, 4]]}})
    assert "'sepal width (cm)'" in msg and "'wide'" in msg and "string" in msg
    msg = err({"dataframe_split": {"columns": cols, "data": [[1, True, 3, 4]]}})
    assert "'sepal width (cm)'" in msg and "boolean" in msg
    big = {"dataframe_split": {"columns": cols, "data": [[1.0, 2.0, 3.0, 4.0]] * 400}}
    assert "at most 4096" in err(big, status=413)
    assert "content type" in err("x", "application/xml", status=415)
    r = requests.get(dep.base_url + "/nope", timeout=5)
    assert r.status_code == 404 and "routes" in r.json()["message"]
    assert requests.get(url, timeout=5).status_code == 405
    # still serving, and the errors are counted
    assert post(url, split(iris["X_test"].iloc[:2])).status_code == 200
    (d,) = servers.deployments()
    assert d.errors == 11 and d.requests == 12 and d.health == "ok"


@pytest.mark.slow
def test_token_required_off_loopback_and_when_given(commit_iris: Any, iris: Any, servers: Any) -> None:
    commit_iris(C=1.0)
    body = split(iris["X_test"].iloc[:1])
    # 127.0.0.2 is loopback to the kernel but not "127.0.0.1": treated as another address
    dep = servers.deploy("iris/1", host="127.0.0.2")
    assert dep.token and dep.url.startswith("http://127.0.0.2:")
    assert f"Bearer {dep.token}" in str(dep)
    r = post(dep.url, body)
    assert r.status_code == 401 and "Bearer" in r.json()["message"]
    assert post(dep.url, body, Authorization="Bearer wrong").status_code == 401
    assert requests.get(dep.base_url + "/metrics", timeout=5).status_code == 401
    assert post(dep.url, body, Authorization=f"Bearer {dep.token}").status_code == 200
    (listed,) = servers.deployments()
    assert listed.health == "ok"  # the kernel knows the token from the record
    servers.stop("iris")
    dep = servers.deploy("iris@production", token="s3cret")
    assert post(dep.url, body).status_code == 401
    assert post(dep.url, body, Authorization="Bearer s3cret").status_code == 200


@pytest.mark.slow
def test_metrics_in_prometheus_format(commit_iris: Any, iris: Any, servers: Any) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    commit_iris(C=1.0)
    dep = servers.deploy("iris/1")
    for _ in range(3):
        assert post(dep.url, split(iris["X_test"].iloc[:1])).status_code == 200
    assert post(dep.url, "{").status_code == 400
    text = requests.get(dep.base_url + "/metrics", timeout=5).text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples[("nbmodel_requests_total", (("model", "iris"),))] == 4
    assert samples[("nbmodel_request_errors_total", (("model", "iris"), ("status", "400")))] == 1
    assert samples[("nbmodel_request_latency_seconds_count", (("model", "iris"),))] == 3
    assert samples[("nbmodel_model_version", (("alias", "production"), ("model", "iris")))] == 1


class SteadyLoad:
    """Client threads posting ``body`` to ``url`` until the ``with`` block ends; ``seen`` holds
    (time, version) for each answer found in ``answers``, ``failures`` everything else.
    ``fresh``: a new connection per request (so every worker of a server takes part)."""

    def __init__(self, url: str, body: str, answers: dict[str, int], threads: int = 4,
                 fresh: bool = False) -> None:
        self.url, self.body, self.answers, self.fresh = url, body, answers, fresh
        self.seen: list[tuple[float, int]] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    poster = requests if self.fresh else session
                    r = poster.post(self.url, data=self.body, timeout=10,
                                    headers={"Content-Type": "application/json"})
                except Exception as exc:  # noqa: BLE001
                    self.failures.append(repr(exc))
                    continue
                if r.status_code != 200 or r.text not in self.answers:
                    self.failures.append(f"{r.status_code} {r.text[:200]}")
                else:
                    self.seen.append((time.time(), self.answers[r.text]))

    def __enter__(self) -> SteadyLoad:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)


@pytest.mark.slow
def test_swaps_under_load_drop_no_request(shell: Any, commit_iris: Any, iris: Any, servers: Any) -> None:
    """4 client threads of steady load; deploy another version, then roll back: no failed
    request, every answer wholly from one of the two versions, each switch seen within 1 s."""
    import nbmodel

    commit_iris(C=1.0)
    commit_iris(C=0.01)
    X = iris["X_test"]
    a, b = v_predict(iris, 1.0, X), v_predict(iris, 0.01, X)
    assert a != b
    answers = {json.dumps({"predictions": a}): 1, json.dumps({"predictions": b}): 2}
    dep = shell.run("%model_deploy iris/1")
    with SteadyLoad(dep.url, json.dumps(split(X)), answers) as load:
        time.sleep(1.0)
        shell.run("%model_deploy iris/2")
        moved = nbmodel.alias_history("iris").moves[0].at.timestamp()
        time.sleep(1.5)
        shell.run("%model_rollback iris")
        back = nbmodel.alias_history("iris").moves[0].at.timestamp()
        time.sleep(1.5)
    seen, failures = load.seen, load.failures
    assert not failures, failures[:3]
    assert len(seen) > 100
    first_new = min(t for t, v in seen if v == 2 and t >= moved - 0.05)
    first_back = min(t for t, v in seen if v == 1 and t >= back)
    assert first_new - moved < 1.0, first_new - moved
    assert first_back - back < 1.0, first_back - back
    assert all(v == 2 for t, v in seen if first_new + 0.3 < t < back - 0.05)


@pytest.mark.slow
def test_killed_server_shows_down_and_comes_back_on_its_port(shell: Any, commit_iris: Any, iris: Any,
                                                            servers: Any) -> None:
    commit_iris(C=1.0)
    dep = shell.run("%model_deploy iris/1")
    os.kill(dep.pid, signal.SIGKILL)
    deadline = time.time() + 10
    while time.time() < deadline and shell.run("%model_deployments")[0].health != "down":
        time.sleep(0.05)
    listed = shell.run("%model_deployments")
    assert listed[0].health == "down" and "down" in str(listed)
    again = shell.run("%model_deploy iris@production")
    assert again.port == dep.port and again.pid != dep.pid and again.health == "ok"
    assert post(again.url, split(iris["X_test"].iloc[:1])).status_code == 200
    shell.run("%model_deploy --stop iris")
    assert "stopped iris@production" in shell.stdout
    assert "no deployments" in str(shell.run("%model_deployments"))


@pytest.mark.slow
def test_several_models_on_one_port(shell: Any, commit_iris: Any, iris: Any, diabetes: Any,
                                    servers: Any) -> None:
    from sklearn.linear_model import Ridge

    import nbmodel

    commit_iris(C=1.0)
    reg = Ridge().fit(diabetes["X_train"], diabetes["y_train"])
    nbmodel.commit(reg, "dia", eval=(diabetes["X_test"], diabetes["y_test"]))
    first = shell.run("%model_deploy iris/1")
    second = shell.run(f"%model_deploy dia/1 --port {first.port}")
    assert second.port == first.port and second.url.endswith("/models/dia/invocations")
    r1 = post(first.base_url + "/models/iris/invocations", split(iris["X_test"].iloc[:2]))
    r2 = post(second.url, split(diabetes["X_test"].iloc[:2]))
    assert r1.status_code == r2.status_code == 200
    assert r2.json()["predictions"] == pytest.approx(reg.predict(diabetes["X_test"].iloc[:2]).tolist())
    assert post(first.url, split(iris["X_test"].iloc[:2])).json() == r1.json()  # /invocations: the first
    r = post(first.base_url + "/models/wine/invocations", split(iris["X_test"].iloc[:2]))
    assert r.status_code == 404 and "'iris', 'dia'" in r.json()["message"]
    assert {d.ref for d in shell.run("%model_deployments")} == {"iris@production", "dia@production"}
    shell.run("%model_deploy --stop dia")
    time.sleep(0.6)
    assert post(second.url, split(diabetes["X_test"].iloc[:2])).status_code == 404
    assert post(first.url, split(iris["X_test"].iloc[:2])).status_code == 200


@pytest.mark.slow
def test_if_better_refuses_a_worse_version(shell: Any, commit_iris: Any, servers: Any) -> None:
    import nbmodel

    commit_iris(C=1.0)
    commit_iris(C=0.0005)
    shell.run("%model_deploy iris/1")
    err = shell.fails("%model_deploy iris/2 --if-better --eval X_test y_test")
    assert err.kind == "not-better"
    assert "iris/2 accuracy" in str(err) and "iris/1" in str(err) and "--force" in str(err)
    assert nbmodel.resolve("iris@production").version == 1
    commit_iris(C=2.0)
    dep = shell.run("%model_deploy iris/3 --if-better --eval X_test y_test")
    assert dep.version == 3 and "accuracy" in shell.stdout
    dep = shell.run("%model_deploy iris/2 --if-better --eval X_test y_test --force")
    assert dep.version == 2


@pytest.mark.slow
def test_a_version_that_fails_to_load_never_replaces_the_serving_one(commit_iris: Any, iris: Any,
                                                                     servers: Any) -> None:
    from mlflow import MlflowClient

    import nbmodel

    commit_iris(C=1.0)
    v2 = commit_iris(C=0.01)
    dep = servers.deploy("iris/1")
    import yaml

    folder = Path(MlflowClient().get_model_version_download_uri("iris", "2"))
    flavor = yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["sklearn"]
    (folder / flavor["pickled_model"]).write_bytes(b"not a model")
    # as if committed before digests were kept: the load itself fails, not the digest check
    nbmodel.get_store().gateway.delete_version_tag("iris", 2, "nbmodel.artifacts")
    with pytest.raises(servers.DeployError, match="version 2 failed to load"):
        servers.deploy("iris/2")
    assert nbmodel.resolve("iris@production").version == 1  # a failed deploy leaves the alias
    nbmodel.alias(f"iris/{v2.version}", "production")  # moved by hand: the server keeps version 1
    deadline = time.monotonic() + 20
    while (time.monotonic() < deadline
           and not requests.get(dep.base_url + "/health", timeout=5).json()["models"][0]["error"]):
        time.sleep(0.1)
    r = post(dep.url, split(iris["X_test"].iloc[:3]))
    assert r.status_code == 200 and r.json()["predictions"] == v_predict(iris, 1.0, iris["X_test"].iloc[:3])
    health = requests.get(dep.base_url + "/health", timeout=5).json()
    assert health["status"] == "degraded" and "version 2 failed to load" in health["models"][0]["error"]
    (d,) = servers.deployments()
    assert d.version == 1 and d.health == "degraded" and "failed to load" in str(servers.deployments())


@pytest.mark.slow
def test_server_ends_with_the_kernel_that_started_it(commit_iris: Any, isolated_store: Any) -> None:
    commit_iris(C=1.0)
    code = ("import nbmodel.serving as s, json; d = s.deploy('iris/1'); "
            "print(json.dumps([d.pid, d.port]), flush=True)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).parents[1], env={**os.environ})
    assert out.returncode == 0, out.stderr
    pid, port = json.loads(out.stdout.strip().splitlines()[-1])
    deadline = time.time() + 10
    while time.time() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists(), "the server outlived its kernel"
    import nbmodel.serving as serving

    (d,) = serving.deployments()
    assert d.health.startswith("stopped") and "kernel exited" in d.health
    serving.stop("all")


def gone(pid: int, timeout: float = 10.0) -> bool:
    """Wait until process ``pid`` has ended (a zombie not yet reaped counts as ended)."""
    from nbmodel.serving import _process

    return wait_for(lambda: not _process.pid_alive(pid), timeout)


@pytest.mark.slow
def test_dockerfile_written_by_mlflow(shell: Any, commit_iris: Any, tmp_path: Path) -> None:
    commit_iris(C=1.0)
    shell.run(f"%model_deploy iris/1 --dockerfile {tmp_path / 'image'}")
    assert (tmp_path / "image" / "Dockerfile").is_file()
    assert (tmp_path / "image" / "model_dir" / "MLmodel").is_file()
    assert "docker build" in shell.stdout


@pytest.mark.slow
def test_nbmodel_serve_from_a_terminal(commit_iris: Any, iris: Any, isolated_store: Any,
                                       serve_until_answered: Any) -> None:
    import nbmodel
    import nbmodel.serving as serving

    commit_iris(C=1.0)
    nbmodel.alias("iris/1", "production")

    def check(base_url: str) -> None:
        r = post(f"{base_url}/invocations", split(iris["X_test"].iloc[:2]))
        assert r.status_code == 200
        assert [d.ref for d in serving.deployments()] == ["iris@production"]
        assert "deployments" in str(nbmodel.status())

    serve_until_answered(["iris@production"], check, says="serving iris@production (iris/1)")
    assert not serving.deployments()  # its record went with it


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")  # the server filters it
def test_every_answer_goes_to_the_monitoring_recorder(commit_iris: Any, iris: Any,
                                                     isolated_store: Any) -> None:
    """The server's one call site for monitoring, driven in process through ASGI."""
    import asyncio

    v = commit_iris(C=1.0)
    calls: list[tuple[Any, Any, float]] = []

    class Recorder:
        def __init__(self, name: str, version: int, columns: list[str] | None = None, **kw: Any) -> None:
            self.ref = f"{name}/{version}"
            self.columns = columns
            self.closed = False

        def submit(self, frame: Any, predictions: Any, latency_ms: float) -> None:
            calls.append((frame, predictions, latency_ms))

        def close(self) -> None:
            self.closed = True

    app, record = in_process_app(isolated_store, v)
    app.recorder_cls = Recorder
    app.add_slot(record.models[0], with_pyfunc=False)
    X = iris["X_test"].iloc[:3]
    status, out = asyncio.run(asgi_post(app, json.dumps(split(X)).encode()))
    assert status == 200
    (frame, preds, latency), = calls
    import pandas as pd

    rec = app.slots["iris"].handle.recorder
    assert pd.DataFrame(frame, columns=rec.columns).equals(X.reset_index(drop=True))
    assert list(preds) == json.loads(out)["predictions"] and latency > 0
    status, _ = asyncio.run(asgi_post(app, b"{"))
    assert status == 400 and len(calls) == 1  # errors are not predictions
    app.close()
    assert app.slots["iris"].handle.recorder.closed


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_requests_waiting_together_share_one_predict_call(commit_iris: Any, iris: Any,
                                                           isolated_store: Any) -> None:
    """Concurrent fast-path requests are answered by one predict call, each with exactly its
    own answer; a request that fails in the joint call is answered on its own with its error,
    and the others still succeed."""
    import asyncio

    v = commit_iris(C=1.0)
    app, record = in_process_app(isolated_store, v)
    app.add_slot(record.models[0], with_pyfunc=False)
    handle = app.slots["iris"].handle
    assert handle.fast and handle.batch and handle.batcher is not None
    X = iris["X_test"]
    alone = [json.loads(asyncio.run(asgi_post(app, json.dumps(split(X.iloc[i:i + 2])).encode()))[1])
             for i in range(10)]
    calls = handle.batcher.calls

    async def together(bodies: list[bytes]) -> list[tuple[int, bytes]]:
        return await asyncio.gather(*(asgi_post(app, b) for b in bodies))

    answers = asyncio.run(together([json.dumps(split(X.iloc[i:i + 2])).encode() for i in range(10)]))
    assert [json.loads(b) for _, b in answers] == alone
    assert handle.batcher.calls == calls + 1  # ten requests, one call

    bad = split(X.iloc[:1])
    bad["dataframe_split"]["data"][0][0] = float("inf")  # valid JSON for Python, refused by the model
    bodies = [json.dumps(split(X.iloc[i:i + 1])).encode() for i in range(4)]
    bodies.insert(2, json.dumps(bad).encode())
    answers = asyncio.run(together(bodies))
    assert [s for s, _ in answers] == [200, 200, 400, 200, 200]
    assert "infinity" in json.loads(answers[2][1])["message"]
    assert [json.loads(b) for s, b in answers if s == 200] == [
        {"predictions": p["predictions"][:1]} for p in alone[:4]]
    app.close()


def test_only_models_that_answer_rows_independently_batch() -> None:
    """A model whose answer for a row depends on the other rows of the call is never batched."""
    import numpy as np
    from sklearn.linear_model import LinearRegression

    from nbmodel.serving import _models as M

    class CentredOnTheCall:  # each prediction depends on the whole call's rows
        def predict(self, X: Any) -> Any:
            X = np.asarray(X, dtype=float)
            return X[:, 0] - X[:, 0].mean()

    cols = [M.Column("a", "double"), M.Column("b", "double")]
    example = {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0], [3.0, 5.0], [0.5, 1.5]]}}
    rng = np.random.default_rng(0)
    linear = LinearRegression().fit(rng.normal(size=(20, 2)), rng.normal(size=20))
    for native, expected in ((linear, True), (CentredOnTheCall(), False)):
        h = M.Handle(name="m", version=1, path="", columns=cols, native=native, example=example,
                     fast=True, use_array=True)
        assert M._check_batch(h) is expected


def _log_tail(dep: Any, lines: int = 40) -> str:
    """The end of a deployment's log (beside its record), for a failure's message."""
    try:
        text = Path(dep.record).with_suffix(".log").read_text(encoding="utf-8", errors="replace")
    except (OSError, TypeError):
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def children(pid: int) -> set[int]:
    """Live child processes of ``pid`` (from /proc)."""
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(entry))
    return out


@pytest.mark.slow
def test_workers_share_the_port_follow_the_alias_and_are_replaced(shell: Any, commit_iris: Any, iris: Any,
                                                                  servers: Any) -> None:
    """--workers 2: two processes answer on one port; under load a deploy switches both with no
    failed request; counts are summed over both; a killed worker is replaced by one that serves
    the version the alias names now; another worker count on the running port is refused
    before the alias moves; stopping ends every process."""
    import nbmodel

    commit_iris(C=1.0)
    commit_iris(C=0.01)
    X = iris["X_test"]
    a, b = v_predict(iris, 1.0, X), v_predict(iris, 0.01, X)
    answers = {json.dumps({"predictions": a}): 1, json.dumps({"predictions": b}): 2}
    dep = shell.run("%model_deploy iris/1 --workers 2")
    base = dep.url.rsplit("/", 1)[0]
    health = requests.get(f"{base}/health", timeout=10).json()
    assert health["workers"] == 2 and health["pid"] == dep.pid and health["following"]
    workers = children(dep.pid)
    assert len(workers) == 2
    seen_pids = set()
    for _ in range(200):  # a new connection each time: the kernel hands them to either worker
        seen_pids.add(requests.get(f"{base}/health", timeout=10).json()["worker_pid"])
        if seen_pids == workers:
            break
    assert seen_pids == workers

    before = requests.get(f"{base}/health", timeout=10).json()["models"][0]["requests"]
    with SteadyLoad(dep.url, json.dumps(split(X)), answers, fresh=True) as load:
        time.sleep(1.0)
        shell.run("%model_deploy iris/2")
        moved = nbmodel.alias_history("iris").moves[0].at.timestamp()
        time.sleep(2.0)
    seen, failures = load.seen, load.failures
    assert not failures, failures[:3]
    first_new = min(t for t, v in seen if v == 2 and t >= moved - 0.05)
    assert first_new - moved < 1.0
    assert all(v == 2 for t, v in seen if t > moved + 1.0)  # both workers switched within 1 s
    health = requests.get(f"{base}/health", timeout=10).json()
    assert health["models"][0]["requests"] - before == len(seen)  # summed over the workers
    metrics = requests.get(f"{base}/metrics", timeout=10).text
    assert f'nbmodel_requests_total{{model="iris"}} {float(health["models"][0]["requests"])}' in metrics

    killed = sorted(workers)[0]
    os.kill(killed, signal.SIGKILL)
    deadline = time.time() + 20
    now = children(dep.pid)  # one look decides: a killed worker still counts while it exits
    while time.time() < deadline and (len(now) != 2 or killed in now):
        time.sleep(0.05)
        now = children(dep.pid)
    assert len(now) == 2 and killed not in now, (
        f"killed {killed}, workers now {now}; the server's log ends:\n{_log_tail(dep)}")
    # the supervisor loaded version 1 at start; its new worker serves what the alias names
    for _ in range(30):
        assert post(dep.url, split(X)).json() == {"predictions": b}

    err = shell.fails("%model_deploy iris/1 --workers 3")
    assert "already runs 2 workers" in str(err) and getattr(err, "kind", None) == "deploy"
    assert nbmodel.resolve("iris@production").version == 2  # refused before the alias moved

    shell.run("%model_deploy --stop iris")
    deadline = time.time() + 15
    pids = now | {dep.pid}
    while time.time() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
        time.sleep(0.05)
    assert not any(os.path.exists(f"/proc/{p}") for p in pids)


def test_sqlite_registry_reads_what_mlflow_reads(commit_iris: Any, isolated_store: Any) -> None:
    """The server's direct sqlite lookups agree with MLflow's client, and say None (ask the
    client) for what they do not find."""
    import nbmodel
    from nbmodel.serving._server import SqliteRegistry

    commit_iris(C=1.0)
    commit_iris(C=0.01)
    nbmodel.alias("iris/2", "production")
    reg = SqliteRegistry.of(isolated_store.uri)
    assert reg is not None
    client = isolated_store.client
    assert reg.alias_version("iris", "production") == int(
        client.get_model_version_by_alias("iris", "production").version) == 2
    assert reg.alias_version("iris", "staging") is None
    for v in (1, 2):
        assert reg.model_dir("iris", v) == client.get_model_version_download_uri("iris", str(v)).removeprefix("file://")
    assert reg.model_dir("iris", 9) is None
    assert SqliteRegistry.of("http://127.0.0.1:5000") is None


def test_the_record_stays_private_whoever_writes_it(commit_iris: Any, isolated_store: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The record holds the server's token: ``serve()`` and the server saying why it stopped
    both leave it readable by its owner only (0o600), whatever the umask."""
    import nbmodel.serving as serving
    from nbmodel.serving import _server

    commit_iris(C=1.0)
    modes: dict[str, int] = {}

    def no_exec(executable: str, argv: list[str], env: dict[str, str]) -> None:
        record = Path(argv[argv.index("--record") + 1])
        modes["serve"] = record.stat().st_mode & 0o777
        raise OSError("exec refused by the test")

    monkeypatch.setattr(os, "execve", no_exec)
    old = os.umask(0o022)
    try:
        with pytest.raises(OSError, match="refused by the test"):
            serving.serve("iris/1", token="s3cret")
        path = serving.state_dir() / "1.json"
        path.write_text(json.dumps({"host": "127.0.0.1", "port": 1, "pid": os.getpid(),
                                    "store": isolated_store.uri, "token": "s3cret", "models": []}))
        path.chmod(0o600)
        _server.R.mark_stopped(path, os.getpid(), "stopped", time.time())
        modes["server"] = path.stat().st_mode & 0o777
        assert json.loads(path.read_text())["stopped"] == "stopped"
    finally:
        os.umask(old)
    assert modes == {"serve": 0o600, "server": 0o600}


@pytest.mark.slow
def test_the_record_stays_private_through_deploys_and_updates(commit_iris: Any, diabetes: Any,
                                                              servers: Any) -> None:
    """Starting a server, adding a model to its port, switching a version and dropping one
    model all rewrite the record; each leaves it 0o600."""
    from sklearn.linear_model import Ridge

    import nbmodel
    from nbmodel.serving import _records

    commit_iris(C=1.0)
    commit_iris(C=0.01)
    nbmodel.commit(Ridge().fit(diabetes["X_train"], diabetes["y_train"]), "dia")
    old = os.umask(0o022)
    try:
        first = servers.deploy("iris/1")
        path = Path(first.record)
        modes = {"deploy": path.stat().st_mode & 0o777}
        servers.deploy("dia/1", port=first.port)
        modes["add"] = path.stat().st_mode & 0o777
        servers.deploy("iris/2")
        modes["switch"] = path.stat().st_mode & 0o777
        servers.stop("dia")
        modes["drop"] = path.stat().st_mode & 0o777
    finally:
        os.umask(old)
    assert modes == dict.fromkeys(("deploy", "add", "switch", "drop"), 0o600)
    record = _records.read(path)
    assert record.names == ["iris"] and record.models[0].version == 2


def test_records_read_what_earlier_kernels_wrote(tmp_path: Path) -> None:
    """A record as earlier versions wrote it (missing keys, unknown keys) reads as the typed
    record, and writing it back keeps the JSON form that older readers expect."""
    from nbmodel.serving import _records

    path = tmp_path / "5001.json"
    path.write_text(json.dumps({
        "host": "127.0.0.1", "port": "5001", "pid": 42, "store": "sqlite:///m.db", "token": "",
        "models": [{"name": "iris", "alias": "production", "version": 3, "path": None,
                    "example": None, "future": 1}],
        "detached": 0, "max_body": None, "workers": None, "something_new": True}))
    record = _records.read(path)
    assert (record.port, record.pid, record.token, record.workers, record.max_body) == (
        5001, 42, None, 1, _records.DEFAULT_MAX_BODY)
    assert record.monitor and not record.detached and record.path == path
    assert record.models == [_records.ModelSpec("iris", "production", 3)]
    assert record.models[0].ref == "iris@production" and record.model("iris") is record.models[0]
    record.pid = 43
    _records.write(record)
    data = json.loads(path.read_text())
    assert data["pid"] == 43 and data["models"][0]["name"] == "iris" and "path" in data["models"][0]
    assert "path" not in data  # where the record lives is not part of it
    assert _records.read_all(tmp_path) == [record]
    (tmp_path / "7.json").write_text("{not json")
    assert [r.port for r in _records.read_all(tmp_path)] == [5001]


def test_deployments_show_as_their_text() -> None:
    from IPython.lib.pretty import pretty

    from nbmodel.serving import Deployment, Deployments

    d = Deployment(name="iris", alias="production", host="127.0.0.1", port=5001, pid=1, version=3)
    table = Deployments([d])
    assert repr(table) == str(table) == pretty(table) and "iris@production" in str(table)
    assert pretty(d) == str(d) and repr(d) == "<Deployment iris@production at http://127.0.0.1:5001/invocations>"
