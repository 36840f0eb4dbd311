"""Branches and merges: named lines of work of a model, as DESIGN.md's "Branches" describes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from _helpers import fit_iris

import nbmodel
from nbmodel import branches as B
from nbmodel import merges as M
from nbmodel.errors import BadReference
from nbmodel.tagpack import unpack


def _commit(model: Any, iris: dict[str, Any], name: str = "iris", message: str = "") -> Any:
    return nbmodel.commit(model, name, message=message, eval=(iris["X_test"], iris["y_test"]))


def _client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


def _heads(name: str = "iris") -> dict[str, int]:
    return B.heads(nbmodel.get_store(), name)


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file of the store (the sqlite file and the artifacts) by its digest."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.name.startswith(".mlflow.db.lock"):
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def two_lines(iris: dict[str, Any]) -> dict[str, Any]:
    """iris/1 on main; branch experiment; iris/2 (strong) on experiment, iris/3 (weak) on main."""
    _commit(fit_iris(iris, 0.01), iris, message="base")
    nbmodel.branch("iris", "experiment")
    exp = nbmodel.checkout("iris@experiment")
    exp.set_params(C=1.0).fit(iris["X_train"], iris["y_train"])
    v2 = _commit(exp, iris, message="C=1 on experiment")
    main = nbmodel.checkout("iris@main")
    main.set_params(C=0.02).fit(iris["X_train"], iris["y_train"])
    v3 = _commit(main, iris, message="C=0.02 on main")
    return {"exp": exp, "main": main, "v2": v2, "v3": v3}


# -- create, list, delete ------------------------------------------------------------------------


def test_main_exists_from_the_first_commit_without_writing_anything(iris):
    _commit(fit_iris(iris, 1.0), iris)
    listed = B.branches("iris")
    assert [(b.name, b.head, b.ahead) for b in listed] == [("main", 1, 0)]
    assert "main" in str(listed) and "iris/1" in str(listed)
    assert _client().get_registered_model("iris").aliases == {}
    assert nbmodel.resolve("iris@main").version == 1


def test_create_list_and_delete_a_branch(iris):
    _commit(fit_iris(iris, 1.0), iris)
    _commit(fit_iris(iris, 0.5), iris)
    made = nbmodel.branch("iris", "experiment", start="iris/1", message="try trees")
    assert (made.name, made.head, made.start) == ("experiment", 1, "iris/1")
    # Plain MLflow sees the heads as aliases and the start as a tag of the model.
    rm = _client().get_registered_model("iris")
    assert rm.aliases == {"branch-main": 2, "branch-experiment": 1}
    assert json.loads(rm.tags["nbmodel.branch.experiment"])["from"] == "iris/1"
    assert nbmodel.resolve("iris@experiment").version == 1
    listed = nbmodel.branch("iris")
    assert [(b.name, b.head, b.ahead) for b in listed] == [("main", 2, 0), ("experiment", 1, 0)]
    # The audit trail keeps the moves of branch heads.
    trail = [(m.alias, m.to_version, m.kind) for m in nbmodel.alias_history("iris")]
    assert ("branch-experiment", 1, "branch") in trail and ("branch-main", 2, "branch") in trail
    # Versions are never shown as holding branch aliases: they are heads.
    assert nbmodel.resolve("iris/1").aliases == [] and nbmodel.resolve("iris/1").branches == ["experiment"]

    gone = nbmodel.branch("iris", "experiment", delete=True)
    assert gone.head == 1
    rm = _client().get_registered_model("iris")
    assert rm.aliases == {"branch-main": 2} and "nbmodel.branch.experiment" not in rm.tags
    assert [v.version for v in nbmodel.log("iris")] == [2, 1]  # the versions stay
    assert ("branch-experiment", None, "delete") in [
        (m.alias, m.to_version, m.kind) for m in nbmodel.alias_history("iris")]


def test_branch_refusals(iris):
    _commit(fit_iris(iris, 1.0), iris)
    nbmodel.branch("iris", "experiment")
    nbmodel.alias("iris/1", "production")
    with pytest.raises(B.BranchExists):
        nbmodel.branch("iris", "experiment")
    with pytest.raises(B.BranchExists):
        nbmodel.branch("iris", "production")  # an alias of that name: iris@production is taken
    with pytest.raises(B.BranchNotFound, match="its branches are main, experiment"):
        nbmodel.branch("iris", "nope", delete=True)
    with pytest.raises(BadReference, match="cannot be deleted"):
        nbmodel.branch("iris", "main", delete=True)
    with pytest.raises(BadReference):
        nbmodel.branch("iris", "branch-x")
    with pytest.raises(BadReference, match="head of branch"):
        nbmodel.alias("iris/1", "branch-main")  # heads move by commits and merges only


# -- commits advance the branch they came from ------------------------------------------------


def test_checkout_and_commit_advance_only_that_branch(iris, two_lines):
    assert _heads() == {"main": 3, "experiment": 2}
    assert two_lines["v2"].parent == "iris/1" and two_lines["v3"].parent == "iris/1"
    # Committing the experiment object again advances experiment only.
    exp = two_lines["exp"]
    exp.set_params(C=2.0).fit(iris["X_train"], iris["y_train"])
    v4 = _commit(exp, iris)
    assert v4.parent == "iris/2"
    assert _heads() == {"main": 3, "experiment": 4}
    # An object checked out by version (from no branch) whose parent is not main's head
    # advances nothing.
    old = nbmodel.checkout("iris/1")
    v5 = _commit(old.set_params(C=3.0).fit(iris["X_train"], iris["y_train"]), iris)
    assert v5.parent == "iris/1"
    assert _heads() == {"main": 3, "experiment": 4}
    # One whose parent is main's head advances main, like git.
    tip = nbmodel.checkout("iris/3")
    v6 = _commit(tip.set_params(C=0.03).fit(iris["X_train"], iris["y_train"]), iris)
    assert v6.parent == "iris/3"
    assert _heads() == {"main": 6, "experiment": 4}
    kinds = [(m.alias, m.from_version, m.to_version, m.kind) for m in nbmodel.alias_history("iris")]
    assert ("branch-experiment", 2, 4, "commit") in kinds and ("branch-main", 3, 6, "commit") in kinds
    listed = B.branches("iris")
    assert listed["experiment"].ahead == 2 and listed["main"].ahead == 0


def test_a_fresh_object_follows_the_kernels_branch(iris, two_lines):
    """After checking out iris@experiment, a fresh object committed to iris is on experiment
    (this kernel's HEAD), not on main."""
    nbmodel.checkout("iris@experiment")
    v = _commit(fit_iris(iris, 5.0), iris)
    assert v.parent == "iris/2"
    assert _heads() == {"main": 3, "experiment": v.version}


def test_a_branch_another_kernel_advanced_is_not_moved_back(iris, two_lines):
    """The move is a compare-and-set on the parent: a stale object commits, its branch stays."""
    stale = nbmodel.checkout("iris@experiment")
    exp = two_lines["exp"]
    _commit(exp.set_params(C=2.0).fit(iris["X_train"], iris["y_train"]), iris)  # iris/4
    v5 = _commit(stale.set_params(C=4.0).fit(iris["X_train"], iris["y_train"]), iris)
    assert v5.parent == "iris/2"
    assert _heads()["experiment"] == 4


# -- merges -----------------------------------------------------------------------------------


def test_merge_picks_a_better_branch_by_fast_forward(iris, two_lines, capsys):
    out = []
    v = nbmodel.merge("iris", "experiment", eval=(iris["X_test"], iris["y_test"]), report=out.append)
    assert v.version == 2
    assert _heads() == {"main": 2, "experiment": 2}
    assert "fast-forwarded from iris/3 to iris/2" in out[0]
    assert [v.version for v in nbmodel.log("iris")] == [3, 2, 1]  # nothing committed
    assert ("branch-main", 3, 2, "merge") in [
        (m.alias, m.from_version, m.to_version, m.kind) for m in nbmodel.alias_history("iris")]


def test_merge_keeps_a_target_that_is_better(iris, two_lines):
    out = []
    v = nbmodel.merge("iris", "main", into="experiment", eval=(iris["X_test"], iris["y_test"]),
                      report=out.append)
    assert v.version == 2 and _heads() == {"main": 3, "experiment": 2}
    assert out[0].startswith("experiment stays at iris/2")


@pytest.mark.parametrize("strategy", ["vote", "average", "stack"])
def test_merge_builds_a_version_with_two_parents(iris, two_lines, strategy):
    v = nbmodel.merge("iris", "experiment", eval=(iris["X_test"], iris["y_test"]), strategy=strategy,
                      train=(iris["X_train"], iris["y_train"]))
    assert v.version == 4 and v.parent == "iris/3" and v.merge_parent == "iris/2"
    assert _heads() == {"main": 4, "experiment": 2}
    # Both parents, through plain MLflow.
    tags = unpack(_client().get_model_version("iris", "4").tags)
    assert tags["nbmodel.parent"] == "iris/3" and tags["nbmodel.merge_parent"] == "iris/2"
    assert json.loads(tags["nbmodel.merge"])["strategy"] == strategy
    assert "Stacking" in v.estimator if strategy == "stack" else "Voting" in v.estimator
    # Scored against both parents: not worse than the better one (iris/2).
    assert v.metrics["accuracy"] >= two_lines["v2"].metrics["accuracy"]
    assert B.branches("iris")["experiment"].ahead == 0


def test_merge_version_loads_in_a_fresh_process_with_plain_mlflow(iris, two_lines, kernel_env):
    v = nbmodel.merge("iris", "experiment", eval=(iris["X_test"], iris["y_test"]), strategy="average")
    code = textwrap.dedent("""
        import mlflow, sys
        from sklearn.datasets import load_iris
        X, y = load_iris(return_X_y=True, as_frame=True)
        m = mlflow.pyfunc.load_model("models:/iris@branch-main")
        print(list(m.predict(X.iloc[:3])), m.metadata.flavors["sklearn"]["serialization_format"])
    """)
    env = {**kernel_env, "MLFLOW_TRACKING_URI": nbmodel.get_store().uri}
    env.pop("PYTHONPATH")  # no nbmodel: plain MLflow and scikit-learn only
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=180, cwd=Path.cwd())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[np.int64(0), np.int64(0), np.int64(0)] skops"
    assert v.version == 4


