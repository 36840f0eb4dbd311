"""Benchmark: compare 5 versions on 10,000 eval rows, warm (models already loaded).

Target (issue 3): under 3 s warm on the project's 2-core machine. Prints the figure and where
the time goes, for classifiers (3 classes, so ROC curves are one-vs-rest) and regressors (the
paired bootstrap runs for each pair). Uses a throwaway store in a temporary folder.

    MLFLOW_DISABLE_TELEMETRY=true python benchmarks/bench_compare.py [--rows 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _models(kind: str) -> list:
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    if kind == "classifiers":
        return [LogisticRegression(C=0.01, max_iter=300), LogisticRegression(C=1.0, max_iter=300),
                DecisionTreeClassifier(max_depth=6, random_state=0),
                RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0, n_jobs=1),
                HistGradientBoostingClassifier(max_iter=50, random_state=0)]
    return [Ridge(alpha=100.0), Ridge(alpha=1.0), DecisionTreeRegressor(max_depth=6, random_state=0),
            RandomForestRegressor(n_estimators=50, max_depth=8, random_state=0, n_jobs=1),
            HistGradientBoostingRegressor(max_iter=50, random_state=0)]


def _data(kind: str, rows: int):
    import pandas as pd
    from sklearn.datasets import make_classification, make_regression

    if kind == "classifiers":
        X, y = make_classification(n_samples=2 * rows, n_features=20, n_informative=8, n_classes=3,
                                   random_state=0)
    else:
        X, y = make_regression(n_samples=2 * rows, n_features=20, n_informative=8, noise=20.0,
                               random_state=0)
    X = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    return X.iloc[:rows], y[:rows], X.iloc[rows:].reset_index(drop=True), y[rows:]


def run(kind: str, rows: int, repeat: int) -> float:
    import nbmodel
    from nbmodel.comparison import compare

    X_train, y_train, X_test, y_test = _data(kind, rows)
    name = f"bench_{kind}"
    t = time.perf_counter()
    refs = []
    for model in _models(kind):
        model.fit(X_train, y_train)
        refs.append(nbmodel.commit(model, name, message=type(model).__name__).ref)
    print(f"\n{kind}: committed {len(refs)} versions in {time.perf_counter() - t:.1f} s")

    t = time.perf_counter()
    cold = compare(refs, X_test, y_test, progress=False)
    print(f"  cold (loads every model from the store): {time.perf_counter() - t:.2f} s")
    totals, cpu, parts = [], [], []
    for _ in range(repeat):
        t, c0 = time.perf_counter(), time.process_time()
        c = compare(refs, X_test, y_test, progress=False)
        html = c._repr_html_()
        totals.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c0)
        parts.append(dict(c.timings))
    warm = statistics.median(totals)
    print(f"  warm, {len(refs)} versions x {rows} rows, incl. HTML: median {warm:.2f} s of {repeat} "
          f"(min {min(totals):.2f}, max {max(totals):.2f}); CPU {statistics.median(cpu):.2f} s "
          f"(all threads); HTML {len(html) // 1024} KiB")
    keys = [k for k in parts[0] if k != "total"]
    for k in keys:
        print(f"    {k:<14} {statistics.median(p.get(k, 0.0) for p in parts):6.3f} s")
    print("    prediction time per 1000 rows: "
          + ", ".join(f"{r} {ms:.2f} ms" for r, ms in zip(c.refs, c.predict_ms)))
    print(f"  {c.summary.splitlines()[0]}")
    del cold
    return warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kind", choices=["classifiers", "regressors", "both"], default="both")
    args = parser.parse_args()
    # Other work on the machine slows every figure: say how busy it was.
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        kinds = ["classifiers", "regressors"] if args.kind == "both" else [args.kind]
        results = {k: run(k, args.rows, args.repeat) for k in kinds}
    print("\nsummary (target < 3 s warm):")
    for k, warm in results.items():
        print(f"  {k}: {warm:.2f} s {'OK' if warm < 3 else 'OVER TARGET'}")


if __name__ == "__main__":
    main()
