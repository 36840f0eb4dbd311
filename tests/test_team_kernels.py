"""Eight kernels on one store at once: commits, their own aliases and a shared ``production``.

Each kernel process commits 10 versions of one model (fresh objects, so each parent comes from
the kernel's own HEAD), moves its own alias twice and rolls it back, then moves the shared
``production`` and rolls it back, stating the version it expects each time. Afterwards: 80 new
versions without gaps or duplicates, no error anywhere but the refusals the contract promises
(a rollback whose version another kernel replaced first), every own alias where its kernel left
it, every parent from the kernel's own line, and a production trail that is one chain. Run on
sqlite (the fast set's store) and on the team server of ``NBMODEL_TEAM_URI``.
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
from nbmodel import lineage

KERNELS, EACH = 8, 10

KERNEL = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path

    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import nbmodel
    from nbmodel.errors import AliasMoved

    uri, name, k, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5])
    nbmodel.set_store(uri)
    X, y = load_iris(return_X_y=True, as_frame=True)
    nbmodel.checkout(f"{name}/1")  # this kernel's HEAD for the name
    models = [LogisticRegression(C=0.1 * (k + 1) + i, max_iter=300).fit(X, y) for i in range(n)]
    (go.parent / f"ready-{k}").touch()
    while not go.exists():
        time.sleep(0.01)
    mine = []
    for i, clf in enumerate(models):
        v = nbmodel.commit(clf, name, message=f"kernel {k} #{i}")
        mine.append([v.version, v.parent])
    own = f"k{k}"
    first, last = mine[0][0], mine[-1][0]
    nbmodel.alias(f"{name}/{first}", own, expected=None, message="first")
    nbmodel.alias(f"{name}/{last}", own, expected=first, message="second")
    nbmodel.rollback(name, alias=own, expected=last, message="undo")
    # The shared alias: move it to my newest version, whatever holds it, then undo my own move
    # only if nobody replaced it since (else the contract refuses the rollback, naming who).
    move = nbmodel.alias(f"{name}/{last}", "production", message=f"kernel {k}")
    try:
        nbmodel.rollback(name, expected=last, message=f"kernel {k} undoes")
        undone = True
    except AliasMoved:
        undone = False  # another kernel moved it after me: my rollback is refused, as it must be
    print(json.dumps({"commits": mine, "own": first, "from": move.from_version, "undone": undone}))
""")


def _run(uri: str, name: str, tmp_path: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    go = tmp_path / "go"
    script = tmp_path / "kernel.py"
    script.write_text(KERNEL)
    env = {**env, "NBMODEL_WARM_SERVER": "0", "MLFLOW_DISABLE_TELEMETRY": "true"}
    procs = [subprocess.Popen([sys.executable, str(script), uri, name, str(k), str(EACH), str(go)],
                              env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for k in range(KERNELS)]
    try:
        deadline = time.monotonic() + 600
        while not all((tmp_path / f"ready-{k}").exists() for k in range(KERNELS)):
            dead = [p for p in procs if p.poll() is not None]
            assert not dead, [p.communicate()[1][-2000:] for p in dead]
            assert time.monotonic() < deadline, "the kernels did not start"
            time.sleep(0.05)
        go.touch()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=900)
            assert p.returncode == 0, err[-3000:]
            for noise in ("Traceback", "Waiting up to", "Downloading artifacts", "View run"):
                assert noise not in out + err, out + err
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def _check(name: str, results: list[dict[str, Any]]) -> None:
    versions = sorted(v for r in results for v, _ in r["commits"])
    assert versions == list(range(2, 2 + KERNELS * EACH)), "gaps or duplicates"
    for r in results:
        expected = f"{name}/1"
        for version, parent in r["commits"]:
            assert parent == expected, f"{name}/{version} has parent {parent}, not {expected}"
            expected = f"{name}/{version}"
    from nbmodel.store import get_store
    from nbmodel.versions import model_aliases

    held = model_aliases(get_store(), name)
    for k, r in enumerate(results):
        assert held[f"k{k}"] == r["own"], f"k{k} is not where its kernel left it"
    # The production trail is one chain: every move starts where the one before it ended.
    moves = list(reversed(nbmodel.alias_history(name, "production").moves))
    assert len(moves) == 1 + KERNELS + sum(r["undone"] for r in results)
    for before, after in zip(moves, moves[1:]):
        assert after.from_version == before.to_version, (before, after)
    assert moves[0].from_version is None and moves[0].to_version == 1
    # Each rollback went back to the holder before the current one (the trail is a stack: two
    # rollbacks in a row undo two moves), never to a version that came later.
    stack: list[int | None] = [None]
    for m in moves:
        if m.kind == "rollback":
            stack.pop()
            assert m.to_version == stack[-1], (m, stack[-3:])
        else:
            stack.append(m.to_version)
    assert held.get("production") == moves[-1].to_version


def _base(name: str) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    nbmodel.commit(LogisticRegression(max_iter=300).fit(X, y), name, message="base")
    nbmodel.alias(f"{name}/1", "production")  # so that every kernel's move has a holder to undo
    lineage._kernel_heads.clear()


@pytest.mark.slow
def test_eight_kernels_commit_and_move_aliases_on_sqlite(isolated_store: Any, tmp_path: Path,
                                                         kernel_env: dict[str, str]) -> None:
    _base("iris")
    _check("iris", _run(isolated_store.uri, "iris", tmp_path, kernel_env))


@pytest.mark.team
@pytest.mark.slow
def test_eight_kernels_commit_and_move_aliases_on_the_server(team_store: Any, tmp_path: Path,
                                                             kernel_env: dict[str, str]) -> None:
    name = team_store.name("iris")
    _base(name)
    _check(name, _run(team_store.uri, name, tmp_path, kernel_env))