def test_refusals_leave_the_store_byte_identical(iris, two_lines, diabetes):
    folder = Path.cwd()
    before = _snapshot(folder)
    data = (iris["X_test"], iris["y_test"])
    with pytest.raises(B.BranchNotFound, match="no branch 'nope'"):
        nbmodel.merge("iris", "nope", eval=data)
    with pytest.raises(B.BranchNotFound):
        nbmodel.merge("iris", "experiment", into="nope", eval=data)
    with pytest.raises(BadReference, match="into itself"):
        nbmodel.merge("iris", "main", eval=data)
    with pytest.raises(BadReference, match="strategy"):
        nbmodel.merge("iris", "experiment", eval=data, strategy="best")
    with pytest.raises(M.MergeRefused, match="--train"):
        nbmodel.merge("iris", "experiment", eval=data, strategy="stack")
    assert _snapshot(folder) == before


def test_a_worse_ensemble_is_refused_unless_forced(diabetes):
    from sklearn.dummy import DummyRegressor
    from sklearn.linear_model import LinearRegression

    data = (diabetes["X_test"], diabetes["y_test"])
    fit = (diabetes["X_train"], diabetes["y_train"])
    nbmodel.commit(LinearRegression().fit(*fit), "house", eval=data)
    nbmodel.branch("house", "dummy")
    nbmodel.checkout("house@dummy")
    nbmodel.commit(DummyRegressor().fit(*fit), "house", eval=data)  # on this kernel's branch
    assert _heads("house") == {"main": 1, "dummy": 2}
    before = _snapshot(Path.cwd())
    with pytest.raises(M.MergeRefused, match="worse than the better parent"):
        nbmodel.merge("house", "dummy", eval=data, strategy="average")
    assert _snapshot(Path.cwd()) == before
    # By default main, better on every key metric, simply stays.
    assert nbmodel.merge("house", "dummy", eval=data).version == 1
    assert _snapshot(Path.cwd()) == before
    forced = nbmodel.merge("house", "dummy", eval=data, strategy="average", force=True)
    assert (forced.version, forced.parent, forced.merge_parent) == (3, "house/1", "house/2")
    assert forced.metrics["rmse"] > nbmodel.resolve("house/1").metrics["rmse"]
    assert _heads("house") == {"main": 3, "dummy": 2}


