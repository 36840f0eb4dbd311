"""Model types: XGBoost, LightGBM, PyTorch and Keras models through the same API and magics.

Each library's model is tiny and trained here (well under a second). A library that is not
installed skips only its own tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

# Keras 3 reads its backend once, at import; the models libraries' extra installs torch.
os.environ.setdefault("KERAS_BACKEND", "torch")

LIBRARIES = ("xgboost", "lightgbm", "torch", "keras")


@pytest.fixture(scope="module")
def wine() -> dict[str, Any]:
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    X, y = load_wine(return_X_y=True, as_frame=True)
    X = (X - X.mean()) / X.std()  # networks learn in a few steps on standardised columns
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    return {"X_train": X_train, "X_test": X_test, "y_train": y_train, "y_test": y_test}


def xgb_model(wine: dict[str, Any], trees: int = 5) -> Any:
    xgboost = pytest.importorskip("xgboost")
    return xgboost.XGBClassifier(n_estimators=trees, max_depth=2).fit(wine["X_train"], wine["y_train"])


def lgbm_model(wine: dict[str, Any], trees: int = 5) -> Any:
    lightgbm = pytest.importorskip("lightgbm")
    return lightgbm.LGBMClassifier(n_estimators=trees, verbose=-1).fit(wine["X_train"], wine["y_train"])


def torch_model(wine: dict[str, Any], hidden: int = 8) -> Any:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(13, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 3))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    X = torch.tensor(wine["X_train"].values, dtype=torch.float32)
    y = torch.tensor(wine["y_train"].values)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(X), y).backward()
        opt.step()
    return net.eval()


def keras_model(wine: dict[str, Any], hidden: int = 8) -> Any:
    pytest.importorskip("torch")
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((13,)), keras.layers.Dense(hidden, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    model.fit(wine["X_train"].values, wine["y_train"].values, epochs=30, verbose=0)
    return model


MAKERS: dict[str, Callable[..., Any]] = {"xgboost": xgb_model, "lightgbm": lgbm_model, "pytorch": torch_model,
                                         "keras": keras_model}
DISTS = {"xgboost": "xgboost", "lightgbm": "lightgbm", "pytorch": "torch", "keras": "keras"}


def native_output(model: Any, X: Any) -> np.ndarray:
    """What the library itself answers, asked the library's own way."""
    kind = type(model).__module__.split(".")[0]
    if kind == "torch":
        import torch

        with torch.no_grad():
            return model(torch.tensor(np.asarray(X, dtype=np.float32))).numpy()
    if kind == "keras":
        return np.asarray(model.predict(np.asarray(X, dtype=np.float32), verbose=0))
    return np.asarray(model.predict(X))


@pytest.mark.parametrize("flavor", [*[f for f in MAKERS if f != "keras"],
                                    pytest.param("keras", marks=pytest.mark.slow)])  # imports Keras: seconds
