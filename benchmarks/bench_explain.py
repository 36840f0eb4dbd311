"""Benchmark for issue 17 (explanations): what permutation importance adds to a commit.

    python benchmarks/bench_explain.py [--rows 10000] [--features 20] [--repeat 5]

Prints, for scikit-learn models on ROWS x FEATURES eval data, the median time of a commit with
eval data with and without the importance step (alternating, on one temporary store), wall
clock and CPU time side by side, the difference (the target is at most 1 s) and the ratio, and
how the importance was measured (a sample when the data is large or the model slow, fewer
repeats when the time budget stopped it). Nothing of the user's is touched.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.pop("MLFLOW_TRACKING_URI", None)


def _data(rows: int, features: int):  # noqa: ANN202
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(rows, features)), columns=[f"f{i}" for i in range(features)])
    y = (X["f0"] + 0.5 * X["f1"] + 0.1 * rng.normal(size=rows) > 0).astype(int).to_numpy()
    return X, y


def bench(name: str, model, X, y, repeat: int) -> None:  # noqa: ANN001
    import nbmodel
    import nbmodel.explain as explain_pkg
    from nbmodel.explain import stored

    real = explain_pkg.record_importance
    model.fit(X, y)
    nbmodel.commit(model, name, eval=(X, y))  # warm: imports, skops, the store
    wall: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(repeat):
        for on in (True, False):
            explain_pkg.record_importance = real if on else (lambda *a, **k: {})
            t, c = time.perf_counter(), time.process_time()
            v = nbmodel.commit(model, name, eval=(X, y))
            wall[on].append(time.perf_counter() - t)
            cpu[on].append(time.process_time() - c)
    explain_pkg.record_importance = real
    imp = stored(nbmodel.resolve(f"{name}/{v.version - 1}"))
    med = statistics.median
    w1, w0, c1, c0 = med(wall[True]), med(wall[False]), med(cpu[True]), med(cpu[False])
    # CPU time as well: on a shared machine the wall clock also counts other processes' turns.
    print(f"{name:<24} wall {w1 * 1000:6.0f} vs {w0 * 1000:6.0f} ms (+{(w1 - w0) * 1000:5.0f} ms, "
          f"x{w1 / w0:4.2f})   CPU {c1 * 1000:6.0f} vs {c0 * 1000:6.0f} ms (+{(c1 - c0) * 1000:5.0f} ms, "
          f"x{c1 / max(c0, 1e-9):4.2f})")
    print(f"{'':<24} {imp.note if imp else 'no importance'}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--features", type=int, default=20)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    import nbmodel

    X, y = _data(a.rows, a.features)
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        nbmodel.set_store(f"sqlite:///{tmp}/mlflow.db")
        print(f"commit on {a.rows} x {a.features} eval rows, median of {a.repeat}; "
              "with importance vs without (added, ratio):")
        bench("logistic_regression", LogisticRegression(max_iter=500), X, y, a.repeat)
        bench("hist_gradient_boosting", HistGradientBoostingClassifier(max_iter=50, random_state=0), X, y,
              a.repeat)
        bench("random_forest_100", RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1), X, y,
              a.repeat)


if __name__ == "__main__":
    main()
