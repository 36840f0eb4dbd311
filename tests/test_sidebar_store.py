"""The sidebar shows the store of the notebook it is about, and looking never creates one.

JupyterLab starts a notebook's kernel in the notebook's folder, so with no
``MLFLOW_TRACKING_URI`` the kernel's store is ``mlflow.db`` in that folder, not in the folder
``jupyter lab`` was started from. The routes take the notebook's folder (``?dir=``, relative to
the server's root) and answer about the store a kernel there uses.
"""

from __future__ import annotations

import json
import shutil

import pytest

# pytest-jupyter's fixtures, imported into this module only (see test_server_routes.py).
from pytest_jupyter.jupyter_server import *  # noqa: E402, F403

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"nbmodel.handlers": True}}}


@pytest.fixture
def api(jp_fetch, jp_asyncio_loop):
    async def fetch(method: str, *path: str, body=None, params=None):
        kwargs = {"method": method, "raise_error": False}
        if body is not None:
            kwargs["body"] = json.dumps(body)
        if params:
            kwargs["params"] = params
        resp = await jp_fetch("nbmodel", "api", *path, **kwargs)
        text = resp.body.decode() if resp.body else ""
        return resp.code, (json.loads(text) if text else None)

    return lambda method, *path, **kw: jp_asyncio_loop.run_until_complete(
        fetch(method, *path, **kw))


@pytest.fixture
def course(commit_iris, tmp_path, jp_root_dir, monkeypatch):
    """A notebook folder ``course/`` under the server's root holding its own ``mlflow.db`` with
    iris/1, and a server started elsewhere with no MLFLOW_TRACKING_URI (the quick start)."""
    import nbmodel.store as store_mod

    commit_iris(C=1.0)
    folder = jp_root_dir / "course"
    folder.mkdir()
    shutil.copy(tmp_path / "mlflow.db", folder / "mlflow.db")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    store_mod._stores.clear()
    return folder


def test_the_notebooks_folder_store_is_listed(api, course):
    code, body = api("GET", "models", params={"dir": "course"})
    assert code == 200, body
    assert [m["name"] for m in body["models"]] == ["iris"]
    assert body["store"]["uri"] == f"sqlite:///{course / 'mlflow.db'}"
    assert body["store"]["origin"] == "default"
    assert body["store"]["folder"] == str(course)
    code, body = api("GET", "models", "iris", params={"dir": "course"})
    assert code == 200 and body["total"] == 1


def test_looking_creates_no_store(api, course, jp_root_dir, tmp_path):
    (jp_root_dir / "empty").mkdir()
    code, body = api("GET", "models", params={"dir": "empty"})
    assert code == 200 and body["models"] == [] and body["store"]["exists"] is False
    code, body = api("GET", "models", "iris", params={"dir": "empty"})
    assert code == 404 and body["error"]["kind"] == "no-store"
    assert "commit a model" in body["error"]["message"]
    for route in ("deployments", "alerts", "store"):
        code, _ = api("GET", route, params={"dir": "empty"})
        assert code == 200
        code, _ = api("GET", route)
        assert code == 200
    code, body = api("GET", "models")  # the server's own working folder: no store there either
    assert code == 200 and body["models"] == []
    assert not (jp_root_dir / "empty" / "mlflow.db").exists()
    assert not (tmp_path / "elsewhere" / "mlflow.db").exists()


def test_tracking_uri_in_the_environment_wins_over_the_folder(api, course, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    code, body = api("GET", "store", params={"dir": "course"})
    assert code == 200 and body["uri"] == uri and body["origin"] == "MLFLOW_TRACKING_URI"


def test_a_relative_tracking_uri_is_read_from_the_notebooks_folder(api, course, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    code, body = api("GET", "models", params={"dir": "course"})
    assert code == 200 and body["store"]["uri"] == f"sqlite:///{course / 'mlflow.db'}"
    assert [m["name"] for m in body["models"]] == ["iris"]


def test_a_pyproject_store_is_read_from_the_notebooks_folder(api, course, jp_root_dir):
    (jp_root_dir / "pyproject.toml").write_text('[tool.nbmodel]\ntracking_uri = "team.db"\n')
    code, body = api("GET", "store", params={"dir": "course"})
    assert code == 200 and body["uri"] == f"sqlite:///{jp_root_dir / 'team.db'}"
    assert not (jp_root_dir / "team.db").exists()


def test_a_folder_outside_the_root_is_refused(api, course):
    code, body = api("GET", "models", params={"dir": "../.."})
    assert code == 400 and "outside" in body["error"]["message"]
    code, body = api("GET", "models", params={"dir": "nowhere"})
    assert code == 400 and "not a folder" in body["error"]["message"]


def test_routes_leave_the_servers_own_store_setting_as_it_was(api, course):
    import nbmodel.store as store_mod

    api("GET", "models", params={"dir": "course"})
    assert store_mod._explicit_uri is None
