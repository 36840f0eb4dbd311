"""What a student reads from rollout reports: a canary that follows a shadow of the same
candidate reports its own figures, not the shadow's. A real server on 127.0.0.1, stopped by
the test."""

from __future__ import annotations

import time
from typing import Any

import pytest
from _helpers import split_json

requests = pytest.importorskip("requests")


@pytest.mark.slow
def test_a_canary_after_a_shadow_reports_its_own_requests(shell: Any, commit_iris: Any, iris: Any,
                                                          servers: Any) -> None:
    """The shadow's requests are not the canary's: right after --promote the canary's report
    shows no request yet, and says it is a canary; the same candidate shadowed again right
    after its canary stopped mirrors the requests (the server may skip the stopped state)."""
    commit_iris(C=1.0)
    commit_iris(C=0.01)
    X = iris["X_test"]
    body = split_json(X)
    dep = shell.run("%model_deploy iris/1")
    shell.run("%model_shadow iris/2")
    for _ in range(20):
        r = requests.post(dep.url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
        assert r.status_code == 200, r.text
    compared(shell, 20 * len(X))
    for _ in range(3):  # promoted at once, or stopped and started again: the same figures
        canary = shell.run("%model_shadow iris/2 --promote")
        assert canary.kind == "canary" and canary.live.get("kind") == "canary", canary.live
        assert canary.live.get("versions") == {}, canary.live
        assert "requests" not in str(canary), str(canary)
        shell.run("%model_canary iris/2 --stop")
        shell.run("%model_shadow iris/2")  # the same candidate shadowed again: it mirrors
        requests.post(dep.url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
        compared(shell, len(X))


def compared(shell: Any, rows: int) -> None:
    """Wait until the running shadow of iris/2 has compared ``rows`` rows."""
    deadline = time.monotonic() + 30
    while (shell.run("%model_shadow iris/2").live.get("shadow") or {}).get("compared", 0) < rows:
        assert time.monotonic() < deadline, "the shadow did not compare the requests"
        time.sleep(0.1)
