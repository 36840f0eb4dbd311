"""``pytest --nbmodel REF``: a version's test cases as pytest items, run in a subprocess on this
test's own store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

import nbmodel

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "nbmodel.modeltests.pytest_plugin"


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", PLUGIN, "-p", "no:cacheprovider",
                           "-q", *args], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=300)


def test_without_the_option_it_collects_nothing_and_imports_nothing_heavy(tmp_path):
    (tmp_path / "test_plain.py").write_text(
        "import sys\n\ndef test_light():\n"
        "    assert not {'mlflow', 'pandas', 'sklearn'} & set(sys.modules)\n")
    out = _pytest(tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed" in out.stdout
    assert "nbmodel::" not in out.stdout


@pytest.mark.slow
def test_cases_are_items_with_readable_ids_and_k_x_work(tmp_path, iris):
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=500).fit(iris["X_train"], iris["y_train"])
    v = nbmodel.commit(clf, "ci_gate")
    nbmodel.add_tests(v.ref, rules=["accuracy >= 0.9"], robust=["nan", "empty=answered"],
                      eval=(iris["X_test"], iris["y_test"]))
    nbmodel.alias(v.ref, "candidate")
    ci = tmp_path / "ci"
    ci.mkdir()

    listed = _pytest(ci, "--collect-only", "--nbmodel", "ci_gate@candidate")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "3 tests collected" in listed.stdout
    ids = [ln for ln in listed.stdout.splitlines() if ln.startswith("nbmodel::")]
    assert ids == ["nbmodel::ci_gate/1::accuracy>=0.9", "nbmodel::ci_gate/1::nan_answered",
                   "nbmodel::ci_gate/1::empty_answered"]

    picked = _pytest(ci, "--nbmodel", "ci_gate@candidate", "-k", "accuracy")
    assert picked.returncode == 0, picked.stdout + picked.stderr
    assert "1 passed, 2 deselected" in picked.stdout
    assert "warning" not in picked.stdout  # MLflow's own deprecation noise stays out of a CI log
    assert "nbmodel.test_results" not in MlflowClient().get_model_version("ci_gate", "1").tags

    first = _pytest(ci, "--nbmodel", "ci_gate@candidate", "-x")
    assert first.returncode == 1
    assert "1 failed, 1 passed" in first.stdout
    assert "ci_gate/1: nan answered failed" in first.stdout

    full = _pytest(ci, "--nbmodel", "ci_gate/1")
    assert full.returncode == 1
    assert "2 failed, 1 passed" in full.stdout
    assert "requires: answered" in full.stdout
    result = json.loads(MlflowClient().get_model_version("ci_gate", "1").tags["nbmodel.test_results"])
    assert (result["passed"], result["total"]) == (1, 3)

    fresh = LogisticRegression(max_iter=500).fit(iris["X_train"], iris["y_train"])
    untested = nbmodel.commit(fresh, "no_cases")  # no parent, so no inherited cases
    refused = _pytest(ci, "--nbmodel", untested.ref)
    assert refused.returncode not in (0, 5)  # a usage error, not an empty run
    assert "no_cases/1 has no test cases" in refused.stdout + refused.stderr
