"""The census of faults and bad input on the serving side: failed deploys that must change
nothing, tampered artifacts, stopping by port, deep JSON, busy ports, and malformed requests
to a real model server on 127.0.0.1 (each a one-line 4xx JSON error, the server still serving).

Every server a test starts is stopped by the ``servers`` fixture."""

from __future__ import annotations

import json
import pickle
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from _helpers import post, split

requests = pytest.importorskip("requests")


@pytest.fixture
def servers(stop_servers: Any) -> Any:
    """The census starts its servers afresh, without the warm starter: conftest's
    ``stop_servers`` (every server of the test's store stopped at the end)."""
    return stop_servers


def model_folder(version: int, name: str = "iris") -> Path:
    from mlflow import MlflowClient

    return Path(MlflowClient().get_model_version_download_uri(name, str(version)))


def health(dep: Any) -> dict[str, Any]:
    return requests.get(dep.base_url + "/health", timeout=5).json()


def busy_port() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s, s.getsockname()[1]


def plant_pickle(folder: Path, marker: Path) -> None:
    """Turn a skops version into a cloudpickle one whose pickle writes ``marker`` when loaded."""

    class Payload:
        def __reduce__(self) -> Any:
            return (exec, (f"open({str(marker)!r}, 'w').write('ran')",))

    (folder / "model.pkl").write_bytes(pickle.dumps(Payload()))
    text = (folder / "MLmodel").read_text()
    assert "serialization_format: skops" in text
    text = text.replace("serialization_format: skops", "serialization_format: cloudpickle")
    (folder / "MLmodel").write_text(text.replace("pickled_model: model.skops", "pickled_model: model.pkl"))


# -- defect 3: stopping by port --------------------------------------------------------------
def test_stop_by_port_with_another_deployment_says_nothing_serves_it(servers: Any, shell: Any) -> None:
    from nbmodel.serving import _records as R

    folder = servers.state_dir()
    R.write(R.DeploymentRecord(host="127.0.0.1", port=5999, store="sqlite:///x.db",
                               models=[R.ModelSpec("iris", "production", 1)], pid=None,
                               path=folder / "5999.json"))
    with pytest.raises(servers.DeployError, match="nothing serves 5998"):
        servers.stop(5998)
    err = shell.fails("%model_deploy 5998 --stop")
    assert err.kind == "deploy" and "nothing serves 5998" in str(err)
    assert (folder / "5999.json").exists()  # the other deployment is untouched
    assert servers.stop("5999") == ["iris@production at http://127.0.0.1:5999"]


# -- defect 4: deep JSON, without a server ---------------------------------------------------
def test_deeply_nested_json_is_a_400_that_says_why() -> None:
    from nbmodel.serving import _models as M

    h = M.Handle(name="iris", version=1, path="/nonexistent", columns=[M.Column("a", "double")])
    for body in (b"[" * 5000 + b"]" * 5000,
                 b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}"):
        with pytest.raises(M.RequestError, match="nests its values too deeply") as info:
            M.parse_json(h, body)
        assert info.value.status == 400
        with pytest.raises(M.RequestError, match="nests its values too deeply"):
            M.predict_slow(h, body, "application/json")


# -- 11: a body limit no request meets -------------------------------------------------------
def test_max_body_below_one_is_refused_and_nothing_moves(commit_iris: Any, servers: Any) -> None:
    import nbmodel

    commit_iris(C=1.0)
    for bad in (-1, 0):
        with pytest.raises(servers.DeployError, match="--max-body takes"):
            servers.deploy("iris/1", max_body=bad)
        with pytest.raises(servers.DeployError, match="--max-body takes"):
            servers.serve("iris/1", max_body=bad)  # refused before this process becomes the server
    with pytest.raises(nbmodel.errors.AliasNotFound):
        nbmodel.resolve("iris@production")
    assert servers.deployments() == []


