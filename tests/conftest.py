"""Fixtures shared by nbmodel's tests.

Every test runs in its own temporary folder with its own sqlite store, never the user's: a
store is created once per session through nbmodel's own creation path (MLflow's migrations
take seconds) and copied for each test.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _helpers import fit_iris

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
# Never let a developer's own settings leak into the tests.
for _var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
    os.environ.pop(_var, None)
# The warm starter's socket and locks: the session's own folder, never the user's own helper.
os.environ["NBMODEL_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="nbmodel-rt-")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: a worker per core, at most 4. Most tests start processes of their own (kernels,
    servers, a browser), so more workers than cores only make each test slower, and the team
    tests share one server of two workers."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(4, cores))


#: The longest tests, with their seconds in a clean CI run on two workers: they must not start
#: last. A test missing here only runs where the collection puts it.
LONGEST = {
    "tests/test_notebooks.py::test_in_order_in_one_folder_then_again": 700,
    "tests/test_sidebar_ui.py::test_sidebar_typescript_units_and_galata_in_chromium": 390,
    "tests/test_reliability.py::test_four_processes_commit_fifty_versions_each_to_a_fresh_store": 270,
    "tests/test_team_lessons.py::test_the_lessons_pass_strict_nbval_on_a_fresh_team_server": 250,
    "tests/test_team_kernels.py::test_eight_kernels_commit_and_move_aliases_on_the_server": 190,
    "tests/test_team_kernels.py::test_eight_kernels_commit_and_move_aliases_on_sqlite": 160,
}


@pytest.hookimpl(trylast=True)  # after deselection (-m, -k)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, start each worker on its share of the longest tests.

    ``--dist worksteal`` gives each worker a contiguous share of the collection and lets an idle
    one take the back half of another's. In file order the longest tests sat near the end, and
    the run waited minutes on the last of them alone; here each share begins with some of them
    (the longest first, each to the least loaded share), and the rest keep their order. Every
    worker orders its collection the same way, as xdist requires.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    longest = sorted((i for i in items if i.nodeid in LONGEST), key=lambda i: -LONGEST[i.nodeid])
    if workers < 2 or not longest:
        return
    shares: list[list[pytest.Item]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for item in longest:
        k = loads.index(min(loads))
        shares[k].append(item)
        loads[k] += LONGEST[item.nodeid]
    rest = iter([i for i in items if i.nodeid not in LONGEST])
    ordered: list[pytest.Item] = []
    left = len(items)
    for k, share in enumerate(shares):
        size = left // (workers - k)  # as worksteal cuts the collection
        ordered += share + list(itertools.islice(rest, max(0, size - len(share))))  # what is left
        left -= size
    ordered += list(rest)
    items[:] = ordered


@pytest.fixture
def kernel_env() -> dict[str, str]:
    """The environment of a child "kernel" process: this checkout's nbmodel first on the path,
    and no store from the parent's environment (the child names its own)."""
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="session")
def warm_starter() -> Any:
    """The warm starter the first deploy starts, started once for the session (its imports
    take seconds) and stopped at its end. Tests that run servers use it through
    the ``servers`` fixture, so their servers fork from it as in a notebook."""
    from nbmodel.serving import _warm

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(_warm.ENV_SWITCH, "1")
        starter = _warm.prestart()
    yield starter
    _warm.shutdown()


@pytest.fixture
def stop_servers(isolated_store: Any) -> Any:
    """nbmodel.serving, servers started afresh (no warm starter); stops every server of the
    test's store at the end, even when the test fails."""
    import nbmodel.serving as serving

    yield serving
    serving.stop("all")


