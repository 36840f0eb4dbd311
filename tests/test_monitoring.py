"""Monitoring: record, labels later, windows, drift, alerts, callbacks, bad input, restarts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nbmodel
import nbmodel.overview
from nbmodel.errors import BadData, NbmodelWarning
from nbmodel.monitoring import BadAlert, monitor, record, record_labels
from nbmodel.monitoring._storage import BATCHES, monitor_run

ROOT = Path(__file__).resolve().parents[1]
PETAL = "petal length (cm)"


def _day(d: int) -> str:
    return f"2026-03-{d:02d} 12:00"


def _batch_files(name: str = "iris", version: int = 1) -> int:
    return len(monitor_run(name).list(f"{BATCHES}/v{version}"))


@pytest.fixture
def model(commit_iris, iris):
    v = commit_iris(C=1.0)
    clf = nbmodel.load(v)
    return v, clf


def _shifted(iris, shift: float, seed: int, n: int = 120) -> pd.DataFrame:
    X = iris["X_train"].sample(n, replace=True, random_state=seed).reset_index(drop=True)
    X[PETAL] = X[PETAL] + shift
    return X


# -- recording and the summary -------------------------------------------------------------------
def test_record_then_summary_sees_the_shift(model, iris):
    v, clf = model
    for day, shift in ((1, 0.0), (2, 0.0), (3, 2.5)):
        X = _shifted(iris, shift, seed=day)
        r = record("iris", X, clf.predict(X), timestamp=_day(day))
        assert r.rows == 120 and r.ref == "iris/1"
    rep = monitor("iris", window="1d")
    s = rep.summary
    assert s.labels() == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert s.metrics["volume"].tolist() == [120, 120, 120]
    j = s.features.index(PETAL)
    assert s.psi[0, j] < 0.25 and s.psi[1, j] < 0.25
    assert s.psi[2, j] > 0.25  # a major shift, in the direction we made it
    assert s.ks[2, j] > s.ks[0, j] + 0.3
    assert s.pvalue[2, j] < 1e-6 < s.pvalue[0, j]
    # the untouched features stay quiet
    others = [k for k, f in enumerate(s.features) if f != PETAL]
    assert np.all(s.psi[2, others] < 0.25)
    assert s.metrics["prediction_psi"][2] > s.metrics["prediction_psi"][0]
    assert PETAL in rep.most_drifted()
    text = str(rep)
    assert "iris/1: 360 predictions in 3 windows of 1d" in text
    assert "major shift" in text


def test_psi_and_ks_match_a_direct_computation(model, iris):
    v, clf = model
    X = _shifted(iris, 1.0, seed=7, n=300)
    record("iris/1", X, clf.predict(X), timestamp=_day(1))
    s = monitor("iris/1", window="1d").summary
    prof = nbmodel.monitoring._schema.schema("iris", 1).profile["features"][PETAL]
    edges, ref = np.asarray(prof["edges"]), np.asarray(prof["freq"])
    cur = np.bincount(np.searchsorted(edges, X[PETAL].to_numpy(), side="right"), minlength=len(ref)) / len(X)
    c, r = np.clip(cur, 1e-4, None), np.clip(ref, 1e-4, None)
    j = s.features.index(PETAL)
    assert s.psi[0, j] == pytest.approx(np.sum((c - r) * np.log(c / r)))
    assert s.ks[0, j] == pytest.approx(np.max(np.abs(np.cumsum(cur) - np.cumsum(ref))))


def test_windows_by_time_rows_and_auto(model, iris):
    v, clf = model
    X = iris["X_test"]
    start = pd.Timestamp("2026-03-01", tz="UTC")
    ts = [start + pd.Timedelta(minutes=10 * i) for i in range(len(X))]  # 38 rows over ~6 h
    record("iris", X, clf.predict(X), timestamp=ts)
    assert monitor("iris", window="1h").summary.metrics["volume"].tolist() == [6, 6, 6, 6, 6, 6, 2]
    rows = monitor("iris", window="10").summary
    assert rows.metrics["volume"].tolist() == [10, 10, 10, 8]
    auto = monitor("iris").summary
    assert auto.window.text == "15m" and auto.n_windows <= 30
    since = monitor("iris", window="1h", since="2026-03-01 03:00").summary
    assert since.metrics["volume"].sum() == 20


def test_labels_later_join_by_id(model, iris):
    v, clf = model
    X, y = iris["X_test"], iris["y_test"].to_numpy()
    pred = clf.predict(X)
    ids = [f"req-{i}" for i in range(len(X))]
    record("iris", X, pred, ids=ids, timestamp=_day(1))
    s = monitor("iris", window="1d").summary
    assert s.labelled == 0 and np.isnan(s.metrics["accuracy"][0])
    record_labels("iris", ids[:20], y[:20])
    record_labels("iris", ids[20:], y[20:])
    s = monitor("iris", window="1d").summary
    assert s.labelled == len(X)
    from sklearn.metrics import accuracy_score, f1_score

    assert s.metrics["accuracy"][0] == pytest.approx(accuracy_score(y, pred))
    assert s.metrics["f1_macro"][0] == pytest.approx(f1_score(y, pred, average="macro"))
    # a later label corrects an earlier one
    wrong = (y[:1] + 1) % 3
    record_labels("iris", ids[:1], wrong)
    s = monitor("iris", window="1d").summary
    assert s.metrics["accuracy"][0] == pytest.approx(accuracy_score(np.r_[wrong, y[1:]], pred))
    df = nbmodel.monitoring.recorded("iris", labelled=True)
    assert len(df) == len(X) and list(df.columns[:4]) == list(X.columns)


def test_regressor_rmse_mae_and_prediction_drift(diabetes):
    from sklearn.linear_model import Ridge
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    d = diabetes
    reg = Ridge().fit(d["X_train"], d["y_train"])
    nbmodel.commit(reg, "diabetes", train=(d["X_train"], d["y_train"]))
    X, y = d["X_test"], d["y_test"].to_numpy()
    pred = reg.predict(X)
    record("diabetes", X, pred, y_true=y, timestamp=_day(1))
    s = monitor("diabetes", window="1d").summary
    assert s.task == "regressor"
    assert s.metrics["rmse"][0] == pytest.approx(np.sqrt(mean_squared_error(y, pred)))
    assert s.metrics["mae"][0] == pytest.approx(mean_absolute_error(y, pred))
    # the commit recorded the training predictions' distribution: the reference for a
    # regressor's prediction drift; held-out data from the same source barely drifts
    psi = s.metrics["prediction_psi"][0]
    assert np.isfinite(psi) and 0 <= psi < 0.5
    # sex is numeric with two values: it drifts as a category, tested with chi-square
    j = s.features.index("sex")
    assert s.kinds[j] == "categorical" and np.isnan(s.ks[0, j]) and 0 <= s.pvalue[0, j] <= 1
    with pytest.raises(BadAlert, match="for classifiers"):
        monitor("diabetes", alerts=["accuracy<0.9"])


# -- alerts -----------------------------------------------------------------------------------
def _three_days(clf, iris):
    for day, shift in ((1, 0.0), (2, 3.0), (3, 3.0)):
        X = _shifted(iris, shift, seed=day)
        y = iris["y_train"].sample(120, replace=True, random_state=day).to_numpy()
        labels = y if shift == 0 else clf.predict(_shifted(iris, 0, seed=day))
        record("iris", X, clf.predict(X), y_true=labels, timestamp=_day(day))


def test_alerts_fire_are_stored_and_clear(model, iris):
    v, clf = model
    for day, shift in ((1, 0.0), (2, 3.0)):
        X = _shifted(iris, shift, seed=day)
        record("iris", X, clf.predict(X), timestamp=_day(day))
    rep = monitor("iris", window="1d", alerts=["psi>0.2", f"psi[{PETAL}]>0.2", "volume<10"])
    assert {a.rule for a in rep.open} == {"psi>0.2", f"psi[{PETAL}]>0.2"}
    a = next(a for a in rep.open if a.rule == "psi>0.2")
    assert a.feature == PETAL and a.window == "2026-03-02" and a.value > 0.2 and a.ref == "iris/1"
    assert [f.window for f in rep.fired if f.rule.text == "psi>0.2"] == [1]
    # kept in the store: another "kernel" (cleared caches) and %model_status see them
    nbmodel.monitoring.clear_caches()
    assert {a.rule for a in nbmodel.monitoring.open_alerts("iris")} == {"psi>0.2", f"psi[{PETAL}]>0.2"}
    status = str(nbmodel.status())
    assert "open alerts" in status and f"psi[{PETAL}]>0.2" in status
    # saved rules are checked again without --alert; a calm newer window clears the alerts
    X = _shifted(iris, 0.0, seed=4, n=300)
    record("iris", X, clf.predict(X), timestamp=_day(4))
    rep = monitor("iris", window="1d")
    assert [r.text for r in rep.rules] == ["psi>0.2", f"psi[{PETAL}]>0.2", "volume<10"]
    assert rep.open == []
    assert "ok now; failed in 1 earlier window" in str(rep)
    assert nbmodel.monitoring.open_alerts("iris") == []
    section = nbmodel.overview.alerts_section()
    assert section is not None and section[2] == []


def test_on_alert_called_once_per_opening(model, iris):
    v, clf = model
    seen = []
    fn = nbmodel.on_alert(seen.append)
    try:
        X = _shifted(iris, 3.0, seed=1)
        record("iris", X, clf.predict(X), timestamp=_day(1))
        monitor("iris", window="1d", alerts=["psi>0.2"])
        assert len(seen) == 1 and seen[0].rule == "psi>0.2" and "iris/1" in str(seen[0])
        monitor("iris", window="1d")  # still open: no second call
        assert len(seen) == 1
    finally:
        nbmodel.monitoring.remove_on_alert(fn)


def test_a_failing_callback_warns_but_monitoring_goes_on(model, iris):
    v, clf = model

    def broken(alert):
        raise RuntimeError("no network")

    nbmodel.on_alert(broken)
    try:
        X = _shifted(iris, 3.0, seed=1)
        record("iris", X, clf.predict(X), timestamp=_day(1))
        with pytest.warns(NbmodelWarning, match="no network"):
            rep = monitor("iris", window="1d", alerts=["psi>0.2"])
        assert len(rep.open) == 1
    finally:
        nbmodel.monitoring.remove_on_alert(broken)


@pytest.mark.parametrize("rule", ["accuracy < 0.9", "psi>0.2", "psi[petal length (cm)]>=0.2", "rmse>=50",
                                  "volume<100", "pvalue<0.01", "f1>.5", "latency_p95>250"])
def test_alert_grammar_accepts(rule):
    r = nbmodel.monitoring.parse_rule(rule)
    assert r.metric in nbmodel.monitoring._alerts.METRICS


@pytest.mark.parametrize("rule", ["accuracy", "accuracy<<0.9", "acuracy<0.9", "volume[x]<3", "psi>high", ""])
def test_alert_grammar_refuses_with_the_grammar(rule):
    with pytest.raises(BadAlert, match="METRIC OP NUMBER"):
        nbmodel.monitoring.parse_rule(rule)


# -- bad input: clear errors, nothing recorded -------------------------------------------------
def test_bad_input_records_nothing(model, iris):
    v, clf = model
    X = iris["X_test"]
    pred = clf.predict(X)
    with pytest.raises(BadData, match="missing petal width"):
        record("iris", X.drop(columns=["petal width (cm)"]), pred)
    with pytest.raises(BadData, match="unknown colour"):
        record("iris", X.assign(colour="red"), pred)
    with pytest.raises(BadData, match=r"has 5 columns but iris/1 takes 4"):
        record("iris", np.c_[X.to_numpy(), np.zeros(len(X))], pred)
    with pytest.raises(BadData, match="values but the data has"):
        record("iris", X, pred[:-1])
    with pytest.raises(BadData, match="ids has"):
        record("iris", X, pred, ids=["a"])
    with pytest.raises(BadData, match="cannot read the timestamp"):
        record("iris", X, pred, timestamp="not a time")
    with pytest.raises(BadData, match="ids and|one per label|ids must"):
        record_labels("iris", [], [])
    with pytest.raises(BadData, match="values but the data has"):
        record_labels("iris", ["a", "b"], [1])
    with pytest.raises(nbmodel.NbmodelError, match="no model named 'nope'"):
        record("nope", X, pred)
    assert _batch_files() == 0
    # the right data in another column order is fine
    record("iris", X[X.columns[::-1]], pred)
    assert _batch_files() == 1


def test_model_without_reference(iris):
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=500).fit(iris["X_train"], iris["y_train"])
    nbmodel.commit(clf, "noref", eval=(iris["X_test"], iris["y_test"]))
    X = iris["X_test"]
    record("noref", X, clf.predict(X), y_true=iris["y_test"], timestamp=_day(1))
    rep = monitor("noref", window="1d", alerts=["accuracy<0.5"])
    assert "no training reference" in str(rep) and "--train X_train y_train" in str(rep)
    assert rep.summary.metrics["accuracy"][0] > 0.8
    with pytest.raises(BadAlert, match="without training data.*--train"):
        monitor("noref", alerts=["psi>0.2"])
    with pytest.raises(BadData, match="missing sepal length"):
        record("noref", X.iloc[:, 1:], clf.predict(X))  # columns come from the signature


# -- the store keeps everything -----------------------------------------------------------------
def test_metrics_are_logged_to_the_monitoring_run(model, iris):
    v, clf = model
    for day in (1, 2, 3):
        X = _shifted(iris, 0.0, seed=day)
        record("iris", X, clf.predict(X), timestamp=_day(day))
    monitor("iris", window="1d")
    monitor("iris", window="1d")  # the same closed windows are not logged twice
    store = nbmodel.get_store()
    run = monitor_run("iris")
    hist = store.client.get_metric_history(run.run_id, "v1/1d/volume")
    assert [(m.step, m.value) for m in hist] == [(20513, 120.0), (20514, 120.0)]  # the newest is open
    assert store.client.get_metric_history(run.run_id, "v1/1d/psi/petal length _cm_")


@pytest.mark.slow
def test_records_survive_a_new_process(model, iris, tmp_path):
    v, clf = model
    X = _shifted(iris, 3.0, seed=1)
    record("iris", X, clf.predict(X), timestamp=_day(1))
    monitor("iris", window="1d", alerts=["psi>0.2"])
    code = textwrap.dedent("""
        import nbmodel
        r = nbmodel.monitor("iris", window="1d", plots=False)
        print(int(r.summary.total), [a.rule for a in r.open])
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "120 ['psi>0.2']"


