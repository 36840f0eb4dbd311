"""Model pipelines: one endpoint that calls several models in order, each stage's predictions
being the next stage's input, each stage following its own alias. Real servers on 127.0.0.1,
stopped by the test."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from _helpers import split_json

requests = pytest.importorskip("requests")


@pytest.fixture
def chain(iris: dict[str, Any]) -> dict[str, Any]:
    """``features`` (two versions: a linear model whose predictions are the two principal
    components of the iris features, and the same with their signs flipped) and a
    ``classifier`` trained on version 1's features; ``features@production`` holds version 2.
    Returns the fitted objects, to compute the expected answers."""
    import pandas as pd
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LinearRegression, LogisticRegression

    import nbmodel

    X_train = iris["X_train"]
    pcs = PCA(n_components=2, random_state=0).fit_transform(X_train)
    f1 = LinearRegression().fit(X_train, pcs)
    f2 = LinearRegression().fit(X_train, -pcs)
    Z = pd.DataFrame(f1.predict(X_train), columns=["pc1", "pc2"])
    clf = LogisticRegression(max_iter=500).fit(Z, iris["y_train"])
    nbmodel.commit(f1, "features", message="two principal components")
    nbmodel.set_alias("features/1", "production")
    nbmodel.commit(clf, "classifier", message="on the components", train=(Z, iris["y_train"]))
    nbmodel.set_alias("classifier/1", "production")
    nbmodel.commit(f2, "features", message="signs flipped")
    nbmodel.set_alias("features/2", "production")
    return {"f1": f1, "f2": f2, "clf": clf}


def expected(clf: Any, features: Any, X: Any) -> str:
    import pandas as pd

    Z = pd.DataFrame(features.predict(X), columns=["pc1", "pc2"])
    return json.dumps({"predictions": clf.predict(Z).tolist()})


@pytest.mark.slow
def test_two_model_pipeline_follows_each_stage_alias_under_load(
        servers: Any, chain: dict[str, Any], iris: dict[str, Any]) -> None:
    import nbmodel

    X = iris["X_test"]
    via_v2, via_v1 = expected(chain["clf"], chain["f2"], X), expected(chain["clf"], chain["f1"], X)
    assert via_v2 != via_v1, "the two feature versions must lead to different answers"
    dep = nbmodel.deploy("pipeline", chain=["features@production", "classifier@production"])
    assert [s["version"] for s in dep.stages] == [2, 1]
    assert "features/2 -> classifier/1" in str(dep)
    body = split_json(X)
    r = requests.post(dep.url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.text == via_v2

    answers = {via_v2: 2, via_v1: 1}
    seen: list[int] = []
    per_caller: list[list[int]] = []
    failures: list[str] = []
    stop = threading.Event()

    def call() -> None:
        mine: list[int] = []
        per_caller.append(mine)
        with requests.Session() as session:
            while not stop.is_set():
                r = session.post(dep.url, data=body, headers={"Content-Type": "application/json"},
                                 timeout=10)
                if r.status_code != 200 or r.text not in answers:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                else:
                    seen.append(answers[r.text])
                    mine.append(answers[r.text])
                time.sleep(0.002)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        nbmodel.rollback("features", alias="production")  # back to version 1
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not seen or seen[-1] != 1):
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert failures == []
    assert seen and seen[0] == 2 and seen[-1] == 1
    for mine in per_caller:  # each caller sees version 2's answers, then version 1's
        assert mine == sorted(mine, reverse=True), "once switched, the pipeline never went back"
    r = requests.post(dep.url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
    assert r.text == via_v1

    health = requests.get(f"{dep.base_url}/health", timeout=5).json()
    entry = next(m for m in health["models"] if m["name"] == "pipeline")
    assert [(s["name"], s["alias"], s["version"]) for s in entry["stages"]] == [
        ("features", "production", 1), ("classifier", "production", 1)]
    assert all(s["requests"] >= len(seen) and s["errors"] == 0 for s in entry["stages"])
    metrics = requests.get(f"{dep.base_url}/metrics", timeout=5).text
    for stage in ("features", "classifier"):
        assert f'nbmodel_stage_requests_total{{model="pipeline",stage="{stage}"}}' in metrics
        assert f'nbmodel_stage_latency_seconds_count{{model="pipeline",stage="{stage}"}}' in metrics
    listed = [d for d in nbmodel.deployments() if d.name == "pipeline"]
    assert len(listed) == 1 and listed[0].health == "ok"
    assert "features/1 -> classifier/1" in str(nbmodel.deployments())


@pytest.mark.slow
def test_a_bad_stage_fails_the_request_with_the_stage_named(
        servers: Any, chain: dict[str, Any], iris: dict[str, Any]) -> None:
    import nbmodel

    dep = nbmodel.deploy("pipeline", chain=["features@production", "classifier@production"])
    bad = json.dumps({"dataframe_split": {"columns": ["nope"], "data": [[1.0]]}})
    r = requests.post(dep.url, data=bad, headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400 and r.json()["message"].startswith("features version 2 could not predict")
    metrics = requests.get(f"{dep.base_url}/metrics", timeout=5).text
    assert 'nbmodel_stage_errors_total{model="pipeline",stage="features"} 1.0' in metrics


@pytest.mark.slow
def test_bad_chains_are_refused_before_anything_starts(
        servers: Any, chain: dict[str, Any], shell: Any) -> None:
    import nbmodel
    from nbmodel.errors import DeployError, NbmodelError

    before = nbmodel.alias_history("features", "production")
    with pytest.raises(DeployError, match="two or more"):
        nbmodel.deploy("pipeline", chain=["features@production"])
    with pytest.raises(DeployError, match="follows an alias"):
        nbmodel.deploy("pipeline", chain=["features/1", "classifier@production"])
    with pytest.raises(NbmodelError, match="nosuch"):
        nbmodel.deploy("pipeline", chain=["features@production", "nosuch@production"])
    with pytest.raises(NbmodelError, match="staging"):
        nbmodel.deploy("pipeline", chain=["features@production", "classifier@staging"])
    from IPython.core.error import UsageError

    err = shell.fails("%model_deploy pipeline --chain features@production")
    assert isinstance(err, UsageError) and "two or more" in str(err)
    err = shell.fails("%model_deploy pipeline --chain features@production classifier@production "
                      "--alias staging")
    assert "--alias" in str(err) and "--chain" in str(err)
    assert list(nbmodel.deployments()) == []
    assert nbmodel.alias_history("features", "production") == before


@pytest.mark.slow
def test_magic_deploys_and_lists_the_pipeline(servers: Any, chain: dict[str, Any], shell: Any) -> None:
    dep = shell.run("%model_deploy pipeline --chain features@production classifier@production")
    assert dep.stages is not None and [s["ref"] for s in dep.stages] == [
        "features@production", "classifier@production"]
    listed = shell.run("%model_deployments")
    text = str(listed)
    assert "pipeline" in text and "features/2 -> classifier/1" in text


def test_old_records_read_without_a_chain(tmp_path: Any) -> None:
    from nbmodel.serving import _records as R

    old = {"host": "127.0.0.1", "port": 5001, "store": "sqlite:///m.db",
           "models": [{"name": "iris", "alias": "production", "version": 3}]}
    rec = R.DeploymentRecord.from_json(old)
    assert rec.models[0].chain is None
    new = R.DeploymentRecord(host="127.0.0.1", port=5002, store="sqlite:///m.db", models=[
        R.ModelSpec("pipeline", chain=[R.ModelSpec("features", "production", 2),
                                       R.ModelSpec("classifier", "production", 1)])])
    back = R.DeploymentRecord.from_json(json.loads(json.dumps(new.to_json())))
    assert back.models[0].chain is not None
    assert [s.ref for s in back.models[0].chain] == ["features@production", "classifier@production"]


@pytest.mark.slow
def test_nbmodel_serve_chain_from_a_terminal(chain: dict[str, Any], iris: dict[str, Any],
                                             isolated_store: Any, serve_until_answered: Any) -> None:
    """``nbmodel serve pipeline --chain ...`` serves the pipeline in the foreground, listed while
    it runs, and answers with the last stage's predictions; Ctrl-C stops it."""
    import nbmodel

    X = iris["X_test"]

    def check(base_url: str) -> None:
        r = requests.post(f"{base_url}/invocations", data=split_json(X),
                          headers={"Content-Type": "application/json"}, timeout=5)
        assert r.status_code == 200, r.text
        assert r.text == expected(chain["clf"], chain["f2"], X)
        assert "features/2 -> classifier/1" in str(nbmodel.deployments())

    serve_until_answered(["pipeline", "--chain", "features@production", "classifier@production"], check,
                         says="serving pipeline (features/2 -> classifier/1)")


def test_nbmodel_serve_refuses_a_bad_chain_in_one_line(chain: dict[str, Any], capsys: Any) -> None:
    from nbmodel import cli

    assert cli.main(["serve", "pipeline", "--chain", "features@production"]) == 2
    assert "two or more" in capsys.readouterr().err
    assert cli.main(["serve", "pipeline", "--chain", "features/1", "classifier@production"]) == 2
    assert "follows an alias" in capsys.readouterr().err
