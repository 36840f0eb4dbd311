"""%model_status's report (nbmodel.overview): store, models, deployments and open alerts."""

from __future__ import annotations

import json
from typing import Any

import pytest


def test_status_text_lists_the_store_and_its_models(commit_iris: Any, isolated_store: Any) -> None:
    from nbmodel.aliases import set_alias
    from nbmodel.overview import status

    commit_iris(C=1.0)
    commit_iris(C=2.0)
    set_alias("iris/2", "production")
    text = str(status())
    assert text.splitlines() == [
        f"store: {isolated_store.uri} (from MLFLOW_TRACKING_URI)",
        "model  newest  aliases",
        "iris   iris/2  production -> 2",
    ]
    assert repr(status()) == text  # the Shown mixin


def test_status_of_an_empty_store(isolated_store: Any) -> None:
    from nbmodel.overview import status

    assert str(status()).splitlines()[1] == "no models yet: commit one with %model_commit"


def test_deployments_section_comes_from_serving(monkeypatch: pytest.MonkeyPatch, isolated_store: Any) -> None:
    import nbmodel.serving as serving
    from nbmodel.overview import status

    class Running(serving.Deployments):
        def rows(self) -> list[list[str]]:
            return [["iris@production", "iris/2", "http://127.0.0.1:5001", "3", "0", "ok", "5s"]]

    monkeypatch.setattr(serving, "deployments", lambda name=None: Running([object()]))
    st = status()
    assert st.sections == [("deployments", list(serving.Deployments.head), Running([object()]).rows())]
    assert "deployments:\nref              serving" in str(st)
    monkeypatch.setattr(serving, "deployments", lambda name=None: serving.Deployments())
    assert status().sections == []


def test_open_alerts_section_reads_every_model(commit_iris: Any, isolated_store: Any) -> None:
    from nbmodel.overview import alerts_section, status

    commit_iris(C=1.0)
    assert alerts_section() is None  # no model uses alerts: no section at all
    gw = isolated_store.gateway
    gw.set_model_tag("iris", "nbmodel.alert_rules", json.dumps(["psi>0.2"]))
    assert alerts_section() == ("open alerts", ["version", "rule", "value", "window", "failing since"], [])
    assert str(status()).endswith("open alerts:\n  none")
    alert = {"model": "iris", "version": 1, "rule": "psi>0.2", "value": 0.31234, "threshold": 0.2,
             "window": "2026-03-02", "windows_failed": 1, "feature": "petal length (cm)",
             "since": "2026-03-02", "checked": "2026-03-03"}
    gw.set_model_tag("iris", "nbmodel.alerts", json.dumps([alert]))
    section = alerts_section()
    assert section is not None
    assert section[2] == [["iris/1", "psi>0.2", "0.312 (petal length (cm))", "2026-03-02", "2026-03-02"]]
