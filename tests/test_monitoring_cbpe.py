"""The estimated accuracy before labels (CBPE) against the realised one under covariate shift,
through record(), monitor() and compaction; and summaries and calibrations written before the
confidence sums still read."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import nbmodel
from nbmodel.monitoring import _cbpe, _counts, calibrate, clear_caches, compact, monitor, record
from nbmodel.monitoring._storage import monitor_run

DAY0 = 1_772_323_200  # 2026-03-01 UTC
SHIFTS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5)


def _shifted(rng: np.random.Generator, n: int, shift: float) -> tuple[pd.DataFrame, np.ndarray]:
    """x ~ N((1.5 - shift, 0), I), y ~ Bernoulli(sigmoid(1.5 x0 - x1)): the shift moves the inputs
    towards and past the decision boundary, the relation from inputs to labels stays."""
    x = rng.normal(0.0, 1.0, size=(n, 2))
    x[:, 0] += 1.5 - shift
    p = 1 / (1 + np.exp(-(1.5 * x[:, 0] - x[:, 1])))
    return pd.DataFrame(x, columns=["a", "b"]), (rng.random(n) < p).astype(int)


def _shift_windows(name: str, seed: int, reference_rows: int, *, sharpen: float = 1.0):
    """A logistic regression (the true model is logistic: calibrated) fitted on 20,000 rows,
    calibrated on ``reference_rows`` fresh ones, then a day of 20,000 rows per shift recorded with
    labels and probabilities. ``sharpen`` scales the model's logits in the probabilities it
    reports (2: overconfident)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    X, y = _shifted(rng, 20_000, 0.0)
    clf = LogisticRegression().fit(X, y)

    def proba(X: pd.DataFrame) -> np.ndarray:
        p1 = 1 / (1 + np.exp(-sharpen * clf.decision_function(X)))
        return np.c_[1 - p1, p1]

    nbmodel.commit(clf, name, train=(X[:2000], y[:2000]), eval=(X[:2000], y[:2000]))
    Xr, yr = _shifted(rng, reference_rows, 0.0)
    calibrate(f"{name}/1", clf.predict(Xr), proba(Xr), yr)
    mean_conf = []
    for day, shift in enumerate(SHIFTS):
        Xw, yw = _shifted(rng, 20_000, shift)
        P = proba(Xw)
        mean_conf.append(P.max(axis=1).mean())
        record(name, Xw, clf.predict(Xw), y_true=yw, y_proba=P, timestamp=DAY0 + day * 86400)
    return np.array(mean_conf)


def test_estimate_stays_within_002_of_realised_accuracy_under_shift_with_a_small_reference():
    # Regression: the estimate took each (class, confidence bin)'s right-answer frequency from
    # the reference, with two pseudo-rows. A covariate shift fills the bins the reference saw
    # least (class 0 at high confidence: a few dozen of 5,000 rows), whose frequencies are off
    # by several points: at shift 2.5 this seed's estimate was 0.031 from the realised accuracy.
    _shift_windows("shiftsmall", seed=15, reference_rows=5_000)
    raw = monitor("shiftsmall", window="1d", plots=False, log_metrics=False).summary
    est, real = raw.metrics["est_accuracy"], raw.metrics["accuracy"]
    assert len(est) == len(SHIFTS)
    assert np.abs(est - real).max() < 0.02, (est, real)
    assert real.max() - real.min() > 0.05  # the shift mattered
    compact("shiftsmall")
    clear_caches()
    s = monitor("shiftsmall", window="1d", plots=False, log_metrics=False).summary
    np.testing.assert_allclose(s.metrics["est_accuracy"], est, rtol=1e-9)
    np.testing.assert_allclose(s.metrics["est_f1_macro"], raw.metrics["est_f1_macro"], rtol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_estimate_within_002_per_window_for_shifts_up_to_25_after_compaction_too(seed):
    _shift_windows("shift", seed=seed, reference_rows=20_000)
    raw = monitor("shift", window="1d", plots=False, log_metrics=False).summary
    gap = np.abs(raw.metrics["est_accuracy"] - raw.metrics["accuracy"])
    assert gap.max() < 0.02, (raw.metrics["est_accuracy"], raw.metrics["accuracy"])
    compact("shift")
    clear_caches()
    s = monitor("shift", window="1d", plots=False, log_metrics=False).summary
    gap = np.abs(s.metrics["est_accuracy"] - s.metrics["accuracy"])
    assert gap.max() < 0.02, (s.metrics["est_accuracy"], s.metrics["accuracy"])
    np.testing.assert_allclose(s.metrics["est_accuracy"], raw.metrics["est_accuracy"], rtol=1e-9)


def test_an_overconfident_model_is_corrected_by_its_reference():
    # Probabilities twice as sharp as the truth: their mean overstates accuracy by ~0.07; the
    # reference's corrections (its bins are full where the unshifted windows fall) take that out.
    mean_conf = _shift_windows("sharp", seed=3, reference_rows=20_000, sharpen=2.0)
    s = monitor("sharp", window="1d", plots=False, log_metrics=False).summary
    est, real = s.metrics["est_accuracy"], s.metrics["accuracy"]
    assert mean_conf[0] - real[0] > 0.05  # the model is overconfident
    assert abs(est[0] - real[0]) < 0.01 and abs(est[1] - real[1]) < 0.02, (est, real)


def test_summaries_and_calibrations_from_before_the_confidence_sums_still_read():
    _shift_windows("older", seed=4, reference_rows=20_000)
    compact("older")
    clear_caches()
    new = monitor("older", window="1d", plots=False, log_metrics=False).summary
    run = monitor_run("older")
    folder = "monitor/summaries/v1"
    [gen] = [p for p in run.list(folder, ".parquet") if p.rsplit("/", 1)[-1].startswith("g-")]
    c, meta = _counts.from_parquet(run.read_bytes(gen))
    assert c.conf.shape[2] == 2 * _cbpe.CONF_BINS and np.isfinite(c.conf).all()
    # the summary as an older compaction wrote it: counts only, int64
    old = _counts.dataclasses.replace(c, conf=c.conf[:, :, : _cbpe.CONF_BINS].astype(np.int64))
    back, _ = _counts.from_parquet(_counts.to_parquet(old, meta))
    assert back.conf.shape == c.conf.shape and np.isnan(back.conf[:, :, _cbpe.CONF_BINS:]).all()
    merged = _counts.merge(back, c)  # windows of an old summary and new rows: still a number
    cal = _cbpe.load("older", 1)
    assert cal is not None and cal.conf_sum is not None
    est_old = _cbpe.estimate(back.conf, back.classes, cal)["est_accuracy"]
    est_new = new.metrics["est_accuracy"]
    assert np.isfinite(est_old).all() and np.abs(est_old - est_new).max() < 0.01
    assert np.isfinite(_cbpe.estimate(merged.conf, merged.classes, cal)["est_accuracy"]).all()
    # a calibration written before the sums: the per-bin frequencies, as before
    data = json.loads(run.read_bytes("monitor/calibration/v1.json"))
    older = _cbpe.Calibration("older/1", data["classes"], data["n"], data["right"], data["mistakes"],
                              data["accuracy"])
    est = _cbpe.estimate(c.conf, c.classes, older)["est_accuracy"]
    p, _ = older.p_right(c.classes)
    n = c.conf[:, :, : _cbpe.CONF_BINS]
    np.testing.assert_allclose(est, np.einsum("wcq,cq->w", n, p) / n.sum(axis=(1, 2)))
    np.testing.assert_allclose(est, new.metrics["est_accuracy"], atol=0.03)