# -- served traffic -------------------------------------------------------------------------------
def test_background_recorder_batches_and_records_latency(model, iris):
    v, clf = model
    rec = nbmodel.monitoring.BackgroundRecorder("iris", 1, max_rows=25, max_seconds=0.2)
    X = iris["X_test"]
    for i in range(len(X)):
        row = X.iloc[[i]]
        rec.submit(row, clf.predict(row), latency_ms=2.0 + i % 3)
    rec.close()
    assert rec.recorded == len(X) and rec.dropped == 0
    s = monitor("iris").summary
    assert s.total == len(X)
    assert s.metrics["latency_p50"][-1] == pytest.approx(3.0)
    assert _batch_files() < len(X)  # batched, not one file a request
    rec.submit(X, clf.predict(X))  # after close: ignored, no error
    assert s.total == len(X)


def test_background_recorder_survives_bad_requests(model, iris):
    rec = nbmodel.monitoring.BackgroundRecorder("iris", 1, max_seconds=0.1)
    rec.submit(pd.DataFrame({"x": [1.0]}), [0], 1.0)
    rec.close()
    assert rec.recorded == 0 and rec.dropped == 1 and "columns" in rec.last_error


# -- magics, widgets, CLI -----------------------------------------------------------------------
def test_magic_monitor(shell, model, iris):
    v, clf = model
    X = _shifted(iris, 3.0, seed=1)
    record("iris", X, clf.predict(X), timestamp=_day(1))
    rep = shell.run(f'%model_monitor iris --window 1d --alert "psi[{PETAL}]>0.2" --no-plots')
    assert rep.open[0].rule == f"psi[{PETAL}]>0.2"
    html = rep._repr_html_()
    assert "drift by feature and window" in html and "<img" not in html
    assert "<img" in monitor("iris", window="1d").__class__(rep.summary, plots=True)._repr_html_()
    err = shell.fails('%model_monitor iris --alert "accuracy<<1"')
    assert type(err).__name__ == "UsageError" and err.kind == "bad-alert"
    assert "METRIC OP NUMBER" in str(err)
    err = shell.fails("%model_monitor iris --window fortnight")
    assert err.kind == "bad-data" and "15m, 1h" in str(err)
    err = shell.fails("%model_monitor nope")
    assert err.kind == "model-not-found"
    shell.run("%model_monitor iris --clear-alerts")
    assert nbmodel.monitoring._alerts.stored("iris")[0] == []
    assert shell.run("%model_monitor --help") is None and "--window" in shell.stdout


