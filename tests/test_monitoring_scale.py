"""Monitoring that scales: compacted window summaries, retention, late labels, concurrent
writers, and the estimated accuracy before labels (CBPE)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import nbmodel
from nbmodel.monitoring import calibrate, clear_caches, compact, monitor, record, record_labels
from nbmodel.monitoring._compact import SUMMARIES
from nbmodel.monitoring._stats import summarise
from nbmodel.monitoring._storage import BATCHES, LABELS, monitor_run
from nbmodel.monitoring._traffic import traffic
from nbmodel.monitoring._windows import parse_window

ROOT = Path(__file__).resolve().parents[1]
PETAL = "petal length (cm)"
DAY0 = 1_772_323_200  # 2026-03-01 UTC


@pytest.fixture
def model(commit_iris):
    v = commit_iris(C=1.0)
    return v, nbmodel.load(v)


def _batches(iris, clf, n_batches: int, *, rows: int = 60, ids: bool = False, labels: bool = True,
             lat: bool = False) -> None:
    for b in range(n_batches):
        X = iris["X_train"].sample(rows, replace=True, random_state=b).reset_index(drop=True)
        if b >= n_batches // 2:
            X[PETAL] = X[PETAL] + 1.5 * (b / n_batches)
        pred = clf.predict(X)
        y = np.where(np.arange(rows) % 3 == 0, (pred + (np.arange(rows) % 7 == 0)) % 3, np.nan) \
            if labels else None
        record("iris", X, pred, y_true=y, timestamp=DAY0 + b * 5400 + np.arange(rows),
               ids=[f"b{b}-{i}" for i in range(rows)] if ids else None,
               latency_ms=np.linspace(1, 50, rows) if lat else None)


def _raw(spec: str):
    return summarise(traffic("iris", 1), parse_window(spec))


def _compacted(spec: str):
    return monitor("iris", window=spec, plots=False, log_metrics=False).summary


def _same(a, b, *, latency: bool = False) -> None:
    assert a.labels() == b.labels()
    np.testing.assert_array_equal(a.metrics["volume"], b.metrics["volume"])
    for k in ("labelled", "accuracy", "f1_macro", "prediction_psi"):
        np.testing.assert_allclose(a.metrics[k], b.metrics[k], rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(a.psi, b.psi, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(a.ks, b.ks, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(a.pvalue, b.pvalue, rtol=1e-9, equal_nan=True)
    if latency:
        np.testing.assert_allclose(a.metrics["latency_p95"], b.metrics["latency_p95"], rtol=0.02)


# -- summaries equal a direct computation -----------------------------------------------------------
def test_compacted_summaries_equal_the_raw_computation(model, iris):
    v, clf = model
    _batches(iris, clf, 12, lat=True)
    raw = {w: _raw(w) for w in ("1d", "6h", "3h")}
    done = compact("iris")
    assert done.files == 12 and done.rows == 720 and done.versions == [1]
    assert "12 batch files (720 rows)" in str(done)
    gens = monitor_run("iris").list(f"{SUMMARIES}/v1", ".parquet")
    assert [p.rsplit("/", 1)[-1][:2] for p in gens] == ["g-", "i-", "p-"]
    # a new process: the summary alone answers, equal to counting the raw rows
    clear_caches()
    for w, expected in raw.items():
        _same(_compacted(w), expected, latency=True)
    # batches recorded after the compaction are read raw and added
    X = iris["X_test"]
    record("iris", X, clf.predict(X), y_true=iris["y_test"], timestamp=DAY0 + 20 * 3600)
    clear_caches()
    _same(_compacted("1d"), _raw("1d"))


def test_psi_and_chi_square_exact_and_ks_within_its_bound(model, iris):
    """Against numbers computed here from the raw rows and the training data themselves."""
    v, clf = model
    _batches(iris, clf, 8)
    compact("iris")
    clear_caches()
    s = _compacted("1d")
    prof = nbmodel.monitoring._schema.schema("iris", 1).profile
    df = nbmodel.monitoring.recorded("iris")
    j = s.features.index(PETAL)
    st = prof["features"][PETAL]
    counts = np.bincount(np.searchsorted(st["edges"], df[PETAL], side="right"), minlength=len(st["freq"]))
    cur = np.clip(counts / counts.sum(), 1e-4, None)
    ref = np.clip(np.asarray(st["freq"]) / np.sum(st["freq"]), 1e-4, None)
    assert s.psi[0, j] == pytest.approx(float(np.sum((cur - ref) * np.log(cur / ref))), rel=1e-12)
    exact = stats.ks_2samp(df[PETAL], iris["X_train"][PETAL]).statistic
    assert s.ks[0, j] - 1e-12 <= exact <= s.ks[0, j] + s.ks_bound[0, j] + 1e-12
    assert 0 < s.ks_bound[0, j] <= 0.5


# -- late labels ----------------------------------------------------------------------------------
def test_late_labels_update_compacted_windows(model, iris):
    v, clf = model
    _batches(iris, clf, 4, ids=True, labels=False)
    compact("iris")
    clear_caches()
    assert _compacted("1d").labelled == 0
    df = nbmodel.monitoring.recorded("iris")
    truth = df["y_pred"].to_numpy().copy()
    truth[::4] = (truth[::4] + 1) % 3  # a quarter wrong
    record_labels("iris", df["id"], truth)
    clear_caches()
    after = _compacted("1d")  # the read compacts first: new labels may name summarised rows
    raw = _raw("1d")
    assert after.labelled == len(df) == raw.labelled
    np.testing.assert_allclose(after.metrics["accuracy"], raw.metrics["accuracy"], rtol=1e-12)
    assert after.metrics["accuracy"][0] == pytest.approx(0.75, abs=0.01)
    # a corrected label moves its row from wrong to right
    record_labels("iris", df["id"][:4], df["y_pred"][:4])
    compact("iris")
    clear_caches()
    np.testing.assert_allclose(_compacted("1d").metrics["accuracy"], _raw("1d").metrics["accuracy"],
                               rtol=1e-12)


def test_labels_before_their_rows_wait_for_them(model, iris):
    v, clf = model
    X = iris["X_test"].iloc[:10]
    record_labels("iris", [f"early{i}" for i in range(10)], iris["y_test"].iloc[:10])
    compact("iris")
    record("iris", X, clf.predict(X), ids=[f"early{i}" for i in range(10)], timestamp=DAY0)
    clear_caches()
    assert _compacted("1d").labelled == 10
    compact("iris")
    clear_caches()
    assert _compacted("1d").labelled == 10


# -- retention ------------------------------------------------------------------------------------
def test_retention_drops_raw_rows_not_summaries(model, iris):
    v, clf = model
    _batches(iris, clf, 6, ids=True)
    before = _raw("1d")
    run = monitor_run("iris")
    first = compact("iris", retention="1s")  # a slow machine may pass the second already
    assert 0 <= first.dropped <= 6
    time.sleep(1.1)
    done = compact("iris")  # the saved retention holds
    assert done.retention == "1s" and first.dropped + done.dropped == 6
    assert run.list(f"{BATCHES}/v1") == [] and run.list(LABELS) == []
    clear_caches()
    after = _compacted("1d")
    _same(after, before)
    # the raw rows are gone: windows by rows have none left
    rows = monitor("iris", window="100", plots=False, log_metrics=False)
    assert rows.summary.total == 0


def test_compaction_refuses_bad_durations(model):
    with pytest.raises(nbmodel.errors.BadData, match="not a duration"):
        compact("iris", retention="soon")


# -- concurrent writers -----------------------------------------------------------------------------
_WRITER = textwrap.dedent("""
    import sys, numpy as np, nbmodel
    from nbmodel.monitoring import record, compact
    k = int(sys.argv[1])
    X = np.random.default_rng(k).normal(3, 1, size=(50, 4))
    for b in range(10):
        record("iris/1", X, np.zeros(50, dtype=int), timestamp=1772323200 + k * 3600 + b)
        if b % 4 == 3:
            compact("iris")
