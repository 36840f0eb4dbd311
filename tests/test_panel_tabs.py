"""The panel's Monitor and Deployments tabs at the comm-message level, as in test_panel.py:
button clicks arrive as the front end's comm messages; the tests assert on the widgets, the
store and the servers. Every test that starts a server stops everything its store runs."""

from __future__ import annotations

import os

import pytest
from _helpers import wait_for
from test_panel import aliases, click, front_end, ns, p, template, update  # noqa: F401 - fixtures


@pytest.fixture
def servers(store, servers):
    """conftest's ``servers``, set up after this test's copy of the store, so everything that
    copy runs is stopped at the end while it is still the store."""
    return servers


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
        return f.read().rsplit(")", 1)[-1].split()[0] != "Z"


# -- Monitor --------------------------------------------------------------------------------
def test_monitor_tab_shows_the_recorded_predictions_and_alerts(store, ns):  # noqa: F811
    import nbmodel
    from nbmodel.widgets import panel

    X = ns["X_test"]
    nbmodel.record("iris", X, nbmodel.load("iris/2").predict(X), timestamp="2026-03-01 12:00")
    made = panel("iris", namespace=ns)
    try:
        m = made.tab("Monitor")
        assert "iris/2: 38 predictions" in m.view.value
        update(m.rules, value="volume<1000; volume>100000")  # a semicolon splits too
        click(m.refresh_btn)
        assert "alerts</b>: 1 open" in m.view.value
        update(m.rules, value="psi>>")
        click(m.refresh_btn)
        assert "METRIC OP NUMBER" in m.view.value
    finally:
        made.close()


def test_monitor_tab_goes_live_and_stops(store, ns):  # noqa: F811
    import nbmodel
    from nbmodel.widgets import panel

    X = ns["X_test"]
    nbmodel.record("iris", X, nbmodel.load("iris/2").predict(X), timestamp="2026-03-01 12:00")
    made = panel("iris", namespace=ns)
    m = made.tab("Monitor")
    update(m.live_btn, value=True)
    view = m.live
    assert view is not None and view.running and m.body.children == (view.widget,)
    update(m.live_btn, value=False)
    assert m.live is None and not view.running and m.body.children == (m.view,)
    update(m.live_btn, value=True)
    view = m.live
    made.close()  # closing the panel stops the live view's thread
    assert wait_for(lambda: not view.running, 5)


def test_monitor_tab_of_a_model_without_records_says_so(p):  # noqa: F811
    assert "iris" in p.tab("Monitor").view.value  # an error line naming the model, no traceback


def test_split_rules_keeps_commas_inside_brackets():
    from nbmodel.widgets.monitor import split_rules

    assert split_rules("accuracy<0.9, psi[a,b]>0.2; volume<10") == [
        "accuracy<0.9", "psi[a,b]>0.2", "volume<10"]
    assert split_rules("  ") == []


# -- Deployments ----------------------------------------------------------------------------
def test_no_deployments_and_buttons_that_need_one(p):  # noqa: F811
    d = p.tab("Deployments")
    assert "no deployments of iris" in d.header.value and d.table.options == ()
    assert d.text().startswith("no deployments of iris")
    click(d.stop_btn)
    assert "no deployments of iris" in d.status.value
    assert d.confirm_box.layout.display == "none"
    click(d.rollback_btn)
    assert "no deployments of iris" in d.status.value
    # the picker offers the alias as it stands and every version not retired
    assert [v for _, v in d.target.options] == ["iris@production", "iris/2", "iris/1"]


def test_deploy_asks_first_and_refuses_a_bad_port(p, store):  # noqa: F811
    import nbmodel

    d = p.tab("Deployments")
    update(d.port, value="http")
    click(d.deploy_btn)
    assert "the port is a number from 1 to 65535" in d.status.value
    update(d.port, value="")
    update(d.target, index=2)  # iris/1
    update(d.alias, value="staging")
    click(d.deploy_btn)
    assert d.confirm_box.layout.display == "flex"
    assert "Deploy iris/1: point iris@staging at iris/1 (not set yet)" in d.question.value
    click(d.cancel_btn)
    click(d.confirm_btn)  # a stale confirm does nothing
    assert aliases(store) == {"production": 2} and not nbmodel.deployments()


