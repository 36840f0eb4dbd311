"""Benchmark for issue 4 (serving): nbmodel's server against ``mlflow models serve``, side by
side in one run, on the same model (an iris LogisticRegression), the same 1-row
``dataframe_split`` payload, 8 connections and one worker each.

    python benchmarks/bench_serving.py [--seconds 10] [--connections 8]
    python benchmarks/bench_serving.py --only ceiling --seconds 5 [--ceiling-rounds 3]

Prints, for scale, how long a fresh Python takes to import the model's loader (skops.io, with
scikit-learn and SciPy), the floor of any fresh server process's startup here; for each
server: startup (process start to the first answered prediction), requests/s and p50/p99
latency under load, measured once the server's background start-up is done; nbmodel's startup
when forked by a warm starter, as ``%model_deploy`` does in a notebook (with how long the
starter takes to be ready and the memory it holds), and the whole of ``nbmodel.deploy`` that
way (alias moved, server started, first answer); then the requests/s ratio; then what
monitoring every request costs: the recorder's own work per request measured in this process,
and whole servers with and without it, side by side under the same load at the same time
(identical runs one after the other differ by 10-20% on a busy 2-core machine). The load comes
from ``wrk`` when it is installed (``apt-get install wrk``), else from a bounded Python client
(which saturates before either server does, so its ratios understate the gap). Everything runs
on 127.0.0.1 in a temporary store, and every process started here is stopped here.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.pop("MLFLOW_TRACKING_URI", None)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post_once(port: int, body: bytes, timeout: float = 2.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        return conn.getresponse().status
    finally:
        conn.close()


def poll(check: Any, limit: float, pause: float, proc: Any = None) -> float | None:
    """Seconds until ``check()`` holds (connection errors count as not yet), or None after
    ``limit`` seconds.

    Raises:
        RuntimeError: ``proc`` exited meanwhile.
    """
    t0 = time.perf_counter()
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            if check():
                return time.perf_counter() - t0
        except OSError:
            pass
        if time.perf_counter() - t0 > limit:
            return None
        time.sleep(pause)


def wait_answering(proc: subprocess.Popen, port: int, body: bytes, t0: float, limit: float = 180) -> float:
    """Seconds from ``t0`` to the first 200 answer to a prediction."""
    if poll(lambda: post_once(port, body) == 200, limit - (time.perf_counter() - t0), 0.01, proc) is None:
        raise RuntimeError("the server did not answer in time")
    return time.perf_counter() - t0


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def load_wrk(port: int, body: bytes, seconds: float, connections: int, folder: Path,
             callers: int = 0) -> dict[str, float]:
    """wrk's figures; with ``callers`` each request carries one of that many request keys (as
    callers of a canary do: a constant body alone would always land on the same side)."""
    script = folder / "post.lua"
    keyed = ("n = 0\nrequest = function()\n  n = n + 1\n"
             f'  wrk.headers["X-Request-Key"] = "caller-" .. (n % {callers})\n'
             "  return wrk.format()\nend\n") if callers else ""
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
        'wrk.headers["Content-Type"] = "application/json"\n' + keyed)
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--latency",
                          "-s", str(script), f"http://127.0.0.1:{port}/invocations"],
                         capture_output=True, text=True, timeout=seconds + 60).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {"rps": rps, "p50": ms("50%"), "p99": ms("99%"), "errors": int(errors.group(1)) if errors else 0,
            "requests": total}


def load_python(port: int, body: bytes, seconds: float, connections: int, folder: Path,
                callers: int = 0) -> dict[str, float]:
    lat: list[float] = []
    errors = [0]
    stop_at = time.perf_counter() + seconds

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine = []
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            key = {"X-Request-Key": f"caller-{len(mine) % callers}"} if callers else {}
            conn.request("POST", "/invocations", body, {"Content-Type": "application/json", **key})
            resp = conn.getresponse()
            resp.read()
            mine.append(time.perf_counter() - t)
            if resp.status != 200:
                errors[0] += 1
        conn.close()
        lat.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    lat.sort()
    return {"rps": len(lat) / elapsed, "p50": lat[len(lat) // 2] * 1000,
            "p99": lat[int(len(lat) * 0.99)] * 1000, "errors": errors[0], "requests": len(lat)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (the recorder's included)."""
    with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_store(folder: Path) -> tuple[str, bytes]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import nbmodel

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    nbmodel.set_store(uri)
    X, y = load_iris(return_X_y=True, as_frame=True)
    clf = LogisticRegression(max_iter=500).fit(X, y)
    v = nbmodel.commit(clf, "iris", message="bench", eval=(X, y), train=(X, y))
    nbmodel.alias(v.ref, "production")
    # a second version, for the canary and shadow figures (it answers differently)
    nbmodel.commit(LogisticRegression(C=0.05, max_iter=500).fit(X, y), "iris", message="candidate",
                   eval=(X, y), train=(X, y))
    body = json.dumps({"dataframe_split": {"columns": list(X.columns), "data": [X.iloc[0].tolist()]}})
    return uri, body.encode()