# -- the history ------------------------------------------------------------------------------


def test_log_draws_a_merge_with_both_parents_and_marks_heads(iris, two_lines):
    nbmodel.merge("iris", "experiment", eval=(iris["X_test"], iris["y_test"]), strategy="average")
    text = str(nbmodel.log("iris"))
    lines = text.splitlines()[2:]
    assert [line[:6].rstrip() for line in lines] == ["*", "|\\", "* |", "| *", "|/", "*"]
    assert "(main)" in lines[0] and "(experiment)" in lines[3]
    assert "iris/3 + iris/2" in lines[0]
    one = nbmodel.log("iris", branch="experiment")
    assert [v.version for v in one] == [2, 1] and "on branch experiment" in str(one)
    html = nbmodel.log("iris")._repr_html_()
    assert "nbm-badge branch'>main<" in html


def test_diff_between_branches(iris, two_lines):
    d = nbmodel.diff("iris@main", "iris@experiment")
    assert "iris/3" in str(d) and "iris/2" in str(d)


# -- the magics -------------------------------------------------------------------------------


def test_magics(shell):
    from sklearn.linear_model import LogisticRegression

    shell.ns["clf"] = LogisticRegression(C=0.01, max_iter=500).fit(shell.ns["X_train"], shell.ns["y_train"])
    shell.run("%model_commit clf -n iris --eval X_test y_test")
    made = shell.run("%model_branch iris experiment")
    assert str(made).startswith("branch experiment of iris made: it starts at iris/1")
    shell.run("%model_checkout iris@experiment --as exp")
    assert "iris/1 (branch experiment) checked out as exp" in shell.stdout
    shell.run("exp.set_params(C=1.0).fit(X_train, y_train)")
    shell.run("%model_commit exp --eval X_test y_test")
    listed = shell.run("%model_branch iris")
    assert [(b.name, b.head, b.ahead) for b in listed] == [("main", 1, 0), ("experiment", 2, 1)]
    assert [b.name for b in shell.run("%model_log iris --branches")] == ["main", "experiment"]
    assert [v.version for v in shell.run("%model_log iris --branch main")] == [1]
    v = shell.run("%model_merge iris experiment --eval X_test y_test")
    assert v.version == 2 and "main fast-forwarded from iris/1 to iris/2" in shell.stdout
    err = shell.fails("%model_merge iris experiment --into experiment --eval X_test y_test")
    assert "into itself" in str(err) and type(err).__name__ == "UsageError"
    err = shell.fails("%model_merge iris nope --eval X_test y_test")
    assert err.kind == "branch-not-found"
    shell.run("%model_branch iris experiment --delete")
    assert [b.name for b in B.branches("iris")] == ["main"]