def test_commit_stores_the_librarys_flavor_and_checkout_gives_the_native_object(
        flavor: str, wine: dict[str, Any], isolated_store: Any) -> None:
    import mlflow

    import nbmodel

    model = MAKERS[flavor](wine)
    v = nbmodel.commit(model, "wine_kinds", eval=(wine["X_test"], wine["y_test"]), message=flavor)
    assert v.flavor == flavor
    assert v.metrics["accuracy"] > 0.8, v.metrics
    assert "roc_auc" in v.metrics
    info = mlflow.models.get_model_info(v.uri)
    assert flavor in info.flavors and info.signature is not None
    reqs = mlflow.pyfunc.get_model_dependencies(v.uri)
    pinned = open(reqs, encoding="utf-8").read().split()
    dist = DISTS[flavor]
    assert any(line.lower().startswith(f"{dist}==") for line in pinned), pinned
    params = v.params
    if flavor in ("pytorch", "keras"):
        assert int(params["parameters"]) == 13 * 8 + 8 + 8 * 3 + 3
        assert any(k.startswith("layer.") for k in params)
    else:
        assert params["n_estimators"] == "5"

    back = nbmodel.checkout(v.ref)
    if flavor == "pytorch":
        import torch

        assert isinstance(back, torch.nn.Module)
    elif flavor == "keras":
        import keras

        assert isinstance(back, keras.Model)
    else:
        assert type(back) is type(model)
    X = wine["X_test"]
    np.testing.assert_allclose(native_output(back, X), native_output(model, X), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_plain_mlflow_loads_every_type_in_a_process_that_never_imported_the_tests(
        wine: dict[str, Any], isolated_store: Any, kernel_env: dict[str, str]) -> None:
    import nbmodel

    models = {}
    for flavor, make in MAKERS.items():
        try:
            models[flavor] = make(wine)
        except pytest.skip.Exception:
            continue
    if not models:
        pytest.skip("no model library installed")
    data = (wine["X_test"], wine["y_test"])
    uris = {f: nbmodel.commit(m, f"wine_{f}", eval=data).uri for f, m in models.items()}
    X = wine["X_test"]
    script = textwrap.dedent("""
        import json, sys
        import numpy as np, pandas as pd
        import mlflow.pyfunc
        uris, columns, rows = json.loads(sys.stdin.read())
        X = pd.DataFrame(rows, columns=columns)
        out = {}
        for flavor, uri in uris.items():
            model = mlflow.pyfunc.load_model(uri)
            if model.metadata.get_input_schema().is_tensor_spec():
                answer = model.predict(X.to_numpy(dtype=np.float32))
            else:
                answer = model.predict(X)
            out[flavor] = np.asarray(answer).tolist()
        print(json.dumps({"out": out, "nbmodel": "nbmodel" in sys.modules,
                          "tests": any(m.startswith("test_") for m in sys.modules)}))
    """)
    env = {**kernel_env, "PYTHONPATH": "", "MLFLOW_TRACKING_URI": os.environ["MLFLOW_TRACKING_URI"]}
    given = json.dumps([uris, list(X.columns), X.values.tolist()])
    done = subprocess.run([sys.executable, "-c", script], input=given, capture_output=True,
                          text=True, env=env, timeout=300, cwd=os.getcwd())
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["nbmodel"] is False and got["tests"] is False
    for flavor, model in models.items():
        np.testing.assert_allclose(np.asarray(got["out"][flavor]).reshape(native_output(model, X).shape),
                                   native_output(model, X), rtol=1e-5, atol=1e-6, err_msg=flavor)


def test_diff_shows_a_networks_architecture_change_and_parameter_counts(
        wine: dict[str, Any], isolated_store: Any) -> None:
    import nbmodel

    data = (wine["X_test"], wine["y_test"])
    nbmodel.commit(torch_model(wine, hidden=8), "wine_net", eval=data)
    nbmodel.commit(torch_model(wine, hidden=16), "wine_net", eval=data)
    d = nbmodel.diff("wine_net/1", "wine_net/2")
    changes = {k: (a, b) for k, a, b in d.params}
    assert changes["layer.0"] == ("Linear(in_features=13, out_features=8, bias=True)",
                                  "Linear(in_features=13, out_features=16, bias=True)")
    assert changes["parameters"] == ("139", str(13 * 16 + 16 + 16 * 3 + 3))
    assert "layer.0" in str(d) and "parameters" in str(d)


def test_compare_scores_a_sklearn_model_a_booster_and_a_network_on_the_same_data(
        wine: dict[str, Any], isolated_store: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    import nbmodel

    data = (wine["X_test"], wine["y_test"])
    linear = LogisticRegression(max_iter=500).fit(wine["X_train"], wine["y_train"])
    nbmodel.commit(linear, "wine_kinds", eval=data)
    nbmodel.commit(xgb_model(wine), "wine_kinds", eval=data)
    nbmodel.commit(torch_model(wine), "wine_kinds", eval=data)
    c = nbmodel.compare(["wine_kinds/1", "wine_kinds/2", "wine_kinds/3"], *data, plots=False)
    for ref in ("wine_kinds/1", "wine_kinds/2", "wine_kinds/3"):
        v = nbmodel.show(ref)
        assert c.metrics["accuracy"][c.refs.index(ref)] == pytest.approx(v.metrics["accuracy"], abs=1e-6)
    assert len(c.metrics["roc_auc"]) == 3 and all(x is not None and x > 0.8 for x in c.metrics["roc_auc"])


def test_a_network_regressor_scores_as_a_regressor(isolated_store: Any) -> None:
    torch = pytest.importorskip("torch")
    import nbmodel

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)).astype(np.float32)
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=64)
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    with torch.no_grad():
        net.weight[:] = torch.tensor([[1.0, -2.0, 0.5]])
        net.bias[:] = 0.0
    v = nbmodel.commit(net, "wine_reg", eval=(X, y))
    assert set(v.metrics) == {"rmse", "mae", "r2"} and v.metrics["r2"] > 0.95


