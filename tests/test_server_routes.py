"""The Models sidebar's REST routes, through jupyter_server's own front door (``jp_fetch``).

Every test gets its own copy of a small store (two versions of ``iris``, ``production`` moved
from 1 to 2), so the routes are checked against real MLflow data without paying for two commits
per test.
"""

from __future__ import annotations

import json
import shutil

import pytest
import tornado.httpclient

# pytest-jupyter's fixtures, imported into this module only: as a plugin (pytest_plugins) its
# autouse fixtures would make and close an event loop and a ServerApp around every test of the
# whole suite. The tests here are plain functions that drive that loop themselves.
from pytest_jupyter.jupyter_server import *  # noqa: E402, F403

pytestmark = pytest.mark.filterwarnings(
    # jupyter_server and its plugins warn about their own deprecations; not nbmodel's concern.
    "ignore::DeprecationWarning",
)


@pytest.fixture(scope="session")
def template_store(tmp_path_factory):
    """A store with iris/1 and iris/2, built once; tests get copies of its folder."""
    import os

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import nbmodel
    from nbmodel import store as store_mod

    folder = tmp_path_factory.mktemp("template-store")
    uri = f"sqlite:///{folder}/models.db"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        X, y = load_iris(return_X_y=True)
        nbmodel.commit(LogisticRegression(max_iter=300).fit(X, y), "iris",
                       message="first model", eval=(X, y), source="fit(X, y)")
        nbmodel.alias("iris/1", "production", message="first release")
        nbmodel.commit(LogisticRegression(C=0.05, max_iter=300).fit(X, y), "iris",
                       message="stronger regularisation", eval=(X, y), source="fit(X, y)")
        nbmodel.alias("iris/2", "production", message="second release")
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous
        store_mod._stores.pop(uri, None)
    return folder


@pytest.fixture
def store_uri(template_store, tmp_path, monkeypatch):
    """A fresh copy of the template store, the one the server resolves for this test."""
    from nbmodel import store as store_mod

    folder = tmp_path / "store"
    shutil.copytree(template_store, folder)
    uri = f"sqlite:///{folder}/models.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setattr(store_mod, "_explicit_uri", None)
    yield uri
    store_mod._stores.pop(uri, None)


@pytest.fixture
def empty_store(tmp_path, monkeypatch):
    """A store URI whose sqlite file does not exist yet."""
    from nbmodel import store as store_mod

    uri = f"sqlite:///{tmp_path}/empty/none.db"
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setattr(store_mod, "_explicit_uri", None)
    return uri


@pytest.fixture
def jp_server_config(request):
    """The extension enabled under its name (a test may ask for the old name, nbmodel.server)."""
    module = getattr(request, "param", "nbmodel.handlers")
    return {"ServerApp": {"jpserver_extensions": {module: True}}}


@pytest.fixture
def api(jp_fetch, jp_asyncio_loop):
    """Call a route; returns (status, JSON body) for 2xx and 4xx alike."""

    async def fetch(method: str, *path: str, body=None, params=None):
        # Deploying starts a model server, which takes longer than jp_fetch's default 20 s.
        kwargs = {"method": method, "raise_error": False, "request_timeout": 180}
        if body is not None:
            kwargs["body"] = body if isinstance(body, (str, bytes)) else json.dumps(body)
        elif method in ("POST", "PUT"):
            kwargs["body"] = ""
        if params:
            kwargs["params"] = params
        # jp_fetch URL-escapes each part, as the sidebar's encodeURIComponent does.
        resp = await jp_fetch("nbmodel", "api", *path, **kwargs)
        text = resp.body.decode() if resp.body else ""
        return resp.code, (json.loads(text) if text else None)

    def call(method: str, *path: str, body=None, params=None):
        return jp_asyncio_loop.run_until_complete(fetch(method, *path, body=body, params=params))

    return call


def _kind(body) -> str:
    return body["error"]["kind"]


# -- reading ------------------------------------------------------------------------------------