def test_live_view_refreshes_and_stops(shell, model, iris):
    v, clf = model
    view = shell.run("%model_monitor iris --live --every 0.5 --no-plots")
    try:
        assert "no predictions recorded yet" in view.output.outputs[0]["data"]["text/plain"]
        X = iris["X_test"]
        record("iris", X, clf.predict(X))
        import time

        deadline = time.monotonic() + 10
        while view.refreshes < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "38 predictions" in view.output.outputs[0]["data"]["text/plain"]
    finally:
        view.stop()
    assert view.button.disabled


def test_cli_monitor(model, iris, capsys):
    from nbmodel.cli import main

    v, clf = model
    X = iris["X_test"]
    record("iris", X, clf.predict(X), timestamp=_day(1))
    assert main(["monitor", "iris", "--window", "1d", "--alert", "volume<100"]) == 0
    out = capsys.readouterr().out
    assert "iris/1: 38 predictions" in out and "volume<100: OPEN" in out
    assert main(["monitor", "iris", "--alert", "nonsense"]) == 2


def test_loading_the_magics_imports_nothing_heavy():
    code = ("import sys, nbmodel.magics.monitor, nbmodel.monitoring._alerts\n"
            "print(sorted(m for m in ('mlflow', 'pandas', 'numpy', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_public_api_is_lazy():
    for name in ("record", "record_labels", "monitor", "on_alert"):
        assert callable(getattr(nbmodel, name))


def test_background_recorder_takes_the_servers_records(model, iris):
    v, clf = model
    X = iris["X_test"]
    rec = nbmodel.monitoring.BackgroundRecorder("iris", 1, max_seconds=30)
    for i in range(10):  # the server's fast path: lists of dicts
        rows = X.iloc[[i]]
        rec.submit(rows.to_dict("records"), clf.predict(rows), 1.5)
    rec.submit(X.iloc[10:20], clf.predict(X.iloc[10:20]), 2.5)  # and a DataFrame between
    rec.submit(X.iloc[[20]].to_dict("records"), clf.predict(X.iloc[[20]]), 1.5)
    rec.close()
    assert rec.recorded == 21 and rec.dropped == 0
    df = nbmodel.monitoring.recorded("iris")
    assert len(df) == 21 and sorted(df["latency_ms"].unique().tolist()) == [1.5, 2.5]
    np.testing.assert_allclose(df[PETAL].to_numpy(), X[PETAL].iloc[:21].to_numpy())
    # plain rows with the column names given once (what the server submits now)
    rows = nbmodel.monitoring.BackgroundRecorder("iris", 1, max_seconds=30, columns=list(X.columns))
    for i in range(21, 30):
        rows.submit([X.iloc[i].tolist()], clf.predict(X.iloc[[i]]), 0.5)
    rows.submit(X.iloc[30:32].values.tolist(), clf.predict(X.iloc[30:32]), 0.5)
    rows.close()
    assert rows.recorded == 11 and rows.dropped == 0
    df = nbmodel.monitoring.recorded("iris")
    assert len(df) == 32
    np.testing.assert_allclose(df[PETAL].to_numpy(), X[PETAL].iloc[:32].to_numpy())


def test_served_rows_are_turned_into_arrays_a_few_hundred_at_a_time_before_the_flush(
        model, iris, monkeypatch):
    # One np.array over 10,000 row lists held the GIL for milliseconds, and a server's event
    # loop waited that long on every flush (most of its p99): the rows go in short steps, most
    # of them as they arrive, so that the flush itself has little left to do.
    import time

    from nbmodel.monitoring import _background

    X, clf = iris["X"], model[1]
    sizes: list[int] = []
    real_array = np.array

    def counting_array(obj, *args, **kwargs):
        if isinstance(obj, list) and obj and isinstance(obj[0], list):
            sizes.append(len(obj))
        return real_array(obj, *args, **kwargs)

    rows, preds = X.values.tolist(), clf.predict(X)
    n = 10 * _background.SERVED_STEP + 7
    with monkeypatch.context() as patched:
        patched.setattr(np, "array", counting_array)
        rec = _background.BackgroundRecorder("iris", 1, max_rows=10**9, max_seconds=60,
                                             columns=list(X.columns))
        for i in range(n):
            rec.submit([rows[i % len(rows)]], preds[i % len(rows):i % len(rows) + 1], 0.5)
        # the thread turns full steps whenever STAGE_AT requests wait
        deadline = time.monotonic() + 10
        while sum(sizes) < n - _background.STAGE_AT and time.monotonic() < deadline:
            time.sleep(0.01)
        with rec._flush_lock:  # a step under way holds its rows between the queue and the arrays
            assert sum(sizes) >= n - _background.STAGE_AT and sum(sizes) % _background.SERVED_STEP == 0
            assert rec.recorded == 0 and f"{n} queued" in repr(rec)
        assert rec.flush() == n
    rec.close()
    assert sum(sizes) == n and max(sizes) <= _background.SERVED_STEP
    df = nbmodel.monitoring.recorded("iris")
    assert len(df) == n
    expected = np.array([rows[i % len(rows)] for i in range(n)])[:, list(X.columns).index(PETAL)]
    np.testing.assert_allclose(df[PETAL].to_numpy(), expected)