def test_a_type_nbmodel_cannot_store_is_a_usage_error_naming_what_it_can(shell: Any,
                                                                         isolated_store: Any) -> None:
    from IPython.core.error import UsageError

    import nbmodel
    from nbmodel.errors import NotAModel

    with pytest.raises(NotAModel) as err:
        nbmodel.commit({"weights": [1, 2]}, "wine_kinds")
    for name in ("scikit-learn", "XGBoost", "LightGBM", "PyTorch", "Keras", "predict()"):
        assert name in str(err.value)
    shell.ns["blob"] = object()
    e = shell.fails("%model_commit blob")
    assert isinstance(e, UsageError) and "XGBoost" in str(e)


def test_detecting_a_type_imports_no_model_library(kernel_env: dict[str, str]) -> None:
    script = ("import sys, nbmodel.flavors as f\n"
              "class Module:\n    pass\n"
              "assert f.kind_of(Module()) is None and f.kind_of(object()) is None\n"
              f"print([m for m in {LIBRARIES!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=kernel_env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _imported_libraries(script: str, env: dict[str, str]) -> list[str]:
    done = subprocess.run([sys.executable, "-c", script + f"\nimport sys\nprint([m for m in {LIBRARIES!r} "
                           "if m in sys.modules])"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"'))


@pytest.mark.slow
def test_the_warm_starter_imports_no_model_library(kernel_env: dict[str, str]) -> None:
    script = "from nbmodel.serving import _warm\n_warm._import_server()\n_warm._import_mlflow()"
    assert _imported_libraries(script, kernel_env) == []


@pytest.mark.slow
@pytest.mark.parametrize("flavor", ["xgboost", "pytorch", "lightgbm-booster"])
def test_a_fresh_server_imports_only_the_library_of_the_model_it_serves(
        flavor: str, wine: dict[str, Any], isolated_store: Any, kernel_env: dict[str, str]) -> None:
    import mlflow.artifacts

    import nbmodel

    v = nbmodel.commit(_classifier(flavor, wine)[0], "wine_kinds", eval=(wine["X_test"], wine["y_test"]))
    path = mlflow.artifacts.download_artifacts(v.uri, dst_path=os.path.join(os.getcwd(), "served"))
    body = json.dumps({"dataframe_split": {"columns": list(wine["X_test"].columns),
                                           "data": wine["X_test"].values[:3].tolist()}})
    script = textwrap.dedent(f"""
        import sys
        from nbmodel.serving import _models
        h = _models.load_handle("wine_kinds", 1, {path!r})
        _models.predict_json(h, {body!r}.encode())  # the fast path: the native model, no MLflow
        assert h.fast and "mlflow" not in sys.modules, sorted(m for m in sys.modules if "mlflow" in m)
        _models.predict_slow(h, {body!r}.encode(), "application/json")
    """)
    env = {**kernel_env, "MLFLOW_TRACKING_URI": os.environ["MLFLOW_TRACKING_URI"]}
    assert _imported_libraries(script, env) == [DISTS[flavor.split("-")[0]]]


SERVED = ["xgboost", "lightgbm", "xgboost-booster", "lightgbm-booster", "pytorch", "keras"]


def _pyfunc_json(pyfunc: Any, X: Any, network: bool, order: str = "F") -> Any:
    """What ``mlflow.pyfunc.load_model(...).predict`` answers on the rows ``X``, as JSON values.
    A network's signature is a float32 tensor: it is given the rows as MLflow's scoring server
    hands them over, which decides a float32 kernel's last bits: a column-major array for the
    ``dataframe_*`` forms (pandas' ``to_numpy`` of the DataFrame read from JSON), a row-major
    one for ``inputs``."""
    out = pyfunc.predict(np.asarray(X.to_numpy(dtype=np.float32), order=order) if network else X)
    return json.loads(json.dumps(np.asarray(out).tolist()))


@pytest.mark.slow
@pytest.mark.parametrize("flavor", SERVED)
def test_deployed_and_queried_over_http_as_mlflow_answers(flavor: str, wine: dict[str, Any],
                                                          isolated_store: Any) -> None:
    requests = pytest.importorskip("requests")
    from concurrent.futures import ThreadPoolExecutor

    import mlflow.pyfunc
    from mlflow.pyfunc import scoring_server

    import nbmodel
    import nbmodel.serving as serving

    model = _classifier(flavor, wine)[0]
    v = nbmodel.commit(model, "wine_kinds", eval=(wine["X_test"], wine["y_test"]))
    X = wine["X_test"].iloc[:6]
    network = flavor in ("pytorch", "keras")
    one, renamed = X.iloc[:1], X.set_axis([f"c{i}" for i in range(X.shape[1])], axis=1)
    bodies = [({"dataframe_split": {"columns": list(one.columns), "data": one.values.tolist()}}, one, "F"),
              ({"dataframe_split": {"columns": list(X.columns), "data": X.values.tolist()}}, X, "F"),
              ({"dataframe_records": json.loads(X.to_json(orient="records"))}, X, "F"),
              ({"inputs": X.values.tolist()} if network
               else {"inputs": {c: X[c].tolist() for c in X.columns}}, X, "C")]
    if network:  # a tensor of rows: MLflow reads the columns by position, whatever their names
        bodies.append(({"dataframe_split": {"columns": list(renamed.columns), "data": X.values.tolist()}},
                       X, "F"))
        bodies.append(({"dataframe_records": json.loads(renamed.to_json(orient="records"))}, X, "F"))
    pyfunc = mlflow.pyfunc.load_model(v.uri)
    try:
        dep = serving.deploy("wine_kinds/1")
        for body, rows, order in bodies:
            r = requests.post(dep.url, data=json.dumps(body), headers={"Content-Type": "application/json"},
                              timeout=60)
            want = scoring_server.invocations(json.dumps(body), "application/json", pyfunc,
                                              pyfunc.metadata.get_input_schema())
            assert (r.status_code, r.text) == (want.status, want.response), body
            assert r.status_code == 200, r.text
            assert r.json()["predictions"] == _pyfunc_json(pyfunc, rows, network, order), body
        # requests arriving together may be answered by one predict call: never another answer
        singles = [{"dataframe_split": {"columns": list(X.columns), "data": [row]}}
                   for row in X.values.tolist()]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda b: requests.post(dep.url, json=b, timeout=60).json(), singles * 4))
        assert [a["predictions"] for a in answers] == [_pyfunc_json(pyfunc, X.iloc[[i]], network)
                                                      for i in range(len(X))] * 4
        health = requests.get(dep.base_url + "/health", timeout=10).json()["models"][0]
        # each type's native predictor answers on the fast path, without MLflow's pyfunc
        assert health["fast"], health
        if not network:  # a tree's rows are independent: batched
            assert health["batch"], health
        # a network batches only if its float32 kernels give a row the same bits alone and
        # among others on the input example (Keras here does; a torch Linear does not)
    finally:
        serving.stop("all")


@pytest.mark.slow
@pytest.mark.parametrize("flavor", ["xgboost-booster", "lightgbm-booster", "pytorch", "keras"])
def test_the_fast_path_answers_what_the_pyfunc_answers_and_records_classes(
        flavor: str, wine: dict[str, Any], isolated_store: Any) -> None:
    import mlflow.artifacts
    import mlflow.pyfunc
    from mlflow.pyfunc import scoring_server

    import nbmodel
    from nbmodel.serving import _models

    nbmodel.commit(_classifier(flavor, wine)[0], "wine_kinds", eval=(wine["X_test"], wine["y_test"]))
    path = mlflow.artifacts.download_artifacts(nbmodel.show("wine_kinds/1").uri,
                                               dst_path=os.path.join(os.getcwd(), "served"))
    h = _models.load_handle("wine_kinds", 1, path)
    assert h.fast and h._pyfunc is None  # the fast path loaded without MLflow's pyfunc
    pyfunc = mlflow.pyfunc.load_model(path)
    X = wine["X_test"]
    for n in (1, 3, len(X)):
        body = json.dumps({"dataframe_split": {"columns": list(X.columns), "data": X.values[:n].tolist()}})
        answer, rows, recorded = _models.predict_json(h, body.encode())  # NeedsMlflow if not fast
        want = scoring_server.invocations(body, "application/json", pyfunc,
                                          pyfunc.metadata.get_input_schema())
        assert answer.decode() == want.response
        scores = np.asarray(json.loads(answer)["predictions"])
        assert scores.shape == (n, 3)
        assert np.asarray(recorded).tolist() == scores.argmax(axis=1).tolist()  # as the slow path records
        assert rows == X.values[:n].tolist()


def _saved_network(folder: str, example: Any, frame: Any = None) -> None:
    """A torch module saved by plain MLflow (not as nbmodel commits networks): its signature
    inferred on ``example`` (a tensor), or on ``frame`` (named columns)."""
    torch = pytest.importorskip("torch")
    import mlflow.pytorch
    from mlflow.models import infer_signature

    torch.manual_seed(0)
    width = int(np.prod(example.shape[1:]))
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(width, 2)).eval()
    with torch.no_grad():
        out = net(torch.from_numpy(example)).numpy()
    signature = infer_signature(example if frame is None else frame, out)
    if frame is None:
        mlflow.pytorch.save_model(net, folder, signature=signature, serialization_format="pt2",
                                  pip_requirements=["torch"], input_example=example)
    else:  # torch.export traces the module on an example of the signature's form: a pickle
        mlflow.pytorch.save_model(net, folder, signature=signature, pip_requirements=["torch"],
                                  serialization_format="pickle")


