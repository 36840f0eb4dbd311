"""A server that authenticates its users: who moves an alias is who the server says, not what
``NBMODEL_USER`` claims. Starts ``mlflow server --app-name basic-auth`` on 127.0.0.1 (its own
sqlite stores in the test's folder) and stops it at the end.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

import nbmodel
from nbmodel.errors import ProtectedAlias

pytest.importorskip("flask_wtf", reason="the auth server needs mlflow[auth] (pip install -e '.[test]')")

ADMIN, ADMIN_PASSWORD = "admin", "admin-password-1234"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("auth-server")
    ini = folder / "auth.ini"
    ini.write_text("[mlflow]\ndefault_permission = EDIT\n"
                   f"database_uri = sqlite:///{folder / 'auth.db'}\n"
                   f"admin_username = {ADMIN}\nadmin_password = {ADMIN_PASSWORD}\n"
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                   # A password's hash is checked once a minute, not on every request.
                   "auth_cache_ttl_seconds = 60\n")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env.update(MLFLOW_AUTH_CONFIG_PATH=str(ini), MLFLOW_DISABLE_TELEMETRY="true",
               MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16),
               MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")  # no job consumers to start and poll
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth", "--host", "127.0.0.1",
         "--port", str(port), "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--workers", "1"],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2).read()
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()[1][-3000:]
                assert time.monotonic() < deadline, "the auth server did not start"
                time.sleep(0.5)
        yield uri
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _as(monkeypatch: pytest.MonkeyPatch, user: str, password: str, claims: str | None = None) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    if claims is None:
        monkeypatch.delenv("NBMODEL_USER", raising=False)
    else:
        monkeypatch.setenv("NBMODEL_USER", claims)


@pytest.mark.slow
def test_a_protected_alias_trusts_the_servers_identity_not_nbmodel_user(
        auth_server: str, isolated_store: Any, iris: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.server.auth.client import AuthServiceClient
    from sklearn.linear_model import LogisticRegression

    _as(monkeypatch, ADMIN, ADMIN_PASSWORD)
    users = AuthServiceClient(auth_server)
    for user in ("alice", "mallory"):
        users.create_user(user, f"{user}-password-1234")
    nbmodel.set_store(auth_server)
    for c in (1.0, 0.1):
        nbmodel.commit(LogisticRegression(C=c, max_iter=300).fit(iris["X_train"], iris["y_train"]), "iris")
    nbmodel.protect("iris", "production", allow="alice")

    # Mallory, authenticated as herself, claims to be alice: refused, and the trail names her.
    _as(monkeypatch, "mallory", "mallory-password-1234", claims="alice")
    with pytest.raises(ProtectedAlias, match="you are 'mallory'"):
        nbmodel.alias("iris/1", "production")
    refused = nbmodel.alias_history("iris", "production").moves[0]
    assert refused.kind == "refused" and refused.by == "mallory"

    # Alice herself may, whatever NBMODEL_USER says, and the move is hers.
    _as(monkeypatch, "alice", "alice-password-1234", claims="someone else")
    move = nbmodel.alias("iris/1", "production")
    assert move.by == "alice" and nbmodel.alias_history("iris", "production").moves[0].by == "alice"
    assert nbmodel.resolve("iris/2").user == "admin"  # the commit's author, as the server knows it


@pytest.mark.slow
def test_the_plain_json_reader_sends_the_stores_credentials_and_reads_the_clients_rows(
        auth_server: str, isolated_store: Any, iris: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """%model_log on a server reads MLflow's JSON answer itself, through MLflow's request code:
    the credentials reach the server, and the rows are those MLflow's client reads."""
    from sklearn.linear_model import LogisticRegression

    _as(monkeypatch, ADMIN, ADMIN_PASSWORD)
    nbmodel.set_store(auth_server)
    for c in (1.0, 0.1, 0.01):
        clf = LogisticRegression(C=c, max_iter=300).fit(iris["X_train"], iris["y_train"])
        nbmodel.commit(clf, "json_rows")
    gw = nbmodel.get_store().gateway
    for limit, offset, version in ((None, 0, None), (1, 1, None), (None, 0, 2), (None, 0, 9)):
        read = gw._versions_json("json_rows", limit, offset, version)
        assert read is not None, "the JSON reader fell back to the client"
        assert read == gw._versions_client("json_rows", limit, offset, version)
    assert [v.version for v in nbmodel.log("json_rows")] == [3, 2, 1]

    _as(monkeypatch, "nobody", "wrong-password-1234")
    assert gw._versions_json("json_rows", None, 0, None) is None  # refused: the client reports it
