"""Branches on a team store: kernel processes advancing two branches of one model at once, and
making, listing, deleting and merging branches over HTTP, against the ``mlflow server`` of
``NBMODEL_TEAM_URI`` (``.ci/team-server start``; see the ``team_store`` fixture).

Each kernel checks its branch out once and commits its object again and again, so each commit's
parent is its own branch's previous head, never the other branch's; afterwards each head is where
its kernel left it and the audit trail of each head is one chain, in the kernel's order.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import nbmodel
from nbmodel import branches as B
from nbmodel import lineage
from nbmodel.tagpack import unpack

team = [pytest.mark.team, pytest.mark.slow]
pytestmark = team

BRANCHES, EACH = ("a", "b"), 4
NOISE = ("Traceback", "Waiting up to", "Downloading artifacts", "View run", "Warning", "is on no branch")

KERNEL = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path

    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    from sklearn.datasets import load_iris

    import nbmodel

    uri, name, branch, n, go = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), Path(sys.argv[5])
    nbmodel.set_store(uri)
    X, y = load_iris(return_X_y=True, as_frame=True)
    clf = nbmodel.checkout(f"{name}@{branch}")
    (go.parent / f"ready-{branch}").touch()
    while not go.exists():
        time.sleep(0.01)
    mine = []
    for i in range(n):
        clf.set_params(C=0.2 * (i + 1) + (branch == "b")).fit(X, y)
        v = nbmodel.commit(clf, name, message=f"{branch} #{i}")
        mine.append([v.version, v.parent])
    print(json.dumps(mine))
""")


def _base(name: str, iris: dict[str, Any]) -> None:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=0.01, max_iter=500).fit(iris["X_train"], iris["y_train"])
    nbmodel.commit(clf, name, message="base", eval=(iris["X_test"], iris["y_test"]))
    for b in BRANCHES:
        nbmodel.branch(name, b)
    lineage._kernel_heads.clear()


def _kernels(uri: str, name: str, tmp_path: Path, env: dict[str, str]) -> dict[str, list[list[Any]]]:
    go = tmp_path / "go"
    script = tmp_path / "kernel.py"
    script.write_text(KERNEL)
    env = {**env, "NBMODEL_WARM_SERVER": "0", "MLFLOW_DISABLE_TELEMETRY": "true"}
    procs = {b: subprocess.Popen([sys.executable, str(script), uri, name, b, str(EACH), str(go)],
                                 env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for b in BRANCHES}
    try:
        deadline = time.monotonic() + 600
        while not all((tmp_path / f"ready-{b}").exists() for b in BRANCHES):
            dead = [p for p in procs.values() if p.poll() is not None]
            assert not dead, [p.communicate()[1][-2000:] for p in dead]
            assert time.monotonic() < deadline, "the kernels did not start"
            time.sleep(0.05)
        go.touch()
        results = {}
        for b, p in procs.items():
            out, err = p.communicate(timeout=900)
            assert p.returncode == 0, err[-3000:]
            for noise in NOISE:
                assert noise not in out + err, out + err
            results[b] = json.loads(out.strip().splitlines()[-1])
        return results
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()


def test_kernels_advance_two_branches_at_once_on_the_server(team_store: Any, tmp_path: Path,
                                                             kernel_env: dict[str, str],
                                                             iris: dict[str, Any]) -> None:
    name = team_store.name("iris")
    _base(name, iris)
    results = _kernels(team_store.uri, name, tmp_path, kernel_env)
    versions = sorted(v for line in results.values() for v, _ in line)
    assert versions == list(range(2, 2 + len(BRANCHES) * EACH)), "gaps or duplicates"
    heads = B.heads(nbmodel.get_store(), name)
    assert heads["main"] == 1
    for b, line in results.items():
        # Each commit's parent is its own branch's head before it.
        expected = f"{name}/1"
        for version, parent in line:
            assert parent == expected, f"{name}/{version} on {b} has parent {parent}, not {expected}"
            expected = f"{name}/{version}"
        assert heads[b] == line[-1][0], f"{b} is not where its kernel left it"
        # Every move of the head is in the audit trail, in order, one chain.
        moves = list(reversed(nbmodel.alias_history(name, f"branch-{b}").moves))
        assert [(m.kind, m.from_version, m.to_version) for m in moves] == (
            [("branch", None, 1)] + [("commit", p, v) for (v, _), p in
                                      zip(line, [1] + [v for v, _ in line[:-1]])])
    listed = B.branches(name)
    assert [(x.name, x.head, x.ahead) for x in listed] == [
        ("main", 1, 0)] + [(b, results[b][-1][0], EACH) for b in BRANCHES]


def test_make_list_delete_and_merge_branches_over_http(team_store: Any, iris: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    name = team_store.name("iris")
    data = (iris["X_test"], iris["y_test"])
    fit = (iris["X_train"], iris["y_train"])
    _base(name, iris)
    client = MlflowClient(tracking_uri=team_store.uri, registry_uri=team_store.uri)
    assert client.get_registered_model(name).aliases == {"branch-main": "1", "branch-a": "1", "branch-b": "1"}
    # a: a stronger model, which a pick fast-forwards main to.
    strong = nbmodel.checkout(f"{name}@a")
    v2 = nbmodel.commit(strong.set_params(C=1.0).fit(*fit), name, eval=data)
    out: list[str] = []
    picked = nbmodel.merge(name, "a", eval=data, strategy="pick", report=out.append)
    assert picked.version == v2.version and f"fast-forwarded from {name}/1 to {v2.ref}" in out[0]
    # b: another model; its vote with main is a new version with two parents.
    other = nbmodel.checkout(f"{name}@b")
    v3 = nbmodel.commit(other.set_params(C=0.5).fit(*fit), name, eval=data)
    voted = nbmodel.merge(name, "b", eval=data, strategy="vote", force=True, report=out.append)
    assert (voted.parent, voted.merge_parent) == (v2.ref, v3.ref)
    tags = unpack(client.get_model_version(name, str(voted.version)).tags)
    assert tags["nbmodel.parent"] == v2.ref and tags["nbmodel.merge_parent"] == v3.ref
    assert B.heads(nbmodel.get_store(), name) == {"main": voted.version, "a": 2, "b": 3}
    kinds = [(m.alias, m.kind) for m in nbmodel.alias_history(name)]
    assert ("branch-main", "merge") in kinds and ("branch-main", "commit") in kinds
    # Delete a merged line: the name goes, its versions stay.
    gone = nbmodel.branch(name, "a", delete=True)
    assert gone.head == 2
    assert [b.name for b in B.branches(name)] == ["main", "b"]
    assert "branch-a" not in client.get_registered_model(name).aliases
    assert sorted(v.version for v in nbmodel.log(name)) == [1, 2, 3, 4]