@pytest.mark.slow
def test_a_network_whose_input_is_no_table_of_numbers_stays_on_the_slow_path_and_answers(
        isolated_store: Any) -> None:
    import mlflow.pyfunc
    import pandas as pd

    from nbmodel.serving import _models

    # a 3-D tensor: no rows of columns for the fast path to read
    cube = np.arange(24, dtype=np.float32).reshape(2, 4, 3) / 10
    _saved_network("cube", cube)
    h = _models.load_handle("cube", 1, "cube")
    assert not h.fast and not h.batch and h.native is None
    body = json.dumps({"inputs": cube.tolist()}).encode()
    with pytest.raises(_models.NeedsMlflow):
        _models.predict_json(h, body)
    answer = json.loads(_models.predict_slow(h, body, "application/json")[0])["predictions"]
    np.testing.assert_array_equal(np.asarray(answer, dtype=np.float32),
                                  mlflow.pyfunc.load_model("cube").predict(cube))

    # named columns, one of them strings: MLflow's pyfunc reads them (into a DataFrame)
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    _saved_network("named", np.zeros((2, 2), dtype=np.float32), frame)
    h = _models.load_handle("named", 1, "named")
    assert not h.fast and not h.batch and h.native is None


@pytest.mark.slow
def test_a_fast_network_sends_what_it_cannot_read_to_mlflow(wine: dict[str, Any],
                                                            isolated_store: Any) -> None:
    import mlflow.artifacts

    import nbmodel
    from nbmodel.serving import _models

    nbmodel.commit(torch_model(wine), "wine_kinds", eval=(wine["X_test"], wine["y_test"]))
    path = mlflow.artifacts.download_artifacts(nbmodel.show("wine_kinds/1").uri,
                                               dst_path=os.path.join(os.getcwd(), "served"))
    h = _models.load_handle("wine_kinds", 1, path)
    assert h.fast
    row = wine["X_test"].values[0].tolist()
    for data in ({"dataframe_split": {"data": [["x", *row[1:]]]}},  # a string
                 {"dataframe_split": {"data": [row[:-1]]}},  # another width
                 {"dataframe_split": {"data": [[None, *row[1:]]]}},  # a null
                 {"dataframe_records": [{"a": 1.0}, {"b": 2.0}]},  # records of other keys
                 {"dataframe_split": {"data": [row]}, "params": {"x": 1}}):
        with pytest.raises(_models.NeedsMlflow):
            _models.predict_json(h, json.dumps(data).encode())
    answer, _, _ = _models.predict_json(h, json.dumps({"dataframe_split": {"data": [row]}}).encode())
    assert len(json.loads(answer)["predictions"][0]) == 3


