"""The warm starter: one helper per user and machine, shared by that user's kernels, the
sidebar's jupyter-server process and ``nbmodel serve``; started by the first deploy (not by
``%load_ext``), found through a socket in a private folder, replaced when stale, gone when idle.

Each test gets its own runtime folder, so its helpers are its own, and stops them at its end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _helpers import parent_pid, split, wait_for

requests = pytest.importorskip("requests")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def warm(monkeypatch: pytest.MonkeyPatch, isolated_store: Any) -> Iterator[Path]:
    """The warm starter switched on, with a runtime folder of this test's own (a short path:
    Unix socket paths are limited to about 100 bytes); every helper in it is ended at the end."""
    from nbmodel.serving import _warm

    folder = Path(tempfile.mkdtemp(prefix="nbw-"))
    monkeypatch.setenv(_warm.ENV_SWITCH, "1")
    monkeypatch.setenv(_warm.RUNTIME_ENV, str(folder))
    monkeypatch.setattr(_warm, "_handle", None)
    yield folder
    import nbmodel.serving as serving

    serving.stop("all")
    for pid in helpers(folder):
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(folder, ignore_errors=True)


def helpers(folder: Path) -> list[int]:
    """The helper processes whose runtime folder is ``folder`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes().split(b"\0")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # the servers it forked share its command line, but lead sessions of their own
        if (b"nbmodel.serving._warm" in cmdline and fields[0] != "Z" and fields[3] != entry.name
                and f"NBMODEL_RUNTIME_DIR={folder}".encode() in environ):
            found.append(int(entry.name))
    return found


def kernels(code: str, n: int, env: dict[str, str], timeout: float = 300) -> list[Any]:
    """Run ``code`` in ``n`` Python processes at once (kernels); the last line each prints,
    as JSON."""
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=os.getcwd()) for _ in range(n)]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        assert p.returncode == 0, stderr
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


# -- fast: where it lives, and that nothing starts it early ---------------------------------------
def test_the_runtime_folder_is_private(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from nbmodel.serving import _warm

    monkeypatch.setenv(_warm.RUNTIME_ENV, str(tmp_path / "rt"))
    folder = _warm.runtime_dir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    folder.chmod(0o755)
    assert stat.S_IMODE(_warm.runtime_dir().stat().st_mode) == 0o700, "a loosened folder is tightened"
    (tmp_path / "link").symlink_to(folder)
    monkeypatch.setenv(_warm.RUNTIME_ENV, str(tmp_path / "link"))
    with pytest.raises(PermissionError):
        _warm.runtime_dir()
    # without a folder it can trust, a deploy starts servers afresh: spawn says None
    assert _warm.WarmStarter().spawn(["--record", "x"], {}, "x.log") is None


def test_load_ext_and_magics_start_no_helper(warm: Path, kernel_env: dict[str, str]) -> None:
    code = ("from IPython.testing.globalipapp import start_ipython; ip = start_ipython(); "
            "ip.run_line_magic('load_ext', 'nbmodel'); ip.run_line_magic('model_deployments', ''); "
            "import time; time.sleep(0.5); print('[]')")
    env = {**kernel_env, "NBMODEL_WARM_SERVER": "1", "NBMODEL_RUNTIME_DIR": str(warm)}
    kernels(code, 1, env, timeout=120)
    assert helpers(warm) == [], "%load_ext and a magic that serves nothing start no helper"
    from nbmodel.serving import _warm

    assert not _warm.WarmStarter().running()


# -- slow: real helpers --------------------------------------------------------------------------
def _pythons() -> list[Path]:
    """Two names of this environment's Python in its own folder (``python`` and ``python3`` in a
    virtual environment), as a kernel spec's ``python`` and an entry point's ``python3`` call it."""
    here = Path(sys.executable)
    names = [here.parent / n for n in ("python", "python3", f"python3.{sys.version_info[1]}")]
    same = [p for p in names if p.exists() and p.resolve() == here.resolve()]
    if len(same) < 2:
        pytest.skip(f"{here.parent} holds one name for this Python")
    return same[:2]


@pytest.mark.slow
def test_one_helper_per_environment_whichever_name_its_python_is_started_by(
        warm: Path, kernel_env: dict[str, str]) -> None:
    # JupyterLab started by an entry point (python3) and a kernel started as "python": one
    # environment, so one helper, that either of them finds and can stop.
    first, second = _pythons()
    env = {**kernel_env, "NBMODEL_WARM_SERVER": "1", "NBMODEL_RUNTIME_DIR": str(warm)}
    ask = ("import json, sys; from nbmodel.serving._warm import WarmStarter; "
           "w = WarmStarter(idle_seconds=120); ok = w.hello(start=sys.argv[1] == 'start'); "
           "print(json.dumps(w.pid if ok else None))")
    started = subprocess.run([str(first), "-c", ask, "start"], env=env, capture_output=True, text=True,
                             timeout=120, check=True)
    pid = json.loads(started.stdout.strip().splitlines()[-1])
    assert pid and helpers(warm) == [pid]
    found = subprocess.run([str(second), "-c", ask, "find"], env=env, capture_output=True, text=True,
                           timeout=60, check=True)
    assert json.loads(found.stdout.strip().splitlines()[-1]) == pid, (
        f"{second.name} did not find the helper {first.name} started")
    stop = "from nbmodel.serving._warm import WarmStarter; print(WarmStarter().stop())"
    stopped = subprocess.run([str(second), "-c", stop], env=env, capture_output=True, text=True,
                             timeout=60, check=True)
    assert stopped.stdout.strip() == "True"
    assert wait_for(lambda: helpers(warm) == [], 10)


@pytest.mark.slow
def test_kernels_racing_to_deploy_share_one_helper(warm: Path, commit_iris: Any, iris: Any,
                                                   kernel_env: dict[str, str]) -> None:
    commit_iris(C=1.0)
    code = ("import json, os, nbmodel.serving as s; from nbmodel.serving import _warm; "
            "d = s.deploy('iris/1', alias='k' + str(os.getpid()), detach=True); "
            "print(json.dumps([_warm.current().pid, d.pid, d.url]))")
    env = {**kernel_env, "NBMODEL_WARM_SERVER": "1", "NBMODEL_RUNTIME_DIR": str(warm),
           "MLFLOW_TRACKING_URI": os.environ["MLFLOW_TRACKING_URI"]}
    answers = kernels(code, 3, env)
    helper_pids = {h for h, _, _ in answers}
    assert len(helper_pids) == 1 and helpers(warm) == list(helper_pids), "exactly one helper"
    (helper,) = helper_pids
    for _, server, url in answers:  # each kernel's server forked from the shared helper, and serves
        assert parent_pid(server) == helper
        assert requests.post(url, json=split(iris["X_test"].iloc[:2]), timeout=30).status_code == 200

    # the sidebar (the jupyter-server process: here, this one) and a later kernel reuse it
    import nbmodel.serving as serving
    from nbmodel.serving import _warm

    t0 = time.perf_counter()
    dep = serving.deploy("iris/1", alias="sidebar")
    took = time.perf_counter() - t0
    assert parent_pid(dep.pid) == helper and _warm.current().pid == helper
    assert took < 5, f"a deploy from a warm helper took {took:.1f} s"
    assert helpers(warm) == [helper]


ASKS_THE_STARTER = """
import json, os, sys
from nbmodel.serving import _warm

def run_server(path, env):  # where nbmodel serve contacts the warm starter
    print(json.dumps({"mlflow": "mlflow" in sys.modules, "record": json.load(open(path))["models"]}))
    os.unlink(path)
    return 0

_warm.run_server = run_server
from nbmodel import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def test_nbmodel_serve_asks_the_starter_before_importing_mlflow(commit_iris: Any,
                                                                kernel_env: dict[str, str]) -> None:
    """With a sqlite store, ``nbmodel serve`` reads what to serve from the store's file, so it
    reaches the warm starter without paying MLflow's import (seconds); a version named by number
    is checked the same way, and what the file cannot answer still goes through the registry."""
    import nbmodel

    commit_iris(C=1.0)
    commit_iris(C=0.5)
    nbmodel.alias("iris/2", "production")
    nbmodel.retire("iris/1")
    env = {**kernel_env, "MLFLOW_TRACKING_URI": os.environ["MLFLOW_TRACKING_URI"]}

    def serve(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", ASKS_THE_STARTER, "serve", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    done = serve("iris@production")
    assert done.returncode == 0, done.stderr
    asked = json.loads(done.stdout.strip().splitlines()[-1])
    assert asked["mlflow"] is False, "MLflow was imported before the starter was asked"
    (model,) = asked["record"]
    assert (model["name"], model["alias"], model["version"]) == ("iris", "production", 2)
    assert os.path.isfile(os.path.join(model["path"], "MLmodel"))
    assert "serving iris@production (iris/2)" in done.stdout
    retired = serve("iris/1")
    assert retired.returncode == 2 and "iris/1 is retired" in retired.stderr
    unknown = serve("iris@staging")  # the registry's answer, with the aliases that exist
    assert unknown.returncode == 2 and "no alias 'staging'" in unknown.stderr
    assert "production (version 2)" in unknown.stderr


@pytest.mark.slow
def test_nbmodel_serve_forks_from_the_running_helper(warm: Path, commit_iris: Any, iris: Any,
                                                    kernel_env: dict[str, str]) -> None:
    from nbmodel.serving import _process, _warm

    commit_iris(C=1.0)
    import nbmodel

    nbmodel.alias("iris/1", "production")
    assert _warm.current().hello(), "a deploy-like start of the helper"
    helper = _warm.current().pid
    port = _process.free_port()
    env = {**kernel_env, "NBMODEL_WARM_SERVER": "1", "NBMODEL_RUNTIME_DIR": str(warm),
           "MLFLOW_TRACKING_URI": os.environ["MLFLOW_TRACKING_URI"]}
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "nbmodel.cli", "serve", "iris@production", "--port", str(port)]
    serve = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                             start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                return requests.post(url + "/invocations", json=split(iris["X_test"].iloc[:2]),
                                     timeout=5).status_code == 200
            except requests.ConnectionError:
                return False

        assert wait_for(answers, 60), "nbmodel serve answers"
        took = time.perf_counter() - t0
        server = requests.get(url + "/health", timeout=5).json()["pid"]
        assert parent_pid(server) == helper and server != serve.pid, "forked by the helper"
        assert serve.poll() is None, "nbmodel serve waits in the foreground"
        print(f"nbmodel serve answered after {took:.2f} s")
        serve.send_signal(signal.SIGINT)  # Ctrl-C reaches the server
        out, _ = serve.communicate(timeout=30)
        assert wait_for(lambda: not _process.pid_alive(server), 10)
        assert "listening on" in out, "the server's output is on serve's terminal"
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()


@pytest.mark.slow
def test_an_idle_helper_leaves_and_the_next_deploy_starts_another(warm: Path, shell: Any) -> None:
    from nbmodel.serving import _warm

    short = _warm.WarmStarter(idle_seconds=3.0)
    assert short.hello(120)
    first = short.pid
    for _ in range(15):  # 4.5 s of magics, each telling it the user is active
        shell.run("%model_deployments")
        time.sleep(0.3)
    assert helpers(warm) == [first], "kept while magics run"
    assert wait_for(lambda: not helpers(warm), 30), "an idle helper leaves"
    sock = _warm._paths(warm)[0]
    assert not sock.exists(), "and takes its socket with it"
    shell.run("%model_deployments")
    assert helpers(warm) == [], "a magic that serves nothing does not start it again"
    again = _warm.WarmStarter()
    assert again.hello(120) and again.pid != first


@pytest.mark.slow
def test_a_stale_socket_of_a_killed_helper_is_replaced(warm: Path) -> None:
    from nbmodel.serving import _warm

    h = _warm.WarmStarter()
    assert h.hello(120)
    killed = h.pid
    os.kill(killed, signal.SIGKILL)
    assert wait_for(lambda: not helpers(warm), 10)
    sock = _warm._paths(warm)[0]
    assert sock.exists(), "a killed helper leaves its socket behind"
    assert wait_for(lambda: not h.running(), 10), "its lock goes with it (the kernel frees it)"
    assert h.hello(120) and h.pid != killed
    assert helpers(warm) == [h.pid] and h.running()
    assert h.stop() and not helpers(warm) and not sock.exists()


@pytest.mark.slow
def test_servers_start_afresh_when_the_helper_cannot_fork_them(warm: Path, commit_iris: Any,
                                                              iris: Any, monkeypatch: Any) -> None:
    import nbmodel.serving as serving
    from nbmodel.serving import _warm

    commit_iris(C=1.0)
    dep = serving.deploy("iris/1")
    helper = _warm.current().pid
    assert parent_pid(dep.pid) == helper
    serving.stop("all")

    # a thread setting changed since the helper imported: it would not apply there
    with monkeypatch.context() as m:
        m.setenv("OMP_NUM_THREADS", "1" if os.environ.get("OMP_NUM_THREADS") != "1" else "2")
        dep = serving.deploy("iris/1")
        assert parent_pid(dep.pid) == os.getpid() and helpers(warm) == [helper]
        serving.stop("all")

    # a helper that hangs is given up on, and the server starts afresh
    os.kill(helper, signal.SIGSTOP)
    try:
        monkeypatch.setattr(_warm, "READY_TIMEOUT", 0.5)
        dep = serving.deploy("iris/1")
        assert parent_pid(dep.pid) == os.getpid()
        assert requests.post(dep.url, json=split(iris["X_test"].iloc[:2]), timeout=30).status_code == 200
    finally:
        os.kill(helper, signal.SIGCONT)


@pytest.mark.slow
def test_the_helper_outlives_a_killed_kernel_its_attached_server_does_not(
        warm: Path, commit_iris: Any, iris: Any, kernel_env: dict[str, str]) -> None:
    commit_iris(C=1.0)
    code = ("import nbmodel.serving as s, json, os, signal; from nbmodel.serving import _warm; "
            "a = s.deploy('iris/1'); b = s.deploy('iris/1', alias='staging', detach=True); "
            "print(json.dumps([_warm.current().pid, a.pid, b.pid, b.url]), flush=True); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    env = {**kernel_env, "NBMODEL_WARM_SERVER": "1", "NBMODEL_RUNTIME_DIR": str(warm),
           "MLFLOW_TRACKING_URI": os.environ["MLFLOW_TRACKING_URI"]}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=ROOT, env=env)
    assert out.returncode == -signal.SIGKILL, out.stderr
    helper, attached, detached, url = json.loads(out.stdout.strip().splitlines()[-1])
    from nbmodel.serving import _process

    assert wait_for(lambda: not _process.pid_alive(attached), 30), "the server outlived its kernel"
    assert helpers(warm) == [helper], "the shared helper stays for the user's other kernels"
    assert requests.post(url, json=split(iris["X_test"].iloc[:2]), timeout=30).status_code == 200
