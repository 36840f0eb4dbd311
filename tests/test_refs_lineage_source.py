"""Pure pieces: reference parsing, the lineage graph, and slicing the cells that built a model."""

from __future__ import annotations

import pytest

from nbmodel.errors import BadReference
from nbmodel.lineage import branches, graph, head_of, set_head
from nbmodel.refs import Ref, parse_ref
from nbmodel.source import slice_cells


@pytest.mark.parametrize("text, ref", [
    ("iris", Ref("iris")),
    ("iris/3", Ref("iris", version=3)),
    ("iris@production", Ref("iris", alias="production")),
    ("models:/iris/3", Ref("iris", version=3)),
    ("models:/iris@production", Ref("iris", alias="production")),
    ("models:/iris/latest", Ref("iris")),
    ("my model/2", Ref("my model", version=2)),
])
def test_parse_ref_forms(text, ref):
    assert parse_ref(text) == ref
    assert parse_ref(str(ref)) == ref


@pytest.mark.parametrize("text", ["", "iris/x", "iris/0", "@prod", "iris@", "iris/2/3", "iris@v3",
                                  "models:/", "iris@has space"])
def test_parse_ref_rejects_malformed(text):
    with pytest.raises(BadReference) as exc:
        parse_ref(text)
    assert "NAME" in str(exc.value) or "alias" in str(exc.value) or "version" in str(exc.value)


def test_graph_draws_branch_like_git():
    lines = graph([(4, 2), (3, 2), (2, 1), (1, None)])
    assert [p for p, _ in lines] == ["*", "| *", "|/", "*", "*"]
    assert [v for _, v in lines] == [4, 3, None, 2, 1]
    assert branches([(4, 2), (3, 2), (2, 1), (1, None)])
    assert not branches([(3, 2), (2, 1), (1, None)])


def test_graph_linear_history_is_one_lane():
    assert [p for p, _ in graph([(3, 2), (2, 1), (1, None)])] == ["*", "*", "*"]


def test_heads_follow_objects_not_names():
    class M:
        def predict(self, X):
            return X

    a, b = M(), M()
    set_head(a, "iris/2")
    assert head_of(a) == "iris/2"
    assert head_of(b) is None


def _cells(*sources: str) -> list[tuple[int, str, str]]:
    return [(i + 1, s, s) for i, s in enumerate(sources)]


def test_slice_keeps_cells_that_built_the_model():
    cells = _cells(
        "import pandas as pd\nfrom sklearn.linear_model import LogisticRegression",
        "X, y = load()",
        "print(X.shape)",
        "clf = LogisticRegression(C=1)",
        "clf = LogisticRegression(C=10)",
        "clf.fit(X, y)",
        "%model_commit clf",
        "unrelated = 3",
    )
    kept = [n for n, _ in slice_cells(cells, ["clf"])]
    # The C=1 model was replaced before it was fitted; pandas and the print are not needed.
    assert kept == [1, 2, 5, 6]


def test_slice_survives_syntax_errors_and_empty_history():
    assert slice_cells([], ["clf"]) == []
    assert slice_cells(_cells("clf = (", "clf = 1"), ["clf"]) == [(2, "clf = 1")]
