"""Metrics per group equal fairlearn's MetricFrame; groups in explain, compare and monitor;
alert rules that name a group."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import nbmodel
from nbmodel.errors import BadData
from nbmodel.explain import explain, group_metrics

fairlearn = pytest.importorskip("fairlearn")  # a test dependency (the "test" extra)


def unfair(n: int = 1200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A binary task where the model's predictions are wrong far more often for sex=F, and a
    small group X gets bootstrap intervals."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M", "X"], size=n, p=[0.45, 0.5, 0.05])
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "sex": sex})
    y = (X["a"] + 0.5 * X["b"] > 0).astype(int).to_numpy()
    pred = y.copy()
    flip = rng.random(n) < np.where(sex == "F", 0.3, 0.05)
    pred[flip] = 1 - pred[flip]
    return X, y, pred


def metric_frame(y, pred, groups, metrics):
    from fairlearn.metrics import MetricFrame

    return MetricFrame(metrics=metrics, y_true=y, y_pred=pred, sensitive_features=groups)


def test_classifier_group_metrics_equal_metricframe():
    from fairlearn.metrics import (
        demographic_parity_difference,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        f1_score,
        precision_score,
        recall_score,
    )

    X, y, pred = unfair()
    report = group_metrics(y, pred, X["sex"], task="classifier", column="sex")
    mf = metric_frame(y, pred, X["sex"], {
        "accuracy": accuracy_score, "balanced_accuracy": balanced_accuracy_score,
        "precision_macro": lambda a, b: precision_score(a, b, average="macro", zero_division=0),
        "recall_macro": lambda a, b: recall_score(a, b, average="macro", zero_division=0),
        "f1_macro": lambda a, b: f1_score(a, b, average="macro", zero_division=0),
        "selection_rate": selection_rate, "true_positive_rate": true_positive_rate,
        "false_positive_rate": false_positive_rate,
    })
    assert report.groups == ["F", "M", "X"]
    assert report.counts == [int((X["sex"] == g).sum()) for g in report.groups]
    for metric in mf.by_group.columns:
        for g in report.groups:
            assert report.value(metric, g) == pytest.approx(mf.by_group.loc[g, metric], abs=1e-9)
        assert report.overall[metric] == pytest.approx(mf.overall[metric], abs=1e-9)
        assert report.difference(metric) == pytest.approx(mf.difference()[metric], abs=1e-9)
        assert report.ratio(metric) == pytest.approx(mf.ratio()[metric], abs=1e-9)
    assert report.parity["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y, pred, sensitive_features=X["sex"]), abs=1e-9)
    assert report.parity["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y, pred, sensitive_features=X["sex"]), abs=1e-9)
    # the planted unfair group is the worst, and only the small group gets an interval
    assert report.worst == "F"
    assert report.intervals[0] is None and report.intervals[1] is None
    lo, hi = report.intervals[2]
    assert lo <= report.value("accuracy", "X") <= hi
    text = str(report)
    assert "F (worst)" in text and "largest difference" in text and "smallest ratio" in text
    assert "demographic parity difference" in text
    assert report.to_dict()["worst"] == "F"


def test_multiclass_and_regressor_group_metrics_equal_metricframe():
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        max_error,
        mean_absolute_error,
        r2_score,
        root_mean_squared_error,
    )

    rng = np.random.default_rng(3)
    g = rng.choice(["a", "b", "c"], size=500)
    y = rng.integers(0, 3, size=500)
    pred = np.where(rng.random(500) < 0.7, y, rng.integers(0, 3, size=500))
    rep = group_metrics(y, pred, g, task="classifier")
    mf = metric_frame(y, pred, g, {"accuracy": accuracy_score,
                                   "f1_macro": lambda a, b: f1_score(a, b, average="macro")})
    for m in ("accuracy", "f1_macro"):
        for k in rep.groups:
            assert rep.value(m, k) == pytest.approx(mf.by_group.loc[k, m], abs=1e-9)
    assert not rep.parity  # parity differences are for binary classifiers

    yr = rng.normal(size=500) * 10
    pr = yr + rng.normal(size=500) * np.where(g == "c", 5, 1)
    rep = group_metrics(yr, pr, g, task="regressor")
    mf = metric_frame(yr, pr, g, {"rmse": root_mean_squared_error, "mae": mean_absolute_error,
                                  "r2": r2_score, "max_error": max_error})
    for m in mf.by_group.columns:
        for k in rep.groups:
            assert rep.value(m, k) == pytest.approx(mf.by_group.loc[k, m], abs=1e-9)
        assert rep.difference(m) == pytest.approx(mf.difference()[m], abs=1e-9)
        assert rep.ratio(m) == pytest.approx(mf.ratio()[m], abs=1e-9)
    assert rep.worst == "c"  # the largest RMSE


def test_groups_must_give_one_value_per_row():
    with pytest.raises(BadData, match="one value per row"):
        group_metrics([0, 1], [0, 1], ["a"], task="classifier")


def _committed(name: str = "fair"):
    from sklearn.linear_model import LogisticRegression

    X, y, _ = unfair()
    features = X[["a", "b"]]
    # the model is unfair to F: its training labels for F are noisy
    rng = np.random.default_rng(1)
    y_train = y.copy()
    noisy = (X["sex"].to_numpy() == "F") & (rng.random(len(y)) < 0.35)
    y_train[noisy] = 1 - y_train[noisy]
    flip = X["sex"].to_numpy() == "F"
    Xf = features.copy()
    Xf.loc[flip, "a"] = -Xf.loc[flip, "a"]  # for F the model sees a mirrored feature
    clf = LogisticRegression().fit(features, y)
    nbmodel.commit(clf, name, eval=(features, y))
    return clf, Xf.assign(sex=X["sex"]), y


def test_explain_groups_by_a_column_of_x_or_a_series(isolated_store):
    clf, X, y = _committed()
    by_col = explain("fair", X, y, groups="sex", shap=False)
    assert by_col.groups is not None and by_col.groups.worst == "F"
    assert by_col.groups.value("accuracy", "F") < 0.7 < by_col.groups.value("accuracy", "M")
    # the column was dropped before predicting: the model was not fitted on it
    assert by_col.importance.features == ["a", "b"] or set(by_col.importance.features) == {"a", "b"}
    series = explain("fair", X[["a", "b"]], y, groups=X["sex"], shap=False)
    assert series.groups.to_dict() == by_col.groups.to_dict()
    assert "by group (sex):" in str(series)


@pytest.mark.slow
def test_compare_shows_groups_and_importance_side_by_side(isolated_store):
    from sklearn.tree import DecisionTreeClassifier

    clf, X, y = _committed()
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X[["a", "b"]], y)
    nbmodel.commit(tree, "fair", eval=(X[["a", "b"]], y))
    c = nbmodel.compare(["fair/1", "fair/2"], X, y, groups="sex", plots=False, progress=False)
    assert c.groups is not None and [r.worst for r in c.groups.reports] == ["F", "F"]
    assert c.importance is not None and c.importance.refs == ["fair/1", "fair/2"]
    text = str(c)
    assert "accuracy by group (sex):" in text
    f_row = next(line for line in text.splitlines() if line.startswith("F "))
    assert f_row.count("(worst)") == 2
    assert "importance (rank, drop when shuffled" in text
    assert c.to_dict()["groups"]["reports"][0]["worst"] == "F"
    with pytest.raises(BadData, match="no column 'age'"):
        nbmodel.compare(["fair/1", "fair/2"], X, y, groups="age", plots=False, progress=False)


def _day(d: int) -> str:
    return f"2026-03-0{d} 12:00"


@pytest.fixture
def monitored(isolated_store):
    """A model that uses the column ``female`` (0/1); its predictions recorded over three days
    with labels, wrong far more often for female=1 on day 3."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(5)
    n = 400
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                      "female": rng.integers(0, 2, size=n).astype(float)})
    y = (X["a"] + 0.5 * X["b"] > 0).astype(int).to_numpy()
    clf = LogisticRegression().fit(X, y)
    nbmodel.commit(clf, "loans", eval=(X, y), train=(X, y))
    for day in (1, 2, 3):
        pred = y.copy()
        bad = (X["female"].to_numpy() == 1) & (rng.random(n) < (0.3 if day == 3 else 0.02))
        pred[bad] = 1 - pred[bad]
        nbmodel.record("loans", X, pred, y_true=y, timestamp=_day(day))
    return X, y


