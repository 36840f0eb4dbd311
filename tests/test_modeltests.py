"""Model tests: each kind of case passing and failing on purpose-built models, cases stored
with the version and inherited, results on the log and card, and the release gate."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pytest
from mlflow import MlflowClient

import nbmodel
from nbmodel import modeltests as mt


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    """Iris with an irrelevant column ``noise`` and a group column ``site``."""
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    X, y = load_iris(return_X_y=True, as_frame=True)
    rng = np.random.default_rng(0)
    X["noise"] = rng.normal(size=len(X))
    X["site"] = np.where(np.arange(len(X)) % 2 == 0, "north", "south")
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    return {"X_train": X_train, "X_test": X_test, "y_train": y_train, "y_test": y_test}


FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def _model(*, impute: bool = False, use_noise: bool = False) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    cols = FEATURES + (["noise"] if use_noise else [])
    steps = [ColumnTransformer([("num", "passthrough", cols)])]
    if impute:
        steps.append(SimpleImputer())
    return make_pipeline(*steps, LogisticRegression(max_iter=1000))


def _commit(d: dict[str, Any], name: str = "gate", **kw: Any) -> Any:
    X, y = d["X_train"], d["y_train"]
    if kw.pop("leak_noise", False):
        X = X.copy()
        X["noise"] = y + np.random.default_rng(1).normal(scale=0.01, size=len(y))
    model = _model(**kw).fit(X, y)
    return nbmodel.commit(model, name, eval=(d["X_test"], d["y_test"]))


def _result(report: Any, name: str) -> Any:
    return next(r for r in report.results if r.name == name)


# ---- each kind, passing and failing ---------------------------------------------------------------
def test_metric_overall_and_per_group(data):
    v = _commit(data)
    y_bad = data["y_test"].copy()
    south = (data["X_test"]["site"] == "south").to_numpy()
    y_bad[south] = (y_bad[south] + 1) % 3  # the model is wrong on every southern row
    mt.add_tests(v.ref, rules=["accuracy >= 0.9"], eval=(data["X_test"], data["y_test"]))
    mt.add_tests(v.ref, rules=["accuracy >= 0.8"], group="site", eval=(data["X_test"], y_bad))
    report = nbmodel.run_tests(v.ref)
    assert _result(report, "accuracy >= 0.9").passed
    per_group = _result(report, "accuracy >= 0.8 per site")
    assert not per_group.passed
    assert per_group.measured.endswith("(site=south)")
    assert report.failed == ["accuracy >= 0.8 per site"]
    assert "1/2 tests passed; failing: accuracy >= 0.8 per site" in str(report)


def _plain_commit(d: dict[str, Any], name: str = "plain") -> Any:
    """A model fitted on the features only: it refuses any other column."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=1000).fit(d["X_train"][FEATURES], d["y_train"])
    return nbmodel.commit(model, name, eval=(d["X_test"][FEATURES], d["y_test"]))


def test_per_group_rule_on_a_column_the_model_was_not_fitted_on(data):
    v = _plain_commit(data)
    X = data["X_test"][FEATURES + ["site"]]
    y_bad = data["y_test"].copy()
    south = (X["site"] == "south").to_numpy()
    y_bad[south] = (y_bad[south] + 1) % 3
    mt.add_tests(v.ref, rules=["accuracy >= 0.9"], group="site", eval=(X, data["y_test"]))
    mt.add_tests(v.ref, rules=["accuracy >= 0.8"], group="site", eval=(X, y_bad))
    report = nbmodel.run_tests(v.ref)
    good, bad = _result(report, "accuracy >= 0.9 per site"), _result(report, "accuracy >= 0.8 per site")
    assert good.passed and good.error == ""
    assert not bad.passed and bad.error == "" and bad.measured.endswith("(site=south)")


