"""nbmodel against a team store: an ``mlflow server`` over PostgreSQL with served artifacts.

Tests marked ``team`` run against the server of ``NBMODEL_TEAM_URI`` (``.ci/team-server start``
prints it; CI starts one) through the ``team_store`` fixture. The others need no server: they
check the same behaviour on sqlite or against a small fake server on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient

import nbmodel
from nbmodel import lineage
from nbmodel.errors import StoreError
from nbmodel.store import CALL_SETTINGS, mlflow_calls

team = [pytest.mark.team, pytest.mark.slow]

CHATTER = ("Waiting up to", "View run", "View experiment", "Downloading artifacts")


@contextmanager
def mlflow_records() -> Iterator[list[logging.LogRecord]]:
    """Every record MLflow's loggers emit inside the block (what a notebook would show)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    logger = logging.getLogger("mlflow")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def _chatter(records: list[logging.LogRecord], *texts: str) -> list[str]:
    lines = [r.getMessage() for r in records if r.levelno >= logging.INFO]
    lines += [line for text in texts for line in text.splitlines()]
    return [line for line in lines if any(c in line for c in CHATTER)]


# -- store behaviour that needs no server ---------------------------------------------------------
def test_mlflow_calls_bound_mlflow_and_restore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in CALL_SETTINGS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")  # the user's own choice wins
    level = logging.getLogger("mlflow.store.model_registry.abstract_store").level
    with mlflow_calls():
        with mlflow_calls():
            assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"
        assert os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] == "true"
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "60"
        assert not logging.getLogger("mlflow.store.model_registry.abstract_store").isEnabledFor(logging.INFO)
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ
    assert "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT" not in os.environ
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "60"
    assert logging.getLogger("mlflow.store.model_registry.abstract_store").level == level


def test_logged_models_live_in_their_models_experiment(commit_iris: Any, isolated_store: Any) -> None:
    v = commit_iris(name="wine")
    client = MlflowClient(isolated_store.uri, registry_uri=isolated_store.uri)
    mv = client.get_model_version("wine", str(v.version))
    logged = client.get_logged_model(mv.model_id or mv.source.removeprefix("models:/"))
    assert logged.status.name == "READY"
    assert logged.experiment_id == client.get_experiment_by_name("wine").experiment_id != "0"
    assert nbmodel.load("wine/1").predict  # still loads


