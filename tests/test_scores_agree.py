"""Commit time and comparison score with the one set of metrics in ``nbmodel.metrics``.

A version compared on its own eval data reports exactly what its commit recorded, and both
equal scikit-learn's definitions.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from nbmodel.errors import BadData, BadReference
from nbmodel.evaluate import score


class _Fixed:
    """A 'model' that predicts given values (and, optionally, given probabilities)."""

    def __init__(self, pred: np.ndarray, proba: np.ndarray | None = None) -> None:
        self.pred = pred
        if proba is not None:
            self.predict_proba = lambda X: proba

    def predict(self, X: object) -> np.ndarray:
        return self.pred


@pytest.mark.parametrize("seed", range(30))
def test_commit_time_classifier_scores_equal_scikit_learns(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k, n = int(rng.integers(2, 5)), int(rng.integers(2, 50))
    y, pred = rng.integers(0, k, n), rng.integers(0, k + 1, n)  # a class only ever predicted
    if seed % 3 == 0:
        y, pred = np.array([f"c{v}" for v in y]), np.array([f"c{v}" for v in pred])
    got = score(_Fixed(pred), np.zeros((n, 2)), y, task="classifier")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns about classes missing from y
        want = {"accuracy": skm.accuracy_score(y, pred),
                "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
                "f1_macro": skm.f1_score(y, pred, average="macro", zero_division=0)}
    assert list(got) == list(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


@pytest.mark.parametrize("seed", range(20))
def test_commit_time_regressor_scores_equal_scikit_learns(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 80))
    y = rng.normal(150, 60, n)
    pred = y + rng.normal(0, 25, n)
    got = score(_Fixed(pred), np.zeros((n, 2)), y, task="regressor")
    assert list(got) == ["rmse", "mae", "r2"]
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)), rel=1e-9)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred), rel=1e-9)
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred), rel=1e-9, abs=1e-12)


def test_roc_auc_at_commit_equals_scikit_learns_and_needs_probabilities() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 60)
    proba = rng.dirichlet(np.ones(3), 60)
    model = _Fixed(proba.argmax(axis=1), proba)
    got = score(model, np.zeros((60, 2)), y, task="classifier")
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"), abs=1e-12)
    assert "roc_auc" not in score(_Fixed(proba.argmax(axis=1)), np.zeros((60, 2)), y, task="classifier")


def test_one_column_of_predictions_scores_as_a_flat_one() -> None:
    y = np.array([1.0, 2.0, 4.0, 3.0])
    pred = np.array([1.5, 2.0, 3.0, 3.0])
    flat = score(_Fixed(pred), np.zeros((4, 1)), y, task="regressor")
    column = score(_Fixed(pred[:, None]), np.zeros((4, 1)), y, task="regressor")
    assert column == flat
    labels = np.array([0, 1, 1, 0])
    assert (score(_Fixed(labels[:, None]), np.zeros((4, 1)), labels, task="classifier")["accuracy"]
            == 1.0)


def test_a_model_failing_without_a_message_is_bad_data_not_an_index_error() -> None:
    class Silent:
        def predict(self, X: object) -> None:
            raise ValueError()

    with pytest.raises(BadData, match="could not predict on the eval data: ValueError"):
        score(Silent(), np.zeros((3, 2)), [0, 1, 0])


@pytest.fixture(scope="module")
def template(build_store, iris, diabetes):
    """iris/1 (a logistic regression) and diab/1 (a ridge), each committed with its eval data."""
    from sklearn.linear_model import LogisticRegression, Ridge

    import nbmodel

    def fill():
        for C in (0.05, 1.0):
            clf = LogisticRegression(C=C, max_iter=500).fit(iris["X_train"], iris["y_train"])
            nbmodel.commit(clf, "iris", eval=(iris["X_test"], iris["y_test"]), source="fit")
        for alpha in (0.01, 10.0):
            reg = Ridge(alpha=alpha).fit(diabetes["X_train"], diabetes["y_train"])
            nbmodel.commit(reg, "diab", eval=(diabetes["X_test"], diabetes["y_test"]), source="fit")

    return build_store("scores-agree-template", fill)


@pytest.mark.parametrize("name, data, keys", [
    ("iris", "iris", ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc")),
    ("diab", "diabetes", ("rmse", "mae", "r2")),
])
def test_a_comparison_reports_what_the_commit_recorded(store, request, name, data, keys):
    import nbmodel
    from nbmodel.versions import load, resolve

    d = request.getfixturevalue(data)
    c = nbmodel.compare([f"{name}/1", f"{name}/2"], d["X_test"], d["y_test"], plots=False,
                        progress=False)
    for i, ref in enumerate([f"{name}/1", f"{name}/2"]):
        v = resolve(ref)
        at_commit = score(load(v), d["X_test"], d["y_test"])
        for key in keys:
            assert c.metrics[key][i] == at_commit[key], (ref, key)
            # The commit stores its metrics to six decimals.
            assert v.metrics[key] == round(at_commit[key], 6), (ref, key)


def test_all_versions_of_a_version_object_names_the_model_instead(store):
    import nbmodel
    from nbmodel.versions import resolve

    with pytest.raises(BadReference, match=r"name the model \(iris\), not iris/1"):
        nbmodel.compare(resolve("iris/1"), all_versions=True)


def test_results_show_their_text_through_the_one_display_mixin(store, iris):
    from IPython.lib.pretty import pretty

    import nbmodel
    from nbmodel.display import Shown

    c = nbmodel.compare(["iris/1", "iris/2"], iris["X_test"], iris["y_test"], progress=False)
    h = nbmodel.metric_history("iris")
    for shown in (c, h, c.figures[0]):
        assert isinstance(shown, Shown)
        assert type(shown).__dict__.get("_repr_pretty_", Shown._repr_pretty_) is Shown._repr_pretty_
        assert "__repr__" not in type(shown).__dict__
        assert repr(shown) == str(shown) == pretty(shown)
    assert repr(c.figures[0]) == "<figure: confusion matrices>"


def test_importing_the_comparison_loads_no_plotting_or_scoring_library():
    code = ("import sys; import nbmodel.comparison, nbmodel.evaluate; "
            "print([m for m in ('matplotlib', 'sklearn', 'scipy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"