@pytest.mark.slow
@pytest.mark.parametrize("flavor", ["pytorch", "xgboost-booster", "lightgbm-booster"])
def test_a_served_networks_monitoring_records_its_classes(flavor: str, wine: dict[str, Any],
                                                          isolated_store: Any) -> None:
    import mlflow.artifacts

    import nbmodel
    from nbmodel.serving import _models

    net = _classifier(flavor, wine)[0]  # a network's scores, a Booster's class probabilities
    nbmodel.commit(net, "wine_kinds", eval=(wine["X_test"], wine["y_test"]))
    path = mlflow.artifacts.download_artifacts(nbmodel.show("wine_kinds/1").uri,
                                               dst_path=os.path.join(os.getcwd(), "served"))
    h = _models.load_handle("wine_kinds", 1, path)
    X = wine["X_test"].iloc[:5]
    body = json.dumps({"dataframe_split": {"columns": list(X.columns), "data": X.values.tolist()}}).encode()
    answer, _, recorded = _models.predict_slow(h, body, "application/json")
    scores = np.asarray(json.loads(answer)["predictions"])
    assert scores.shape == (5, 3)  # the client gets MLflow's answer, the raw scores
    assert np.asarray(recorded).tolist() == scores.argmax(axis=1).tolist()


# -- explain and test cases for every type ------------------------------------------------------
def _regression_data() -> tuple[Any, Any]:
    import pandas as pd

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(80, 4)), columns=["a", "b", "c", "d"]).astype("float32")
    y = pd.Series(3.0 * X["a"] - 2.0 * X["b"] + 0.1 * rng.normal(size=80), name="y")
    return X, y


