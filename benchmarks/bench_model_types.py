"""Benchmark for issue 18 (model types): per library, how long ``nbmodel.commit`` takes and how
many requests a second nbmodel's server answers against ``mlflow models serve`` of the same
model, side by side in one run.

    python benchmarks/bench_model_types.py [--seconds 8] [--connections 8] [--only xgboost,pytorch]

Each library's model is a small classifier of the wine data (13 columns, 3 classes) trained
here: scikit-learn's logistic regression for scale, XGBoost and LightGBM with 30 trees (their
scikit-learn estimators, and bare Boosters trained with ``xgboost.train``/``lightgbm.train``), a
PyTorch and a Keras network with one hidden layer of 16 units. The ``path`` column says how
nbmodel's server answered (its ``/health``): ``fast+batch`` (the native model on NumPy arrays,
requests arriving together answered by one call), ``fast``, or ``pyfunc`` (MLflow's). Commit
time is the first commit in this process (which pays the flavor's imports) and the median of
three more. Both servers run one worker, serve the same registered version from a temporary
sqlite store, and get the same 1-row ``dataframe_split`` payload from ``wrk`` (else a bounded
Python client) on 127.0.0.1; each server is stopped before the next starts. Libraries that are
not installed are skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 reads it once, at import
os.environ.pop("MLFLOW_TRACKING_URI", None)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_serving as bs  # noqa: E402 - the server helpers, shared with the serving benchmark


def wine() -> tuple[Any, Any]:
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True, as_frame=True)
    return (X - X.mean()) / X.std(), y


def sklearn_model(X: Any, y: Any) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000).fit(X, y)


def xgboost_model(X: Any, y: Any) -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(n_estimators=30, max_depth=3).fit(X, y)


def lightgbm_model(X: Any, y: Any) -> Any:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(n_estimators=30, verbose=-1).fit(X, y)


def xgb_booster_model(X: Any, y: Any) -> Any:
    import xgboost

    params = {"objective": "multi:softprob", "num_class": 3, "max_depth": 3}
    return xgboost.train(params, xgboost.DMatrix(X, label=y), 30)


def lgb_booster_model(X: Any, y: Any) -> Any:
    import lightgbm

    params = {"objective": "multiclass", "num_class": 3, "verbose": -1}
    return lightgbm.train(params, lightgbm.Dataset(X, y), 30)


def pytorch_model(X: Any, y: Any) -> Any:
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    inputs, targets = torch.tensor(X.values, dtype=torch.float32), torch.tensor(y.values)
    for _ in range(100):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(inputs), targets).backward()
        opt.step()
    return net.eval()


def keras_model(X: Any, y: Any) -> Any:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((X.shape[1],)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    model.fit(X.values, y.values, epochs=30, verbose=0)
    return model


LIBRARIES: dict[str, tuple[str, Callable[[Any, Any], Any]]] = {
    "sklearn": ("sklearn", sklearn_model),
    "xgboost": ("xgboost", xgboost_model),
    "lightgbm": ("lightgbm", lightgbm_model),
    "xgb-booster": ("xgboost", xgb_booster_model),
    "lgb-booster": ("lightgbm", lgb_booster_model),
    "pytorch": ("torch", pytorch_model),
    "keras": ("keras", keras_model),
}


def installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def commit_times(name: str, model: Any, X: Any, y: Any) -> tuple[float, float]:
    """Seconds of the first commit and the median of three more."""
    import nbmodel

    times = []
    for _ in range(4):
        t0 = time.perf_counter()
        nbmodel.commit(model, name, message="bench", eval=(X, y))
        times.append(time.perf_counter() - t0)
    return times[0], statistics.median(times[1:])


def start_nbmodel(store_uri: str, folder: Path, name: str) -> tuple[Any, int, float]:
    """A fresh server process serving ``name@production``, one worker."""
    from nbmodel.serving import _deploy, _process
    from nbmodel.serving import _records as R
    from nbmodel.store import get_store
    from nbmodel.versions import resolve

    store = get_store()
    v = resolve(f"{name}@production")
    path = _deploy._local_dir(store, v.name, v.version)
    port = bs.free_port()
    rec = folder / f"bench-{port}.json"
    record = R.DeploymentRecord(host="127.0.0.1", port=port, store=store_uri,
                                models=[R.ModelSpec(name, "production", v.version, path)],
                                detached=True, monitor=False, max_body=10 * 2**20, path=rec)
    R.write(record)
    t0 = time.perf_counter()
    proc = subprocess.Popen(_process.server_command(rec), env=_process.server_env(store_uri),
                            stdout=open(folder / f"bench-{port}.log", "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    record.pid = proc.pid
    R.write(record)
    return proc, port, t0


def start_mlflow(store_uri: str, folder: Path, name: str) -> tuple[Any, int, float]:
    port = bs.free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": store_uri,
           "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    t0 = time.perf_counter()
    argv = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{name}@production",
            "-h", "127.0.0.1", "-p", str(port), "--env-manager", "local", "-w", "1"]
    proc = subprocess.Popen(argv, env=env, stdout=open(folder / f"mlflow-{name}.log", "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    return proc, port, t0


def serve_and_load(start: Callable[[], tuple[Any, int, float]], body: bytes, load: Any, seconds: float,
                   connections: int, folder: Path, *,
                   settle: Callable[[int], Any] | None = None) -> dict[str, float]:
    proc, port, t0 = start()
    try:
        started = bs.wait_answering(proc, port, body, t0)
        if settle is not None:
            settle(port)
        stats = load(port, body, seconds, connections, folder)
        stats["startup"] = started
        return stats
    finally:
        bs.stop(proc)


def served_path(port: int) -> str:
    """How the server answers its model: ``fast+batch``, ``fast`` or ``pyfunc``."""
    from urllib.request import urlopen

    with urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as r:
        status = json.loads(r.read())["models"][0]
    return ("fast+batch" if status["batch"] else "fast") if status["fast"] else "pyfunc"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--only", default="", help="comma-separated libraries (default: all installed)")
    args = parser.parse_args()
    chosen = [x for x in args.only.split(",") if x] or list(LIBRARIES)
    load = bs.load_wrk if shutil.which("wrk") else bs.load_python

    import nbmodel

    folder = Path(tempfile.mkdtemp(prefix="nbmodel-bench-types-"))
    store_uri = f"sqlite:///{folder / 'mlflow.db'}"
    nbmodel.set_store(store_uri)
    X, y = wine()
    payload = {"dataframe_split": {"columns": list(X.columns), "data": [X.iloc[0].tolist()]}}
    body = json.dumps(payload).encode()
    client = "wrk -t2" if load is bs.load_wrk else "python threads"
    print(f"load client: {client}, {args.connections} connections, {args.seconds:g} s per server; "
          "1-row dataframe_split; one worker per server")
    header = (f"{'library':<11} {'commit 1st':>10} {'commit':>8} | {'path':<10} {'nbmodel req/s':>13} "
              f"{'p50':>7} {'start':>6} | {'mlflow req/s':>12} {'p50':>7} {'start':>6} | {'ratio':>5}")
    print(header)
    print("-" * len(header))
    try:
        for lib in chosen:
            module, make = LIBRARIES[lib]
            if not installed(module):
                print(f"{lib:<11} skipped: {module} is not installed")
                continue
            name = f"bench_{lib}"
            model = make(X, y)
            first, median = commit_times(name, model, X, y)
            nbmodel.alias(f"{name}/1", "production")
            path: list[str] = []

            def settle(port: int, path: list[str] = path) -> None:
                bs.wait_following(folder, port, key="warm")
                path.append(served_path(port))

            ours = serve_and_load(lambda n=name: start_nbmodel(store_uri, folder, n), body, load,
                                  args.seconds, args.connections, folder, settle=settle)
            theirs = serve_and_load(lambda n=name: start_mlflow(store_uri, folder, n), body, load,
                                    args.seconds, args.connections, folder)
            ratio = ours["rps"] / theirs["rps"] if theirs["rps"] else float("nan")
            print(f"{lib:<11} {first:>9.2f}s {median:>7.2f}s | {path[0]:<10} {ours['rps']:>13.0f} "
                  f"{ours['p50']:>5.1f}ms "
                  f"{ours['startup']:>5.1f}s | {theirs['rps']:>12.0f} {theirs['p50']:>5.1f}ms "
                  f"{theirs['startup']:>5.1f}s | {ratio:>4.1f}x", flush=True)
            errors = ours.get("errors", 0) + theirs.get("errors", 0)
            if errors:
                print(f"          ({errors} non-2xx answers under load)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