def test_store_and_models(api, store_uri):
    code, body = api("GET", "models")
    assert code == 200
    assert body["store"] == {"uri": store_uri, "origin": "MLFLOW_TRACKING_URI", "exists": True}
    [iris] = body["models"]
    assert iris["name"] == "iris"
    assert iris["latest"] == 2
    assert iris["aliases"] == {"production": 2}
    assert set(body["features"]) == {"deployments", "alerts"}

    code, body = api("GET", "store")
    assert code == 200 and body["uri"] == store_uri


def test_missing_store_is_empty_and_not_created(api, empty_store, tmp_path):
    code, body = api("GET", "models")
    assert code == 200
    assert body["models"] == []
    assert body["store"]["exists"] is False
    assert not (tmp_path / "empty" / "none.db").exists()


def test_model_versions_newest_first(api, store_uri):
    code, body = api("GET", "models", "iris")
    assert code == 200
    assert body["name"] == "iris"
    assert body["total"] == 2
    assert [v["version"] for v in body["versions"]] == [2, 1]
    v2, v1 = body["versions"]
    assert v2["aliases"] == ["production"] and v1["aliases"] == []
    assert v2["message"] == "stronger regularisation"
    assert v2["parent"] == "iris/1"
    assert "accuracy" in v2["key_metrics"]
    assert v1["retired"] is False
    assert body["aliases"] == {"production": 2}


def test_model_versions_paged(api, store_uri):
    code, body = api("GET", "models", "iris", params={"limit": "1", "offset": "1"})
    assert code == 200
    assert [v["version"] for v in body["versions"]] == [1]
    assert body["total"] == 2 and body["offset"] == 1 and body["limit"] == 1


def test_version_detail(api, store_uri):
    code, body = api("GET", "models", "iris", "versions", "1")
    assert code == 200
    assert body["ref"] == "iris/1"
    assert body["message"] == "first model"


def test_alias_trail(api, store_uri):
    code, body = api("GET", "models", "iris", "aliases")
    assert code == 200
    assert [(m["alias"], m["from"], m["to"]) for m in body["moves"]] == [
        ("production", 1, 2), ("production", None, 1)]


# -- acting -------------------------------------------------------------------------------------


def test_set_alias(api, store_uri):
    code, body = api("POST", "models", "iris", "aliases",
                           body={"alias": "staging", "version": 1, "message": "try it"})
    assert code == 200
    assert body["alias"] == "staging" and body["to"] == 1 and body["why"] == "try it"
    code, body = api("GET", "models", "iris")
    assert body["aliases"] == {"production": 2, "staging": 1}


def test_rollback(api, store_uri):
    code, body = api("POST", "models", "iris", "rollback",
                           body={"alias": "production", "message": "v2 misbehaves"})
    assert code == 200
    assert (body["from"], body["to"], body["kind"]) == (2, 1, "rollback")
    code, body = api("GET", "models")
    assert body["models"][0]["aliases"] == {"production": 1}


def test_rollback_to_named_version(api, store_uri):
    api("POST", "models", "iris", "rollback", body={})
    code, body = api("POST", "models", "iris", "rollback", body={"to": 2})
    assert code == 200 and body["to"] == 2


@pytest.mark.parametrize("to", ["1", "iris/1", "models:/iris/1"])
def test_rollback_to_a_version_written_as_the_magic_takes_it(api, store_uri, to):
    code, body = api("POST", "models", "iris", "rollback", body={"to": to})
    assert code == 200 and body["to"] == 1, body


def test_retire(api, store_uri):
    code, body = api("POST", "models", "iris", "versions", "1", "retire",
                           body={"message": "superseded"})
    assert code == 200
    assert body["retired"] is True
    code, body = api("GET", "models", "iris")
    assert [v["retired"] for v in body["versions"]] == [False, True]


def test_change_store(api, store_uri, tmp_path):
    from nbmodel import store as store_mod

    other = f"sqlite:///{tmp_path}/other.db"
    try:
        code, body = api("PUT", "store", body={"uri": other})
        assert code == 200
        assert body == {"uri": other, "origin": "set_store", "exists": True}
        code, body = api("GET", "models")
        assert body["models"] == []
        code, body = api("PUT", "store", body={"uri": None})
        assert code == 200 and body["uri"] == store_uri
    finally:
        store_mod._explicit_uri = None
        store_mod._stores.pop(other, None)