# -- defect 1: a failed deploy changes nothing -----------------------------------------------
@pytest.mark.slow
def test_a_deploy_onto_a_busy_port_leaves_the_alias_and_the_server(commit_iris: Any, iris: Any,
                                                                   servers: Any) -> None:
    import nbmodel

    commit_iris(C=1.0)
    dep = servers.deploy("iris/1")
    commit_iris(C=0.01)
    trail = len(nbmodel.alias_history("iris", "production"))
    sock, port = busy_port()
    with sock, pytest.raises(servers.DeployError, match="in use"):
        servers.deploy("iris/2", port=port)
    assert nbmodel.resolve("iris@production").version == 1
    assert len(nbmodel.alias_history("iris", "production")) == trail  # no "deployed" entry
    time.sleep(1.0)  # several alias polls of the running server
    assert health(dep)["models"][0]["version"] == 1
    assert [d.port for d in servers.deployments()] == [dep.port]


@pytest.mark.slow
def test_a_version_that_fails_to_load_leaves_the_alias_where_it_was(commit_iris: Any, iris: Any,
                                                                   servers: Any) -> None:

    import nbmodel
    from nbmodel.digests import TAG

    commit_iris(C=1.0)
    commit_iris(C=0.01)
    dep = servers.deploy("iris/1")
    nbmodel.get_store().gateway.delete_version_tag("iris", 2, TAG)  # as if committed before digests
    (model_folder(2) / "model.skops").write_bytes(b"not a model")
    with pytest.raises(servers.DeployError, match="version 2 failed to load"):
        servers.deploy("iris/2")
    assert nbmodel.resolve("iris@production").version == 1
    r = post(dep.url, split(iris["X_test"].iloc[:2]))
    assert r.status_code == 200
    assert health(dep)["models"][0]["version"] == 1
    # a new server for a version that cannot load: no alias moves either
    with pytest.raises(servers.DeployError):
        servers.deploy("iris/2", alias="staging")
    with pytest.raises(nbmodel.errors.AliasNotFound):
        nbmodel.resolve("iris@staging")


# -- defect 9: another alias of the model on a busy port -------------------------------------
@pytest.mark.slow
def test_another_alias_or_host_on_a_serving_port_is_refused(commit_iris: Any, servers: Any) -> None:
    import nbmodel

    commit_iris(C=1.0)
    dep = servers.deploy("iris/1")
    nbmodel.alias("iris/1", "staging")
    with pytest.raises(servers.DeployError, match="already serves iris@production"):
        servers.deploy("iris@staging", port=dep.port)
    with pytest.raises(servers.DeployError, match="listens on 127.0.0.1, not 0.0.0.0"):
        servers.deploy("iris/1", port=dep.port, host="0.0.0.0")
    (d,) = servers.deployments()
    assert d.ref == "iris@production" and d.host == "127.0.0.1" and not d.token


# -- defect 2: tampered artifacts ------------------------------------------------------------
def test_a_tampered_version_never_loads_and_an_old_one_still_does(commit_iris: Any, tmp_path: Path) -> None:
    import nbmodel
    from nbmodel import versions
    from nbmodel.digests import TAG, ArtifactMismatch

    commit_iris(C=1.0)
    commit_iris(C=0.5)
    assert json.loads(versions.all_tags(nbmodel.resolve("iris/1"))[TAG])["format"] == "skops"
    marker = tmp_path / "ran"
    plant_pickle(model_folder(1), marker)
    versions._cache.clear()
    with pytest.raises(ArtifactMismatch, match="committed as skops but its files now say cloudpickle"):
        nbmodel.checkout("iris/1")
    with pytest.raises(ArtifactMismatch):
        nbmodel.load("iris/1")
    assert not marker.exists()
    (model_folder(2) / "requirements.txt").write_text("evil-package\n")
    with pytest.raises(ArtifactMismatch, match=r"changed: requirements\.txt"):
        nbmodel.load("iris/2")
    # a version committed before digests were kept loads as before
    nbmodel.get_store().gateway.delete_version_tag("iris", 2, TAG)
    assert hasattr(nbmodel.load("iris/2"), "predict")


