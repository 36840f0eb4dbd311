"""Monitoring's seams: metrics from nbmodel.metrics equal scikit-learn's per window, one display
mixin, an import graph that only points down, and the open alerts of every model."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nbmodel
import nbmodel.overview
from nbmodel.monitoring import monitor, record, record_labels

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nbmodel" / "monitoring"


def _day(d: int) -> str:
    return f"2026-03-{d:02d} 12:00"


@pytest.fixture
def model(commit_iris, iris):
    v = commit_iris(C=1.0)
    return v, nbmodel.load(v)


# -- metrics per window equal scikit-learn's on the raw rows of each window ----------------------
def test_classifier_window_metrics_equal_scikit_learn(model, iris):
    from sklearn.metrics import accuracy_score, f1_score

    v, clf = model
    rng = np.random.default_rng(0)
    rows = []
    for day in (1, 2, 3):
        X = iris["X_train"].sample(60, replace=True, random_state=day).reset_index(drop=True)
        y = iris["y_train"].sample(60, replace=True, random_state=day + 10).to_numpy().astype(float)
        y[rng.random(60) < 0.3] = np.nan  # some rows have no label yet
        pred = clf.predict(X)
        if day == 3:
            pred = np.zeros_like(pred)  # a class the truth may lack: F1's zero_division=0
        record("iris", X, pred, y_true=y, timestamp=_day(day))
        rows.append((pred, y))
    s = monitor("iris", window="1d").summary
    assert s.n_windows == 3
    for w, (pred, y) in enumerate(rows):
        has = ~np.isnan(y)
        truth = y[has].astype(int)
        assert s.metrics["labelled"][w] == has.sum()
        assert s.metrics["accuracy"][w] == pytest.approx(accuracy_score(truth, pred[has]))
        assert s.metrics["f1_macro"][w] == pytest.approx(
            f1_score(truth, pred[has], average="macro", zero_division=0))


def test_regressor_window_metrics_equal_scikit_learn(diabetes):
    from sklearn.linear_model import Ridge
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    d = diabetes
    reg = Ridge().fit(d["X_train"], d["y_train"])
    nbmodel.commit(reg, "diabetes", train=(d["X_train"], d["y_train"]))
    X, y = d["X_test"].reset_index(drop=True), d["y_test"].to_numpy()
    parts = np.array_split(np.arange(len(X)), 3)
    for day, idx in enumerate(parts, start=1):
        record("diabetes", X.iloc[idx], reg.predict(X.iloc[idx]), y_true=y[idx], timestamp=_day(day))
    s = monitor("diabetes", window="1d").summary
    assert s.n_windows == 3
    for w, idx in enumerate(parts):
        pred = reg.predict(X.iloc[idx])
        assert s.metrics["rmse"][w] == pytest.approx(np.sqrt(mean_squared_error(y[idx], pred)))
        assert s.metrics["mae"][w] == pytest.approx(mean_absolute_error(y[idx], pred))


def test_a_window_without_labels_has_no_quality(model, iris):
    v, clf = model
    X = iris["X_test"]
    record("iris", X, clf.predict(X), y_true=iris["y_test"], timestamp=_day(1))
    record("iris", X, clf.predict(X), timestamp=_day(2))
    s = monitor("iris", window="1d").summary
    assert np.isfinite(s.metrics["accuracy"][0]) and np.isnan(s.metrics["accuracy"][1])
    assert np.isnan(s.metrics["f1_macro"][1])


# -- labels a regressor cannot use ---------------------------------------------------------------
def test_regressor_labels_that_are_not_numbers_are_refused(diabetes):
    from sklearn.linear_model import Ridge

    d = diabetes
    reg = Ridge().fit(d["X_train"], d["y_train"])
    nbmodel.commit(reg, "diabetes", train=(d["X_train"], d["y_train"]))
    X = d["X_test"].iloc[:4]
    ids = ["a", "b", "c", "d"]
    record("diabetes", X, reg.predict(X), ids=ids, timestamp=_day(1))
    with pytest.raises(nbmodel.errors.BadData, match="numbers"):
        record_labels("diabetes", ids, ["high", "low", "high", "low"])
    with pytest.raises(nbmodel.errors.BadData, match="numbers"):
        record("diabetes", X, reg.predict(X), y_true=["high", "low", "high", "low"], timestamp=_day(1))
    s = monitor("diabetes", window="1d").summary  # nothing bad was written: monitoring goes on
    assert s.labelled == 0 and np.isnan(s.metrics["rmse"][0])


# -- one display mixin ---------------------------------------------------------------------------
def test_results_show_their_text_through_shown(model, iris):
    from IPython.lib.pretty import pretty

    from nbmodel.display import Shown

    v, clf = model
    X = iris["X_test"]
    rec = record("iris", X, clf.predict(X), timestamp=_day(1))
    rep = monitor("iris", window="1d", plots=False)
    for obj in (rec, rep):
        assert isinstance(obj, Shown)
        assert type(obj).__dict__.get("_repr_pretty_", Shown._repr_pretty_) is Shown._repr_pretty_  # no copy
        assert repr(obj) == str(obj) == pretty(obj)
    assert str(rec) == "recorded 38 predictions for iris/1"


# -- the import graph ----------------------------------------------------------------------------
def _imports(path: Path) -> set[str]:
    """The sibling modules a monitoring module imports, at module level or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module)
            else:
                out.update(a.name for a in node.names)
    return out


