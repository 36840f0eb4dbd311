"""The course runs as a student runs it: in order in one folder on the default store, each
lesson alone on a fresh store, and everything again in the same folder.

nbval compares each cell's output with the stored one (strict, through nbmodel's sanitize
file), so the stored outputs must be those of the lessons run in order in their folder with no
``MLFLOW_TRACKING_URI``: what a student meets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "example_notebooks").glob("[0-9][0-9]_*.ipynb"))
SANITIZE = ROOT / "nbmodel" / "nbval_sanitize.cfg"

pytestmark = pytest.mark.slow


def _course(folder: Path, lessons: list[Path]) -> list[Path]:
    """Copies of the lessons in ``folder``, with a pytest.ini that keeps the repository's
    configuration (its conftest, its addopts) out of the run."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pytest.ini").write_text("[pytest]\n")
    copies = []
    for lesson in lessons:
        shutil.copy(lesson, folder / lesson.name)
        copies.append(folder / lesson.name)
    return copies


def _nbval(folder: Path, notebooks: list[Path], *, lax: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", NBMODEL_USER="student",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p))
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-current-env",
            "--nbval-lax" if lax else "--nbval", f"--nbval-sanitize-with={SANITIZE}",
            *[str(n) for n in notebooks]]
    return subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, timeout=3600)


def _passed(run: subprocess.CompletedProcess) -> None:
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


def test_the_lessons_are_those_of_the_course():
    assert [p.name for p in LESSONS] == [
        "01_versioning.ipynb", "02_compare.ipynb", "03_deploy.ipynb", "04_monitor.ipynb",
        "05_testing.ipynb", "06_branches.ipynb", "07_explain.ipynb", "08_model_types.ipynb",
        "09_rollouts.ipynb", "10_monitoring_scale.ipynb"]


def test_in_order_in_one_folder_then_again(tmp_path):
    folder = tmp_path / "course"
    notebooks = _course(folder, LESSONS)
    _passed(_nbval(folder, notebooks))  # the stored outputs are exactly these
    assert (folder / "mlflow.db").exists()  # the default store of the notebooks' folder
    # Again in the same folder: the version numbers go on, so outputs differ, but every
    # lesson names its versions through the objects the magics return and must still run.
    _passed(_nbval(folder, notebooks, lax=True))


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_each_lesson_alone_on_a_fresh_store(tmp_path, lesson):
    folder = tmp_path / lesson.stem
    _passed(_nbval(folder, _course(folder, [lesson])))