# -- bad input: 4xx JSON that names the problem, and the store unchanged ----------------------


def test_unknown_model(api, store_uri):
    code, body = api("GET", "models", "nosuch")
    assert code == 404 and _kind(body) == "model-not-found"
    assert "nosuch" in body["error"]["message"]


def test_unknown_version(api, store_uri):
    code, body = api("GET", "models", "iris", "versions", "7")
    assert code == 404 and _kind(body) == "version-not-found"


@pytest.mark.parametrize("version", ["0", "x", "-1"])
def test_bad_version_in_path(api, store_uri, version):
    code, body = api("GET", "models", "iris", "versions", version)
    assert code == 400 and _kind(body) == "bad-request"


@pytest.mark.parametrize("params", [{"limit": "x"}, {"limit": "0"}, {"offset": "-3"},
                                    {"limit": "100000"}])
def test_bad_paging(api, store_uri, params):
    code, body = api("GET", "models", "iris", params=params)
    assert code == 400 and _kind(body) == "bad-request"


@pytest.mark.parametrize("body, kind", [
    ("{not json", "bad-request"),
    ("[1, 2]", "bad-request"),
    ({"version": 1}, "bad-request"),                       # no alias
    ({"alias": "staging"}, "bad-request"),                 # no version
    ({"alias": "staging", "version": "1"}, "bad-request"),  # version as text
    ({"alias": "staging", "version": True}, "bad-request"),
    ({"alias": "staging", "version": 0}, "bad-request"),
    ({"alias": "v3", "version": 1}, "bad-reference"),      # reserved by MLflow
    ({"alias": "has space", "version": 1}, "bad-reference"),
    ({"alias": "staging", "version": 9}, "version-not-found"),
])
def test_bad_alias_requests(api, store_uri, body, kind):
    code, reply = api("POST", "models", "iris", "aliases", body=body)
    assert 400 <= code < 500 and _kind(reply) == kind, reply
    _, after = api("GET", "models", "iris")
    assert after["aliases"] == {"production": 2}


@pytest.mark.parametrize("body, code_, kind", [
    ({"alias": "staging"}, 404, "alias-not-found"),
    ({"to": 9}, 404, "version-not-found"),
    ({"to": 2}, 409, "rollback"),              # already there
    ({"to": "one"}, 400, "bad-reference"),
    ({"to": "wine/1"}, 400, "bad-reference"),   # a version of another model
    ({"to": True}, 400, "bad-request"),
    # A field the route does not take is refused, not ignored: {"version": 1} used to roll
    # back to the previous holder as if the body were empty.
    ({"version": 1}, 400, "bad-request"),
])
def test_bad_rollbacks(api, store_uri, body, code_, kind):
    code, reply = api("POST", "models", "iris", "rollback", body=body)
    assert (code, _kind(reply)) == (code_, kind), reply
    _, after = api("GET", "models", "iris")
    assert after["aliases"] == {"production": 2}


def test_rollback_with_no_earlier_holder(api, store_uri):
    api("POST", "models", "iris", "aliases", body={"alias": "staging", "version": 2})
    code, reply = api("POST", "models", "iris", "rollback", body={"alias": "staging"})
    assert code == 409 and _kind(reply) == "rollback"


def test_retire_refused_while_aliased(api, store_uri):
    code, reply = api("POST", "models", "iris", "versions", "2", "retire", body={})
    assert code == 409 and _kind(reply) == "retired"
    assert "production" in reply["error"]["message"]
    _, after = api("GET", "models", "iris", "versions", "2")
    assert after["retired"] is False