# -- many kernels -------------------------------------------------------------------------------

_KERNEL = """
import sys, nbmodel
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True, as_frame=True)
branch = sys.argv[1]
for C in (0.5, 2.0, 4.0):
    clf = nbmodel.checkout(f"iris@{branch}")
    v = nbmodel.commit(clf.set_params(C=C).fit(X, y), "iris", message=f"{branch} C={C}")
    print(v.ref, v.parent, flush=True)
"""


@pytest.mark.slow
def test_kernels_advance_two_branches_at_once(iris, kernel_env):
    _commit(fit_iris(iris, 1.0), iris)
    nbmodel.branch("iris", "a")
    nbmodel.branch("iris", "b")
    env = {**kernel_env, "MLFLOW_TRACKING_URI": nbmodel.get_store().uri}
    procs = [subprocess.Popen([sys.executable, "-c", _KERNEL, b], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=Path.cwd()) for b in "ab"]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    heads = _heads()
    assert heads["main"] == 1
    for b, (out, _) in zip("ab", outs):
        lines = [line.split() for line in out.splitlines()]
        assert len(lines) == 3
        # Each kernel's line: its first commit starts at iris/1, each next one on its own last.
        assert lines[0][1] == "iris/1"
        assert lines[1][1] == lines[0][0] and lines[2][1] == lines[1][0]
        assert heads[b] == int(lines[2][0].split("/")[1])
    assert sorted(v.version for v in nbmodel.log("iris")) == list(range(1, 8))


