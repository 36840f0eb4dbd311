"""Plain functions several test modules share (fixtures live in conftest.py): request bodies
and HTTP posts to a model server, and waiting on processes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any


def fit_iris(iris: dict[str, Any], C: float = 1.0) -> Any:
    """A LogisticRegression with this ``C``, fitted on the ``iris`` fixture's training split."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=500).fit(iris["X_train"], iris["y_train"])


async def asgi_post(app: Any, body: bytes, key: bytes | None = None) -> tuple[int, bytes]:
    """POST /invocations to a model server's ASGI app in this process (with ``key`` as the
    request key a canary routes by): ``(status, body)``."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    headers = [(b"content-type", b"application/json")]
    if key is not None:
        headers.append((b"x-request-key", key))
    await app({"type": "http", "method": "POST", "path": "/invocations", "headers": headers},
              receive, send)
    return sent[0]["status"], sent[1]["body"]


def split(X: Any) -> dict[str, Any]:
    """The frame ``X`` as MLflow's ``dataframe_split`` request body."""
    return {"dataframe_split": {"columns": list(X.columns), "data": X.values.tolist()}}


def split_json(X: Any) -> str:
    """``split(X)`` as the JSON text to post."""
    return json.dumps(split(X))


def post(url: str, body: Any, ctype: str = "application/json", **headers: str) -> Any:
    """POST ``body`` (JSON-encoded unless already text or bytes) with this content type."""
    import requests

    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return requests.post(url, data=data, headers={"Content-Type": ctype, **headers}, timeout=30)


def parent_pid(pid: int) -> int:
    """The parent of process ``pid``, read from /proc."""
    with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def wait_for(check: Callable[[], Any], timeout: float = 30.0) -> bool:
    """Poll ``check()`` until it is true; False if ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
