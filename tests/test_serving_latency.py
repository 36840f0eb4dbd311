"""The server's request path tuned for throughput and tail latency: the interpreter settings a
worker serves with, and the quicker readers and writers of the fast path, which must give the
very answers, errors and headers of the general ones."""

from __future__ import annotations

import asyncio
import gc
import json
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nbmodel.serving import _models as M
from nbmodel.serving import _server as S


def _app(store: Any, version: Any, **record: Any) -> S.App:
    """The server's App serving ``version`` of iris in this process (no socket)."""
    from nbmodel.serving import _deploy
    from nbmodel.serving._records import DeploymentRecord, ModelSpec

    path = _deploy._local_dir(store, "iris", version.version)
    rec = DeploymentRecord(host="127.0.0.1", port=0, store=store.uri,
                           models=[ModelSpec("iris", None, version.version, path)],
                           path=Path("/nonexistent.json"), **record)
    app = S.App(rec)
    app.add_slot(rec.models[0], with_pyfunc=False)
    return app


async def _call(app: S.App, messages: list[dict[str, Any]], ctype: bytes = b"application/json",
                path: str = "/invocations") -> tuple[int, list, bytes]:
    """One POST through the ASGI app: ``(status, headers, body)``."""
    sent: list[dict[str, Any]] = []
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    scope = {"type": "http", "method": "POST", "path": path,
             "headers": [(b"content-type", ctype)]}
    await app(scope, receive, send)
    return sent[0]["status"], sent[0]["headers"], sent[1]["body"]


def _post(app: S.App, body: bytes, ctype: bytes = b"application/json") -> tuple[int, list, bytes]:
    msg = {"type": "http.request", "body": body, "more_body": False}
    return asyncio.run(_call(app, [msg], ctype))


@pytest.fixture
def restore_runtime() -> Any:
    switch, thresholds = sys.getswitchinterval(), gc.get_threshold()
    sigterm = signal.getsignal(signal.SIGTERM)
    yield
    sys.setswitchinterval(switch)
    gc.set_threshold(*thresholds)
    gc.unfreeze()
    signal.signal(signal.SIGTERM, sigterm)


