"""Benchmarks for issue 2 (versioning): figures and ratios, measured side by side in one run.

    python benchmarks/bench_versioning.py [--versions 1000] [--repeat 5]

Prints:
  * %load_ext nbmodel on top of a bare IPython start (separate fresh processes, median);
  * a warm %model_commit against mlflow.sklearn.log_model(..., registered_model_name=...) on the
    same model and the same store, alternating, and the ratio;
  * %model_log of a model with N versions, and a rollback there.
Every run uses a temporary store; nothing of the user's is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.pop("MLFLOW_TRACKING_URI", None)


def _median_ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


def bench_load_ext(repeat: int) -> None:
    """Fresh processes: a bare IPython shell start, then %load_ext nbmodel in it, timed apart."""
    code = (
        "import time,sys\n"
        "t0=time.perf_counter()\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "sh=InteractiveShell.instance()\n"
        "t1=time.perf_counter()\n"
        "sh.run_line_magic('load_ext', 'nbmodel')\n"
        "t2=time.perf_counter()\n"
        "heavy=[m for m in ('mlflow','sklearn','pandas','matplotlib','numpy') if m in sys.modules]\n"
        "print(t1-t0, t2-t1, ','.join(heavy))\n"
    )
    bare, ext, heavy = [], [], set()
    for _ in range(max(repeat, 5)):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout.split()
        bare.append(float(out[0]))
        ext.append(float(out[1]))
        if len(out) > 2:
            heavy.update(out[2].split(","))
    print(f"load_ext: bare IPython start {_median_ms(bare):.0f} ms, then %load_ext nbmodel "
          f"+{_median_ms(ext):.1f} ms (median of {len(ext)} fresh processes; target < 50 ms); "
          f"heavy modules imported: {', '.join(sorted(heavy)) or 'none'}")


def bench_commit(repeat: int, folder: Path) -> None:
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    import nbmodel

    uri = f"sqlite:///{folder / 'commit.db'}"
    nbmodel.set_store(uri)
    X, y = load_iris(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    clf = LogisticRegression(max_iter=500).fit(X_train, y_train)
    mlflow.set_experiment("baseline")
    # Warm both paths once (imports, first save), then alternate.
    nbmodel.commit(clf, "iris", message="warm", eval=(X_test, y_test), train=(X_train, y_train))
    with mlflow.start_run():
        mlflow.sklearn.log_model(clf, name="model", registered_model_name="iris_baseline")
    ours, base = [], []
    for i in range(repeat):
        t = time.perf_counter()
        v = nbmodel.commit(clf, "iris", message=f"run {i}", eval=(X_test, y_test),
                           train=(X_train, y_train))
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        with mlflow.start_run():
            mlflow.sklearn.log_model(clf, name="model", registered_model_name="iris_baseline")
        base.append(time.perf_counter() - t)
    loaded = mlflow.pyfunc.load_model(v.uri).predict(X_test)
    same = bool((loaded == clf.predict(X_test)).all())
    print(f"commit (warm, median of {repeat}): nbmodel {_median_ms(ours):.0f} ms, "
          f"mlflow.sklearn.log_model+register {_median_ms(base):.0f} ms: "
          f"{statistics.median(base) / statistics.median(ours):.1f}x faster (target >= 10x); "
          f"plain mlflow loads {v.ref} and predicts the same: {same}")


def bench_log(n: int, folder: Path) -> None:
    import nbmodel
    from nbmodel import versions as V

    uri = f"sqlite:///{folder / 'log.db'}"
    store = nbmodel.set_store(uri)
    client = store.client
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    first = nbmodel.commit(LogisticRegression(max_iter=500).fit(X, y), "big", message="v1",
                           eval=(X, y), train=(X, y))
    # The other versions share the first one's artifacts: the registry rows are what %model_log
    # reads, and registering 1000 real models would only time the commit again.
    mv = client.get_model_version("big", "1")
    t = time.perf_counter()
    for i in range(2, n + 1):
        tags = dict(mv.tags)
        tags[V.T_PARENT] = f"big/{i - 1}"
        tags[V.T_METRICS] = json.dumps({"accuracy": 0.9 + i / 1e5, "f1_macro": 0.9, "roc_auc": 0.99})
        client.create_model_version("big", mv.source, run_id=mv.run_id, tags=tags,
                                    description=f"version {i}")
    print(f"(setup: {n} versions registered in {time.perf_counter() - t:.1f} s)")
    for v in (n - 10, n - 5, n - 2, n - 1):
        nbmodel.alias(f"big/{v}", "production")
    times = []
    for _ in range(5):
        t = time.perf_counter()
        h = nbmodel.log("big")
        text = str(h)
        times.append(time.perf_counter() - t)
    assert len(h) == n and text
    print(f"%model_log of {n} versions (query + table, median of 5): {_median_ms(times):.0f} ms "
          f"(target < 200 ms)")
    times = []
    for _ in range(5):
        t = time.perf_counter()
        nbmodel.rollback("big")
        times.append(time.perf_counter() - t)
        nbmodel.alias(f"big/{n - 1}", "production")
    print(f"rollback with {n} versions (median of 5): {_median_ms(times):.1f} ms (target < 50 ms)")
    _ = first


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--versions", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", choices=["load_ext", "commit", "log"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        folder = Path(tmp)
        if args.only in (None, "load_ext"):
            bench_load_ext(args.repeat)
        if args.only in (None, "commit"):
            bench_commit(args.repeat, folder)
        if args.only in (None, "log"):
            bench_log(args.versions, folder)


if __name__ == "__main__":
    main()
