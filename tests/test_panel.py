"""The model panel at the comm-message level: every widget talks to a recording comm, and the
tests drive it as the front end would (state updates and button clicks arriving as comm
messages), then assert on the widgets' state, on what the kernel sent, and on the store."""

from __future__ import annotations

import uuid

import matplotlib
import pytest

matplotlib.use("Agg")


class FrontEndComm:
    """Stands in for a comm to JupyterLab: records what the kernel sends and lets a test
    deliver messages the way the front end does."""

    kernel = "Truthy"

    def __init__(self, **kwargs):
        self.comm_id = kwargs.get("comm_id") or uuid.uuid4().hex
        self.opened = kwargs
        self.messages = []
        self.handler = None
        self.closed = False

    def open(self, *args, **kwargs):
        pass

    def on_msg(self, callback):
        self.handler = callback

    def send(self, data=None, buffers=None, **kwargs):
        self.messages.append(data)

    def close(self, *args, **kwargs):
        self.closed = True

    def receive(self, data):
        self.handler({"content": {"data": data}, "buffers": []})


@pytest.fixture(autouse=True)
def front_end(monkeypatch):
    import comm

    made = []

    def create_comm(**kwargs):
        c = FrontEndComm(**kwargs)
        made.append(c)
        return c

    monkeypatch.setattr(comm, "create_comm", create_comm)
    return made


def update(widget, **state):
    """The front end changed a widget (a user typed, picked or selected)."""
    widget.comm.receive({"method": "update", "state": state})


def click(button):
    """The front end's click message."""
    button.comm.receive({"method": "custom", "content": {"event": "click"}})


def sent_values(widget):
    """The values the kernel sent to the front end for ``widget``, in order."""
    return [m["state"]["value"] for m in widget.comm.messages
            if m.get("method") == "update" and "value" in m.get("state", {})]


@pytest.fixture(scope="module")
def template(build_store, iris):
    """iris/1 (C=0.01) and iris/2 (C=1.0); production moved 1 -> 2. Built once."""
    from sklearn.linear_model import LogisticRegression

    import nbmodel

    def fill():
        for C in (0.01, 1.0):
            clf = LogisticRegression(C=C, max_iter=500).fit(iris["X_train"], iris["y_train"])
            nbmodel.commit(clf, "iris", message=f"C={C}", eval=(iris["X_test"], iris["y_test"]),
                           source="fit")
            nbmodel.set_alias("iris", "production", message=f"release C={C}")

    return build_store("panel-template", fill)


@pytest.fixture
def ns(iris):
    return {"X_test": iris["X_test"], "y_test": iris["y_test"], "X_train": iris["X_train"],
            "y_train": iris["y_train"], "note": "not data"}


@pytest.fixture
def p(store, ns):
    from nbmodel.widgets import panel

    made = panel("iris", namespace=ns)
    yield made
    made.close()


def aliases(store):
    return {a: int(v) for a, v in store.client.get_registered_model("iris").aliases.items()}


# -- structure ------------------------------------------------------------------------------
def test_tabs_and_what_the_front_end_receives(p, front_end):
    titles = [t.title for t in p.tabs]
    assert titles == ["History", "Compare", "Monitor", "Deployments"]  # every tab promised
    assert list(p.widget.titles) == titles
    bundle = p._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == p.widget.model_id
    # Every widget was opened on a comm with its state, as the front end expects.
    assert all(c.opened["target_name"] == "jupyter.widget" for c in front_end)
    history = p.tab("History")
    assert [label.split()[0] for label, _ in history.table.options] == ["2", "1"]
    assert "production" in history.table.options[0][0]
    assert "iris: 2 versions, newest first" in history.header.value


def test_text_fallback_where_widgets_cannot_render(p):
    text = p._repr_mimebundle_()["text/plain"]
    assert text.startswith("iris: 2 versions, newest first")
    assert "production" in text and "%model_rollback" in text and "JupyterLab" in text


def test_repr_and_pretty_print_are_the_text_form(p):
    from IPython.lib.pretty import pretty

    assert repr(p) == str(p) == pretty(p)
    assert "ModelPanel(" not in repr(p)