def start_nbmodel(store_uri: str, folder: Path, *, monitor: bool,
                  warm: object = None, workers: int = 1, rollout: Any = None) -> tuple[Any, int, float]:
    """A server process serving iris@production, as a fresh process, or forked by ``warm`` (a
    ready warm starter) as ``%model_deploy`` does in a notebook."""
    from nbmodel.serving import _deploy, _process
    from nbmodel.serving import _records as R
    from nbmodel.store import get_store
    from nbmodel.versions import resolve

    store = get_store()
    v = resolve("iris@production")
    path = _deploy._local_dir(store, v.name, v.version)
    port = free_port()
    rec = folder / f"bench-{port}.json"
    record = R.DeploymentRecord(host="127.0.0.1", port=port, store=store_uri,
                                models=[R.ModelSpec("iris", "production", v.version, path, rollout=rollout)],
                                detached=True, monitor=monitor, max_body=10 * 2**20, path=rec,
                                workers=workers)
    R.write(record)
    env = _process.server_env(store_uri)
    log = folder / f"bench-{port}.log"
    t0 = time.perf_counter()
    if warm is not None:
        proc: Any = _process.Forked(warm.spawn(_process.server_args(rec), env, str(log)))
    else:
        proc = subprocess.Popen(_process.server_command(rec), env=env, stdout=open(log, "ab"),
                                stderr=subprocess.STDOUT, start_new_session=True)
    record.pid = proc.pid
    R.write(record)
    return proc, port, t0