@pytest.mark.slow
def test_monitor_groups_and_group_alerts_fire(monitored):
    rep = nbmodel.monitor("loans", window="1d", groups="female", plots=False,
                          alerts=["accuracy[female=1]<0.85", "accuracy_gap>0.1", "accuracy[female=0]<0.85",
                                  "demographic_parity>0.9"])
    assert rep.groups is not None and rep.groups.worst == "1.0"
    fired = {(f.rule.text, f.window) for f in rep.fired}
    assert fired == {("accuracy[female=1]<0.85", 2), ("accuracy_gap[female]>0.1", 2)}
    assert sorted(a.rule for a in rep.open) == ["accuracy[female=1]<0.85", "accuracy_gap[female]>0.1"]
    text = str(rep)
    assert "by group (female):" in text and "alerts: 2 open" in text
    # the rules were saved with their column and fire again without --groups
    again = nbmodel.monitor("loans", window="1d", plots=False)
    assert sorted(a.rule for a in again.open) == ["accuracy[female=1]<0.85", "accuracy_gap[female]>0.1"]


def test_group_rules_are_read_and_refused_clearly(monitored):
    from nbmodel.monitoring import BadAlert, parse_rule

    r = parse_rule("accuracy[sex=F]<0.85")
    assert (r.metric, r.feature, r.threshold) == ("accuracy", "sex=F", 0.85)
    assert parse_rule("f1_macro_ratio[sex] < 0.8").metric == "f1_macro_ratio"
    with pytest.raises(BadAlert, match="name their column"):
        nbmodel.monitor("loans", alerts=["accuracy_gap>0.05"], plots=False)
    with pytest.raises(BadAlert, match="no column 'sex'"):
        nbmodel.monitor("loans", alerts=["accuracy[sex=F]<0.85"], plots=False)
    with pytest.raises(BadAlert, match="for regressors"):
        nbmodel.monitor("loans", alerts=["rmse[female=1]>3"], plots=False)
    with pytest.raises(BadAlert, match="unknown metric"):
        parse_rule("happiness_gap>0.1")