@pytest.mark.slow
def test_deploy_lists_then_stop_only_after_confirmation(p, store, servers):  # noqa: F811
    d = p.tab("Deployments")
    update(d.target, index=2)  # iris/1
    update(d.alias, value="staging")
    update(d.message, value="try the weak one")
    click(d.deploy_btn)
    assert not servers.deployments()  # nothing runs before the confirmation
    click(d.confirm_btn)
    assert "iris@staging (iris/1) serving at http://127.0.0.1:" in d.status.value, d.status.value
    assert aliases(store) == {"production": 2, "staging": 1}
    (running,) = servers.deployments("iris")
    assert running.health == "ok"
    # the table lists it, with what /health says
    assert "iris: 1 deployment" in d.header.value
    (row,) = [label for label, _ in d.table.options]
    assert row.split()[:2] == ["iris@staging", "iris/1"] and running.url in row
    assert str(running.pid) in row and " ok " in f"{row} "
    update(d.table, index=0)
    click(d.stop_btn)
    assert d.confirm_box.layout.display == "flex"
    assert f"Stop serving iris@staging at {running.url}?" in d.question.value
    assert alive(running.pid) and servers.deployments("iris")  # not before the confirmation
    click(d.confirm_btn)
    assert "stopped iris@staging at http://127.0.0.1:" in d.status.value
    assert not servers.deployments("iris") and wait_for(lambda: not alive(running.pid), 10)
    assert "no deployments of iris" in d.header.value and d.table.options == ()


@pytest.mark.slow
def test_rollback_moves_the_alias_after_confirmation_and_the_server_follows(p, store, servers):  # noqa: F811
    servers.deploy("iris@production")
    d = p.tab("Deployments")
    click(d.refresh_btn)
    assert "1 deployment" in d.status.value
    click(d.rollback_btn)  # the only deployment needs no selection
    assert ("Roll iris@production back from iris/2 to the version that held it before?"
            in d.question.value)
    assert aliases(store) == {"production": 2}  # nothing moved before the confirmation
    click(d.confirm_btn)
    assert aliases(store) == {"production": 1}
    assert "rolled back from iris/2 to iris/1" in d.status.value
    assert wait_for(lambda: servers.deployments("iris")[0].version == 1)
    click(d.refresh_btn)
    assert d.table.options[0][0].split()[:2] == ["iris@production", "iris/1"]
    # the History tab heard about it
    assert "production" in p.tab("History").table.options[1][0]


def test_the_picker_starts_on_the_first_choice(p):  # noqa: F811
    d = p.tab("Deployments")
    assert d.target.value == "iris@production"
    update(d.target, index=1)
    click(d.refresh_btn)
    assert d.target.value == "iris/2"  # a refresh keeps the choice


def test_history_tab_shows_each_versions_model_tests(store, ns):  # noqa: F811
    """The panel, like the log and the card, says "1/1 passed" for a version whose tests ran."""
    from sklearn.datasets import load_iris

    import nbmodel
    from nbmodel import modeltests
    from nbmodel.widgets import panel

    X, y = load_iris(return_X_y=True, as_frame=True)
    modeltests.add_tests("iris/2", rules=["accuracy >= 0.5"], eval=(X, y))
    modeltests.run_tests("iris/2")
    made = panel("iris", namespace=ns)
    try:
        text = made.tab("History").text()
    finally:
        made.close()
    header = next(ln for ln in text.splitlines() if ln.startswith("version"))
    assert "tests" in header.split()
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("2 "))
    assert "1/1 passed" in line, text
    assert nbmodel.resolve("iris/2").tests["passed"] == 1