# -- what the panel and the sidebar read ---------------------------------------------------------


def test_rest_json_of_a_model_lists_its_branches(iris, two_lines):
    from nbmodel.handlers import _model

    body = _model("iris", 50, 0)
    assert [(b["name"], b["head"], b["ahead"]) for b in body["branches"]] == [
        ("main", 3, 0), ("experiment", 2, 1)]
    assert all(b["moved"] for b in body["branches"])
    v3, v2, _ = [v.to_dict() for v in body["versions"]]
    assert v3["branches"] == ["main"] and v2["branches"] == ["experiment"] and v3["aliases"] == []
    json.dumps({**body, "versions": [v.to_dict() for v in body["versions"]]})


def test_history_tab_shows_branches_and_heads(iris, two_lines):
    from nbmodel.widgets import panel

    p = panel("iris", namespace={})
    try:
        text = p.tab("History").text()
    finally:
        p.close()
    lines = text.splitlines()
    assert lines[1] == "branches: main iris/3, experiment iris/2 (1 ahead)"
    assert "(main)" in lines[3] and "(experiment)" in lines[4]


def test_history_tab_of_a_model_without_branches_is_as_before(iris):
    from nbmodel.widgets import panel

    _commit(fit_iris(iris, 1.0), iris)
    p = panel("iris", namespace={})
    try:
        text = p.tab("History").text()
    finally:
        p.close()
    assert "branches:" not in text and "(main)" not in text


def test_a_merge_is_registered_with_both_parents_at_once(iris, two_lines, monkeypatch):
    """A kernel that dies right after registering the merge version leaves it with both
    parents: no separate write may be needed after registration."""
    from nbmodel.gateway import Gateway

    def died(*args: Any, **kwargs: Any) -> None:
        raise SystemExit("the kernel died after registering")

    monkeypatch.setattr(Gateway, "set_version_tag", died)
    try:
        nbmodel.merge("iris", "experiment", eval=(iris["X_test"], iris["y_test"]), strategy="vote")
    except SystemExit:
        pass
    monkeypatch.undo()
    newest = max(int(mv.version) for mv in _client().search_model_versions("name='iris'"))
    tags = unpack(_client().get_model_version("iris", str(newest)).tags)
    assert tags.get("nbmodel.merge_parent") == two_lines["v2"].ref, tags


def test_a_commit_whose_branch_another_kernel_advanced_says_it_is_on_no_branch(iris, two_lines,
                                                                                monkeypatch, capsys):
    from nbmodel.aliases import AliasMoved

    def moved_first(*args: Any, **kwargs: Any) -> None:
        raise AliasMoved("iris@branch-experiment was moved by bob")

    exp = two_lines["exp"]
    exp.set_params(C=2.0).fit(iris["X_train"], iris["y_train"])
    monkeypatch.setattr(B, "move_pointer", moved_first)
    capsys.readouterr()
    v = _commit(exp, iris, message="C=2 on experiment")
    err = capsys.readouterr().err
    assert f"{v.ref} is on no branch" in err and "experiment" in err
    assert _heads()["experiment"] == 2  # the branch stayed where the other kernel left it