def test_per_group_rule_with_one_group_value_per_row(data, shell):
    import pandas as pd

    v = _plain_commit(data)
    X = data["X_test"][FEATURES]
    region = pd.Series(data["X_test"]["site"].to_numpy(), index=X.index, name="region")
    listed = mt.add_tests(v.ref, rules=["accuracy >= 0.9"], group=region, eval=(X, data["y_test"]))
    assert "accuracy >= 0.9 per region" in str(listed)
    assert _result(nbmodel.run_tests(v.ref), "accuracy >= 0.9 per region").passed
    with pytest.raises(mt.BadCase, match="3 values for 38 rows"):
        mt.add_tests(v.ref, rules=["accuracy >= 0.5"], group=region.head(3), eval=(X, data["y_test"]))
    shell.ns.update({"X_f": X, "y_test": data["y_test"], "zone": region.rename("zone")})
    added = shell.run(f'%model_test {v.ref} --add "accuracy >= 0.5" --group zone --eval X_f y_test')
    assert "added 'accuracy >= 0.5 per zone'" in str(added)
    assert len(nbmodel.list_tests(v.ref)) == 2


def test_a_continuous_grouping_column_is_refused_and_nothing_is_stored(data):
    v = _plain_commit(data)
    for col in ("petal length (cm)", "noise"):  # 22 and 38 distinct values in 38 rows
        with pytest.raises(mt.BadCase, match=r"distinct values in 38 rows; group by a column with a few"):
            mt.add_tests(v.ref, rules=["accuracy >= 0.9"], group=col,
                         eval=(data["X_test"], data["y_test"]))
    assert len(nbmodel.list_tests(v.ref)) == 0


def test_expected_rows_show_the_first_failing_rows(data):
    v = _commit(data)
    X_edge, y_edge = data["X_test"].head(4), data["y_test"].head(4)
    mt.add_tests(v.ref, rows=(X_edge, y_edge))
    assert nbmodel.run_tests(v.ref).ok
    wrong = y_edge.copy()
    wrong.iloc[1] = (wrong.iloc[1] + 1) % 3
    mt.remove_test(v.ref, "expected rows (4)")
    mt.add_tests(v.ref, rows=(X_edge, wrong))
    report = nbmodel.run_tests(v.ref)
    r = report.results[0]
    assert not r.passed and r.measured == "3 of 4 rows as expected"
    assert [row["expected"] for row in r.rows] == [int(wrong.iloc[1])]
    assert "first failing rows of expected rows (4)" in str(report)


def test_invariance_catches_a_model_that_uses_an_irrelevant_column(data):
    leaky = _commit(data, "leaky", use_noise=True, leak_noise=True)
    clean = _commit(data, "clean")
    for v in (leaky, clean):
        mt.add_tests(v.ref, invariant=["noise"], eval=(data["X_test"], data["y_test"]))
    assert not nbmodel.run_tests(leaky.ref).ok
    assert nbmodel.run_tests(clean.ref).ok


def test_direction_for_a_regressor():
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    v = nbmodel.commit(LinearRegression().fit(X, y), "sugar", eval=(X, y))
    mt.add_tests(v.ref, increasing=["bmi", "s1"], eval=(X, y))  # s1 has a negative coefficient
    report = nbmodel.run_tests(v.ref)
    assert _result(report, "increasing in bmi").passed
    s1 = _result(report, "increasing in s1")
    assert not s1.passed and s1.measured.startswith(f"{len(X)} of {len(X)} fell")


def test_robustness_a_model_that_breaks_on_nan_and_one_that_does_not(data):
    plain = _commit(data, "plain")
    imputed = _commit(data, "imputed", impute=True)
    kinds = ["nan", "missing-column", "wrong-type", "out-of-range", "empty"]
    for v in (plain, imputed):
        mt.add_tests(v.ref, robust=kinds, eval=(data["X_test"], data["y_test"]))
    report = nbmodel.run_tests(plain.ref)
    assert report.failed == ["nan answered"]
    assert "Input X contains NaN" in _result(report, "nan answered").measured
    assert nbmodel.run_tests(imputed.ref).ok
    mt.add_tests(imputed.ref, robust=["empty=answered"], eval=(data["X_test"], data["y_test"]))
    assert nbmodel.run_tests(imputed.ref).failed == ["empty answered"]