@pytest.mark.slow
def test_magics_take_groups(monitored, shell):
    X, y = monitored
    shell.ns.update({"Xl": X, "yl": y, "who": X["female"]})
    e = shell.run("%model_explain loans --eval Xl yl --groups female --no-shap --no-plots")
    assert e.groups.column == "female" and not e.figures
    e2 = shell.run("%model_explain loans --eval Xl yl --groups who --no-shap --no-plots")
    assert e2.groups.to_dict() == e.groups.to_dict()
    m = shell.run('%model_monitor loans --window 1d --groups female --no-plots')
    assert m.groups is not None
    err = shell.fails("%model_explain loans --groups female")
    assert "need the data" in str(err)


def test_side_by_side_lists_every_feature_of_a_few_and_the_top_of_many():
    from nbmodel.explain import Importance, ImportanceSideBySide

    def imp(order: list[str]) -> Importance:
        n = len(order)
        return Importance(order, [float(n - i) for i in range(n)], [0.0] * n, "accuracy", 100, 100)

    few = [f"f{i}" for i in range(15)]
    text = str(ImportanceSideBySide(["m/1", "m/2"], [imp(few), imp(few[::-1])]))
    assert all(f"\n{f} " in text for f in few) and "more features" not in text
    many = [f"f{i}" for i in range(30)]
    side = ImportanceSideBySide(["m/1", "m/2"], [imp(many), imp(many[10:] + many[:10])])
    text, html = str(side), side._repr_html_()
    shown = [f for f in many if f"\n{f} " in text]
    assert shown == many[:20]  # top 10 of m/1 (f0-f9) and of m/2 (f10-f19)
    assert "and 10 more features, none in any version's top 10" in text
    assert "and 10 more features" in html
    assert len(side.to_dict()["importance"][0]["features"]) == 30
