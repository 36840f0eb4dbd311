"""The panel's Compare tab speaks about its own model, and prediction times are measured warm."""

from __future__ import annotations

import time

import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.fixture
def wine_panel(commit_iris, iris):
    from nbmodel.widgets import panel

    commit_iris(C=1.0, name="wine")
    commit_iris(C=0.1, name="wine")
    made = panel("wine", namespace={"X_test": iris["X_test"], "y_test": iris["y_test"]})
    yield made
    made.close()


def test_compare_with_nothing_selected_names_the_panels_model(wine_panel):
    c = wine_panel.tab("Compare")
    c.versions.value = ()
    c.run()
    assert "wine" in c.status.value and "none is selected" in c.status.value
    assert "iris" not in c.status.value  # not an example about another model
    c.versions.value = ("wine/2",)
    c.run()
    assert "only wine/2 is selected" in c.status.value
    assert c.result is None


class SlowFirstCall:
    """A model whose first prediction pays a one-off cost, as a cold import or cache does."""

    def __init__(self, model):
        self.model = model
        self.calls = 0

    def predict(self, X):
        self.calls += 1
        if self.calls == 1:
            time.sleep(0.3)
        return self.model.predict(X)


def test_prediction_time_is_the_warm_one(commit_iris, iris):
    from nbmodel.comparison._compare import _predict_one
    from nbmodel.versions import load

    v = commit_iris(C=1.0)
    model = SlowFirstCall(load(v.ref))
    X = iris["X_test"]
    scored = _predict_one(v, model, X, len(X), "classifier")
    per_1000_ms = scored.predict_ms
    assert model.calls > 2  # repeated after the scored call
    assert per_1000_ms < 0.3 / len(X) * 1e6 / 10  # far below what the cold call cost


def test_tick_labels_of_side_by_side_plots_are_readable(commit_iris, iris):
    from nbmodel.comparison._compare import _predict_one
    from nbmodel.comparison._plots import _plot_confusion
    from nbmodel.versions import load

    X, y = iris["X_test"], iris["y_test"]
    scored = [_predict_one(v, load(v.ref), X, len(X), "classifier")
              for v in (commit_iris(C=1.0), commit_iris(C=0.1))]
    fig = _plot_confusion(scored, y.to_numpy())
    sizes = {t.get_fontsize() for ax in fig.axes for t in ax.get_xticklabels() + ax.get_yticklabels()}
    assert sizes and min(sizes) >= 9  # shown at about 0.7 scale, 7 points read as 6 pixels


def test_tables_and_cards_keep_headers_whole_and_sit_left():
    import re

    from nbmodel.display import STYLE

    rules = dict(re.findall(r"([^{}]+)\{([^}]*)\}", STYLE.replace("\\\n", "")))
    nowrap = [sel for sel, body in rules.items() if "white-space:nowrap" in body]
    assert any(".nbm-table th" in sel for sel in nowrap)  # "retired" stays one word
    assert any(".nbm-badge" in sel for sel in nowrap)
    card = next(body for sel, body in rules.items() if sel.strip() == ".nbm-card")
    assert "width:fit-content" in card  # no card sprawling across the output
    assert any("margin-left:0" in body for sel, body in rules.items() if "table" in sel)