# -- heads of any library -----------------------------------------------------------------------

_PLAIN_LOAD = """
import json, sys
import mlflow
from sklearn.datasets import load_iris
X, y = load_iris(return_X_y=True, as_frame=True)
m = mlflow.pyfunc.load_model(sys.argv[1])
print(json.dumps([int(p) for p in m.predict(X)]))
"""


@pytest.fixture
def boosted_line(iris: dict[str, Any]) -> dict[str, Any]:
    """iris/1, a weak LogisticRegression, on main; iris/2, an XGBoost classifier, on boost."""
    xgboost = pytest.importorskip("xgboost")
    _commit(fit_iris(iris, 0.05), iris, message="base")
    nbmodel.branch("iris", "boost")
    nbmodel.checkout("iris@boost")
    booster = xgboost.XGBClassifier(n_estimators=8, max_depth=2).fit(iris["X_train"], iris["y_train"])
    v2 = _commit(booster, iris, message="xgboost")
    assert v2.parent == "iris/1" and _heads() == {"main": 1, "boost": 2}
    return {"booster": booster}


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["vote", "average"])
def test_merge_an_xgboost_head_with_a_sklearn_head(iris, boosted_line, kernel_env, strategy):
    """Before, only scikit-learn heads could be ensembled ("... is not a scikit-learn model")."""
    v = nbmodel.merge("iris", "boost", eval=(iris["X_test"], iris["y_test"]), strategy=strategy,
                      force=True)
    assert (v.version, v.parent, v.merge_parent) == (3, "iris/1", "iris/2")
    assert _heads() == {"main": 3, "boost": 2}
    tags = unpack(_client().get_model_version("iris", "3").tags)
    assert json.loads(tags["nbmodel.merge"])["strategy"] == strategy
    merged = nbmodel.load("iris/3")
    assert callable(getattr(merged, "predict_proba", None)) == (strategy == "average")
    X = iris["X"]
    expected = [int(p) for p in merged.predict(X)]
    # It agrees with its heads where they agree.
    lr, xgb = nbmodel.load("iris/1").predict(X), boosted_line["booster"].predict(X)
    assert all(e == a for e, a, b in zip(expected, lr, xgb) if a == b)
    # Plain MLflow loads and predicts it in a fresh process without nbmodel.
    env = {**kernel_env, "MLFLOW_TRACKING_URI": nbmodel.get_store().uri}
    env.pop("PYTHONPATH")
    out = subprocess.run([sys.executable, "-c", _PLAIN_LOAD, "models:/iris@branch-main"], env=env,
                         capture_output=True, text=True, timeout=180, cwd=Path.cwd())
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected
    assert "nbmodel" not in out.stderr


@pytest.mark.slow
def test_stack_of_an_xgboost_head_and_a_sklearn_head(iris, boosted_line):
    v = nbmodel.merge("iris", "boost", eval=(iris["X_test"], iris["y_test"]), strategy="stack",
                      train=(iris["X_train"], iris["y_train"]), force=True)
    assert (v.parent, v.merge_parent) == ("iris/1", "iris/2")
    assert "roc_auc" in v.metrics and v.metrics["accuracy"] > 0.8


def test_a_regressor_and_a_classifier_are_refused_in_one_line(shell, diabetes):
    """Before, the classifier head was scored as a regressor (or the merge failed deep inside)."""
    from sklearn.linear_model import LinearRegression

    shell.run("from sklearn.linear_model import LogisticRegression\n"
              "clf = LogisticRegression(max_iter=500).fit(X_train, y_train)")
    shell.run("%model_commit clf -n mixed --eval X_test y_test")
    shell.run("%model_branch mixed reg")
    shell.run("%model_checkout mixed@reg --as r")
    reg = LinearRegression().fit(shell.ns["X_train"], shell.ns["y_train"].astype(float))
    shell.ns["r"] = reg
    nbmodel.lineage.set_head(reg, "mixed/1")
    nbmodel.lineage.set_branch(reg, "mixed", "reg")
    shell.run("%model_commit r -n mixed --eval X_test y_test")
    assert _heads("mixed") == {"main": 1, "reg": 2}
    before = _snapshot(Path.cwd())
    for strategy in ("vote", "average"):
        err = shell.fails(f"%model_merge mixed reg --eval X_test y_test --strategy {strategy}")
        assert type(err).__name__ == "UsageError" and err.kind == "merge-refused"
        assert "\n" not in str(err) and "classifier" in str(err) and "regressor" in str(err)
    assert _snapshot(Path.cwd()) == before
    assert _heads("mixed") == {"main": 1, "reg": 2}