def test_a_python_function_is_stored_by_source_and_run(data):
    v = _commit(data)

    @nbmodel.test_case("predicts every class", ref=v.ref, eval=(data["X_test"], data["y_test"]))
    def every_class(model, data):
        assert set(model.predict(data[0])) == {0, 1, 2}, "a class is never predicted"

    @nbmodel.test_case("never class 2")
    def never_two(model, data):
        assert 2 not in set(model.predict(data[0])), "class 2 is predicted"

    mt.add_tests(v.ref, rules=["never class 2"], eval=(data["X_test"], data["y_test"]))
    listed = nbmodel.list_tests(v.ref)
    assert [c.name for c in listed] == ["predicts every class", "never class 2"]
    assert listed.cases[0].spec["source"].startswith("def every_class(model, data):")
    report = nbmodel.run_tests(v.ref)
    assert report.failed == ["never class 2"]
    assert "class 2 is predicted" in _result(report, "never class 2").measured


def test_bad_declarations_store_nothing(data):
    v = _commit(data)
    with pytest.raises(mt.BadCase, match="METRIC OP NUMBER"):
        mt.add_tests(v.ref, rules=["accuracy is high"], eval=(data["X_test"], data["y_test"]))
    with pytest.raises(mt.BadCase, match="no metric 'acc'"):
        mt.add_tests(v.ref, rules=["acc >= 0.9"], eval=(data["X_test"], data["y_test"]))
    with pytest.raises(mt.BadCase, match="needs data"):
        mt.add_tests(v.ref, robust=["nan"])
    with pytest.raises(mt.BadCase, match="no column 'weight'"):
        mt.add_tests(v.ref, invariant=["weight"], eval=(data["X_test"], data["y_test"]))
    with pytest.raises(mt.BadCase, match="no abnormal input"):
        mt.add_tests(v.ref, robust=["gibberish"], eval=(data["X_test"], data["y_test"]))
    with pytest.raises(mt.BadCase, match="has no test cases"):
        nbmodel.run_tests(v.ref)
    assert len(nbmodel.list_tests(v.ref)) == 0


def test_large_data_is_referenced_by_fingerprint(data, monkeypatch):
    from nbmodel.modeltests import _cases

    monkeypatch.setattr(_cases, "MAX_STORED_CELLS", 10)
    v = _commit(data)
    pair = (data["X_test"], data["y_test"])
    mt.add_tests(v.ref, rules=["accuracy >= 0.9"], eval=pair)
    assert "by fingerprint" in str(nbmodel.list_tests(v.ref))
    missing = nbmodel.run_tests(v.ref, record=False)
    assert not missing.ok and "give the same data with --eval" in missing.results[0].error
    assert nbmodel.run_tests(v.ref, eval=pair).ok


# ---- stored with the version, inherited, shown -------------------------------------------------
def test_children_inherit_cases_not_results_and_the_log_shows_them(data):
    v1 = _commit(data)
    mt.add_tests(v1.ref, rules=["accuracy >= 0.9"], robust=["nan"], eval=(data["X_test"], data["y_test"]))
    nbmodel.run_tests(v1.ref)
    v2 = _commit(data, impute=True)
    assert v2.parent == v1.ref
    assert [c.name for c in nbmodel.list_tests(v2.ref)] == ["accuracy >= 0.9", "nan answered"]
    assert re.search(r"\n  tests +2 cases, never run\n", str(nbmodel.show(v2.ref)))
    nbmodel.run_tests(v2.ref)
    assert re.search(r"\n  tests +2/2 passed\n", str(nbmodel.show(v2.ref)))
    history = nbmodel.log("gate")
    assert [v.to_dict()["tests"] for v in history] == [
        {"passed": 2, "total": 2, "current": True}, {"passed": 1, "total": 2, "current": True}]
    assert "1/2 passed" in str(history) and "2/2 passed" in str(history)
    mt.add_tests(v2.ref, robust=["empty"], eval=(data["X_test"], data["y_test"]))
    assert nbmodel.show(v2.ref).to_dict()["tests"] == {"passed": 2, "total": 2, "current": False}
    plain = _commit(data, "untested")
    assert nbmodel.show(plain.ref).to_dict()["tests"] is None