@pytest.fixture
def servers(stop_servers: Any, warm_starter: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``stop_servers``, with the session's warm starter on as in a notebook: every server
    the test starts is stopped at its end, even when the test fails."""
    monkeypatch.setenv("NBMODEL_WARM_SERVER", "1")
    return stop_servers


@pytest.fixture
def serve_until_answered() -> Callable[..., str]:
    """``serve_until_answered(args, check, says=LINE)``: run ``nbmodel serve ARGS --port PORT``
    in the foreground as from a terminal, wait until its ``/ping`` answers, call
    ``check(base_url)`` while it serves, then stop it with Ctrl-C (SIGINT): it must exit 0
    having printed ``LINE``. Returns everything it printed."""
    import signal
    import socket
    import subprocess
    import time

    import requests

    def _serve(args: list[str], check: Callable[[str], None], *, says: str) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        base_url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen([sys.executable, "-m", "nbmodel.cli", "serve", *args, "--port", str(port)],
                                cwd=Path(__file__).parents[1], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.time() + 120
            while True:
                try:
                    if requests.get(f"{base_url}/ping", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                assert proc.poll() is None and time.time() < deadline, proc.stdout.read()  # type: ignore[union-attr]
                time.sleep(0.05)
            check(base_url)
        finally:
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert says in out, out
        return out

    return _serve


@pytest.fixture(autouse=True)
def no_warm_starter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Off unless a test asks for it (``servers``, ``warm_starter``): the fast set starts no
    helper process, and a test's own kernels start servers afresh unless told otherwise."""
    monkeypatch.setenv("NBMODEL_WARM_SERVER", "0")


@pytest.fixture(scope="session")
def store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, fully migrated sqlite store to copy from."""
    from nbmodel.store import Store

    folder = tmp_path_factory.mktemp("template")
    store = Store(f"sqlite:///{folder / 'mlflow.db'}")
    store._create_sqlite()
    return folder / "mlflow.db"


def _reset_nbmodel() -> None:
    import nbmodel.store as store_mod

    store_mod._explicit_uri = None
    store_mod._stores.clear()
    if "nbmodel.versions" in sys.modules:
        sys.modules["nbmodel.versions"]._cache.clear()


@pytest.fixture(autouse=True)
def isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   store_template: Path) -> Any:
    """Each test: a fresh working folder holding a fresh store, given by MLFLOW_TRACKING_URI."""
    db = tmp_path / "mlflow.db"
    shutil.copy(store_template, db)
    # The copy's Default experiment still points at the template's folder: give it its own.
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                     (str(tmp_path / "mlruns" / "0"),))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    _reset_nbmodel()
    import nbmodel
    from nbmodel.store import use_in_mlflow

    # MLflow keeps a process-wide tracking and registry URI; point both at this test's store.
    use_in_mlflow(f"sqlite:///{db}")

    yield nbmodel.get_store()
    _reset_nbmodel()


@pytest.fixture(scope="session")
def iris() -> dict[str, Any]:
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    X, y = load_iris(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    return {"X": X, "y": y, "X_train": X_train, "X_test": X_test, "y_train": y_train,
            "y_test": y_test}


@pytest.fixture(scope="session")
def diabetes() -> dict[str, Any]:
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    return {"X_train": X_train, "X_test": X_test, "y_train": y_train, "y_test": y_test}


class Shell:
    """A real InteractiveShell with nbmodel loaded; ``run`` raises on any error, like a
    notebook cell that must succeed, and returns the cell's result and printed text."""

    def __init__(self) -> None:
        from IPython.core.interactiveshell import InteractiveShell

        self.ip = InteractiveShell.instance()
        self.ip.run_line_magic("reload_ext", "nbmodel")
        self.stdout = ""

    @property
    def ns(self) -> dict[str, Any]:
        return self.ip.user_ns

    def run(self, code: str) -> Any:
        from IPython.utils.capture import capture_output

        with capture_output() as cap:
            result = self.ip.run_cell(code, store_history=True)
        self.stdout = cap.stdout
        err = result.error_before_exec or result.error_in_exec
        if err is not None:
            raise err
        return result.result

    def fails(self, code: str) -> BaseException:
        """Run a cell that must fail; return its error."""
        from IPython.utils.capture import capture_output

        with capture_output() as cap:
            result = self.ip.run_cell(code, store_history=True)
        self.stdout = cap.stdout
        self.stderr = cap.stderr
        err = result.error_before_exec or result.error_in_exec
        assert err is not None, f"expected {code!r} to fail"
        return err


@pytest.fixture
def shell(iris: dict[str, Any]) -> Shell:
    """A shell with nbmodel loaded and the iris data in its namespace."""
    sh = Shell()
    sh.ns.update(iris)
    yield sh
    sh.ip.reset(new_session=True)


@pytest.fixture
def commit_iris(iris: dict[str, Any]) -> Callable[..., Any]:
    """Commit a LogisticRegression with the given C to ``iris``; returns the Version."""
    import nbmodel

    def _commit(C: float = 1.0, message: str = "", name: str = "iris", **kw: Any) -> Any:
        clf = fit_iris(iris, C)
        return nbmodel.commit(clf, name, message=message or f"C={C}",
                              eval=(iris["X_test"], iris["y_test"]),
                              train=(iris["X_train"], iris["y_train"]), **kw)

    return _commit



@pytest.fixture(scope="session")
def build_store(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, Callable[[], None]], Path]:
    """For a test module's own template store: ``build_store("name", fill)`` runs ``fill()``
    with nbmodel pointed at a fresh store, and returns that store's folder."""

    def _build(prefix: str, fill: Callable[[], None]) -> Path:
        folder = tmp_path_factory.mktemp(prefix)
        previous = os.environ.get("MLFLOW_TRACKING_URI")
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder}/mlflow.db"
        _reset_nbmodel()
        try:
            fill()
        finally:
            if previous is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = previous
            _reset_nbmodel()
        return folder

    return _build


