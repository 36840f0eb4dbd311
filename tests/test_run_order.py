"""The order tests/conftest.py gives a run under xdist: the longest tests first on each worker."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from conftest import LONGEST, pytest_collection_modifyitems


def _ordered(nodeids: list[str], workers: int, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(workers))
    items: list[Any] = [SimpleNamespace(nodeid=n) for n in nodeids]
    pytest_collection_modifyitems(None, items)  # type: ignore[arg-type]
    return [i.nodeid for i in items]


@pytest.mark.parametrize("workers", [2, 3, 4])
@pytest.mark.parametrize("others", [0, 1, 2, 50])
def test_every_test_is_kept_once_however_few_are_selected(workers: int, others: int,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # -k picking a few long tests (fewer tests than workers, or than a share holds) still runs
    # each exactly once: the collection does not fail.
    long = list(LONGEST)[:3]
    nodeids = [f"tests/test_x.py::test_{i}" for i in range(others)] + long
    assert sorted(_ordered(nodeids, workers, monkeypatch)) == sorted(nodeids)


def test_each_share_of_two_workers_starts_with_long_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    others = [f"tests/test_x.py::test_{i}" for i in range(100)]
    ordered = _ordered(others + list(LONGEST), 2, monkeypatch)
    half = len(ordered) // 2  # worksteal's first share for each of two workers
    assert set(ordered[:3]) | set(ordered[half:half + 3]) == set(LONGEST)
    assert ordered[0] == "tests/test_notebooks.py::test_in_order_in_one_folder_then_again"
    assert [n for n in ordered if n in others] == others  # the rest keep their order


def test_no_order_without_xdist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    nodeids = ["tests/test_x.py::test_a", *LONGEST, "tests/test_x.py::test_b"]
    items: list[Any] = [SimpleNamespace(nodeid=n) for n in nodeids]
    pytest_collection_modifyitems(None, items)  # type: ignore[arg-type]
    assert [i.nodeid for i in items] == nodeids