# -- History --------------------------------------------------------------------------------
def test_one_selected_shows_its_card_two_their_diff(p):
    h = p.tab("History")
    update(h.table, index=[1])  # the front end sends option indexes
    assert h.table.value == (1,)
    assert "iris/1" in h.detail.value and "C=0.01" in h.detail.value
    assert sent_values(h.detail)[-1] == h.detail.value  # and the card went to the front end
    update(h.table, index=[0, 1])
    assert h.selected() == ["iris/1", "iris/2"]
    assert "iris/1" in h.detail.value and "iris/2" in h.detail.value and "metric" in h.detail.value
    update(h.table, index=[])
    assert h.detail.value == ""


def test_set_alias_asks_first_then_moves_and_refreshes(p, store):
    h = p.tab("History")
    update(h.table, index=[1])
    update(h.alias, value="staging")
    update(h.message, value="try the weak one")
    click(h.alias_btn)
    assert h.confirm_box.layout.display == "flex"
    assert "Point iris@staging at iris/1 (not set yet)?" in h.question.value
    assert "staging" not in aliases(store)  # nothing moved before the confirmation
    click(h.confirm_btn)
    assert aliases(store) == {"production": 2, "staging": 1}
    assert h.confirm_box.layout.display == "none"
    assert "iris@staging moved from (unset) to iris/1: try the weak one" in h.status.value
    assert "staging" in h.table.options[1][0]  # the table refreshed
    import nbmodel

    assert nbmodel.alias_history("iris").moves[0].why == "try the weak one"


def test_cancel_leaves_the_store_as_it_was(p, store):
    h = p.tab("History")
    update(h.table, index=[1])
    click(h.alias_btn)
    assert "(now iris/2)" in h.question.value
    click(h.cancel_btn)
    click(h.confirm_btn)  # a stale confirm does nothing
    assert aliases(store) == {"production": 2}
    assert h.confirm_box.layout.display == "none"


def test_rollback_to_the_previous_holder_and_to_a_chosen_one(p, store):
    h = p.tab("History")
    click(h.rollback_btn)
    assert "Roll iris@production back from iris/2 to the version that held it before?" in h.question.value
    click(h.confirm_btn)
    assert aliases(store) == {"production": 1}
    assert "rolled back from iris/2 to iris/1" in h.status.value
    update(h.table, index=[0])  # iris/2
    click(h.rollback_btn)
    click(h.confirm_btn)
    assert aliases(store) == {"production": 2}


def test_retire_asks_first_and_refuses_an_alias_holder(p, store):
    import nbmodel

    h = p.tab("History")
    update(h.table, index=[0])  # iris/2 holds production
    click(h.retire_btn)
    assert "holds the alias production" in h.status.value
    assert h.confirm_box.layout.display == "none"
    update(h.table, index=[1])
    click(h.retire_btn)
    assert not nbmodel.resolve("iris/1").retired
    click(h.confirm_btn)
    assert nbmodel.resolve("iris/1").retired
    assert h.table.options[1][0].rstrip().endswith("retired")
    # The other tabs heard about it.
    assert ("iris/1  (retired)", "iris/1") in p.tab("Compare").versions.options


def test_checkout_puts_the_model_in_the_namespace(p, ns):
    import nbmodel

    h = p.tab("History")
    click(h.checkout_btn)
    assert "select one version to check out" in h.status.value
    update(h.table, index=[1])
    update(h.var, value="old")
    click(h.checkout_btn)
    assert "iris/1 checked out as old" in h.status.value
    assert ns["old"].get_params()["C"] == 0.01
    assert ns["old"] is not nbmodel.load("iris/1")  # a working copy, not the cached model


def test_errors_show_in_the_status_line(p):
    h = p.tab("History")
    update(h.table, index=[1])
    update(h.alias, value="bad alias!")
    click(h.alias_btn)
    assert "is not a valid alias" in h.status.value
    assert h.confirm_box.layout.display == "none"


