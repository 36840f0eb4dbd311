"""nbmodel.commit: what a version records, checked with plain MLflow."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

import nbmodel
from nbmodel.errors import BadData, NotAModel
from nbmodel.tagpack import unpack


def test_commit_records_everything_plain_mlflow_can_see(commit_iris, iris, isolated_store):
    v1 = commit_iris(C=1.0, message="baseline", tags={"team": "ml"})
    v2 = commit_iris(C=0.1, message="smaller C")
    assert (v1.ref, v2.ref) == ("iris/1", "iris/2")
    assert v2.parent == "iris/1" and v1.parent is None

    client = MlflowClient(isolated_store.uri, registry_uri=isolated_store.uri)
    mv = client.get_model_version("iris", "1")
    assert mv.description == "baseline"
    assert mv.tags["team"] == "ml"
    metrics = json.loads(unpack(mv.tags)["nbmodel.metrics"])
    assert set(metrics) == {"accuracy", "balanced_accuracy", "f1_macro", "roc_auc"}

    run = client.get_run(mv.run_id)
    assert run.data.params["C"] == "1.0" and run.data.params["max_iter"] == "500"
    assert run.data.metrics["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-6)
    assert run.data.tags["mlflow.note.content"] == "baseline"
    assert run.info.run_name == "iris/1" and run.info.status == "FINISHED"

    profile = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/nbmodel/data_profile.json")
    assert profile["rows"] == len(iris["X_train"])
    assert profile["columns"] == list(iris["X_train"].columns)
    feat = profile["features"]["petal length (cm)"]
    assert feat["kind"] == "numeric" and abs(sum(feat["freq"]) - 1) < 1e-9
    assert len(feat["freq"]) == len(feat["edges"]) + 1

    info = mlflow.models.get_model_info(v1.uri)
    assert info.signature is not None
    assert [c["name"] for c in info.signature.inputs.to_dict()] == list(iris["X_train"].columns)
    assert info.saved_input_example_info is not None
    reqs = mlflow.pyfunc.get_model_dependencies(v1.uri)
    pinned = open(reqs).read()
    assert "scikit-learn==" in pinned and "mlflow==" in pinned

    # A plain MLflow user loads and predicts the same.
    loaded = mlflow.pyfunc.load_model("models:/iris/1")
    clf = nbmodel.load("iris/1")
    np.testing.assert_array_equal(loaded.predict(iris["X_test"]), clf.predict(iris["X_test"]))


def test_pipeline_params_are_flattened(iris):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=3.0, max_iter=300))
    pipe.fit(iris["X_train"], iris["y_train"])
    v = nbmodel.commit(pipe, "pipe", eval=(iris["X_test"], iris["y_test"]))
    assert v.params["logisticregression__C"] == "3.0"
    assert v.params["standardscaler__with_mean"] == "True"
    assert "Pipeline[StandardScaler, LogisticRegression]" in v.estimator
    assert v.flavor == "sklearn"


def test_regressor_metrics(diabetes):
    from sklearn.linear_model import Ridge

    reg = Ridge().fit(diabetes["X_train"], diabetes["y_train"])
    v = nbmodel.commit(reg, "diabetes", eval=(diabetes["X_test"], diabetes["y_test"]))
    assert v.task == "regressor"
    assert set(v.metrics) == {"rmse", "mae", "r2"}
    assert list(v.key_metrics) == ["rmse", "r2", "mae"]


class Doubler:
    """Not scikit-learn: anything with predict commits through a pyfunc wrapper."""

    def __init__(self, factor: float = 2.0) -> None:
        self.factor = factor

    def predict(self, X):
        return np.asarray(X)[:, 0] * self.factor


def test_any_object_with_predict_commits_and_loads_with_plain_mlflow(diabetes):
    import warnings

    X = diabetes["X_test"]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        v = nbmodel.commit(Doubler(3.0), "doubler", eval=(X, diabetes["y_test"]))
    # MLflow's coloured "Add type hints to the `predict` method" never reaches the notebook
    assert not [w for w in seen if "type hints" in str(w.message)]
    assert v.flavor == "pyfunc"
    assert v.params == {"factor": "3.0"}
    plain = mlflow.pyfunc.load_model(v.uri).predict(X)
    np.testing.assert_allclose(np.asarray(plain), X.iloc[:, 0].to_numpy() * 3.0)
    back = nbmodel.checkout(v.ref)
    assert isinstance(back, Doubler) and back.factor == 3.0


def _nothing_written(store) -> bool:
    client = MlflowClient(store.uri, registry_uri=store.uri)
    return not client.search_registered_models() and not any(
        client.search_runs([e.experiment_id for e in client.search_experiments()]))


@pytest.mark.parametrize("make, error, words", [
    (lambda d: ("not a model", None), NotAModel, "not a model"),
    (lambda d: (d["model"], (d["X_test"].iloc[:, :2], d["y_test"])), BadData, "missing"),
    (lambda d: (d["model"], (d["X_test"].rename(columns={"sepal length (cm)": "sl"}), d["y_test"])),
     BadData, "unknown sl"),
    (lambda d: (d["model"], (d["X_test"], d["y_test"][:5])), BadData, "must match"),
    (lambda d: (d["model"], (d["X_test"].to_numpy()[:, :3], d["y_test"])), BadData, "4"),
    (lambda d: (d["model"], (d["X_test"]["sepal width (cm)"], d["y_test"])), BadData, "single column"),
])
def test_bad_input_is_refused_and_writes_nothing(iris, isolated_store, make, error, words):
    from sklearn.linear_model import LogisticRegression

    d = dict(iris, model=LogisticRegression(max_iter=500).fit(iris["X_train"], iris["y_train"]))
    model, eval_ = make(d)
    with pytest.raises(error, match=words):
        nbmodel.commit(model, "iris", eval=eval_)
    assert _nothing_written(isolated_store)


def test_a_model_that_cannot_be_saved_leaves_no_version(isolated_store, iris):
    import threading

    class Locked:
        def __init__(self):
            self.lock = threading.Lock()  # cannot be pickled

        def predict(self, X):
            return np.zeros(len(X))

    with pytest.raises(nbmodel.NbmodelError, match="could not commit"):
        nbmodel.commit(Locked(), "locked")
    client = MlflowClient(isolated_store.uri, registry_uri=isolated_store.uri)
    assert not client.search_model_versions("name = 'locked'")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert not runs  # the half-made run was deleted


def test_commit_name_defaults_to_where_the_object_came_from(commit_iris, iris):
    commit_iris(C=1.0)
    clf = nbmodel.checkout("iris/1")
    clf.set_params(C=0.5).fit(iris["X_train"], iris["y_train"])
    v = nbmodel.commit(clf, message="retrained")
    assert v.ref == "iris/2" and v.parent == "iris/1"
    with pytest.raises(BadData, match="give the model a name"):
        nbmodel.commit(Doubler())


def test_concurrent_commits_in_threads_get_distinct_versions(commit_iris):
    from concurrent.futures import ThreadPoolExecutor

    commit_iris()
    with ThreadPoolExecutor(4) as pool:
        refs = sorted(v.version for v in pool.map(lambda i: commit_iris(C=1 + i), range(6)))
    assert refs == list(range(2, 8))


def test_digests_of_a_local_store_are_read_in_place_and_match_a_download(commit_iris, monkeypatch, tmp_path,
                                                                          isolated_store):
    import mlflow.artifacts

    from nbmodel import digests

    real = mlflow.artifacts.download_artifacts

    def no_download(*args, **kwargs):
        raise AssertionError("the commit copied its own model files back to hash them")

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", no_download)
    v = commit_iris()
    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", real)
    tags = MlflowClient(isolated_store.uri, registry_uri=isolated_store.uri).get_model_version(
        "iris", str(v.version)).tags
    folder = real(artifact_uri=v.uri, dst_path=str(tmp_path / "copy"))
    assert json.loads(unpack(tags)[digests.TAG]) == digests.fingerprint(folder)
    assert digests.verify(folder, tags, what=v.ref)


def test_a_remote_artifact_location_is_hashed_from_a_download():
    from nbmodel import digests

    assert digests._local_folder("s3://bucket/1/models/m-1/artifacts") is None
    assert digests._local_folder("mlflow-artifacts:/1/models/m-1/artifacts") is None
    assert digests._local_folder("file:///no/such/folder") is None


def test_the_run_tags_are_written_with_the_run(commit_iris, isolated_store):
    v = commit_iris()
    run = MlflowClient(isolated_store.uri).get_run(v.run_id)
    assert run.data.tags["nbmodel.task"] == "classifier"
    assert run.data.tags["nbmodel.estimator"] == "sklearn.linear_model._logistic.LogisticRegression"


def _counting(model):
    calls = []

    class Counting:
        def predict(self, X):
            calls.append(len(X))
            return model.predict(X)

    return Counting(), calls


def test_importance_on_small_data_predicts_each_repeat_in_one_call(iris):
    from sklearn.inspection import permutation_importance
    from sklearn.linear_model import LogisticRegression

    from nbmodel.explain import permutation

    X, y = iris["X_test"], iris["y_test"]
    clf = LogisticRegression(max_iter=500).fit(iris["X_train"], iris["y_train"])
    counting, calls = _counting(clf)
    imp = permutation(counting, X, y, "classifier")
    # The baseline alone, then one call per repeat with every feature's shuffled copy in it
    # (the first with the unshuffled rows, which must come out the same).
    assert len(calls) == 1 + 5 and calls[0] == len(X)
    assert calls[1:] == [len(X) * 5] + [len(X) * 4] * 4
    ref = permutation_importance(clf, X, y, n_repeats=5, random_state=0, scoring="accuracy")
    for i, name in enumerate(X.columns):
        assert imp.value(name) == pytest.approx((ref.importances_mean[i], ref.importances_std[i]),
                                                abs=1e-12)


def test_importance_of_a_model_whose_rows_depend_on_each_other_is_measured_copy_by_copy(iris):
    from sklearn.inspection import permutation_importance

    from nbmodel.explain import permutation

    class BatchNormed:
        """Standardises each input by its own mean: a row's prediction depends on the batch."""

        def fit(self, X, y):
            return self

        def predict(self, X):
            a = np.asarray(X, dtype=float)
            z = (a - a.mean(axis=0)) / (a.std(axis=0) + 1e-9)
            return (z[:, 2] + 0.3 * z[:, 0] > 0).astype(int)

        def score(self, X, y):
            return float(np.mean(self.predict(X) == np.asarray(y)))

    X, y = iris["X_test"], (iris["y_test"] > 0).astype(int)
    model = BatchNormed()
    imp = permutation(model, X, y, "classifier")
    ref = permutation_importance(model, X, y, n_repeats=5, random_state=0)
    for i, name in enumerate(X.columns):
        assert imp.value(name) == pytest.approx((ref.importances_mean[i], ref.importances_std[i]),
                                                abs=1e-12)