def test_a_worker_serves_with_short_gil_turns_and_a_large_young_generation(
        commit_iris: Any, isolated_store: Any, restore_runtime: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A background thread (the monitoring recorder, MLflow's import) gets the GIL for at most
    half a millisecond while requests wait, and the collector's youngest generation is large
    enough that rows queued for monitoring are flushed before older generations walk them."""
    import uvicorn

    app = _app(isolated_store, commit_iris())
    seen: dict[str, Any] = {}

    def run(self: Any, sockets: Any = None) -> None:  # uvicorn, as the worker starts it
        seen.update(switch=sys.getswitchinterval(), thresholds=gc.get_threshold(),
                    frozen=gc.get_freeze_count())

    monkeypatch.setattr(uvicorn.Server, "run", run)
    monkeypatch.setattr(S.App, "import_mlflow", lambda self: None)  # no background start-up here
    monkeypatch.setattr(S.App, "follower", lambda self: None)
    sys.setswitchinterval(0.005)
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    sock = S.bind("127.0.0.1", 0)
    try:
        S._run(app, sock, parent=None)
    finally:
        sock.close()
        app.close()
    assert seen["switch"] == pytest.approx(S.SWITCH_SECONDS) and S.SWITCH_SECONDS <= 0.001
    assert seen["thresholds"][0] == S.GC_YOUNG >= 5000
    assert seen["thresholds"][1:] == (10, 10)
    assert seen["frozen"] > 0  # the model and its library: out of the collector's passes


def test_the_body_reader_gives_json_loads_answers_and_errors() -> None:
    bodies = [
        b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2.5], [3, -4e-3]]}}',
        b'{"inputs": {"x": [1, 2]}, "params": {"k": "v"}}',
        b'{}', b'{"a": 1}}', b'{"a": 1} }', b'{"a": 1}  ', b'  {"a": 1}', b'{"a": NaN}',
        b'{"a": "caf\xc3\xa9"}', b'{"a": "\xff"}', b'\xef\xbb\xbf{"a": 1}', b'{"a": 1',
        '{"a": "ü"}'.encode("utf-16"), b'{"a": [1, 2,]}', b'{"a": "\\ud800"}', b'[1, 2]',
        b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ]
    for body in bodies:
        try:
            want: Any = ("value", json.loads(body))
        except RecursionError:
            want = ("error", M._too_deep().message)
        except (ValueError, UnicodeDecodeError) as exc:
            want = ("error", f"the body is not valid JSON: {exc}")
        try:
            got: Any = ("value", M.loads(body))
        except M.RequestError as exc:
            got = ("error", exc.message)
        if want[0] == "value" and want[1] != want[1]:  # NaN
            assert got[0] == "value"
            continue
        assert got == want, body[:40]


@pytest.mark.parametrize("preds", [
    np.array([0]), np.array([2, 0, 1]), np.array([], dtype=np.int64), np.array([True, False]),
    np.array([0.5, 1e-300, -2.0]), np.array([np.nan, np.inf]), np.array(["setosa", 'a"b\u00e9']),
    np.array([[1, 2], [3, 4]]), [1, 2], [1, "a"], np.array([2**62]), np.array([-3], dtype=np.int8),
])
def test_answers_are_written_as_json_dumps_writes_them(preds: Any) -> None:
    value = preds.tolist() if hasattr(preds, "tolist") else preds
    assert M.dump(preds) == json.dumps({"predictions": value}).encode()


@pytest.mark.parametrize(("payload", "want"), [
    ({"dataframe_split": {}}, "dataframe_split"), ({"instances": []}, "instances"),
    ({"dataframe_split": {}, "params": {}}, "dataframe_split"),
    ({"params": {}, "inputs": []}, "inputs"), ({"rows": 1}, "unknown key 'rows'"),
    ({}, "exactly one of the keys"), ({"params": {}}, "exactly one of the keys"),
    ({"inputs": 1, "instances": 2}, "it has inputs, instances"), ([1], "not a list"),
    ("x", "not a str"), (None, "not a NoneType"),
])
def test_the_format_key_is_read_as_before(payload: Any, want: str) -> None:
    """The usual one-key body is recognised first; every other body gets the errors it got."""
    plain = M.Handle(name="m", version=1, path="/nonexistent", columns=None)  # no fast path
    for read in (lambda: M._format(payload),
                 lambda: M.parse_json(plain, json.dumps(payload).encode())):
        try:
            got = read()
        except M.RequestError as exc:
            assert want in exc.message and want not in M.FORMATS
            continue
        assert want in M.FORMATS and got in (want, (payload, None))


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_answers_headers_and_errors_through_the_app(commit_iris: Any, iris: Any,
                                                    isolated_store: Any) -> None:
    v = commit_iris()
    app = _app(isolated_store, v, max_body=4096)
    X = iris["X_test"]
    cols = list(X.columns)
    for rows in (X.iloc[:1], X.iloc[3:4], X.iloc[:5]):
        body = json.dumps({"dataframe_split": {"columns": cols, "data": rows.values.tolist()}})
        status, headers, out = _post(app, body.encode())
        assert status == 200 and headers == [(b"content-type", b"application/json")]
        want = app.slots["iris"].handle.native.predict(rows)
        assert out == json.dumps({"predictions": want.tolist()}).encode()
    ok = json.dumps({"dataframe_split": {"columns": cols, "data": [X.iloc[0].tolist()]}}).encode()
    # a content type refused stays refused, however often it comes and whatever came between
    for _ in range(2):
        status, _, out = _post(app, ok, b"application/json; charset=latin-1")
        assert status == 415 and b"only UTF-8" in out
        assert _post(app, ok, b"application/json; charset=utf-8")[0] == 200
        assert _post(app, ok, b"text/plain")[0] == 415
    # a body in several messages, and too large in one or in several
    half = len(ok) // 2
    parts = [{"type": "http.request", "body": ok[:half], "more_body": True},
             {"type": "http.request", "body": ok[half:], "more_body": False}]
    assert asyncio.run(_call(app, parts))[2] == _post(app, ok)[2]
    big = b" " * 5000
    status, _, out = _post(app, big)
    assert status == 413 and b"at most 4096" in out
    parts = [{"type": "http.request", "body": big[:3000], "more_body": True},
             {"type": "http.request", "body": big[3000:], "more_body": False}]
    status, _, out = asyncio.run(_call(app, parts))
    assert status == 413 and b"at most 4096" in out
    gone = [{"type": "http.disconnect"}]
    assert asyncio.run(_call(app, gone))[0] == 400
    status, _, out = _post(app, b'{"dataframe_split": {"columns": [], "data": []}}}')
    assert status == 400 and b"not valid JSON" in out and b"Extra data" in out
    (slot,) = app.slots.values()
    assert slot.requests == 15 and slot.errors == 8
    app.close()