def test_alias_on_retired_version_refused(api, store_uri):
    api("POST", "models", "iris", "versions", "1", "retire", body={})
    code, reply = api("POST", "models", "iris", "rollback", body={})
    assert code == 409 and _kind(reply) == "retired"
    code, reply = api("POST", "models", "iris", "aliases",
                            body={"alias": "staging", "version": 1})
    assert code == 409 and _kind(reply) == "retired"
    code, reply = api("POST", "models", "iris", "aliases",
                            body={"alias": "staging", "version": 1, "force": True})
    assert code == 200


def test_bad_store_uri(api, store_uri, tmp_path):
    for uri, kind in [("not a uri", "store"), (f"sqlite:///{tmp_path}/no/such/dir.db", "store"),
                      (42, "bad-request")]:
        code, reply = api("PUT", "store", body={"uri": uri})
        assert code in (400, 503) and _kind(reply) == kind, reply
    code, reply = api("PUT", "store", body={})
    assert code == 400 and _kind(reply) == "bad-request"
    _, body = api("GET", "store")
    assert body["uri"] == store_uri


def test_bad_model_name(api, store_uri):
    code, reply = api("GET", "models", "iris@production")
    assert code == 400 and _kind(reply) == "bad-request"


def test_unknown_route(api, store_uri):
    code, reply = api("GET", "nothing", "here")
    assert code == 404 and _kind(reply) == "no-route"


# -- deployments and alerts: shown only where the features exist -------------------------------


def test_features_match_their_routes(api, store_uri):
    """Every nbmodel has deployments and alerts, and both routes answer."""
    code, features = api("GET", "features")
    assert code == 200 and features == {"deployments": True, "alerts": True}
    for route in ("deployments", "alerts"):
        code, body = api("GET", route)
        assert code == 200 and isinstance(body[route], list), body


@pytest.mark.slow
def test_deploy_and_stop(api, store_uri):
    import urllib.request

    code, body = api("POST", "deployments", body={"ref": "iris/1", "alias": "staging"})
    try:
        assert code == 201, body
        deployment = body["deployment"]
        assert deployment["ref"] == "iris@staging" and deployment["version"] == 1
        url = deployment["url"]
        assert url.startswith("http://127.0.0.1:")
        base = url.split("/invocations")[0].split("/models/")[0]
        with urllib.request.urlopen(base + "/ping", timeout=10) as resp:
            assert resp.status == 200
        code, body = api("GET", "deployments")
        assert code == 200
        assert [d["ref"] for d in body["deployments"]] == ["iris@staging"]
        # Deploying moved the alias, as %model_deploy does.
        _, model = api("GET", "models", "iris")
        assert model["aliases"]["staging"] == 1
    finally:
        code, body = api("DELETE", "deployments", "iris@staging")
    assert code == 200 and body["stopped"], body
    _, body = api("GET", "deployments")
    assert not [d for d in body["deployments"] if d["health"] in ("ok", "starting")]


def test_stop_unknown_deployment(api, store_uri):
    code, reply = api("DELETE", "deployments", "iris@nothing")
    assert 400 <= code < 500, reply


@pytest.mark.parametrize("body", [{}, {"ref": "iris/x"}, {"ref": "iris/1", "port": -1},
                                  {"ref": "iris/1", "port": "80"}, {"ref": 3}])
def test_bad_deploy_requests(api, store_uri, body):
    code, reply = api("POST", "deployments", body=body)
    assert code == 400 and _kind(reply) in ("bad-request", "bad-reference"), reply


# -- authentication ----------------------------------------------------------------------------


def test_requests_without_token_are_refused(jp_serverapp, jp_base_url, http_server_client,
                                            jp_asyncio_loop, store_uri):
    base = jp_base_url.rstrip("/") + "/nbmodel/api/"

    def fetch(path, **kwargs):
        with pytest.raises(tornado.httpclient.HTTPClientError) as err:
            jp_asyncio_loop.run_until_complete(http_server_client.fetch(base + path, **kwargs))
        return err.value.code

    assert fetch("models") == 403
    assert fetch("models/iris/rollback", method="POST", body="{}") == 403
    assert fetch("models", headers={"Authorization": "token wrong"}) == 403
    # ...and the refused rollback changed nothing.
    from nbmodel.history import models

    assert models()[0].aliases == {"production": 2}


