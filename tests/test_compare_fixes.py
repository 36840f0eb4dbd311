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