@pytest.mark.slow
def test_the_server_keeps_serving_when_a_candidate_is_tampered(commit_iris: Any, iris: Any,
                                                              servers: Any, tmp_path: Path) -> None:
    import nbmodel
    from nbmodel.digests import ArtifactMismatch

    commit_iris(C=1.0)
    commit_iris(C=0.01)
    dep = servers.deploy("iris/1")
    marker = tmp_path / "ran"
    plant_pickle(model_folder(2), marker)
    with pytest.raises(ArtifactMismatch):
        servers.deploy("iris/2")  # refused in the kernel, before the alias moves
    assert nbmodel.resolve("iris@production").version == 1
    nbmodel.alias("iris/2", "production")  # moved by hand: the server must refuse it itself
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not health(dep)["models"][0]["error"]:
        time.sleep(0.1)
    h = health(dep)
    assert h["status"] == "degraded" and h["models"][0]["version"] == 1
    assert "committed as skops" in h["models"][0]["error"]
    assert post(dep.url, split(iris["X_test"].iloc[:2])).status_code == 200
    assert not marker.exists()


# -- the census: malformed requests to a real server -----------------------------------------
def _malformed(cols: list[str]) -> list[tuple[str, str, Any, str, int]]:
    """(method, path, body, content type, status) of requests a model server must refuse."""
    J = "application/json"
    row = [5.1, 3.5, 1.4, 0.2]

    def sp(data: Any, columns: Any = cols, **more: Any) -> dict[str, Any]:
        return {"dataframe_split": {"columns": columns, "data": data, **more}}

    def raw(value: str) -> str:
        head = '{"dataframe_split": {"columns": ' + json.dumps(cols)
        return head + ', "data": [[' + value + ", 3.5, 1.4, 0.2]]}}"

    deep = "[" * 5000 + "]" * 5000
    P = "/invocations"
    return [
        ("POST", P, "{bad json", J, 400),
        ("POST", P, "", J, 400),
        ("POST", P, "null", J, 400),
        ("POST", P, "[1, 2]", J, 400),
        ("POST", P, '"rows"', J, 400),
        ("POST", P, "42", J, 400),
        ("POST", P, "{}", J, 400),
        ("POST", P, {"rows": [row]}, J, 400),
        ("POST", P, {**sp([row]), "instances": [row]}, J, 400),
        ("POST", P, {"dataframe_split": "text"}, J, 400),
        ("POST", P, {"dataframe_split": {"columns": cols}}, J, 400),
        ("POST", P, sp([row[:3]], cols[:3]), J, 400),
        ("POST", P, sp([row + [1]], cols + ["colour"]), J, 400),
        ("POST", P, sp([row + [1]], cols + [cols[0]]), J, 400),
        ("POST", P, sp([[5.1, "wide", 1.4, 0.2]]), J, 400),
        ("POST", P, sp([[5.1, True, 1.4, 0.2]]), J, 400),
        ("POST", P, sp([[5.1, None, 1.4, 0.2]]), J, 400),
        ("POST", P, sp([[5.1, [3.5], 1.4, 0.2]]), J, 400),
        ("POST", P, sp([[5.1, {"v": 3.5}, 1.4, 0.2]]), J, 400),
        ("POST", P, sp([[5.1, "3.5", 1.4, 0.2]]), J, 400),
        ("POST", P, sp([row[:3]]), J, 400),
        ("POST", P, sp([row, row[:2]]), J, 400),
        ("POST", P, sp(["not a row"]), J, 400),
        ("POST", P, sp([]), J, 400),
        ("POST", P, {"dataframe_records": [{c: 1 for c in cols[1:]}]}, J, 400),
        ("POST", P, {"dataframe_records": "x"}, J, 400),
        ("POST", P, {"dataframe_records": [1, 2]}, J, 400),
        ("POST", P, {"dataframe_records": []}, J, 400),
        ("POST", P, raw("NaN"), J, 400),
        ("POST", P, raw("Infinity"), J, 400),
        ("POST", P, raw("-Infinity"), J, 400),
        ("POST", P, raw("1e999"), J, 400),
        ("POST", P, raw("1" + "0" * 400), J, 400),
        ("POST", P, deep, J, 400),
        ("POST", P, '{"inputs": ' + deep + "}", J, 400),
        ("POST", P, raw("0").replace("[[0, 3.5, 1.4, 0.2]]", deep), J, 400),
        ("POST", P, {"inputs": "x"}, J, 400),
        ("POST", P, {"instances": [[[[1.0]]]]}, J, 400),
        ("POST", P, {"params": {"a": 1}}, J, 400),
        ("POST", P, b"\xff\xfe\x00{", J, 400),
        ("POST", P, "a,b\n1", "text/csv", 400),
        ("POST", P, b"\xff\xfe,\x00\n", "text/csv", 400),
        ("POST", P, "<rows/>", "application/xml", 415),
        ("POST", P, "rows", "text/plain", 415),
        ("POST", P, split_text(cols), "application/json; charset=latin-1", 415),
        ("POST", P, json.dumps(sp([row] * 3000)), J, 413),
        ("GET", P, None, J, 405),
        ("PUT", P, "{}", J, 405),
        ("DELETE", "/health", None, J, 405),
        ("GET", "/nope", None, J, 404),
        ("GET", "/%2e%2e/%2e%2e/etc/passwd", None, J, 404),
        ("POST", "/models/wine/invocations", sp([row]), J, 404),
    ]


