"""The course on a team store: the lessons pass strict nbval, through nbmodel's sanitize file,
with ``MLFLOW_TRACKING_URI`` naming a team server instead of the sqlite file their outputs were
recorded on. Nothing nbmodel prints may depend on the store.

``%model_status`` lists every model and deployment of the store, so the lessons get a fresh
team server of their own (PostgreSQL and ``mlflow server``, started by ``.ci/team-server`` in
a private state folder and stopped afterwards), run where the other team tests run: with
``NBMODEL_TEAM_URI`` set, or under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_notebooks import ROOT, SANITIZE, _course, _passed

pytestmark = [pytest.mark.team, pytest.mark.slow]

LESSONS = [ROOT / "example_notebooks" / n
           for n in ("01_versioning.ipynb", "02_compare.ipynb", "03_deploy.ipynb", "04_monitor.ipynb")]
SCRIPT = ROOT / ".ci" / "team-server"


@pytest.fixture
def fresh_server() -> Iterator[str]:
    """A team server of this test's own, stopped (its data removed) at the end."""
    if not os.environ.get("NBMODEL_TEAM_URI") and os.environ.get("CI", "").lower() != "true":
        pytest.skip("team tests run with NBMODEL_TEAM_URI set (`.ci/team-server start`), or in CI")
    # PostgreSQL runs as an unprivileged user (as root), who must reach the state folder: pytest's
    # own temporary folders are private, so the folder goes in the temporary directory itself.
    state = Path(tempfile.mkdtemp(prefix="nbmodel-lessons-team-"))
    state.chmod(0o755)
    env = {**os.environ, "NBMODEL_TEAM_STATE": str(state / "state")}
    started = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True,
                             timeout=600)
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, timeout=300)
        shutil.rmtree(state, ignore_errors=True)


def test_the_lessons_pass_strict_nbval_on_a_fresh_team_server(fresh_server: str, tmp_path: Path) -> None:
    uri = fresh_server
    folder = tmp_path / "course"
    notebooks = _course(folder, LESSONS)
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_REGISTRY_URI", "NBMODEL_TEAM_URI")}
    env.update(MLFLOW_TRACKING_URI=uri, MLFLOW_DISABLE_TELEMETRY="true", NBMODEL_USER="student",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p))
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-current-env",
            "--nbval", f"--nbval-sanitize-with={SANITIZE}", *[str(n) for n in notebooks]]
    run = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, timeout=3600)
    _passed(run)
    assert not (folder / "mlflow.db").exists()  # everything went to the server
