"""Several kernels committing at once, and commits killed part-way."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest
from mlflow import MlflowClient

from nbmodel.tagpack import unpack

WORKER = textwrap.dedent("""
    import os, sys
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    import nbmodel
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    X, y = load_iris(return_X_y=True, as_frame=True)
    nbmodel.set_store(sys.argv[1])
    for i in range(int(sys.argv[2])):
        clf = LogisticRegression(C=1 + i, max_iter=300).fit(X, y)
        nbmodel.commit(clf, "iris", message=f"worker {sys.argv[3]} #{i}", eval=(X, y))
    print("done")
""")


@pytest.mark.slow
def test_four_processes_commit_fifty_versions_each_to_a_fresh_store(tmp_path, kernel_env):
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    (tmp_path / "fresh").mkdir()  # the store file itself does not exist yet
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [subprocess.Popen([sys.executable, str(script), uri, "50", str(w)], env=kernel_env,
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(4)]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
        assert out.strip() == "done"
        assert "Traceback" not in err and "Error" not in err, err[-2000:]
    client = MlflowClient(uri, registry_uri=uri)
    versions = sorted(int(v.version) for v in client.search_model_versions("name = 'iris'"))
    assert versions == list(range(1, 201))  # no gaps, no duplicates
    # Each kernel's commits form its own line (DESIGN.md: the parent is this kernel's HEAD),
    # never another kernel's concurrent version.
    lines: dict[str, list] = {}
    for v in sorted(client.search_model_versions("name = 'iris'"), key=lambda v: int(v.version)):
        lines.setdefault(v.description.split(" #")[0], []).append(v)
    assert sorted(len(line) for line in lines.values()) == [50, 50, 50, 50]
    for line in lines.values():
        for prev, v in zip(line, line[1:]):
            assert unpack(v.tags)["nbmodel.parent"] == f"iris/{prev.version}"


KILLED = textwrap.dedent("""
    import os, sys
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    import nbmodel
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    X, y = load_iris(return_X_y=True, as_frame=True)
    nbmodel.set_store(sys.argv[1])
    clf = LogisticRegression(max_iter=300).fit(X, y)
    print("ready", flush=True)
    while True:
        nbmodel.commit(clf, "iris", message="may be killed", eval=(X, y), train=(X, y))
""")


@pytest.mark.slow
def test_commit_killed_at_any_point_leaves_no_broken_version(tmp_path, iris, kernel_env):
    import mlflow

    import nbmodel

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    # Kill at many different moments of a commit loop: each commit takes ~0.1-0.3 s.
    delays = [0.05 * k for k in range(1, 9)]
    for delay in delays:
        p = subprocess.Popen([sys.executable, str(script), uri], env=kernel_env, cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert p.stdout.readline().strip() == "ready"
        time.sleep(delay + 0.3)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    nbmodel.set_store(uri)
    client = MlflowClient(uri, registry_uri=uri)
    for mv in client.search_model_versions("name = 'iris'"):
        # Every registered version has its complete model: plain MLflow loads and predicts.
        model = mlflow.pyfunc.load_model(f"models:/iris/{mv.version}")
        assert len(model.predict(iris["X_test"])) == len(iris["X_test"])
        assert unpack(mv.tags).get("nbmodel.metrics")
    before = len(client.search_model_versions("name = 'iris'"))
    from sklearn.linear_model import LogisticRegression

    v = nbmodel.commit(LogisticRegression(max_iter=300).fit(iris["X"], iris["y"]), "iris",
                       message="after the kills")
    assert v.version == before + 1 if before else v.version >= 1