def start_mlflow(store_uri: str, folder: Path) -> tuple[subprocess.Popen, int, float]:
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": store_uri,
           "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve",
                             "-m", "models:/iris@production", "-h", "127.0.0.1", "-p", str(port),
                             "--env-manager", "local", "-w", "1"],
                            env=env, stdout=open(folder / "mlflow-serve.log", "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    return proc, port, t0


def wait_following(folder: Path, port: int, limit: float = 120, key: str = "following") -> float:
    """Seconds until nbmodel's server says ``key``: it follows its alias (at once for a sqlite
    store), or it is ``warm``: MLflow imported in the background, the monitoring recorder
    attached, the model's pyfunc loaded for the other request forms."""
    import urllib.request

    def says() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
            return bool(json.loads(r.read()).get(key))

    took = poll(says, limit, 0.05)
    return float("nan") if took is None else took


def warm_startups(store_uri: str, folder: Path, body: bytes, load: Any, seconds: float,
                  connections: int, rounds: int = 3) -> dict[str, float]:
    """With a warm starter, as a kernel that loaded nbmodel has: medians over ``rounds`` of
    the seconds from asking it for a server to the first answered prediction (``startup``)
    and of a whole ``nbmodel.deploy`` of a new alias until it answers (``deploy``); how long
    the starter took to be ready (``ready``) and the memory it holds of its own, anonymous
    RSS (``mb``); and the load run's figures on the last server it forked."""
    import nbmodel
    from nbmodel.serving import _process, _warm

    t = time.perf_counter()
    starter = _warm.WarmStarter(_process.server_env())
    try:
        if not starter.hello(120):
            raise RuntimeError("the warm starter did not start")
        ready = time.perf_counter() - t
        time.sleep(8)  # its idle import of MLflow
        with open(f"/proc/{starter.pid}/status", encoding="utf-8") as f:
            anon_kb = next(int(ln.split()[1]) for ln in f if ln.startswith("RssAnon"))
        starts, deploys = [], []
        res: dict[str, float] = {}
        for i in range(rounds):
            proc, port, t0 = start_nbmodel(store_uri, folder, monitor=True, warm=starter)
            try:
                starts.append(wait_answering(proc, port, body, t0))
                if i == rounds - 1:  # it serves as fast as a server started afresh
                    wait_following(folder, port, key="warm")
                    load(port, body, 2, connections, folder)
                    res = load(port, body, seconds, connections, folder)
            finally:
                stop(proc)
        # Deploys find the user's one warm starter themselves: this one.
        for i in range(rounds):
            t0 = time.perf_counter()
            dep = nbmodel.deploy("iris/1", alias=f"bench{i}")
            wait_answering(_process.Forked(dep.pid), dep.port, body, t0)
            deploys.append(time.perf_counter() - t0)
            nbmodel.undeploy(f"iris@bench{i}")
    finally:
        starter.stop()
    return {**res, "startup": statistics.median(starts), "deploy": statistics.median(deploys),
            "ready": ready, "mb": anon_kb / 1024}


def recorder_us_per_request(rounds: int = 10) -> float:
    """In this process: the monitoring recorder's whole work for one 1-row request as the
    server hands it over (the submit on the request path and its share of the flush that
    writes the batch), in microseconds, median of ``rounds`` rounds of 1000 requests."""
    from sklearn.datasets import load_iris

    from nbmodel.monitoring import BackgroundRecorder

    X, _ = load_iris(return_X_y=True, as_frame=True)
    rows = X.values.tolist()
    import numpy as np

    preds = np.zeros(len(rows), dtype=np.int64)
    rec = BackgroundRecorder("iris", 1, max_rows=10**9, max_seconds=10**6, columns=list(X.columns))
    times = []
    for _ in range(rounds + 1):
        t = time.perf_counter()
        for i in range(1000):
            j = i % len(rows)
            rec.submit([rows[j]], preds[j:j + 1], 1.0)
        rec.flush()
        times.append((time.perf_counter() - t) * 1000)  # ms per 1000 = us per request
    rec.close()
    return statistics.median(times[1:])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--monitor-rounds", type=int, default=5)
    p.add_argument("--rollout-rounds", type=int, default=3)
    p.add_argument("--ceiling-rounds", type=int, default=1,
                   help="rounds of the ceiling comparison (bare app, 1 worker, 2 workers, in turn); "
                   "with several, the medians and the median of each round's ratios are shown")
    p.add_argument("--only", choices=["all", "ceiling", "rollouts", "profile"], default="all",
                   help="run only the ceiling comparison, only the canary and shadow figures, or only "
                   "the in-process profile of the request path")
    args = p.parse_args()
    load = load_wrk if shutil.which("wrk") else load_python
    import importlib.util

    parser = "httptools" if importlib.util.find_spec("httptools") else "h11 (pip install httptools: faster)"
    parser += ", event loop: " + ("uvloop" if importlib.util.find_spec("uvloop") else "asyncio")
    print(f"load client: {'wrk -t2' if load is load_wrk else 'python threads'}, "
          f"{args.connections} connections, {args.seconds:.0f} s per run, 1-row dataframe_split, "
          f"1 worker; uvicorn's HTTP parser: {parser}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    floors = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import skops.io"], check=True)
        floors.append(time.perf_counter() - t)
    print(f"for scale: a fresh python importing skops.io (the model's loader: it imports scikit-learn "
          f"and SciPy) takes {min(floors):.2f} s here, best of 3; no server of this model starts faster")
    if args.only != "all":
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            store_uri, body = make_store(folder)
            if args.only == "ceiling":
                report_ceiling(store_uri, folder, body, load, args)
            elif args.only == "profile":
                report_profile(store_uri, body)
            else:
                report_rollouts(store_uri, folder, body, load, args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store_uri, body = make_store(folder)
        report_ceiling(store_uri, folder, body, load, args)
        report_rollouts(store_uri, folder, body, load, args)
        results = {}
        for name, start in (("nbmodel", lambda: start_nbmodel(store_uri, folder, monitor=True)),
                            ("mlflow models serve", lambda: start_mlflow(store_uri, folder))):
            proc, port, t0 = start()
            try:
                startup = wait_answering(proc, port, body, t0)
                follow = None
                if name == "nbmodel":
                    follow = wait_following(folder, port) + startup
                    wait_following(folder, port, key="warm")  # its background start-up done
                load(port, body, 2, args.connections, folder)  # warm up
                res = load(port, body, args.seconds, args.connections, folder)
            finally:
                stop(proc)
            res["startup"] = startup
            results[name] = res
            extra = f", following its alias after {follow:.2f} s" if follow else ""
            print(f"{name:>20}: startup {startup:.2f} s{extra}; {res['rps']:.0f} req/s, "
                  f"p50 {res['p50']:.2f} ms, p99 {res['p99']:.2f} ms, errors {res['errors']}")
        ratio = results["nbmodel"]["rps"] / results["mlflow models serve"]["rps"]
        warm = warm_startups(store_uri, folder, body, load, args.seconds, args.connections)
        print(f"{'nbmodel, warm':>20}: forked by the kernel's warm starter (ready {warm['ready']:.1f} s "
              f"after %load_ext, holding {warm['mb']:.0f} MB): startup {warm['startup']:.2f} s; the "
              f"whole nbmodel.deploy (alias moved, server started, first answer) {warm['deploy']:.2f} s, "
              f"medians of 3; {warm['rps']:.0f} req/s, p50 {warm['p50']:.2f} ms, "
              f"p99 {warm['p99']:.2f} ms, errors {warm['errors']}")
        print(f"requests/s ratio nbmodel / mlflow models serve: {ratio:.1f}x (target >= 5x); "
              f"nbmodel p50 {results['nbmodel']['p50']:.2f} ms (target <= 5 ms); startup "
              f"{warm['startup']:.2f} s from a notebook, {results['nbmodel']['startup']:.2f} s as a "
              "fresh process (target < 2 s)")

        # Monitoring every request: a monitored and a plain server side by side, each under
        # its own half of the connections at the same time, so both see the same machine
        # (runs one after the other differ by 10-20% here, more than the effect measured).
        us = recorder_us_per_request()
        rounds = [paired_monitoring_round(store_uri, folder, body, load, args.seconds, args.connections)
                  for _ in range(args.monitor_rounds)]
        ratios = [r["with"]["rps"] / r["without"]["rps"] for r in rounds]
        cpu = [r["with"]["cpu_us"] / r["without"]["cpu_us"] for r in rounds]
        plain_cpu = statistics.median(r["without"]["cpu_us"] for r in rounds)
        print(f"monitoring every request, the recorder's own work measured in process: {us:.1f} us "
              f"per request, {100 * us / plain_cpu:.1f}% of the server's CPU per request (target <= 5%)")
        print(f"  whole servers side by side, {args.monitor_rounds} rounds: requests/s with / without "
              f"monitoring {', '.join(f'{x:.3f}' for x in ratios)}; median {statistics.median(ratios):.3f}, "
              f"a cost of {100 * (1 - statistics.median(ratios)):.1f}% of throughput (target <= 5%); "
              f"CPU per request with / without: median {statistics.median(cpu):.3f}")


BARE_APP = """
import sys, uvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"predictions": [0]}'})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), http="httptools", log_level="warning",
            access_log=False, lifespan="off")
"""


def start_bare(folder: Path) -> tuple[subprocess.Popen, int, float]:
    """The ceiling: a bare uvicorn+httptools ASGI app answering a constant."""
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", BARE_APP, str(port)],
                            stdout=open(folder / "bare.log", "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    return proc, port, t0


def ceiling(store_uri: str, folder: Path, body: bytes, load: Any, seconds: float,
            connections: int) -> dict[str, dict[str, float]]:
    """The bare ASGI app, nbmodel with one worker and with two, each alone under the same load,
    one after the other in this run."""
    out = {}
    starts = (("bare ASGI app", lambda: start_bare(folder)),
              ("nbmodel, 1 worker", lambda: start_nbmodel(store_uri, folder, monitor=True)),
              ("nbmodel, 2 workers", lambda: start_nbmodel(store_uri, folder, monitor=True, workers=2)))
    for name, start in starts:
        proc, port, t0 = start()
        try:
            wait_answering(proc, port, body, t0)
            if name.startswith("nbmodel"):
                wait_following(folder, port, key="warm")
            load(port, body, 2, connections, folder)  # warm up
            out[name] = load(port, body, seconds, connections, folder)
        finally:
            stop(proc)
    return out


def _rollout(kind: str, candidate: int, **kw: Any) -> Any:
    from nbmodel.serving import _records as R

    now = time.time()
    return R.Rollout(kind, candidate, serving=3 - candidate, started=now, step_started=now, changed=now, **kw)


def paired_rollout_round(store_uri: str, folder: Path, body: bytes, load: Any, seconds: float,
                         connections: int, kind: str, with_first: bool = True) -> dict[str, float]:
    """A plain server and one running a ``kind`` rollout (a canary at 50%, a shadow, or
    ``none``: a second plain server, the measurement's own bias), side by side under half the
    connections each: requests/s with / without. ``with_first``: which one starts first."""
    from nbmodel.versions import resolve

    serving = resolve("iris@production").version
    rollout = None if kind == "none" else _rollout(
        kind, 3 - serving, share=50 if kind == "canary" else 0, interval=3600.0, steps=[50, 100])
    order = ["with", "without"] if with_first else ["without", "with"]
    servers = {key: start_nbmodel(store_uri, folder, monitor=True,
                                  rollout=rollout if key == "with" else None) for key in order}
    try:
        for proc, port, t0 in servers.values():
            wait_answering(proc, port, body, t0)
            wait_following(folder, port, key="warm")
        half = max(1, connections // 2)
        out: dict[str, float] = {}

        def run(key: str, secs: float) -> None:
            own = folder / f"load-{kind}-{key}"
            own.mkdir(exist_ok=True)
            out[key] = load(servers[key][1], body, secs, half, own, callers=1000)["rps"]

        for secs in (2, seconds):  # warm up, then measure
            threads = [threading.Thread(target=run, args=(key, secs)) for key in servers]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        return out
    finally:
        for proc, _, _ in servers.values():
            stop(proc)


def rollout_under_load(store_uri: str, folder: Path, body: bytes, load: Any, connections: int,
                       check: str) -> tuple[str, dict[str, float], float]:
    """A whole canary (steps 25, 50, 100 a second apart) under steady load: its end state, the
    load's figures (errors: failed requests) and how long it took."""
    from nbmodel.serving import _records as R
    from nbmodel.versions import resolve

    proc, port, t0 = start_nbmodel(store_uri, folder, monitor=True)
    rec = folder / f"bench-{port}.json"
    res: dict[str, float] = {}
    try:
        wait_answering(proc, port, body, t0)
        wait_following(folder, port, key="warm")
        serving = resolve("iris@production").version
        ro = _rollout("canary", 3 - serving, share=25, interval=1.0, steps=[25, 50, 100], checks=[check])
        thread = threading.Thread(target=lambda: res.update(load(port, body, 25, connections, folder,
                                                                  callers=1000)))
        thread.start()
        time.sleep(1.0)
        started = time.perf_counter()
        R.update_rollout(rec, "iris", lambda cur: ro, create=True)
        poll(lambda: R.read(rec).models[0].rollout.state != "running",
             22 - (time.perf_counter() - started), 0.1)
        state = R.read(rec).models[0].rollout.state
        took = time.perf_counter() - started
        thread.join()
    finally:
        stop(proc)
    return state, res, took


def paired_monitoring_round(store_uri: str, folder: Path, body: bytes, load: Any, seconds: float,
                            connections: int) -> dict[str, dict[str, float]]:
    """A monitored and a plain server, loaded at the same time with half the connections each:
    ``{"with": {...}, "without": {...}}``, each with ``rps`` and ``cpu_us`` (the server's CPU
    time per answered request, all its threads: the recorder's flushes included)."""
    servers = {}
    try:
        for key, monitor in (("with", True), ("without", False)):
            servers[key] = start_nbmodel(store_uri, folder, monitor=monitor)
        for proc, port, t0 in servers.values():
            wait_answering(proc, port, body, t0)
            wait_following(folder, port, key="warm")  # recorder attached, start-up done
        half = max(1, connections // 2)
        out: dict[str, dict[str, float]] = {}

        def run(key: str, secs: float, measure: bool) -> None:
            proc, port, _ = servers[key]
            own = folder / f"load-{key}"
            own.mkdir(exist_ok=True)
            c0 = cpu_seconds(proc.pid)
            res = load(port, body, secs, half, own)
            if measure:
                time.sleep(1.0)  # the recorder's timed flush of this run's rows counts too
                out[key] = {"rps": res["rps"], "cpu_us": (cpu_seconds(proc.pid) - c0) / res["requests"] * 1e6}

        for secs, measure in ((2, False), (seconds, True)):  # warm up, then measure
            threads = [threading.Thread(target=run, args=(key, secs, measure)) for key in servers]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        return out
    finally:
        for proc, _, _ in servers.values():
            stop(proc)

def report_ceiling(store_uri: str, folder: Path, body: bytes, load: Any, args: Any) -> None:
    names = ("bare ASGI app", "nbmodel, 1 worker", "nbmodel, 2 workers")
    rounds = []
    for k in range(max(1, args.ceiling_rounds)):
        res = ceiling(store_uri, folder, body, load, args.seconds, args.connections)
        rounds.append(res)
        tag = f" (round {k + 1})" if args.ceiling_rounds > 1 else ""
        for name, r in res.items():
            print(f"{name:>20}: {r['rps']:.0f} req/s, p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, "
                  f"errors {r['errors']}{tag}, load average {os.getloadavg()[0]:.1f}")

    def med(name: str, key: str) -> float:
        return statistics.median(r[name][key] for r in rounds)

    ratio = statistics.median(r[names[1]]["rps"] / r[names[0]]["rps"] for r in rounds)
    scale = statistics.median(r[names[2]]["rps"] / r[names[1]]["rps"] for r in rounds)
    many = f"medians of {len(rounds)} rounds, " if len(rounds) > 1 else ""
    print(f"{many}bare ASGI app p99 {med(names[0], 'p99'):.2f} ms beside nbmodel's; "
          f"nbmodel / bare ASGI app, one worker: {ratio:.2f} (target >= 0.40); "
          f"p99 {med(names[1], 'p99'):.2f} ms (target < 5 ms); 2 workers / 1 worker: "
          f"{scale:.2f} (target >= 1.0). Here the load generator shares the 2 "
          f"cores with the server; where cores are free, workers scale about linearly up to the "
          f"free cores (each is a whole server; the kernel's accept queue spreads the connections)")


def report_profile(store_uri: str, body: bytes, requests: int = 3000) -> None:
    """nbmodel's request path profiled in this process (cProfile): the server's ASGI app called
    directly with the benchmark's request, no socket and no HTTP parser, so what is left is
    the app's own work. Prints the microseconds per request, then the share of it spent in the
    model's own ``predict`` (the model's library), in parsing the request, and the rest
    (routing, metrics, the answer), and the costliest functions."""
    import asyncio
    import cProfile
    import pstats

    from nbmodel.serving import _models, _server
    from nbmodel.serving._records import DeploymentRecord, ModelSpec
    from nbmodel.versions import resolve

    _models.quiet_sklearn()
    v = resolve("iris@production")
    from nbmodel.serving import _deploy
    from nbmodel.store import get_store

    path = _deploy._local_dir(get_store(), v.name, v.version)
    record = DeploymentRecord(host="127.0.0.1", port=0, store=store_uri, monitor=False,
                              models=[ModelSpec("iris", "production", v.version, path)],
                              path=Path(tempfile.gettempdir()) / "nbmodel-profile.json")
    app = _server.App(record)
    app.add_slot(record.models[0], with_pyfunc=False)
    scope = {"type": "http", "method": "POST", "path": "/invocations",
             "headers": [(b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(msg: dict[str, Any]) -> None:
        pass

    async def many(n: int) -> None:
        for _ in range(n):
            await app(scope, receive, send)

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(many(300))  # warm up
        t = time.perf_counter()
        loop.run_until_complete(many(requests))
        us = (time.perf_counter() - t) / requests * 1e6
        prof = cProfile.Profile()
        prof.enable()
        loop.run_until_complete(many(requests))
        prof.disable()
    finally:
        loop.close()
    stats = pstats.Stats(prof)
    total = stats.total_tt  # type: ignore[attr-defined]

    def cumulative(name: str) -> float:
        return sum(row[3] for (file, _, func), row in stats.stats.items()  # type: ignore[attr-defined]
                   if func == name and "nbmodel/serving" in file)

    predict = cumulative("_predict_native")
    parse = cumulative("parse_json")
    print(f"the request path in process, no HTTP: {us:.0f} us per request (without the profiler); "
          f"under the profiler, the model's predict {100 * predict / total:.0f}%, parsing the "
          f"request {100 * parse / total:.0f}%, the rest (routing, metrics, the answer, the event "
          f"loop) {100 * (total - predict - parse) / total:.0f}%")
    stats.sort_stats("tottime").print_stats(12)


def report_rollouts(store_uri: str, folder: Path, body: bytes, load: Any, args: Any) -> None:
    # The kinds take turns within each round, and the server of each pair that starts first
    # alternates between rounds, so that neither the machine's drift nor the order of start
    # favours one side; two plain servers side by side show what the pairing itself reads.
    kinds = ("canary", "shadow", "none")
    ratios: dict[str, list[float]] = {k: [] for k in kinds}
    for i in range(args.rollout_rounds):
        for kind in kinds:
            r = paired_rollout_round(store_uri, folder, body, load, args.seconds, args.connections, kind,
                                     with_first=i % 2 == 0)
            ratios[kind].append(r["with"] / r["without"])
    for kind in kinds:
        xs = ratios[kind]
        what = {"canary": "a running canary at 50%", "shadow": "a running shadow",
                "none": "a plain server (the pairing's own bias)"}[kind]
        target = " (target <= 10%)" if kind != "none" else ""
        print(f"{what}, side by side with a plain server, {len(xs)} rounds: requests/s with / "
              f"without {', '.join(f'{x:.3f}' for x in xs)}; median {statistics.median(xs):.3f}, a "
              f"cost of {100 * (1 - statistics.median(xs)):.1f}%{target}")
    for what, check in (("promotes", "error_rate<0.01"), ("rolls back", "p99_ms<0.01")):
        state, res, took = rollout_under_load(store_uri, folder, body, load, args.connections, check)
        print(f"a canary that {what} (25, 50, 100% a second apart) under {args.connections} "
              f"connections: ended {state} after {took:.1f} s; {res.get('requests', 0)} requests, "
              f"{res.get('errors', 0)} failed (target 0)")


if __name__ == "__main__":
    main()