def test_results_are_recorded_as_a_run(data):
    v = _commit(data)
    mt.add_tests(v.ref, rules=["accuracy <= 0.5"], eval=(data["X_test"], data["y_test"]))
    nbmodel.run_tests(v.ref)
    tags = MlflowClient().get_model_version("gate", str(v.version)).tags
    result = json.loads(tags["nbmodel.test_results"])
    assert (result["passed"], result["total"], result["failed"]) == (0, 1, ["accuracy <= 0.5"])
    run = MlflowClient().get_run(result["run"])
    assert run.data.metrics == {"tests_passed": 0.0, "tests_total": 1.0}
    assert run.info.status == "FAILED"


def test_compare_shows_each_versions_results(data):
    v1 = _commit(data)
    mt.add_tests(v1.ref, robust=["nan"], eval=(data["X_test"], data["y_test"]))
    nbmodel.run_tests(v1.ref)
    v2 = _commit(data, impute=True)
    nbmodel.run_tests(v2.ref)
    c = nbmodel.compare([v1.ref, v2.ref], data["X_test"], data["y_test"], plots=False)
    line = next(ln for ln in str(c).splitlines() if ln.startswith("model tests"))
    assert line.split()[2:] == ["0/1", "passed", "1/1", "passed"]
    assert c.to_dict()["model_tests"][v2.ref] == {"passed": 1, "total": 1, "current": True}


# ---- the gate ---------------------------------------------------------------------------------------
def _trail(name: str) -> list[dict[str, Any]]:
    tags = MlflowClient().get_registered_model(name).tags
    return [json.loads(v) for k, v in sorted(tags.items()) if k.startswith("nbmodel.alias_log.")]


@pytest.fixture
def gated(data, monkeypatch):
    """gate/1 passes its tests and holds production (protected); gate/2 fails its NaN case."""
    monkeypatch.setenv("NBMODEL_USER", "ana")
    v1 = _commit(data, impute=True)
    mt.add_tests(v1.ref, robust=["nan"], eval=(data["X_test"], data["y_test"]))
    nbmodel.run_tests(v1.ref)
    nbmodel.alias(v1.ref, "production")
    from nbmodel.aliases import protect

    protect("gate", "production", "ana")
    v2 = nbmodel.commit(_model().fit(data["X_train"], data["y_train"]), "gate")
    return v1, v2


def test_gate_refuses_a_version_never_tested_then_failing_and_force_overrides(gated):
    v1, v2 = gated
    with pytest.raises(mt.GateRefused, match="not yet run on it"):
        nbmodel.alias(v2.ref, "production")
    nbmodel.run_tests(v2.ref)
    with pytest.raises(mt.GateRefused, match="fails its tests: nan answered; run %model_test gate/2"):
        nbmodel.alias(v2.ref, "production")
    assert nbmodel.resolve("gate@production").version == 1
    assert _trail("gate")[-1]["kind"] == "refused"
    assert "nan answered" in _trail("gate")[-1]["why"]
    move = nbmodel.alias(v2.ref, "production", message="hotfix", force=True)
    assert move.to_version == 2
    last = _trail("gate")[-1]
    assert last["kind"] == "set" and last["to"] == 2
    assert last["why"] == "hotfix [--force: gate/2 fails its tests: nan answered]"
    # an unprotected alias is not gated
    assert nbmodel.alias(v2.ref, "staging").to_version == 2