@pytest.fixture
def use_store_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``use_store_copy(folder)``: point nbmodel at a copy of a template store, for one test."""
    import nbmodel

    def _use(template_folder: Path) -> Any:
        folder = tmp_path / "copy"
        shutil.copytree(template_folder, folder)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder}/mlflow.db")
        _reset_nbmodel()
        return nbmodel.get_store()

    yield _use
    _reset_nbmodel()


@pytest.fixture
def store(template: Path, use_store_copy: Any) -> Any:
    """A copy of the test module's own ``template`` fixture (a store folder it builds once with
    ``build_store``), for one test."""
    return use_store_copy(template)


class TeamStore:
    """The team server as one test's store: ``name("iris")`` is a model name no other test uses."""

    def __init__(self, store: Any, prefix: str) -> None:
        self.store = store
        self.uri: str = store.uri
        self.prefix = prefix

    def name(self, base: str = "iris") -> str:
        return f"{self.prefix}{base}"


@pytest.fixture
def team_store(isolated_store: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The team server of ``NBMODEL_TEAM_URI`` (``.ci/team-server start``) as this test's store,
    with a namespace of its own: model names from ``team_store.name(...)`` carry a prefix unique
    to the test, and every model and experiment under that prefix is deleted afterwards.

    Without ``NBMODEL_TEAM_URI`` the test is skipped, except under ``CI=true``, where the CI
    script starts the server and a missing one is a failure."""
    import uuid

    import nbmodel
    from nbmodel.store import use_in_mlflow

    uri = os.environ.get("NBMODEL_TEAM_URI", "").strip().rstrip("/")
    if not uri:
        why = "no team server: run `.ci/team-server start` and set NBMODEL_TEAM_URI to the URI it prints"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why)
        pytest.skip(why)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    _reset_nbmodel()
    use_in_mlflow(uri)
    team = TeamStore(nbmodel.get_store(), f"t{uuid.uuid4().hex[:10]}-")
    team.store.check()
    yield team
    _delete_namespace(uri, team.prefix)
    _reset_nbmodel()


def _delete_namespace(uri: str, prefix: str) -> None:
    """Delete the registered models and experiments of one test on the team server."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for model in client.search_registered_models(f"name LIKE '{prefix}%'", max_results=1000):
        client.delete_registered_model(model.name)
    for exp in client.search_experiments(filter_string=f"name LIKE '{prefix}%'", max_results=1000):
        client.delete_experiment(exp.experiment_id)
