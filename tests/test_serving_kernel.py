"""The fast path's linear kernel: scikit-learn's own arithmetic for its linear models, equal to
their ``predict`` bit for bit, used only where it checked equal, never on NaN or infinity."""

from __future__ import annotations

import numpy as np
import pytest

from nbmodel.serving import _models as M


def _data(task: str, classes: int = 3):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    if task == "regressor":
        return X, X @ rng.normal(size=5) + rng.normal(scale=0.1, size=300)
    return X, (X[:, 0] * 2 + X[:, 1] > 0).astype(int) + (X[:, 2] > 1) * (classes - 2)


@pytest.mark.parametrize("make,task,classes", [
    ("LogisticRegression", "classifier", 2), ("LogisticRegression", "classifier", 3),
    ("RidgeClassifier", "classifier", 3), ("LinearSVC", "classifier", 2),
    ("LinearRegression", "regressor", 0), ("Ridge", "regressor", 0), ("Lasso", "regressor", 0),
])
def test_the_kernel_answers_as_the_estimator_bit_for_bit(make, task, classes):
    import sklearn.linear_model as lm
    import sklearn.svm as svm

    cls = getattr(lm, make, None) or getattr(svm, make)
    X, y = _data(task, classes)
    model = cls().fit(X, y)
    kernel = M._linear_kernel(model)
    assert kernel is not None
    rows = np.random.default_rng(1).normal(size=(50, 5)) * 3
    for batch in (rows, rows[:1], rows.astype(np.int64)):
        want = model.predict(batch)
        got = M._kernel_input_predict(kernel, batch)
        assert got.dtype == want.dtype and np.array_equal(got, want)


def test_no_kernel_for_other_models():
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _data("classifier")
    assert M._linear_kernel(RandomForestClassifier(n_estimators=3).fit(X, y)) is None
    assert M._linear_kernel(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)) is None


def test_nan_goes_to_the_estimator_which_refuses_it():
    from sklearn.linear_model import LogisticRegression

    X, y = _data("classifier")
    h = M.Handle(name="m", version=1, path="", columns=[M.Column(f"x{i}", "double", True)
                                                     for i in range(5)])
    h.native = LogisticRegression().fit(X, y)
    h.use_array = True
    h.kernel = M._check_kernel(h)
    assert h.kernel is not None
    assert list(M._predict_native(h, [[0.5, 1.0, -1.0, 2.0, 0.0]])) == \
        list(h.native.predict(np.array([[0.5, 1.0, -1.0, 2.0, 0.0]])))
    with pytest.raises(ValueError, match="NaN"):
        M._predict_native(h, [[float("nan"), 1.0, -1.0, 2.0, 0.0]])


def test_the_curl_line_example_comes_from_the_store_when_no_folder_is_local(commit_iris):
    import json

    from nbmodel.serving._deploy import _serving_example

    v = commit_iris()
    body = json.loads(_serving_example(None, v.uri))  # as for a team server's version
    split = body["dataframe_split"]
    assert split["columns"][0] == "sepal length (cm)" and len(split["data"]) == 1
    assert _serving_example(None, None) is None