def split_text(cols: list[str]) -> str:
    return json.dumps({"dataframe_split": {"columns": cols, "data": [[5.1, 3.5, 1.4, 0.2]]}})


@pytest.mark.slow
def test_malformed_requests_get_one_line_4xx_and_the_server_keeps_serving(
        commit_iris: Any, iris: Any, servers: Any) -> None:
    commit_iris(C=1.0)
    dep = servers.deploy("iris/1", max_body=64 * 1024)
    cols = list(iris["X"].columns)
    good = split(iris["X_test"].iloc[:3])
    want = post(dep.url, good).json()
    cases = _malformed(cols)
    assert len(cases) >= 40
    wrong = []
    for method, path, body, ctype, status in cases:
        data = body if body is None or isinstance(body, (str, bytes)) else json.dumps(body)
        r = requests.request(method, dep.base_url + path, data=data,
                             headers={"Content-Type": ctype}, timeout=30)
        try:
            payload = r.json()
            message = payload["message"]
            ok = (r.status_code == status and payload["error_code"] and message
                  and "\n" not in message and "Traceback" not in message)
        except (ValueError, KeyError, TypeError):
            ok, message = False, r.text[:200]
        if not ok:
            wrong.append((method, path, str(body)[:60], r.status_code, message))
    assert not wrong, "\n".join(map(str, wrong))
    assert post(dep.url, good).json() == want  # still serving, the same answers
    (d,) = servers.deployments()
    assert d.health == "ok" and d.errors is not None and d.errors >= 40


@pytest.mark.slow
def test_fuzzed_invocation_bodies_never_get_a_5xx(commit_iris: Any, iris: Any, servers: Any) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    commit_iris(C=1.0)
    dep = servers.deploy("iris/1", max_body=256 * 1024)
    cols = list(iris["X"].columns)
    scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
               | st.text(max_size=8))
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=30)
    column = st.sampled_from(cols + ["colour", "", "0"])
    tabular = st.fixed_dictionaries({
        "dataframe_split": st.fixed_dictionaries(
            {"columns": st.lists(column, max_size=6),
             "data": st.lists(st.lists(scalars | values, max_size=6), max_size=4)})})
    records = st.fixed_dictionaries({
        "dataframe_records": st.lists(st.dictionaries(column, scalars, max_size=6), max_size=4)})
    others = st.dictionaries(st.sampled_from(["instances", "inputs", "params", "dataframe_split",
                                              "x"]), values, max_size=3)
    bodies = (tabular | records | others | values).map(json.dumps) | st.binary(max_size=200)
    seen: list[int] = []
    deadline = time.monotonic() + 20

    @settings(max_examples=400, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(bodies)
    def check(body: Any) -> None:
        if time.monotonic() > deadline:
            return
        r = post(dep.url, body)
        seen.append(r.status_code)
        assert r.status_code < 500, (body, r.text)

    check()
    assert len(seen) >= 50
    assert post(dep.url, split(iris["X_test"].iloc[:2])).status_code == 200


# -- defect 11: the server process itself refuses a non-loopback address without a token -----
def test_the_server_process_refuses_an_open_address_without_a_token(tmp_path: Path) -> None:
    from nbmodel.serving import _records as R
    from nbmodel.serving._server import serve

    path = tmp_path / "5998.json"
    R.write(R.DeploymentRecord(host="0.0.0.0", port=5998, store=f"sqlite:///{tmp_path / 'm.db'}",
                               models=[R.ModelSpec("iris", "production", 1)], path=path))
    assert serve(str(path)) == 2  # refused before binding or loading anything
