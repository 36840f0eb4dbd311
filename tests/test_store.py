"""Resolving and opening the store."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import nbmodel
from nbmodel import store as store_mod
from nbmodel.errors import StoreError


def test_resolution_order(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    monkeypatch.chdir(project / "notebooks")
    # 4. the embedded default, in the working directory
    assert store_mod.resolve_uri() == (f"sqlite:///{project / 'notebooks' / 'mlflow.db'}", "default")
    # 3. the nearest pyproject.toml; a relative sqlite path is read from its folder
    (project / "pyproject.toml").write_text('[tool.nbmodel]\ntracking_uri = "sqlite:///team.db"\n')
    uri, origin = store_mod.resolve_uri()
    assert uri == f"sqlite:///{project / 'team.db'}" and origin.endswith("pyproject.toml")
    # 2. the environment
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///env.db")
    assert store_mod.resolve_uri() == (f"sqlite:///{project / 'notebooks' / 'env.db'}",
                                       "MLFLOW_TRACKING_URI")
    # 1. set_store wins, and None goes back to the order
    nbmodel.set_store(str(tmp_path / "explicit.db"))
    assert store_mod.resolve_uri() == (f"sqlite:///{tmp_path / 'explicit.db'}", "set_store")
    nbmodel.set_store(None)
    assert store_mod.resolve_uri()[1] == "MLFLOW_TRACKING_URI"


def test_opening_does_not_change_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    nbmodel.get_store().check()
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert nbmodel.get_store().origin == "default"


def test_default_store_is_created_on_first_use_in_working_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "mlflow.db").unlink()
    store = nbmodel.get_store()
    store.check()
    assert (tmp_path / "mlflow.db").exists()
    assert not list(tmp_path.glob("*.tmp"))


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        nbmodel.set_store(f"sqlite:///{tmp_path}/no/such/dir/m.db")
    assert store_mod.resolve_uri()[1] != "set_store"


def test_unreachable_server_names_the_uri():
    with pytest.raises(StoreError, match=r"cannot reach the store at http://127\.0\.0\.1:9"):
        nbmodel.set_store("http://127.0.0.1:9")


def test_file_store_is_refused_with_advice(tmp_path):
    with pytest.raises(StoreError, match="no model registry"):
        nbmodel.set_store(f"file://{tmp_path}/mlruns")


OPEN_FRESH = """
import os, sys
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
from nbmodel.store import Store
s = Store(sys.argv[1])
s.check()
s.client.search_registered_models()
print("ok")
"""


@pytest.mark.slow
def test_first_use_from_several_processes_at_once(tmp_path):
    """MLflow's own migrations race on a brand-new sqlite file; nbmodel's creation must not."""
    db = tmp_path / "fresh" / "mlflow.db"
    db.parent.mkdir()
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_FRESH, f"sqlite:///{db}"], env=env,
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0 and out.strip() == "ok", err[-2000:]
    tables = {r[0] for r in sqlite3.connect(db).execute("select name from sqlite_master")}
    assert not any(t.startswith("_alembic_tmp") for t in tables)
    assert not list(Path(db.parent).glob("*.tmp"))


def test_a_folder_resolves_as_a_kernel_started_there(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "sub").mkdir(parents=True)
    (tmp_path / "b" / "pyproject.toml").write_text('[tool.nbmodel]\ntracking_uri = "sqlite:///b.db"\n')
    assert store_mod.resolve_uri(tmp_path / "a") == (f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}", "default")
    assert store_mod.resolve_uri(tmp_path / "b" / "sub")[0] == f"sqlite:///{tmp_path / 'b' / 'b.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///env.db")
    assert store_mod.resolve_uri(tmp_path / "a") == (f"sqlite:///{tmp_path / 'a' / 'env.db'}",
                                                     "MLFLOW_TRACKING_URI")
    nbmodel.set_store(str(tmp_path / "explicit.db"))
    assert store_mod.resolve_uri(tmp_path / "a") == (f"sqlite:///{tmp_path / 'explicit.db'}", "set_store")


def test_handlers_answer_for_two_folders_at_once_without_touching_the_session(tmp_path, monkeypatch):
    """Each call sees its own folder's store while the other runs; the session's store stays."""
    import threading

    from nbmodel.handlers import in_folder

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    session = store_mod.resolve_uri()
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
    both_inside = threading.Barrier(2, timeout=10)
    seen: dict[str, str] = {}

    def call(folder):
        def fn():
            both_inside.wait()  # a process-wide lock around calls never lets both in
            seen[folder.name] = nbmodel.get_store().uri
            both_inside.wait()

        in_folder(folder, fn, read_only=True)

    threads = [threading.Thread(target=call, args=(f,)) for f in folders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert seen == {f.name: f"sqlite:///{f / 'mlflow.db'}" for f in folders}
    assert store_mod.resolve_uri() == session
    assert store_mod._explicit_uri is None