def test_a_failed_commit_leaves_no_logged_model(isolated_store: Any, commit_iris: Any) -> None:
    class Locked:
        def __init__(self) -> None:
            self.lock = threading.Lock()  # cannot be pickled

        def predict(self, X: Any) -> Any:
            return [0] * len(X)

    with pytest.raises(nbmodel.NbmodelError, match="could not commit"):
        nbmodel.commit(Locked(), "locked")
    commit_iris(name="wine")  # one logged model, in its own experiment
    client = MlflowClient(isolated_store.uri, registry_uri=isolated_store.uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    assert [m.experiment_id for m in client.search_logged_models(experiment_ids=ids)] == [
        client.get_experiment_by_name("wine").experiment_id]


def test_a_fresh_object_takes_this_kernels_head_not_the_newest(commit_iris: Any, iris: Any) -> None:
    """Another kernel's version (made here by writing the store behind this kernel's back) is
    newer, yet a fresh object's parent is the version this kernel last committed."""
    commit_iris(C=1.0)
    lineage._kernel_heads.clear()
    commit_iris(C=0.5)  # no HEAD yet: the newest, iris/1
    assert nbmodel.show("iris/2").parent == "iris/1"
    other = lineage.kernel_head("iris")
    v3 = commit_iris(C=0.2)  # this kernel's line: iris/2
    assert v3.parent == other == "iris/2"
    lineage._kernel_heads.clear()
    lineage.set_head(object(), "iris/1")  # as after %model_checkout iris/1 in this kernel
    assert commit_iris(C=0.3).parent == "iris/1"


def test_heads_of_one_store_do_not_count_in_another(commit_iris: Any, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    commit_iris()
    commit_iris()
    assert lineage.kernel_head("iris") == "iris/2"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'other.db'}")
    assert lineage.kernel_head("iris") is None


class _FakeServer:
    """Enough of an mlflow server to open a store: /health, and ``{}`` for every API call
    (``answers[path]``: ``(status, content type, body)`` instead). ``frozen.set()`` makes it
    hang on every request; ``stop()`` closes its port."""

    def __init__(self) -> None:
        frozen = self.frozen = threading.Event()
        headers: list[dict[str, str]] = []  # of every request, in order
        self.headers = headers
        answers: dict[str, tuple[int, str, bytes]] = {}
        self.answers = answers

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                headers.append(dict(self.headers))
                if frozen.is_set():
                    time.sleep(30)
                    return
                status, ctype, body = answers.get(self.path.split("?")[0], (
                    200, "application/json", b"OK" if self.path.startswith("/health") else b"{}"))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.uri = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake_server() -> Iterator[_FakeServer]:
    server = _FakeServer()
    yield server
    server.frozen.clear()
    if server.thread.is_alive():
        server.stop()


def _one_line_within(shell: Any, cell: str, uri: str, seconds: float) -> str:
    start = time.monotonic()
    err = shell.fails(cell)
    took = time.monotonic() - start
    text = str(err)
    assert took < seconds, f"{cell} took {took:.1f} s"
    assert "\n" not in text.strip() and uri in text, text
    assert "Traceback" not in shell.stdout + shell.stderr
    return text


def test_mlflow_calls_resolve_request_headers_once_a_second_and_put_mlflows_resolver_back(
        fake_server: _FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking.request_header import registry
    from mlflow.utils.rest_utils import MlflowHostCreds, http_request

    import nbmodel.store

    resolved: list[Any] = []
    mlflows = registry.resolve_request_headers

    def counted(request_headers: Any = None) -> Any:
        resolved.append(request_headers)
        return mlflows(request_headers)

    monkeypatch.setattr(registry, "resolve_request_headers", counted)
    creds = MlflowHostCreds(fake_server.uri)

    def send(n: int) -> None:
        for _ in range(n):
            assert http_request(creds, "/api/2.0/mlflow/experiments/get", "GET").status_code == 200

    with mlflow_calls():
        send(5)
        with mlflow_calls():
            send(1)
    assert len(resolved) == 1  # not once per request
    assert registry.resolve_request_headers is counted  # MLflow's own again once the block ends
    send(2)
    assert len(resolved) == 3
    monkeypatch.setattr(nbmodel.store, "HEADERS_TTL", 0.0)
    with mlflow_calls():
        send(2)
    assert len(resolved) == 5  # reused for HEADERS_TTL only
    monkeypatch.setattr(nbmodel.store, "HEADERS_TTL", 60.0)
    for _ in range(2):  # one block after another (a magic each): resolved in neither
        with mlflow_calls():
            send(1)
    assert len(resolved) == 5

    def other(request_headers: Any = None) -> Any:
        resolved.append("other")
        return mlflows(request_headers)

    monkeypatch.setattr(registry, "resolve_request_headers", other)
    with mlflow_calls():  # another resolver: its own headers
        send(1)
    assert resolved[5:] == ["other"] and len(fake_server.headers) == 13
    agent = f"mlflow-python-client/{mlflow.__version__}"
    assert all(h.get("User-Agent") == agent for h in fake_server.headers)  # every request has them


def test_a_page_that_is_no_mlflow_answer_sends_a_read_back_to_mlflows_client(
        fake_server: _FakeServer) -> None:
    """A proxy in front of the server may answer a 404 with its own HTML page: nbmodel's plain
    JSON reads take it as no answer and leave the read to MLflow's client (which says what
    went wrong), rather than failing on the page's text."""
    from nbmodel.gateway import _UNEXPECTED
    from nbmodel.store import set_store

    page = (404, "text/html", b"<html><body>Not Found</body></html>")
    fake_server.answers["/api/2.0/mlflow/registered-models/get"] = page
    fake_server.answers["/api/2.0/mlflow/model-versions/search"] = page
    gateway = set_store(fake_server.uri).gateway
    assert gateway._state_json("iris", "") is _UNEXPECTED
    assert gateway._versions_json("iris", None, 0, None) is None
    fake_server.answers["/api/2.0/mlflow/registered-models/get"] = (
        404, "application/json", b'{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no iris"}')
    assert gateway._state_json("iris", "") is None  # MLflow's own answer: no such model


def test_a_server_that_stops_mid_session_fails_the_next_magic_in_one_line(shell: Any,
                                                                          fake_server: _FakeServer) -> None:
    shell.run(f"%model_store {fake_server.uri}")
    fake_server.stop()
    text = _one_line_within(shell, "%model_log iris", fake_server.uri, 10)
    assert "cannot reach the store" in text and "connection refused" in text


@pytest.mark.slow
def test_a_server_that_hangs_fails_within_10_seconds(shell: Any, fake_server: _FakeServer) -> None:
    shell.run(f"%model_store {fake_server.uri}")
    fake_server.frozen.set()
    text = _one_line_within(shell, "%model_log iris", fake_server.uri, 10)
    assert "timed out" in text


def test_opening_a_closed_port_fails_in_one_line(shell: Any) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    _one_line_within(shell, f"%model_store {uri}", uri, 10)
    with pytest.raises(StoreError):
        nbmodel.set_store(uri)


# -- concurrent kernels ---------------------------------------------------------------------------
KERNEL = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path

    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import nbmodel

    name, k, n, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    X, y = load_iris(return_X_y=True, as_frame=True)
    nbmodel.checkout(f"{name}/1")  # this kernel's HEAD for the name
    models = [LogisticRegression(C=0.1 * (k + 1) + i, max_iter=300).fit(X, y) for i in range(n)]
    (go.parent / f"ready-{k}").touch()
    while not go.exists():
        time.sleep(0.01)
    out = []
    for i, clf in enumerate(models):  # fresh objects: the parent comes from the kernel's HEAD
        v = nbmodel.commit(clf, name, message=f"kernel {k} #{i}")
        out.append([v.version, v.parent])
    print(json.dumps(out))
""")


def _kernels_commit(name: str, uri: str, tmp_path: Path, kernels: int, each: int) -> list[list[Any]]:
    go = tmp_path / "go"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "NBMODEL_WARM_SERVER": "0"}
    procs = [subprocess.Popen([sys.executable, "-c", KERNEL, name, str(k), str(each), str(go)],
                              env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for k in range(kernels)]
    try:
        deadline = time.monotonic() + 180
        while not all((tmp_path / f"ready-{k}").exists() for k in range(kernels)):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), \
                [p.communicate()[1][-2000:] for p in procs if p.poll() is not None]
            time.sleep(0.05)
        go.touch()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err[-3000:]
            assert not any(c in out + err for c in CHATTER), out + err
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def _check_lines(name: str, results: list[list[Any]], kernels: int, each: int) -> None:
    versions = sorted(v for line in results for v, _ in line)
    assert versions == list(range(2, 2 + kernels * each)), "gaps or duplicates"
    for line in results:
        expected = f"{name}/1"
        for version, parent in line:
            assert parent == expected, f"{name}/{version} has parent {parent}, not {expected}"
            expected = f"{name}/{version}"


def _base_version(name: str, iris: dict[str, Any]) -> None:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=300).fit(iris["X_train"], iris["y_train"])
    nbmodel.commit(clf, name, message="base")
    lineage._kernel_heads.clear()


@pytest.mark.slow
def test_concurrent_kernels_record_parents_from_their_own_line_on_sqlite(
        isolated_store: Any, iris: dict[str, Any], tmp_path: Path) -> None:
    _base_version("iris", iris)
    results = _kernels_commit("iris", isolated_store.uri, tmp_path, kernels=4, each=3)
    _check_lines("iris", results, 4, 3)


@pytest.mark.team
@pytest.mark.slow
def test_concurrent_kernels_record_parents_from_their_own_line_on_the_server(
        team_store: Any, iris: dict[str, Any], tmp_path: Path) -> None:
    name = team_store.name("iris")
    _base_version(name, iris)
    results = _kernels_commit(name, team_store.uri, tmp_path, kernels=4, each=3)
    _check_lines(name, results, 4, 3)


FIRST_COMMANDS = textwrap.dedent("""
    import sys, threading

    off_main = []
    def hook(event, args):
        if event == "import" and threading.current_thread().name.startswith("nbmodel-"):
            off_main.append(args[0])
    sys.addaudithook(hook)

    import nbmodel

    name = sys.argv[1]
    nbmodel.checkout(f"{name}/1")
    nbmodel.log(name)
    nbmodel.set_alias(f"{name}/1", "production")
    print(sorted({m for m in off_main if m in sys.modules}))
""")


@pytest.mark.team
@pytest.mark.slow
def test_a_fresh_kernels_first_commands_import_nothing_on_nbmodels_threads(
        team_store: Any, iris: dict[str, Any], tmp_path: Path) -> None:
    # Two threads importing MLflow's protobuf files at once can break a kernel's first command
    # ("Couldn't build proto file into descriptor pool"): the first run of each overlapped call
    # happens on the kernel's own thread, so every lazy import does.
    name = team_store.name("iris")
    _base_version(name, iris)
    env = {**os.environ, "MLFLOW_TRACKING_URI": team_store.uri, "NBMODEL_WARM_SERVER": "0"}
    done = subprocess.run([sys.executable, "-c", FIRST_COMMANDS, name], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.team
@pytest.mark.slow
def test_a_rollback_reads_the_version_its_kernels_last_move_implies_with_the_trail(
        team_store: Any, iris: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.linear_model import LogisticRegression

    from nbmodel import aliases

    name = team_store.name("iris")
    for c in (1.0, 0.5, 0.1):
        nbmodel.commit(LogisticRegression(C=c, max_iter=500).fit(iris["X_train"], iris["y_train"]),
                       name, message=f"C={c}")
    after: list[Any] = []
    real = aliases._version
    monkeypatch.setattr(aliases, "_version", lambda *a, **k: (after.append(a[2]), real(*a, **k))[1])
    nbmodel.alias(f"{name}/1", "production")
    nbmodel.alias(f"{name}/2", "production")
    # The target this kernel's own moves imply was read at once with the trail: none after it.
    assert nbmodel.rollback(name).to_version == 1 and after == []
    nbmodel.alias(f"{name}/3", "production")
    # Another kernel moved it since this kernel last did (here: a wrong guess): the trail wins,
    # and the right version is read after it.
    aliases._LAST_STACKS[(team_store.store.uri, name, "production")] = [2, 3]
    assert nbmodel.rollback(name).to_version == 1 and after == [1]
    assert nbmodel.resolve(f"{name}@production").version == 1


# -- the contract's operations against the team server --------------------------------------------
@pytest.mark.team
@pytest.mark.slow
def test_every_operation_works_against_the_team_server_quietly(team_store: Any, shell: Any,
                                                               iris: dict[str, Any]) -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    name = team_store.name("iris")
    shell.ns["name"] = name
    out = []
    with mlflow_records() as records:
        for c in (1.0, 0.1):
            shell.ns["clf"] = LogisticRegression(C=c, max_iter=500).fit(iris["X_train"], iris["y_train"])
            shell.run(f'%model_commit clf -n {name} -m "C={c}" --eval X_test y_test --train X_train y_train')
            out.append(shell.stdout)
        history = shell.run(f"%model_log {name}")
        assert [v.version for v in history] == [2, 1]
        assert history.versions[0].parent == f"{name}/1"
        assert "C=0.1" in str(shell.run(f"%model_show {name}/2"))
        diff = shell.run(f"%model_diff {name}/1 {name}/2")
        assert "C" in str(diff)
        shell.run(f"%model_alias {name}/1 production")
        shell.run(f"%model_alias {name}/2 production")
        back = shell.run(f"%model_rollback {name}")
        assert str(back) == f"{name}@production rolled back from {name}/2 to {name}/1"
        out.append(shell.stdout)
        compared = shell.run(f"%model_compare {name}/1 {name}/2 --eval X_test y_test --no-plots --log")
        assert compared.run_id
        out.append(shell.stdout)
        X = pd.concat([iris["X_test"]] * 2)
        nbmodel.record(name, X, nbmodel.load(f"{name}/1").predict(X), y_true=pd.concat([iris["y_test"]] * 2))
        report = shell.run(f"%model_monitor {name} --no-plots")
        assert report is not None
        out.append(shell.stdout)
    assert _chatter(records, *out) == []

    client = MlflowClient(team_store.uri, registry_uri=team_store.uri)
    exp = client.get_experiment_by_name(name)
    for v in (1, 2):
        mv = client.get_model_version(name, str(v))
        model_id = mv.model_id or mv.source.removeprefix("models:/")
        assert client.get_logged_model(model_id).experiment_id == exp.experiment_id
    assert int(client.get_model_version_by_alias(name, "production").version) == 1


@pytest.mark.team
@pytest.mark.slow
def test_the_team_store_fixture_gives_each_test_its_own_names(team_store: Any) -> None:
    assert nbmodel.get_store().uri == team_store.uri.rstrip("/")
    assert team_store.name("iris").startswith(team_store.prefix) and team_store.prefix != "t"
    assert nbmodel.get_store().gateway.aliases(team_store.name("iris")) is None


# -- temporary files ------------------------------------------------------------------------------
class _Constant:
    """A model nbmodel saves with MLflow's generic pyfunc wrapper (no library flavor)."""

    def predict(self, X: Any) -> Any:
        return [0] * len(X)


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The temporary directory of this test alone, so leftovers are counted exactly."""
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder


def _left_behind(tmp: Path, before: set[str]) -> list[str]:
    """What is left in ``tmp`` that was not there before: files and folders, the one downloads
    folder counted only by what it holds."""
    import gc

    gc.collect()
    left = []
    for entry in sorted(set(os.listdir(tmp)) - before):
        if entry.startswith("nbmodel-downloads-"):
            left += [f"{entry}/{sub}" for sub in os.listdir(tmp / entry)]
        else:
            left.append(entry)
    return left


def _load_diff_checkout(name: str) -> None:
    from nbmodel import versions

    clf = nbmodel.checkout(f"{name}/1")
    assert clf.predict
    nbmodel.diff(f"{name}/1", f"{name}/2")
    pyfunc = nbmodel.load(f"{name}/3")  # a generic pyfunc: may read its files until dropped
    assert list(pyfunc.predict([[1.0, 2.0]])) == [0]
    del pyfunc
    versions._cache.clear()


def _three_versions(commit_iris: Any, name: str) -> None:
    commit_iris(C=1.0, name=name)
    commit_iris(C=0.1, name=name)
    nbmodel.commit(_Constant(), name, message="constant")


def test_loads_and_diffs_leave_no_temporary_folder_on_sqlite(isolated_store: Any, commit_iris: Any,
                                                             private_tmp: Path) -> None:
    _three_versions(commit_iris, "tmpcount")
    before = set(os.listdir(private_tmp))
    _load_diff_checkout("tmpcount")
    assert _left_behind(private_tmp, before) == []


@pytest.mark.team
@pytest.mark.slow
def test_loads_and_diffs_leave_no_temporary_folder_on_the_server(team_store: Any, commit_iris: Any,
                                                                 private_tmp: Path) -> None:
    name = team_store.name("tmpcount")
    _three_versions(commit_iris, name)
    before = set(os.listdir(private_tmp))
    _load_diff_checkout(name)
    assert _left_behind(private_tmp, before) == []


def test_downloads_of_ended_processes_are_swept_and_a_servers_own_go_at_exit(
        isolated_store: Any, commit_iris: Any, private_tmp: Path) -> None:
    """A serving process keeps its model folder while it runs (a pyfunc reads it lazily); a
    killed one's is removed by the next download, an ended one's at its exit."""
    from nbmodel.versions import download_model, downloads_dir

    v = commit_iris(name="swept")
    root = Path(downloads_dir())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (root / f"{dead}-killed").mkdir()
    folder = download_model(f"models:/swept/{v.version}")
    assert (Path(folder) / "MLmodel").is_file()
    assert sorted(os.listdir(root)) == [os.path.basename(folder)]
    script = ("import nbmodel, sys; from nbmodel.versions import download_model; "
              "print(download_model('models:/swept/1'))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={**os.environ, "TMPDIR": str(private_tmp)}, check=True)
    assert not Path(out.stdout.strip().splitlines()[-1]).exists()


# -- a write whose answer is late ----------------------------------------------------------------
class _SlowCreateServer:
    """Registers a version on the first ``model-versions/create`` but answers it too late; a
    search by run then finds what it made."""

    def __init__(self, delay: float) -> None:
        creates = self.creates = []  # type: list[str]

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.endswith("/model-versions/create"):
                    creates.append(self.path)
                    time.sleep(delay)  # registered, but the answer comes after the client gave up
                    with contextlib.suppress(OSError):
                        self._reply({"model_version": _version_json(len(creates))})
                    return
                self._reply({})

            def do_GET(self) -> None:  # noqa: N802
                if "/model-versions/search" in self.path:
                    self._reply({"model_versions": [_version_json(n + 1) for n in range(len(creates))]})
                else:
                    self._reply({})

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.uri = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def _version_json(number: int) -> dict[str, Any]:
    return {"name": "slow", "version": str(number), "run_id": "r1", "status": "READY",
            "source": "models:/m-1", "creation_timestamp": 0, "last_updated_timestamp": 0}


def test_a_version_whose_answer_times_out_is_registered_once_and_found(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's client re-sent a timed-out create: a slow team server numbered one commit twice."""
    from nbmodel import store as store_mod

    monkeypatch.setitem(CALL_SETTINGS, "MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    monkeypatch.setitem(store_mod.SEND_ONCE_SETTINGS, "MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    server = _SlowCreateServer(delay=2.5)
    try:
        gateway = store_mod.Store(server.uri).gateway
        mv = gateway.create_version("slow", "models:/m-1", run_id="r1", tags={}, description=None,
                                    model_id="m-1")
        time.sleep(3)  # a re-sent request would have reached the server by now
        assert len(server.creates) == 1
        assert int(mv.version) == 1 and mv.run_id == "r1"
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


# -- what a commit asks the store -----------------------------------------------------------------
def test_a_commit_with_a_parent_does_not_try_to_create_its_model_again(
        isolated_store: Any, commit_iris: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbmodel.gateway import Gateway

    tries: list[str] = []
    real = Gateway.create_model

    def counted(self: Any, name: str, tags: Any = None) -> bool:
        tries.append(name)
        return real(self, name, tags)

    monkeypatch.setattr(Gateway, "create_model", counted)
    commit_iris(name="once")
    assert tries == ["once"]
    assert commit_iris(name="once").parent == "once/1"
    assert tries == ["once"]  # a failed write per commit, and a round trip on a server


def test_a_model_deleted_under_a_kernel_is_registered_anew(isolated_store: Any, commit_iris: Any) -> None:
    from nbmodel.commits import _register

    v = commit_iris(name="gone")
    mv = isolated_store.client.get_model_version("gone", "1")
    isolated_store.gateway.delete_model("gone")
    again = _register(isolated_store, "gone", mv.source, mv.model_id, v.run_id, {}, "again", "gone/1")
    assert int(again.version) == 1
    assert isolated_store.client.get_registered_model("gone").tags == {"nbmodel.managed": "true"}


# -- latency on a team server: fewer round trips, the same answers --------------------------------
class _Requests:
    """The requests MLflow's client and nbmodel send inside the block, as (method, path)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import requests

        self.seen: list[tuple[str, str]] = []
        real = requests.Session.request

        def counted(session: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            self.seen.append((method, url.split("/api/2.0/mlflow/", 1)[-1].split("?")[0]))
            return real(session, method, url, *args, **kwargs)

        monkeypatch.setattr(requests.Session, "request", counted)


@pytest.mark.team
@pytest.mark.slow
def test_log_reads_the_servers_json_into_the_clients_rows(team_store: Any, iris: dict[str, Any],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking.client import MlflowClient as Client
    from sklearn.linear_model import LogisticRegression

    name = team_store.name("iris")
    for c in (1.0, 0.1, 0.01):
        nbmodel.commit(LogisticRegression(C=c, max_iter=500).fit(iris["X_train"], iris["y_train"]), name,
                       message=f"C={c}")
    gw = team_store.store.gateway
    gw.set_version_tag(name, 2, "note", "with 'quotes' and ünïcode")
    for limit, offset, version in ((None, 0, None), (2, 1, None), (None, 0, 2), (None, 0, 9)):
        read = gw._versions_json(name, limit, offset, version)
        assert read == gw._versions_client(name, limit, offset, version)
    assert gw._versions_json(name + "_none", None, 0, None) == ([], 0)

    # A long history is read in ranges at once; versions registered since the last read count too.
    from nbmodel import gateway

    with monkeypatch.context() as m:
        m.setattr(gateway, "SPLIT_PAGE", 1)
        m.setattr(gateway, "SPLIT_MAX", 3)
        assert gw._newest[name] == 3
        requests = _Requests(m)
        read = gw._versions_json(name, None, 0, None)
        assert requests.seen == [("GET", "model-versions/search")] * 3
        assert read == gw._versions_client(name, None, 0, None)
        clf = LogisticRegression(C=0.001, max_iter=500).fit(iris["X_train"], iris["y_train"])
        nbmodel.commit(clf, name, message="C=0.001")
        gw._newest[name] = 2  # as if another kernel had registered versions 3 and 4 since
        requests.seen.clear()
        rows, total = gw._versions_json(name, None, 0, None)  # type: ignore[misc]
        assert len(requests.seen) == 2
        assert [r.version for r in rows] == [4, 3, 2, 1] and total == 4
        assert (rows, total) == gw._versions_client(name, None, 0, None)

    nbmodel.alias(f"{name}/2", "production")
    gw.settle()  # the alias move's lease is released off the calling thread: not the log's request
    with monkeypatch.context() as m:
        requests = _Requests(m)
        m.setattr(Client, "search_model_versions", None)  # not through the client's protobuf
        m.setattr(Client, "get_registered_model", None)
        history = nbmodel.log(name)
        gw.settle()
    assert [(v.version, v.aliases, v.message) for v in history] == [
        (4, [], "C=0.001"), (3, [], "C=0.01"), (2, ["production"], "C=0.1"), (1, [], "C=1.0")]
    assert sorted(requests.seen[:2]) == [("GET", "model-versions/search"), ("GET", "registered-models/get")]
    # then, in the background, the model's state and after it the history it stands for
    assert requests.seen[2:] == [("GET", "registered-models/get"), ("GET", "model-versions/search")]


@pytest.mark.team
@pytest.mark.slow
def test_a_name_with_quotes_or_a_backslash_reads_its_own_versions_on_a_server(
        team_store: Any, iris: dict[str, Any]) -> None:
    """MLflow's search filters quote a string with ' or " and take no escapes: a name holding
    one quote is searched with the other, one holding both (or a backslash) with a LIKE whose
    matches of other names are dropped. Escaping the quote instead found no version at all."""
    from sklearn.linear_model import LogisticRegression

    def fit(c: float) -> Any:
        return LogisticRegression(C=c, max_iter=500).fit(iris["X_train"], iris["y_train"])

    names = [team_store.name(n) for n in ("it's", 'say "hi"', 'both \' and "', "back\\slash")]
    for decoy in ('both - and "', "back-slash"):  # what the LIKE of the last two also matches
        nbmodel.commit(fit(0.5), team_store.name(decoy), message="decoy")
    gw = team_store.store.gateway
    for name in names:
        for c in (1.0, 0.1):
            nbmodel.commit(fit(c), name, message=f"C={c}")
        assert nbmodel.alias(f"{name}/1", "production").from_version is None
        for _ in range(2):  # read whole, then kept and brought up to date
            assert [(v.version, v.message) for v in nbmodel.log(name)] == [(2, "C=0.1"), (1, "C=1.0")]
        assert nbmodel.rollback(name, to=2).to_version == 2
        assert gw._versions_json(name, 1, 1, None) == gw._versions_client(name, 1, 1, None)
        assert [r.version for r in gw._versions_client(name, 1, 1, None)[0]] == [1]
        assert gw._model_json(name)["name"] == name
        assert [(v.version, v.aliases) for v in nbmodel.log(name)] == [(2, ["production"]), (1, [])]


def _kept(rows: list[tuple[int, int]], *, model_updated: int = 100, changed: str = "",
          verified: bool = True) -> Any:
    """A kept history of versions (number, last updated), newest first."""
    from nbmodel.gateway import Row, _Cached

    kept = tuple(Row("iris", v, t, f"v{v}", None, None, None, {}, t) for v, t in rows)
    return _Cached(kept, 5, model_updated, changed, verified, time.monotonic())


def _model(updated: int, changed: str | None = None, created: int = 5) -> dict[str, Any]:
    tags = [] if changed is None else [{"key": "nbmodel.versions_changed", "value": changed}]
    return {"name": "iris", "creation_timestamp": str(created), "last_updated_timestamp": str(updated),
            "tags": tags, "aliases": []}


def _changed_version(v: int, updated: int, description: str = "") -> dict[str, Any]:
    return {"name": "iris", "version": str(v), "creation_timestamp": str(v * 10),
            "last_updated_timestamp": str(updated), "description": description or f"v{v}"}


def test_a_kept_history_takes_what_the_newest_changes_account_for_and_nothing_else() -> None:
    from nbmodel.gateway import PROBE
    from nbmodel.gateway import _brought_up_to_date as up_to_date

    kept = _kept([(3, 30), (2, 20), (1, 10)])
    # nothing changed: the newest version comes back in the probe as it was
    assert [r.version for r in up_to_date(kept, _model(100), [_changed_version(3, 30)])] == [3, 2, 1]
    # a version registered since (the model's time is its registration's) and a description edited
    rows = up_to_date(kept, _model(40), [_changed_version(2, 45, "edited"), _changed_version(4, 40),
                                         _changed_version(3, 30)])
    assert rows is not None
    assert [(r.version, r.description, r.updated_ms) for r in rows] == [
        (4, "v4", 40), (3, "v3", 30), (2, "edited", 45), (1, "v1", 10)]
    # a version deleted: the model's time is no changed version's
    assert up_to_date(kept, _model(50), [_changed_version(3, 30)]) is None
    # the model deleted and made anew, its first version registered
    assert up_to_date(kept, _model(60, created=60), [_changed_version(1, 60)]) is None
    # tags written by nbmodel, and a probe that may have left changes out
    assert up_to_date(kept, _model(100, "1a.b2"), [_changed_version(3, 30)]) is None
    full = [_changed_version(9 - i, 99 - i) for i in range(PROBE)]
    assert up_to_date(kept, _model(99), full) is None
    # a history read at the same time as the model's state is not trusted until read after it
    assert up_to_date(_kept([(3, 30)], verified=False), _model(100), [_changed_version(3, 30)]) is None


@pytest.mark.team
@pytest.mark.slow
def test_a_rollback_reads_one_version_not_every_retired_one_and_refuses_a_retired_holder(
        team_store: Any, iris: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.linear_model import LogisticRegression

    from nbmodel.errors import RetiredVersion, VersionNotFound

    name = team_store.name("iris")
    for c in (1.0, 0.1, 0.01):
        nbmodel.commit(LogisticRegression(C=c, max_iter=500).fit(iris["X_train"], iris["y_train"]), name)
    for v in (1, 2, 3):
        nbmodel.alias(f"{name}/{v}", "production")
    gw = team_store.store.gateway
    gw.settle()  # the last move's lease release is its own request, not the rollback's
    with monkeypatch.context() as m:
        requests = _Requests(m)
        m.setattr(MlflowClient, "get_registered_model", None)  # the trail is read as plain JSON
        back = nbmodel.rollback(name)
        gw.settle()  # the rollback's own release, sent off the calling thread
    assert (back.from_version, back.to_version) == (3, 2)
    # A search over the model's versions costs the server time that grows with their number
    # (70 ms at 200 versions against 8 ms for one version's read): the target is read alone.
    assert ("GET", "model-versions/search") not in requests.seen
    assert requests.seen.count(("GET", "model-versions/get")) == 1
    assert len(requests.seen) == 6, requests.seen  # lease, trail, target, alias + entry, release

    nbmodel.retire(f"{name}/1")
    with pytest.raises(RetiredVersion, match="retired"):
        nbmodel.rollback(name)
    with pytest.raises(VersionNotFound):
        nbmodel.rollback(name, to=9)
    assert gw.aliases(name) == {"production": 2}
    moves = list(reversed(nbmodel.alias_history(name, "production").moves))
    assert [(m.from_version, m.to_version) for m in moves] == [(None, 1), (1, 2), (2, 3), (3, 2)]


@pytest.mark.team
@pytest.mark.slow
def test_a_kept_history_shows_what_another_kernel_changes_with_two_small_reads(
        team_store: Any, iris: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.linear_model import LogisticRegression

    from nbmodel import gateway
    from nbmodel.store import Store

    def fit(c: float) -> Any:
        return LogisticRegression(C=c, max_iter=500).fit(iris["X_train"], iris["y_train"])

    name = team_store.name("iris")
    for c in (1.0, 0.1, 0.01):
        nbmodel.commit(fit(c), name, message=f"C={c}")
    mine = Store(team_store.uri).gateway  # this kernel; nbmodel's own store is the colleague's
    client = MlflowClient(team_store.uri)

    def shown() -> list[tuple[int, str, list[str], bool, str | None]]:
        aliases, rows, total = mine.history(name)  # type: ignore[misc]
        assert total == len(rows)
        return [(r.version, r.description or "", sorted(a for a, v in aliases.items() if v == r.version),
                 r.tags.get("nbmodel.retired") == "true", r.tags.get("reviewed")) for r in rows]

    def whole() -> list[tuple[int, str, list[str], bool, str | None]]:
        rows, _ = team_store.store.gateway._versions_client(name, None, 0, None)
        aliases = team_store.store.gateway.aliases(name)
        return [(r.version, r.description or "", sorted(a for a, v in aliases.items() if v == r.version),
                 r.tags.get("nbmodel.retired") == "true", r.tags.get("reviewed")) for r in rows]

    monkeypatch.setattr(gateway, "REFRESH_EVERY", 3600.0)  # no re-read but the first one's
    assert shown() == whole()
    mine.settle()  # the first read's state is checked by a read after it, in the background

    def small_reads() -> list[tuple[str, str]]:
        with monkeypatch.context() as m:
            requests = _Requests(m)
            read = shown()
        assert read == whole()
        return sorted(requests.seen)

    two = [("GET", "model-versions/search"), ("GET", "registered-models/get")]
    assert small_reads() == two
    nbmodel.commit(fit(0.001), name, message="C=0.001")  # registered by the colleague
    nbmodel.alias(f"{name}/2", "production")
    client.update_model_version(name, "1", description="the baseline")
    assert small_reads() == two
    assert shown()[0][:2] == (4, "C=0.001") and shown()[2][2] == ["production"]
    assert shown()[3][1] == "the baseline"

    nbmodel.retire(f"{name}/3")  # tags written by nbmodel: the whole history again, at once
    with monkeypatch.context() as m:
        requests = _Requests(m)
        read = shown()
        assert requests.seen.count(("GET", "model-versions/search")) == 2  # the probe, then all
    assert read == whole() and read[1][3] is True
    client.delete_model_version(name, "1")  # deleted in MLflow's UI: the model's time changes
    assert shown() == whole() and [v for v, *_ in shown()] == [4, 3, 2]

    # A tag set by another MLflow client changes no time: the background re-read after a read
    # brings it, for the next read.
    client.set_model_version_tag(name, "2", "reviewed", "yes")
    monkeypatch.setattr(gateway, "REFRESH_EVERY", 0.0)
    assert shown() != whole()
    mine.settle()
    assert shown() == whole() and shown()[2][4] == "yes"
    # A version deleted just before another is registered: that registration accounts for the
    # model's time, so the deletion shows once the background re-read has run.
    client.delete_model_version(name, "2")
    nbmodel.commit(fit(0.5), name, message="C=0.5")
    shown()
    mine.settle()
    assert shown() == whole() and [v for v, *_ in shown()] == [5, 4, 3]