# -- Compare --------------------------------------------------------------------------------
def test_compare_tab_runs_the_comparison_with_progress(p, ns):
    c = p.tab("Compare")
    assert (c.X.value, c.y.value) == ("X_test", "y_test")  # preselected from the namespace
    assert "note" not in c.X.options and "X_test" in c.X.options and "y_test" in c.y.options
    assert [v for _, v in c.versions.options] == ["iris/2", "iris/1"]
    update(c.versions, index=[0])
    click(c.run_btn)
    assert "at least two versions" in c.status.value
    update(c.versions, index=[0, 1])
    click(c.run_btn)
    assert c.result.refs == ["iris/2", "iris/1"]
    assert "iris/2 is better than iris/1" in c.result_html.value
    assert "data:image/png;base64," in c.result_html.value
    assert "%model_compare iris/2 iris/1 --eval X_test y_test" in c.status.value
    progress = [m["state"]["value"] for m in c.progress.comm.messages
                if m.get("method") == "update" and "value" in m.get("state", {})]
    assert progress[-1] == c.progress.max and len(progress) >= 3
    assert c.progress.layout.display == "none"  # hidden again when done


def test_compare_tab_reports_bad_data_and_picks_up_new_variables(p, ns):
    c = p.tab("Compare")
    ns["X_small"] = ns["X_test"].iloc[:, :2]
    click(c.vars_btn)
    assert "X_small" in c.X.options
    update(c.X, index=list(c.X.options).index("X_small"))
    update(c.versions, index=[0, 1])
    click(c.run_btn)
    assert "missing" in c.status.value and "iris/2" in c.status.value
    assert c.result is None


def test_compare_tab_log_saves_a_run(p, store):
    c = p.tab("Compare")
    update(c.versions, index=[0, 1])
    update(c.log, value=True)
    click(c.run_btn)
    assert c.result.run_id
    assert store.client.get_run(c.result.run_id).data.tags["nbmodel.kind"] == "compare"


# -- adding tabs ----------------------------------------------------------------------------
def test_register_tab_adds_a_tab_and_a_broken_tab_does_not_break_the_panel(store, ns):
    import ipywidgets as w

    from nbmodel import widgets

    def broken(ctx):
        raise RuntimeError("boom")

    widgets.register_tab("Notes", lambda ctx: w.HTML(f"notes on {ctx.name}"))
    widgets.register_tab("Broken", broken, position=0)
    try:
        made = widgets.panel("iris", namespace=ns)
        titles = [t.title for t in made.tabs]
        assert titles[0] == "Broken" and "Notes" in titles
        assert "the Broken tab failed: boom" in made.tab("Broken").widget.value
        assert made.tab("Notes").widget.value == "notes on iris"
    finally:
        widgets.unregister_tab("Notes")
        widgets.unregister_tab("Broken")
    assert [t for t, _ in widgets._TABS] == ["History", "Compare", "Monitor", "Deployments"]


def test_built_in_tabs_can_be_removed_and_put_back(store, ns):
    from nbmodel import widgets

    factories = dict(widgets.tab_factories())
    widgets.unregister_tab("Deployments")
    try:
        made = widgets.panel("iris", namespace=ns)
        assert [t.title for t in made.tabs] == ["History", "Compare", "Monitor"]
        made.close()
    finally:
        widgets.register_tab("Deployments", factories["Deployments"])
    assert [t for t, _ in widgets.tab_factories()] == ["History", "Compare", "Monitor", "Deployments"]


# -- the magic ------------------------------------------------------------------------------
def test_magic_shows_the_panel_and_refuses_unknown_models(store, shell):
    from nbmodel.widgets import ModelPanel

    made = shell.run("%model_panel iris")
    assert isinstance(made, ModelPanel) and made.namespace is shell.ns
    assert made.tab("Compare").X.value == "X_test"
    err = shell.fails("%model_panel nope")
    assert type(err).__name__ == "UsageError" and err.kind == "model-not-found"
    assert "no model named 'nope'" in str(err) and "iris" in str(err)
