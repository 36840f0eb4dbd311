"""Benchmark: record() of 1,000-row batches, and summarising 1,000,000 recorded predictions of
20 features into windows, metrics and drift.

Targets (issue 5): record() of 1,000 rows under 20 ms; the summary under 1 s warm, on the
project's 2-core machine. Uses a throwaway sqlite store in a temporary folder. Half of the rows
carry labels, the second half of the traffic drifts, and there are 3 categorical features.

    MLFLOW_DISABLE_TELEMETRY=true python benchmarks/bench_monitoring.py [--rows 1000000] [--batch 1000]
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


def _frame(rng, n: int, shift: float = 0.0):
    import numpy as np
    import pandas as pd

    num = rng.normal(size=(n, 17)) + shift * (np.arange(17) % 4 == 0)
    df = pd.DataFrame(num, columns=[f"f{i:02d}" for i in range(17)])
    for j, cats in enumerate((["a", "b", "c"], ["x", "y"], ["p", "q", "r", "s"])):
        p = np.ones(len(cats)) / len(cats)
        if shift:
            p = np.r_[p[:-1] * 0.5, 0].copy()
            p[-1] = 1 - p.sum()
        df[f"c{j}"] = rng.choice(cats, size=n, p=p)
    return df


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[int(0.95 * (len(values) - 1))]
    return (f"best {values[0] * 1000:.1f} ms, median {statistics.median(values) * 1000:.1f} ms, "
            f"p95 {p95 * 1000:.1f} ms")


def main() -> None:
    print(f"load average before: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores "
          "(other work on the machine inflates medians; 'best' is the uncontended figure)")
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    import numpy as np

    tmp = tempfile.mkdtemp(prefix="nbmodel-bench-monitor-")
    os.chdir(tmp)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"

    import nbmodel
    from nbmodel.monitoring import clear_caches, monitor, record
    from nbmodel.monitoring._stats import summarise
    from nbmodel.monitoring._traffic import traffic
    from nbmodel.monitoring._windows import parse_window

    rng = np.random.default_rng(0)
    X_train = _frame(rng, 5000)
    y_train = (X_train["f00"] + X_train["f01"] > 0).astype(int)

    class Threshold:  # a model whose predict costs nothing, so the figures are nbmodel's own
        def predict(self, X):
            return (np.asarray(X["f00"]) + np.asarray(X["f01"]) > 0).astype(int)

    model = Threshold()
    t = time.perf_counter()
    v = nbmodel.commit(model, "bench", train=(X_train, y_train), eval=(X_train[:500], y_train[:500]))
    print(f"store {tmp}; committed {v.ref} with 20 features in {time.perf_counter() - t:.2f} s")

    n_batches = args.rows // args.batch
    day0 = 1_772_323_200  # 2026-03-01 UTC, seconds
    times = []
    X = _frame(rng, args.batch)
    for b in range(n_batches):
        if b == n_batches // 2:
            X = _frame(rng, args.batch, shift=1.0)
        pred = model.predict(X)
        y = np.where(rng.random(args.batch) < 0.5, pred ^ (rng.random(args.batch) < 0.1), -1).astype(float)
        y[y < 0] = np.nan
        ts = day0 + (b / n_batches) * 30 * 86400 + np.arange(args.batch) * 0.01
        t = time.perf_counter()
        record(v.ref, X, pred, y_true=y, ids=None, timestamp=ts)
        times.append(time.perf_counter() - t)
    print(f"record() of {args.batch:,} rows x 20 features, {n_batches:,} calls: {_ms(times)}; "
          f"total {sum(times):.1f} s")

    # served traffic: the per-request cost of BackgroundRecorder.submit, and its flush
    from nbmodel.monitoring import BackgroundRecorder

    rows = X.iloc[:1].to_dict("records")
    one = model.predict(X.iloc[:1])
    rec = BackgroundRecorder(v.ref, max_rows=10**9, max_seconds=3600, check_alerts_every=0)
    n_req = 10_000
    t = time.perf_counter()
    for _ in range(n_req):
        rec.submit(rows, one, 1.0)
    per_req = (time.perf_counter() - t) / n_req
    t = time.perf_counter()
    rec.close()
    print(f"BackgroundRecorder.submit: {per_req * 1e6:.1f} us a request on the request path; "
          f"flushing {n_req:,} one-row requests in its thread: {(time.perf_counter() - t) * 1000:.0f} ms")

    clear_caches()
    t = time.perf_counter()
    tr = traffic("bench", v.version)
    cold_read = time.perf_counter() - t
    print(f"cold read of {len(tr):,} rows from {tr.files:,} files (once per process): {cold_read:.2f} s")

    spec = parse_window("1d")
    for label, fn in (
        ("summary (windows, metrics, drift) of 1d windows", lambda: summarise(traffic("bench", 1), spec)),
        ("summary, 1h windows", lambda: summarise(traffic("bench", 1), parse_window("1h"))),
        ("monitor() warm, 2 alert rules, no plots",
         lambda: monitor("bench", window="1d", alerts=["accuracy<0.85", "psi>0.2"], plots=False,
                         log_metrics=False)),
    ):
        fn()
        runs = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            out = fn()
            runs.append(time.perf_counter() - t)
        print(f"{label} of {len(tr):,} rows x 20 features: {_ms(runs)}")
    s = out.summary
    print(f"  {s.n_windows} windows, {s.labelled:,} labelled; open alerts: {[a.rule for a in out.open]}")

    # one more batch arrives: only it is read, then the arrays are joined again
    record(v.ref, X, model.predict(X), timestamp=day0 + 30 * 86400)
    t = time.perf_counter()
    monitor("bench", window="1d", plots=False, log_metrics=False)
    print(f"monitor() after one new batch: {(time.perf_counter() - t) * 1000:.0f} ms")
    t = time.perf_counter()
    rep = monitor("bench", window="1d", log_metrics=True, plots=False)
    print(f"monitor() logging {rep.summary.n_windows - 1} closed windows' metrics to the run: "
          f"{(time.perf_counter() - t) * 1000:.0f} ms")
    t = time.perf_counter()
    rep._repr_html_.__self__.plots = True
    html = rep._repr_html_()
    print(f"notebook view with plots: {(time.perf_counter() - t) * 1000:.0f} ms ({len(html) // 1024} KiB)")


if __name__ == "__main__":
    main()
