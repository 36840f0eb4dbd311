"""Benchmark for issue 20 (points 6 and the fresh-server target): the warm starter, one per
user and machine, side by side in one run on an iris LogisticRegression.

    python benchmarks/bench_warm.py [--kernels 10] [--rounds 3]

Prints:
- a fresh server process (no warm starter): process start to the first answered prediction,
  against the time a fresh Python takes to import the model's own library (scikit-learn and
  skops, which loads it) here, measured alternately; the target is the first within 0.5 s of
  the second;
- with the shared helper running: ``nbmodel.deploy`` of a new alias until it answers (target
  under 1 s), and ``nbmodel serve`` from a terminal until it answers;
- the memory the warm starter adds per kernel with 1 and with N kernels open: before, every
  kernel that loaded nbmodel had a helper of its own (started here as N helpers, as N kernels
  had them); now N kernels share one. Memory is proportional set size (PSS: pages shared
  between processes are split between them), after each helper's idle import of MLflow.

Everything runs on 127.0.0.1 in a temporary store and runtime folder; every process started
here is stopped here.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.pop("MLFLOW_TRACKING_URI", None)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_serving import free_port, make_store, start_nbmodel, stop, wait_answering  # noqa: E402


def import_seconds(modules: str, *, hide_torch: bool = False) -> float:
    """Wall time of a fresh Python importing ``modules``, as a server process would.

    With ``hide_torch``, skops is imported as the server imports it (``flavors.import_skops``):
    without scikit-learn's array-API adapter for PyTorch, which would import PyTorch wherever it
    is installed and make the baseline seconds slower than what the server pays.
    """
    code = f"import {modules}"
    if hide_torch:
        code = f"import sys; sys.modules['sklearn.externals.array_api_compat.torch'] = None; {code}"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ.copy())
    return time.perf_counter() - t0


def pss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/smaps_rollup", encoding="utf-8") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("Pss:")) / 1024


def fresh_vs_import(store_uri: str, folder: Path, body: bytes, rounds: int) -> tuple[float, float, float]:
    """Medians of a fresh server's start to first answer, of importing the model's library in
    a fresh Python, and of a bare Python start, measured alternately."""
    starts, libs, bare = [], [], []
    for _ in range(rounds):
        libs.append(import_seconds("sklearn.linear_model, skops.io", hide_torch=True))
        bare.append(import_seconds("os"))
        proc, port, t0 = start_nbmodel(store_uri, folder, monitor=True)
        try:
            starts.append(wait_answering(proc, port, body, t0))
        finally:
            stop(proc)
    return statistics.median(starts), statistics.median(libs), statistics.median(bare)


def warm_deploys(body: bytes, rounds: int) -> tuple[float, float]:
    """With the shared helper ready: medians of ``nbmodel.deploy`` of a new alias until it
    answers, and of ``nbmodel serve`` until it answers."""
    import nbmodel
    from nbmodel.serving import _process, _warm

    deploys, serves = [], []
    for i in range(rounds):
        t0 = time.perf_counter()
        dep = nbmodel.deploy("iris/1", alias=f"bench{i}")
        wait_answering(_process.Forked(dep.pid), dep.port, body, t0)  # type: ignore[arg-type]
        deploys.append(time.perf_counter() - t0)
        nbmodel.undeploy(f"iris@bench{i}")
    for _ in range(rounds):
        port = free_port()
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "nbmodel.cli", "serve", "iris@production",
                                 "--port", str(port)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            serves.append(wait_answering(proc, port, body, t0))
        finally:
            stop(proc)
    assert _warm.current() is not None
    return statistics.median(deploys), statistics.median(serves)


def helpers_memory(n: int, folder: Path, shared: bool) -> tuple[int, float]:
    """Start the helpers ``n`` kernels get (one each before; one shared now) as those kernels'
    first deploy does, wait for their idle imports, and return (helpers, total PSS in MB)."""
    from nbmodel.serving import _warm

    handles = []
    for i in range(n):
        sub = folder / ("shared" if shared else f"kernel{i}")
        sub.mkdir(mode=0o700, parents=True, exist_ok=True)
        handles.append(_warm.WarmStarter(folder=sub))
    for h in handles:
        if not h.hello(600):
            raise RuntimeError("a helper did not start")
    time.sleep(15)  # their idle import of MLflow
    for h in handles:  # ready again once those imports are done
        h.hello(600)
    pids = sorted({h.pid for h in handles if h.pid})
    total = sum(pss_mb(p) for p in pids)
    for h in handles:
        h.stop()
    return len(pids), total


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--kernels", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="nbw-") as tmp:
        folder = Path(tmp)
        os.environ["NBMODEL_RUNTIME_DIR"] = str(folder / "rt")
        os.chdir(folder)
        store_uri, body = make_store(folder)
        os.environ["MLFLOW_TRACKING_URI"] = store_uri

        fresh, lib, bare = fresh_vs_import(store_uri, folder, body, args.rounds)
        print(f"fresh server, no warm starter: first answer after {fresh:.2f} s; a fresh Python "
              f"importing scikit-learn and skops takes {lib:.2f} s (a bare Python {bare:.2f} s): "
              f"{fresh - lib:.2f} s beyond the model's library (target 0.5 s) "
              f"{'OK' if fresh - lib <= 0.5 else 'OVER TARGET'}; medians of {args.rounds}")

        from nbmodel.serving import _warm

        t0 = time.perf_counter()
        if not _warm.WarmStarter().hello(600):
            raise RuntimeError("the warm starter did not start")
        ready = time.perf_counter() - t0
        print(f"shared warm starter: started by the first deploy, ready after {ready:.1f} s")
        time.sleep(15)  # its idle import of MLflow
        deploy, serve = warm_deploys(body, args.rounds)
        print(f"once warm: nbmodel.deploy until it answers {deploy:.2f} s (target < 1 s) "
              f"{'OK' if deploy < 1 else 'OVER TARGET'}; nbmodel serve from a fresh terminal process until "
              f"it answers {serve:.2f} s (target < 1 s) {'OK' if serve < 1 else 'OVER TARGET'}; "
              f"medians of {args.rounds}")
        _warm.WarmStarter().stop()

        for n in sorted({1, args.kernels}):
            before_n, before = helpers_memory(n, folder / f"before{n}", shared=False)
            after_n, after = helpers_memory(n, folder / f"after{n}", shared=True)
            print(f"{n:>2} kernel(s) open: before, {before_n} helper(s), {before / n:.0f} MB per kernel "
                  f"({before:.0f} MB); now {after_n} shared helper, {after / n:.0f} MB per kernel "
                  f"({after:.0f} MB)")
        print("a kernel that never deploys starts no helper at all: 0 MB (%load_ext starts nothing)")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    main()