""")


@pytest.mark.slow
def test_concurrent_writers_and_compactions_lose_nothing(model, tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"}
    procs = [subprocess.Popen([sys.executable, str(script), str(k)], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for k in range(3)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    clear_caches()
    s = _compacted("1h")
    assert s.total == 3 * 10 * 50
    assert s.metrics["volume"].tolist() == [500.0, 500.0, 500.0]
    compact("iris")
    clear_caches()
    assert _compacted("1d").total == 1500


# -- estimated accuracy (CBPE) --------------------------------------------------------------------
def _shifted_binary(rng, n: int, shift: float):
    x = rng.normal(0.0, 1.0, size=(n, 2))
    x[:, 0] += 1.5 - shift  # towards the decision boundary: more mistakes
    p = 1 / (1 + np.exp(-(1.5 * x[:, 0] - x[:, 1])))
    y = (rng.random(n) < p).astype(int)
    return pd.DataFrame(x, columns=["a", "b"]), y


def test_estimated_accuracy_follows_the_realised_one_under_covariate_shift():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X, y = _shifted_binary(rng, 20_000, 0.0)
    clf = LogisticRegression().fit(X, y)  # the true model is logistic: calibrated
    nbmodel.commit(clf, "shift", train=(X[:2000], y[:2000]), eval=(X[:2000], y[:2000]))
    Xr, yr = _shifted_binary(rng, 20_000, 0.0)
    cal = calibrate("shift/1", clf.predict(Xr), clf.predict_proba(Xr), yr)
    assert "est_accuracy" in str(cal)
    for day, shift in enumerate((0.0, 0.5, 1.0, 1.5, 2.0)):
        Xw, yw = _shifted_binary(rng, 20_000, shift)
        record("shift", Xw, clf.predict(Xw), y_true=yw, y_proba=clf.predict_proba(Xw),
               timestamp=DAY0 + day * 86400)
    raw = monitor("shift", window="1d", plots=False, log_metrics=False).summary
    gap = np.abs(raw.metrics["est_accuracy"] - raw.metrics["accuracy"])
    assert gap.max() < 0.02, (raw.metrics["est_accuracy"], raw.metrics["accuracy"])
    assert raw.metrics["accuracy"][0] - raw.metrics["accuracy"][-1] > 0.02  # the shift mattered
    compact("shift")
    clear_caches()
    rep = monitor("shift", window="1d", plots=False, log_metrics=False, alerts=["est_accuracy<0.9"])
    np.testing.assert_allclose(rep.summary.metrics["est_accuracy"], raw.metrics["est_accuracy"], rtol=1e-12)
    np.testing.assert_allclose(rep.summary.metrics["est_f1_macro"], raw.metrics["est_f1_macro"], rtol=1e-12)
    assert "est accuracy" in str(rep)
    assert [a.rule for a in rep.open] == ["est_accuracy<0.9"]


# -- from a terminal, and reads that keep no copy ------------------------------------------------
def test_cli_compacts_and_bad_lines_say_how(model, iris, capsys):
    from nbmodel import cli

    v, clf = model
    _batches(iris, clf, 3)
    assert cli.main(["monitor", "compact", "iris", "--retention", "7d"]) == 0
    assert "compacted iris (v1): 3 batch files (180 rows)" in capsys.readouterr().out
    assert monitor_run("iris").list(f"{SUMMARIES}/v1", ".parquet")
    assert cli.main(["monitor", "iris", "extra"]) == 2
    assert "monitor compact NAME" in capsys.readouterr().err


def test_a_remote_stores_files_are_read_without_keeping_a_copy(model, iris):
    v, clf = model
    _batches(iris, clf, 2)
    compact("iris")
    run = monitor_run("iris")
    path = run.list(f"{SUMMARIES}/v1", ".parquet")[0]
    run.local_dir = None  # read as from a served artifact store
    assert run.read_bytes(path)[:4] == b"PAR1"
    assert os.listdir(run._download_dir) == []


# -- raw batches: Arrow files now, .npz files of earlier versions still read ---------------------
def test_batches_written_by_earlier_versions_still_read(model, iris):
    """A store written before batches were Arrow files holds .npz batches (a 2-D array of the
    numeric features with their names): they are read, summarised and compacted with new ones."""
    v, clf = model
    X, y = iris["X_test"], iris["y_test"].to_numpy()
    pred = clf.predict(X)
    run = monitor_run("iris")
    old = {"ts": np.full(len(X), DAY0 * 1000, dtype=np.int64), "pred": pred,
           "num": X.to_numpy(dtype=float), "num_cols": np.array(X.columns, dtype=str),
           "y": y.astype(float), "has_y": np.ones(len(X), dtype=bool)}
    assert run.write(f"{BATCHES}/v1", old).endswith(".npz")
    record("iris", X, pred, y_true=y, timestamp=DAY0 + 86400)
    assert [p.rsplit(".", 1)[-1] for p in run.list(f"{BATCHES}/v1")] == ["npz", "arrow"]
    np.testing.assert_allclose(nbmodel.monitoring.recorded("iris")[PETAL].to_numpy(),
                               np.r_[X[PETAL].to_numpy(), X[PETAL].to_numpy()])
    raw = _raw("1d")
    np.testing.assert_array_equal(raw.metrics["volume"], [len(X), len(X)])
    np.testing.assert_allclose(raw.psi[0], raw.psi[1], rtol=1e-12)  # the same rows, either format
    assert raw.metrics["accuracy"][0] == raw.metrics["accuracy"][1]
    compact("iris")
    clear_caches()
    _same(raw, _compacted("1d"))


def test_batches_are_columns_that_read_without_decoding(model, iris):
    """One Arrow column per feature: a part of many files is binned a whole column at a time."""
    import pyarrow as pa

    v, clf = model
    _batches(iris, clf, 3, ids=True)
    run = monitor_run("iris")
    path = run.list(f"{BATCHES}/v1")[0]
    table = run.read_table(path)
    assert f"x.{PETAL}" in table.column_names and table.schema.field(f"x.{PETAL}").type == pa.float64()
    assert {"ts", "pred", "y", "has_y", "ids"} <= set(table.column_names)
    from nbmodel.monitoring import _traffic

    parts = list(_traffic.read_parts(run, run.list(f"{BATCHES}/v1")))
    assert len(parts) == 1 and parts[0][2] == [60, 60, 60]  # three files, one part


# -- groups given apart from X ----------------------------------------------------------------------
def test_groups_recorded_apart_from_x_give_group_metrics_and_alerts(model, iris):
    from nbmodel.errors import BadData

    v, clf = model
    X, y = iris["X_test"].reset_index(drop=True), iris["y_test"].to_numpy()
    n = len(X)
    sex = pd.Series(np.where(np.arange(n) % 2 == 0, "F", "M"), name="sex")
    for day in (1, 2):
        pred = clf.predict(X).copy()
        if day == 2:  # every prediction for F wrong on day 2
            f = (sex == "F").to_numpy()
            pred[f] = (y[f] + 1) % 3
        record("iris", X, pred, y_true=y, groups=sex, timestamp=DAY0 + day * 86400)
    rep = monitor("iris", window="1d", groups="sex", plots=False, log_metrics=False,
                  alerts=["accuracy_gap>0.5"])
    assert rep.groups is not None and rep.groups.worst == "F"
    assert {(f.rule.text, f.window) for f in rep.fired} == {("accuracy_gap[sex]>0.5", 1)}
    df = nbmodel.monitoring.recorded("iris")
    assert df["sex"].tolist()[:4] == ["F", "M", "F", "M"] and "sex" not in X.columns
    # the rule was saved with its column and fires again without --groups
    assert [a.rule for a in monitor("iris", window="1d", plots=False, log_metrics=False).open] == \
        ["accuracy_gap[sex]>0.5"]
    record("iris", X, pred, groups={"region": np.array(["n", "s"] * (n // 2) + ["n"] * (n % 2))})
    assert set(nbmodel.monitoring.recorded("iris")["region"].dropna()) == {"n", "s"}
    with pytest.raises(BadData, match="one group per row"):
        record("iris", X, pred, groups=sex[:3])
    with pytest.raises(BadData, match="also a column of X"):
        record("iris", X, pred, groups=pd.Series(["a"] * n, name=PETAL))


# -- served classifiers: probabilities for the estimated accuracy --------------------------------
def test_the_recorder_asks_a_classifier_for_probabilities_once_a_batch(model, iris):
    from nbmodel.monitoring import BackgroundRecorder

    v, clf = model
    X = iris["X_test"]
    calibrate("iris/1", clf.predict(iris["X_train"]), clf.predict_proba(iris["X_train"]),
              iris["y_train"])
    calls = []

    class Counting:
        def predict_proba(self, X):
            calls.append(len(X))
            return clf.predict_proba(X)

    rec = BackgroundRecorder("iris", 1, max_seconds=30, columns=list(X.columns), model=Counting())
    for i in range(len(X)):
        rec.submit([X.iloc[i].tolist()], clf.predict(X.iloc[[i]]), 1.0, timestamp=DAY0)
    rec.close()
    assert rec.recorded == len(X) and rec.last_error is None and calls == [len(X)]
    s = monitor("iris", window="1d", plots=False, log_metrics=False).summary
    assert 0.8 < s.metrics["est_accuracy"][0] <= 1.0
    assert BackgroundRecorder("iris", 1, model=object()).proba is None  # no predict_proba: none


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")  # the server filters it
def test_a_served_classifier_shows_its_estimated_accuracy(commit_iris, iris, isolated_store):
    """Through the server's own call site: its requests reach monitoring with probabilities."""
    import asyncio
    import json

    from _helpers import asgi_post, split
    from test_serving import in_process_app

    v = commit_iris(C=1.0)
    clf = nbmodel.load(v)
    calibrate("iris/1", clf.predict(iris["X_train"]), clf.predict_proba(iris["X_train"]),
              iris["y_train"])
    app, rec = in_process_app(isolated_store, v)
    from nbmodel.monitoring import BackgroundRecorder

    app.recorder_cls = BackgroundRecorder
    app.add_slot(rec.models[0], with_pyfunc=False)
    X = iris["X_test"]
    for i in range(0, len(X), 5):
        status, _ = asyncio.run(asgi_post(app, json.dumps(split(X.iloc[i:i + 5])).encode()))
        assert status == 200
    app.close()
    s = monitor("iris", plots=False, log_metrics=False).summary
    assert s.total == len(X)
    assert np.isfinite(s.metrics["est_accuracy"]).all()