def test_rollback_onto_a_protected_alias_is_gated(gated, data):
    v1, v2 = gated
    nbmodel.run_tests(v2.ref)
    nbmodel.alias(v2.ref, "production", force=True)
    nbmodel.run_tests(v1.ref)  # still passes: rollback to it is allowed
    assert nbmodel.rollback("gate").to_version == 1
    nbmodel.alias(v2.ref, "production", force=True)
    mt.add_tests(v1.ref, robust=["empty=answered"], eval=(data["X_test"], data["y_test"]))
    with pytest.raises(mt.GateRefused, match="gate/1 has 2 test cases not yet run"):
        nbmodel.rollback("gate")
    assert nbmodel.rollback("gate", force=True).to_version == 1


def test_deploy_refuses_before_anything_starts(gated):
    from nbmodel import serving

    v1, v2 = gated
    nbmodel.run_tests(v2.ref)
    with pytest.raises(mt.GateRefused, match="fails its tests: nan answered"):
        serving.deploy(v2.ref, alias="canary")
    assert len(serving.deployments()) == 0
    assert "canary" not in MlflowClient().get_registered_model("gate").aliases
    refused = _trail("gate")[-1]
    assert refused["kind"] == "refused" and refused["alias"] == "canary"
    assert refused["why"].startswith("refused deploy to gate/2 by ana")


def test_if_better_combines_with_the_gate(gated, data):
    from nbmodel import serving

    v1, v2 = gated
    nbmodel.run_tests(v2.ref)
    # gate/2 scores as well as gate/1 on clean data, so --if-better alone would let it through
    with pytest.raises(mt.GateRefused, match="fails its tests: nan answered"):
        serving.deploy(v2.ref, if_better=(data["X_test"], data["y_test"]))
    assert len(serving.deployments()) == 0
    assert nbmodel.resolve("gate@production").version == 1
    assert _trail("gate")[-1]["kind"] == "refused"


# ---- the magic and the CLI ----------------------------------------------------------------------------
def test_magic_adds_lists_runs_and_removes(shell, data):
    shell.ns.update(data)
    shell.ns["clf"] = _model().fit(data["X_train"], data["y_train"])
    shell.run("%model_commit clf -n gate")
    added = shell.run('%model_test gate --add "accuracy >= 0.9" --robust nan --invariant noise '
                      "--eval X_test y_test")
    assert "added 'accuracy >= 0.9', 'invariant to noise', 'nan answered' to gate/1" in str(added)
    assert len(shell.run("%model_test gate/1 --list")) == 3
    report = shell.run("%model_test gate/1")
    assert report.verdict == "gate/1: 2/3 tests passed; failing: nan answered"
    html = report._repr_html_()
    assert "FAIL" in html and "nan answered" in html
    assert len(shell.run('%model_test gate/1 --remove "nan answered"')) == 2
    err = shell.fails("%model_test gate/1 --group site")
    assert "--group goes with --add" in str(err)
    err = shell.fails('%model_test gate/1 --add "f1 >= 2" --eval X_test y_test')
    assert "no metric 'f1'" in str(err)


def test_cli_exits_1_when_a_case_fails(data, capsys):
    from nbmodel.cli import main

    v = _commit(data)
    mt.add_tests(v.ref, robust=["nan"], eval=(data["X_test"], data["y_test"]))
    with pytest.raises(SystemExit) as exc:
        main(["test", v.ref])
    assert exc.value.code == 1
    assert "gate/1: 0/1 tests passed; failing: nan answered" in capsys.readouterr().out
    assert main(["test", v.ref, "--list"]) == 0


def test_a_canary_refuses_a_candidate_whose_tests_fail_or_never_ran(data):
    """The canary asks the candidate's tests before anything else, as the gate does."""
    from nbmodel.errors import DeployError

    _commit(data)
    v = _commit(data)
    mt.add_tests(v.ref, rules=["accuracy <= 0.5"], eval=(data["X_test"], data["y_test"]))
    with pytest.raises(DeployError, match="not yet run"):
        nbmodel.canary(v.ref)
    mt.run_tests(v.ref)
    with pytest.raises(DeployError, match="fails its tests: accuracy <= 0.5"):
        nbmodel.canary(v.ref)
