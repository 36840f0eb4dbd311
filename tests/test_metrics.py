"""The metrics every layer shares equal scikit-learn's definitions, one matrix or a batch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from nbmodel import metrics as M


@pytest.mark.parametrize("seed", range(40))
def test_classification_equals_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k, n = int(rng.integers(2, 5)), int(rng.integers(1, 40))
    y, p = rng.integers(0, k, n), rng.integers(0, k, n)
    m = M.as_floats(M.classification(M.confusion(y, p, k)))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, p), abs=1e-12)
    for avg, fn in [("f1_macro", skm.f1_score), ("precision_macro", skm.precision_score),
                    ("recall_macro", skm.recall_score)]:
        assert m[avg] == pytest.approx(fn(y, p, average="macro", zero_division=0), abs=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns when a class is absent from y
        assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p), abs=1e-12)


@pytest.mark.parametrize("seed", range(20))
def test_regression_equals_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    y = rng.normal(150, 60, n)
    p = y + rng.normal(0, 20, n)
    m = M.as_floats(M.regression(M.error_sums(y, p)))
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)), rel=1e-9)
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, p), rel=1e-9)
    assert m["r2"] == pytest.approx(skm.r2_score(y, p), rel=1e-9, abs=1e-12)
    assert m["max_error"] == pytest.approx(skm.max_error(y, p), rel=1e-12)


def test_batches_equal_each_batch_alone_and_empty_batches_are_nan() -> None:
    rng = np.random.default_rng(7)
    b, y, p = rng.integers(0, 3, 80), rng.integers(0, 3, 80), rng.integers(0, 3, 80)
    cls = M.classification(M.confusion(y, p, 3, batch=b, n_batches=4))
    reg = M.regression(M.error_sums(y * 1.0, p * 1.0, batch=b, n_batches=4))
    for i in range(3):
        alone = b == i
        one = M.as_floats(M.classification(M.confusion(y[alone], p[alone], 3)))
        assert cls["f1_macro"][i] == pytest.approx(one["f1_macro"], abs=1e-12)
        assert reg["rmse"][i] == pytest.approx(np.sqrt(np.mean((y[alone] - p[alone]) ** 2.0)))
    assert np.isnan(cls["accuracy"][3]) and np.isnan(reg["rmse"][3])


def test_constant_truth_has_no_r2_and_direction_is_known() -> None:
    m = M.as_floats(M.regression(M.error_sums(np.ones(5), np.arange(5.0))))
    assert np.isnan(m["r2"]) and m["rmse"] > 0
    assert not M.higher_is_better("rmse") and M.higher_is_better("accuracy")