def test_monitoring_modules_import_without_a_circle():
    graph = {p.stem: _imports(p) - {"__init__"} for p in PACKAGE.glob("_*.py") if p.stem != "__init__"}
    seen: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(mod: str, path: list[str]) -> None:
        if seen.get(mod) == 1:
            raise AssertionError("import circle: " + " -> ".join([*path, mod]))
        if seen.get(mod) == 2:
            return
        seen[mod] = 1
        for dep in sorted(graph.get(mod, ())):
            visit(dep, [*path, mod])
        seen[mod] = 2

    for mod in sorted(graph):
        visit(mod, [])


def test_recording_is_the_write_path_only():
    from nbmodel.monitoring import _record

    assert not {"_traffic", "_stats", "_windows", "_monitor"} & _imports(PACKAGE / "_record.py")
    for read_side in ("traffic", "recorded", "Traffic"):
        assert not hasattr(_record, read_side)


def test_monitoring_never_reaches_up():
    above = ("serving", "widgets", "magics", "server", "cli", "history", "overview", "status")
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                assert (node.module or "").split(".")[0] not in above, f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("nbmodel.") for a in node.names), path.name


# -- open alerts of every model ------------------------------------------------------------------
def test_open_alerts_of_every_model(model, iris, diabetes):
    from sklearn.linear_model import Ridge

    v, clf = model
    assert nbmodel.monitoring.open_alerts() == []
    assert nbmodel.overview.alerts_section() is None  # no model uses alerts
    X = iris["X_test"]
    record("iris", X, clf.predict(X), timestamp=_day(1))
    monitor("iris", window="1d", alerts=["volume<100"])
    d = diabetes
    reg = Ridge().fit(d["X_train"], d["y_train"])
    nbmodel.commit(reg, "diabetes")
    record("diabetes", d["X_test"], reg.predict(d["X_test"]), timestamp=_day(1))
    monitor("diabetes", window="1d", alerts=["volume<1000"])
    every = nbmodel.monitoring.open_alerts()
    assert sorted((a.ref, a.rule) for a in every) == [("diabetes/1", "volume<1000"), ("iris/1", "volume<100")]
    title, head, rows = nbmodel.overview.alerts_section()
    assert title == "open alerts" and sorted(r[:2] for r in rows) == [
        ["diabetes/1", "volume<1000"], ["iris/1", "volume<100"]]
    monitor("iris", window="1d", alerts=[])  # rules removed: the iris alert closes
    assert [a.ref for a in nbmodel.monitoring.open_alerts()] == ["diabetes/1"]


def test_recorded_frame_still_reads_back(model, iris):
    v, clf = model
    X = iris["X_test"]
    record("iris", X, clf.predict(X), y_true=iris["y_test"], timestamp=_day(1))
    df = nbmodel.monitoring.recorded("iris", since="2026-03-01")
    assert len(df) == len(X) and df["y_true"].notna().all()
    assert isinstance(df["timestamp"].dtype, pd.DatetimeTZDtype)


# -- defects found on the way --------------------------------------------------------------------
def test_labels_given_later_as_floats_match_integer_predictions(model, iris):
    """Labels with a missing value among them arrive as floats (2.0); they are the class 2."""
    v, clf = model
    X, y = iris["X_test"], iris["y_test"].to_numpy()
    pred = clf.predict(X)
    ids = [f"r{i}" for i in range(len(X))]
    record("iris", X, pred, ids=ids, timestamp=_day(1))
    late = y.astype(float)
    late[:5] = np.nan  # not known yet
    record_labels("iris", ids, late)
    s = monitor("iris", window="1d").summary
    assert s.labelled == len(X) - 5
    assert s.metrics["accuracy"][0] == pytest.approx(np.mean(pred[5:] == y[5:]))
    df = nbmodel.monitoring.recorded("iris", labelled=True)
    assert df["y_true"].tolist() == y[5:].tolist()


def test_text_labels_already_stored_for_a_regressor_are_no_labels(diabetes):
    """Label files written before the check (text where numbers belong) do not break monitor()
    and do not count as labels of value 0."""
    from sklearn.linear_model import Ridge

    from nbmodel.monitoring._storage import LABELS, monitor_run

    d = diabetes
    reg = Ridge().fit(d["X_train"], d["y_train"])
    nbmodel.commit(reg, "diabetes", train=(d["X_train"], d["y_train"]))
    X, y = d["X_test"].iloc[:4], d["y_test"].to_numpy()[:4]
    pred = reg.predict(X)
    ids = ["a", "b", "c", "d"]
    record("diabetes", X, pred, ids=ids, timestamp=_day(1))
    monitor_run("diabetes").write(LABELS, {"ids": np.array(ids[:2]), "y": np.array(["high", "low"]),
                                           "ts": np.array([0])})
    record_labels("diabetes", ids[2:], y[2:])
    s = monitor("diabetes", window="1d").summary
    assert s.labelled == 2
    assert s.metrics["mae"][0] == pytest.approx(np.mean(np.abs(pred[2:] - y[2:])))