def _torch_regressor(X: Any, y: Any) -> Any:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    Xt, yt = torch.tensor(X.values, dtype=torch.float32), torch.tensor(y.values, dtype=torch.float32)
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(Xt)[:, 0], yt).backward()
        opt.step()
    return net.eval()


def _keras_regressor(X: Any, y: Any) -> Any:
    pytest.importorskip("torch")
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((X.shape[1],)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    model.fit(X.values, y.values, epochs=60, verbose=0)
    return model


def _booster(library: str, X: Any, y: Any, classes: int) -> Any:
    lib = pytest.importorskip(library)
    if library == "xgboost":
        params = ({"objective": "multi:softprob", "num_class": classes} if classes > 2
                  else {"objective": "binary:logistic"})
        return lib.train({**params, "max_depth": 2}, lib.DMatrix(X, label=y), 5)
    params = {"objective": "multiclass", "num_class": classes} if classes > 2 else {"objective": "binary"}
    return lib.train({**params, "verbose": -1, "num_leaves": 4}, lib.Dataset(X, y), 5)


def _regressor(flavor: str) -> tuple[Any, Any, Any]:
    X, y = _regression_data()
    if flavor == "xgboost":
        return pytest.importorskip("xgboost").XGBRegressor(n_estimators=20, max_depth=2).fit(X, y), X, y
    if flavor == "lightgbm":
        lgbm = pytest.importorskip("lightgbm")
        return lgbm.LGBMRegressor(n_estimators=20, min_child_samples=5, verbose=-1).fit(X, y), X, y
    if flavor == "pytorch":
        return _torch_regressor(X, y), X, y
    return _keras_regressor(X, y), X, y


def _classifier(flavor: str, wine: dict[str, Any]) -> tuple[Any, Any, Any]:
    X, y = wine["X_test"], wine["y_test"]
    if flavor.endswith("-booster"):
        return _booster(flavor.split("-")[0], wine["X_train"], wine["y_train"], 3), X, y
    return MAKERS[flavor](wine), X, y


# Each explains with SHAP and runs nine cases: seconds. The network, which nothing else in the
# package asks as scikit-learn's API does, runs in the fast set.
TYPES = [("pytorch", "classifier"),
         *[pytest.param(f, t, marks=pytest.mark.slow)
           for f, t in [("xgboost", "classifier"), ("lightgbm", "classifier"),
                        ("xgboost-booster", "classifier"), ("lightgbm-booster", "classifier"),
                        ("keras", "classifier"), ("xgboost", "regressor"),
                        ("lightgbm", "regressor"), ("pytorch", "regressor"), ("keras", "regressor")]]]


@pytest.mark.parametrize(("flavor", "task"), TYPES)
def test_explain_and_every_test_case_kind_work_for_each_type(flavor: str, task: str, wine: dict[str, Any],
                                                              isolated_store: Any) -> None:
    import nbmodel
    from nbmodel import flavors
    from nbmodel.explain import explain
    from nbmodel.modeltests import gate_problem

    model, X, y = _classifier(flavor, wine) if task == "classifier" else _regressor(flavor)
    v = nbmodel.commit(model, "wine_kinds", eval=(X, y))
    assert v.task == task
    at_commit = explain(v.ref, plots=False)  # importance measured at commit
    assert set(at_commit.importance.features) == set(X.columns)
    out = explain(v.ref, X, y, row=0, plots=False)
    imp = out.importance
    assert set(imp.features) == set(X.columns)
    assert imp.metric == ("accuracy" if task == "classifier" else "r2")
    assert imp.mean[0] > 0  # the model uses its data: shuffling its best column costs something
    if out.shap is not None:  # shap installed: values of every row and column
        assert out.shap.values.shape == (len(X), X.shape[1]) and np.isfinite(out.shap.values).all()
    else:
        assert out.shap_note and "\n" not in out.shap_note

    expected = flavors.predict(model, X.iloc[:5])
    col = imp.features[0]  # the column the model leans on most
    rule = "accuracy >= 0.8" if task == "classifier" else "r2 >= 0.5"
    nbmodel.add_tests(v.ref, rules=[rule], eval=(X, y), rows=(X.iloc[:5], expected), invariant=[col],
                      increasing=[col],
                      robust=["nan", "missing-column", "wrong-type", "empty", "out-of-range"])
    report = nbmodel.run_tests(v.ref)
    results = {r.name: r for r in report.results}
    ran = {name: r for name, r in results.items() if not r.error}
    assert set(ran) == set(results), {n: r.error for n, r in results.items() if r.error}
    for name in (rule, "expected rows (5)", "missing-column refused", "wrong-type refused"):
        assert results[name].passed, (name, results[name].measured)
    assert "columns" in results["missing-column refused"].measured  # said clearly, not crashed
    for name in (f"invariant to {col}", f"increasing in {col}", "nan answered", "empty refused",
                 "out-of-range answered"):
        assert "crashed" not in results[name].measured and "could not" not in results[name].measured
    assert results[f"invariant to {col}"].passed is False  # the model uses that column

    nbmodel.remove_test(v.ref, f"invariant to {col}")
    for name in ("increasing in", "nan answered", "empty refused", "out-of-range answered"):
        for case in [n for n in results if n.startswith(name) and not results[n].passed]:
            nbmodel.remove_test(v.ref, case)
    assert gate_problem(v.ref) is not None  # cases changed: not yet run on it
    assert nbmodel.run_tests(v.ref).ok
    assert gate_problem(v.ref) is None


def test_a_two_class_booster_scores_its_labels_not_its_probabilities(isolated_store: Any) -> None:
    from sklearn.datasets import load_breast_cancer

    import nbmodel

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    for library in ("xgboost", "lightgbm"):
        booster = _booster(library, X.iloc[::2], y.iloc[::2], 2)
        v = nbmodel.commit(booster, f"cancer_{library}", eval=(X.iloc[1::2], y.iloc[1::2]))
        assert v.task == "classifier"
        assert v.metrics["accuracy"] > 0.8 and v.metrics["roc_auc"] > 0.9, (library, v.metrics)