def test_branch_errors_live_in_errors_and_stay_importable_where_they_were():
    from nbmodel import errors

    assert B.BranchNotFound is errors.BranchNotFound and B.BranchExists is errors.BranchExists
    assert M.MergeRefused is errors.MergeRefused
    assert issubclass(errors.BranchNotFound, errors.AliasNotFound)
    assert (errors.BranchNotFound.kind, errors.BranchExists.status, errors.MergeRefused.status) == (
        "branch-not-found", 409, 409)


def test_merging_a_branch_already_merged_leaves_the_target_where_it_is(iris, two_lines):
    """Before, a second merge of a better branch whose head main's merge version already
    contains 'fast-forwarded' main back to that older head, out of its own merge."""
    data = (iris["X_test"], iris["y_test"])
    merged = nbmodel.merge("iris", "experiment", eval=data, strategy="average", force=True)
    assert _heads() == {"main": merged.version, "experiment": 2}
    out: list[str] = []
    again = nbmodel.merge("iris", "experiment", eval=data, report=out.append)
    assert again.version == merged.version and _heads() == {"main": merged.version, "experiment": 2}
    assert out == [f"main at {merged.ref} already contains experiment (iris/2): nothing to merge; "
                   "--strategy pick moves main back to iris/2"]
    # Asked for by name, pick still moves it.
    assert nbmodel.merge("iris", "experiment", eval=data, strategy="pick").version == 2


@pytest.mark.slow
def test_merge_a_pytorch_head_with_a_sklearn_head(iris, kernel_env):
    """Before, a network head made the merge refuse; as a pickle, its exported graph would not
    store at all ("cannot pickle 'ConfigModuleInstance'"): it travels as its flavor's files."""
    torch = pytest.importorskip("torch")
    _commit(fit_iris(iris, 0.05), iris, message="base")
    nbmodel.branch("iris", "net")
    nbmodel.checkout("iris@net")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    xt = torch.tensor(iris["X_train"].to_numpy(), dtype=torch.float32)
    yt = torch.tensor(iris["y_train"].to_numpy())
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    _commit(net, iris, message="a network")
    v = nbmodel.merge("iris", "net", eval=(iris["X_test"], iris["y_test"]), strategy="average",
                      force=True)
    assert (v.parent, v.merge_parent) == ("iris/1", "iris/2") and v.metrics["accuracy"] > 0.8
    expected = [int(p) for p in nbmodel.load(v).predict(iris["X"])]
    env = {**kernel_env, "MLFLOW_TRACKING_URI": nbmodel.get_store().uri}
    env.pop("PYTHONPATH")
    out = subprocess.run([sys.executable, "-c", _PLAIN_LOAD, f"models:/iris/{v.version}"], env=env,
                         capture_output=True, text=True, timeout=300, cwd=Path.cwd())
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected


@pytest.mark.parametrize("name, parent, number", [
    ("iris", "iris/3", 3), ("iris", "iris/12", 12), ("iris", "wine/3", None), ("iris", "iris/x", None),
    ("iris", "iris/03", 3), ("iris", "models:/iris/3", 3), ("iris", "iris@production", None),
    ("iris", "", None), ("iris_2", "iris/3", None)])
def test_the_graph_reads_a_parent_as_a_reference_would(name: str, parent: str, number: int | None) -> None:
    from nbmodel.history import _parent_number
    from nbmodel.versions import Version

    assert _parent_number(Version(name, 5, parent=parent or None)) == number