# -- the OpenAPI file describes every route ----------------------------------------------------


def _openapi() -> dict:
    from pathlib import Path

    import yaml

    import nbmodel.handlers as handlers

    return yaml.safe_load(Path(handlers.__file__).with_name("openapi.yaml").read_text())


def test_openapi_lists_every_route():
    import re

    import nbmodel.handlers as handlers

    documented = {path: set(ops) & {"get", "post", "put", "delete"}
                  for path, ops in _openapi()["paths"].items()}
    served = {}
    for pattern, handler in handlers.ROUTES:
        path = "/" + re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern)
        served[path] = {m for m in ("get", "post", "put", "delete")
                        if m in vars(handler)}
    assert documented == served


def _declared_routes():
    from nbmodel.commands import COMMANDS

    return [(c, r) for c in COMMANDS.values() for r in c.routes]


@pytest.mark.parametrize("command, route", _declared_routes(),
                         ids=lambda x: getattr(x, "name", None) or f"{x.method} {x.path}")
def test_routes_take_the_declared_fields(command, route):
    """A route's fields are the command's arguments: the same names as the magic's options
    (a path holds the model, and the version of a REF), and openapi.yaml documents exactly them."""
    dests = {a.dest for a in command.args}
    for field, dest in route.fields.items():
        assert dest in dests, (field, dest)
        # A REF travels as its parts (the model in the path, the version in the path or body);
        # every other field is named as the magic's option.
        if not (dest == "ref" and field in ("name", "version", "target")):
            assert field == dest, f"{route.path} calls {dest!r} {field!r}"
    op = _openapi()["paths"]["/" + route.path][route.method.lower()]
    documented = set(op.get("requestBody", {}).get("content", {}).get("application/json", {})
                     .get("schema", {}).get("properties", {}))
    documented |= {p["name"] for p in op.get("parameters", []) if "name" in p and p.get("in") == "query"}
    documented |= {p.split("/")[-1] for p in (x.get("$ref", "") for x in op.get("parameters", []))}
    assert set(route.body_fields) <= documented
    if route.method in ("POST", "PUT"):
        in_path = {f for f in documented if "{" + f + "}" in route.path}
        assert documented - in_path == set(route.body_fields)


@pytest.mark.parametrize("module", ["nbmodel.handlers", "nbmodel.server"])
def test_enabling_the_extension_imports_no_mlflow(module):
    """`jupyter lab` must not pay for MLflow until the sidebar asks for something."""
    import subprocess
    import sys

    code = (f"import sys, {module} as s; "
            "assert callable(s._load_jupyter_server_extension); "
            "assert s._jupyter_server_extension_points() == [{'module': 'nbmodel.handlers'}]; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('mlflow', 'sklearn', 'pandas')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize("jp_server_config", ["nbmodel.handlers", "nbmodel.server"], indirect=True)
def test_both_extension_names_serve_the_routes(api, store_uri, jp_serverapp, jp_server_config):
    """Configs written for the old module name keep the sidebar working."""
    assert jp_serverapp.extension_manager.extensions[next(iter(
        jp_server_config["ServerApp"]["jpserver_extensions"]))].enabled
    code, body = api("GET", "models", "iris")
    assert code == 200 and body["aliases"] == {"production": 2}


def test_package_points_jupyter_at_the_handlers():
    import json as _json
    from pathlib import Path

    import nbmodel

    assert nbmodel._jupyter_server_extension_points() == [{"module": "nbmodel.handlers"}]
    config = Path(nbmodel.__file__).parent.parent / "jupyter-config" / "server-config" / "nbmodel.json"
    assert _json.loads(config.read_text())["ServerApp"]["jpserver_extensions"] == {"nbmodel.handlers": True}


def test_names_are_url_decoded(api, store_uri):
    code, reply = api("GET", "models", "my model")
    assert code == 404 and _kind(reply) == "model-not-found"
    assert "'my model'" in reply["error"]["message"]
