"""Permutation importance at commit, %model_explain, and importance in diff and compare."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

import nbmodel
from nbmodel.errors import BadData
from nbmodel.explain import changes, explain, permutation, stored
from nbmodel.explain._importance import IMPORTANCE_ARTIFACT, MIN_ROWS, T_IMPORTANCE, Importance
from nbmodel.tagpack import unpack


def planted(n: int = 600, seed: int = 0, driver: str = "signal") -> tuple[pd.DataFrame, np.ndarray]:
    """``driver`` decides the class, ``weak`` helps a little, ``noise`` does nothing."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"signal": rng.normal(size=n), "weak": rng.normal(size=n),
                      "noise": rng.normal(size=n)})
    other = "weak" if driver == "signal" else "signal"
    y = (X[driver] + 0.3 * X[other] + 0.1 * rng.normal(size=n) > 0).astype(int).to_numpy()
    return X, y


def fitted(driver: str = "signal", seed: int = 0) -> tuple[object, pd.DataFrame, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    X, y = planted(seed=seed, driver=driver)
    Xt, yt = planted(seed=seed + 100, driver=driver)
    return LogisticRegression().fit(X, y), Xt, yt


def test_commit_records_importance_planted_feature_first_noise_last(isolated_store):
    clf, Xt, yt = fitted()
    v = nbmodel.commit(clf, "planted", eval=(Xt, yt))
    imp = stored(v)
    assert imp is not None
    assert imp.features == ["signal", "weak", "noise"]
    assert imp.mean[0] > 0.2 and abs(imp.mean[-1]) < 0.02
    assert imp.metric == "accuracy" and imp.rows == imp.of == len(Xt) and imp.repeats == 5
    assert all(s >= 0 for s in imp.std)
    # plain MLflow sees the artifact and the tag
    client = MlflowClient(isolated_store.uri, registry_uri=isolated_store.uri)
    mv = client.get_model_version("planted", "1")
    assert json.loads(unpack(mv.tags)[T_IMPORTANCE])["features"][0] == "signal"
    import mlflow

    art = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/{IMPORTANCE_ARTIFACT}")
    assert art["features"] == imp.features


def test_importance_is_deterministic_and_regressors_use_r2(diabetes):
    from sklearn.linear_model import Ridge

    reg = Ridge().fit(diabetes["X_train"], diabetes["y_train"])
    a = permutation(reg, diabetes["X_test"], diabetes["y_test"], "regressor")
    b = permutation(reg, diabetes["X_test"], diabetes["y_test"], "regressor")
    assert a == b and a.metric == "r2"
    assert a.features[0] in ("s5", "bmi")


def test_commit_without_eval_records_no_importance(isolated_store):
    clf, _, _ = fitted()
    v = nbmodel.commit(clf, "planted")
    assert stored(v) is None
    with pytest.raises(BadData, match="--eval"):
        explain(v.ref)


@pytest.mark.slow
def test_large_eval_data_is_sampled_and_the_note_says_so():
    from sklearn.linear_model import LogisticRegression

    X, y = planted(n=30_000)
    clf = LogisticRegression().fit(X, y)
    imp = permutation(clf, X, y, "classifier")
    assert MIN_ROWS <= imp.rows < imp.of == 30_000
    assert f"a sample of {imp.rows} of 30000 eval rows" in imp.note
    assert imp.features[0] == "signal"


@pytest.mark.parametrize("as_array", [False, True])
@pytest.mark.parametrize("task", ["classifier", "regressor"])
def test_importance_equals_scikit_learns_permutation_importance(task, as_array):
    from sklearn.inspection import permutation_importance
    from sklearn.linear_model import LogisticRegression, Ridge

    X, y = planted(n=300)
    if task == "regressor":
        y = X["signal"].to_numpy() * 2 + X["weak"].to_numpy()
    data = X.to_numpy() if as_array else X
    model = (LogisticRegression() if task == "classifier" else Ridge()).fit(data, y)
    imp = permutation(model, data, y, task, budget=None)
    ref = permutation_importance(model, data, y, n_repeats=5, random_state=0,
                                 scoring="accuracy" if task == "classifier" else "r2")
    names = list(X.columns) if not as_array else ["x0", "x1", "x2"]
    for i, name in enumerate(names):
        assert imp.value(name) == pytest.approx(
            (ref.importances_mean[i], ref.importances_std[i]), abs=1e-12)


def test_importance_runs_on_one_native_thread():
    # Threads of BLAS or OpenMP waiting for each other made a busy machine's commits seconds
    # slower for a fraction of a second of work.
    from threadpoolctl import threadpool_info

    seen = []

    class Counting:
        def predict(self, X):
            seen.append(max((p["num_threads"] for p in threadpool_info()), default=1))
            return (np.asarray(X)[:, 0] > 0).astype(int)

    X, y = planted(n=100)
    permutation(Counting(), X, y, "classifier")
    assert seen and set(seen) == {1}


def test_a_slow_model_stops_at_the_time_budget_and_the_note_says_so():
    import time

    class Slow:
        def predict(self, X):
            time.sleep(0.01)
            return (np.asarray(X)[:, 0] > 0).astype(int)

    X, y = planted(n=MIN_ROWS + 1)
    start = time.perf_counter()
    imp = permutation(Slow(), X, y, "classifier", budget=0.1)  # one repeat takes 0.03 s
    assert time.perf_counter() - start < 1.0
    assert imp.rows == imp.of == MIN_ROWS + 1
    assert 1 <= imp.repeats < 5 and imp.planned == 5 and imp.bounded
    assert f"{imp.repeats} of 5 repeats (the time budget stopped it)" in imp.note
    assert Importance.from_dict(imp.to_dict()) == imp
    full = permutation(Slow(), X, y, "classifier", budget=None)
    assert full.repeats == 5 and full.planned is None and not full.bounded
    # Small data is measured whole, however busy the machine: lessons show the same figures.
    small = permutation(Slow(), X.iloc[:MIN_ROWS], y[:MIN_ROWS], "classifier", budget=0.0)
    assert small.repeats == 5 and not small.bounded


def test_the_card_states_the_sample_and_the_repeats_importance_used(isolated_store, monkeypatch):
    from nbmodel.explain import _importance

    clf, _, _ = fitted()
    small_X, small_y = planted(n=200, seed=5)
    small = nbmodel.commit(clf, "carded", eval=(small_X, small_y))
    assert small.importance is None and "importance" not in str(nbmodel.show(small.ref))

    monkeypatch.setattr(_importance, "ROW_BUDGET", 3 * 5 * 1000)  # 1000 rows of 3 features
    monkeypatch.setattr(_importance, "TIME_BUDGET", 60.0)  # every repeat, however busy the machine
    X, y = planted(n=1500, seed=7)
    v = nbmodel.commit(clf, "carded", eval=(X, y))
    card = nbmodel.show(v.ref)
    line = ("permutation importance (drop in accuracy), 5 repeats, seed 0, "
            "on a sample of 1000 of 1500 eval rows")
    assert f"importance  {line}" in str(card)
    assert "<td class='k'>importance</td><td>" + line in card._repr_html_()

    monkeypatch.setattr(_importance, "TIME_BUDGET", 0.0)
    v = nbmodel.commit(clf, "carded", eval=(X, y))
    assert "1 of 5 repeats (the time budget stopped it)" in str(nbmodel.show(v.ref))
    assert "1 of 5 repeats" in str(stored(v).note)


def test_a_bare_array_for_a_model_fitted_by_name_warns_at_no_shuffle(isolated_store):
    import warnings

    clf, Xt, yt = fitted()
    v = nbmodel.commit(clf, "planted")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn warned once per shuffle
        imp = permutation(clf, Xt.to_numpy(), yt, "classifier")
        e = explain(v.ref, Xt.to_numpy(), yt, shap=False, plots=False)
    assert imp.features[0] == "signal" and e.importance.features[0] == "signal"


def test_a_model_that_fails_on_shuffled_data_still_commits(isolated_store):
    class Picky:
        calls = 0

        def predict(self, X):
            Picky.calls += 1
            if Picky.calls > 3:  # scoring and the signature work; the shuffles do not
                raise ValueError("no")
            return np.zeros(len(X), dtype=int)

    X, y = planted(n=50)
    v = nbmodel.commit(Picky(), "picky", eval=(X, y))
    assert stored(v) is None


def test_diff_notices_a_planted_change_of_importance(isolated_store):
    clf1, X1, y1 = fitted("signal")
    clf2, X2, y2 = fitted("weak", seed=1)
    nbmodel.commit(clf1, "planted", eval=(X1, y1))
    nbmodel.commit(clf2, "planted", eval=(X2, y2))
    d = nbmodel.diff("planted/1", "planted/2")
    change = d.importance
    assert change is not None
    moves = {m.feature: m for m in change.moves}
    assert moves["weak"].real and moves["weak"].change > 0.2
    assert moves["signal"].real and moves["signal"].change < -0.2
    assert not moves["noise"].real
    assert (moves["weak"].rank_a, moves["weak"].rank_b) == (2, 1)
    assert "weak now matters" in change.sentence
    assert "signal dropped from 1st to 2nd" in change.sentence
    assert "importance (drop in accuracy) planted/1 -> planted/2" in str(d)
    assert change.sentence in d._repr_html_()
    assert d.to_dict()["importance"]["sentence"] == change.sentence


def test_the_sentence_names_ratios_and_rank_moves():
    a = Importance(["p", "q", "r", "s"], [0.4, 0.2, 0.1, 0.05], [0.01] * 4, "accuracy", 100, 100)
    b = Importance(["s", "p", "r", "q"], [0.5, 0.4, 0.1, 0.05], [0.01] * 4, "accuracy", 100, 100)
    c = changes(a, b, "m/1", "m/2")
    assert c.sentence == "s now matters 10 times as much; q now matters a quarter as much; " \
                         "s rose from 4th to 1st; q dropped from 2nd to 4th"
    same = changes(a, a, "m/1", "m/2")
    assert same.sentence == "importance did not change beyond its spread over repeats"


def test_explain_shows_ranked_importance_text_html_and_png(isolated_store):
    clf, Xt, yt = fitted()
    nbmodel.commit(clf, "planted", eval=(Xt, yt))
    stored_view = explain("planted")
    assert stored_view.measured == "at commit"
    text = str(stored_view)
    lines = text.splitlines()
    assert lines[0].startswith("explain planted/1 (classifier): permutation importance (drop in accuracy)")
    assert lines[2].split()[:2] == ["1", "signal"] and lines[4].split()[:2] == ["3", "noise"]
    assert stored_view.figures and stored_view.figures[0].png.startswith(b"\x89PNG")
    assert "<table" in stored_view._repr_html_()
    assert str(explain("planted")) == text  # deterministic
    fresh = explain("planted", Xt, yt, shap=False)
    assert fresh.measured == "on the data given" and fresh.importance.features[0] == "signal"


def test_explain_a_regressor(isolated_store, diabetes):
    from sklearn.linear_model import Ridge

    reg = Ridge().fit(diabetes["X_train"], diabetes["y_train"])
    nbmodel.commit(reg, "diab", eval=(diabetes["X_test"], diabetes["y_test"]))
    e = explain("diab", diabetes["X_test"], diabetes["y_test"], shap=False)
    assert e.task == "regressor" and e.importance.metric == "r2"


def test_explain_without_shap_says_how_to_get_it(isolated_store, monkeypatch):
    import nbmodel.explain._explain as ex

    monkeypatch.setattr(ex, "available", lambda: False)
    clf, Xt, yt = fitted()
    nbmodel.commit(clf, "planted", eval=(Xt, yt))
    e = explain("planted", Xt, yt)
    assert e.shap is None
    assert 'pip install "shap<0.50"' in str(e)


def test_explain_refuses_bad_rows_and_group_columns(isolated_store):
    clf, Xt, yt = fitted()
    nbmodel.commit(clf, "planted", eval=(Xt, yt))
    with pytest.raises(BadData, match="row 9999"):
        explain("planted", Xt, yt, row=9999)
    with pytest.raises(BadData, match="no column 'sex'"):
        explain("planted", Xt, yt, groups="sex")




@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tree", "linear", "pipeline"])
def test_shap_values_rank_the_planted_feature_first(isolated_store, kind):
    pytest.importorskip("shap")
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = planted(n=300)
    model = {"tree": RandomForestClassifier(n_estimators=20, random_state=0),
             "linear": LogisticRegression(),
             "pipeline": make_pipeline(StandardScaler(), LogisticRegression())}[kind].fit(X, y)
    nbmodel.commit(model, "shapped", eval=(X, y))
    row = int(np.argmax(np.abs(X["signal"].to_numpy()[:60])))  # signal decides this row
    e = explain("shapped", X.iloc[:60], y[:60], row=row)
    assert e.shap is not None
    assert e.shap.explainer == {"tree": "tree", "linear": "linear", "pipeline": "permutation"}[kind]
    assert e.shap.mean_abs()[0][0] == "signal"
    text = str(e)
    assert f"row {row}: top features by SHAP value: signal" in text
    assert [f.title for f in e.figures] == ["permutation importance of shapped/1", "SHAP values of shapped/1"]


@pytest.mark.slow
def test_shap_for_a_regressor(isolated_store, diabetes):
    pytest.importorskip("shap")
    from sklearn.ensemble import GradientBoostingRegressor

    reg = GradientBoostingRegressor(n_estimators=30, random_state=0).fit(diabetes["X_train"],
                                                                       diabetes["y_train"])
    nbmodel.commit(reg, "diab", eval=(diabetes["X_test"], diabetes["y_test"]))
    e = explain("diab", diabetes["X_test"], diabetes["y_test"])
    assert e.shap is not None and e.shap.explainer == "tree"
    assert e.shap.values.shape == (len(diabetes["X_test"]), diabetes["X_test"].shape[1])
