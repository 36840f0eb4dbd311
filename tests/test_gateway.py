"""The one gateway to MLflow (nbmodel.gateway): paging, fallbacks, and nobody else using the client."""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbmodel.gateway import Gateway

PACKAGE = Path(__file__).resolve().parents[1] / "nbmodel"

#: Modules that may still call MLflow's client themselves: none (kept so a new exception is explicit).
STILL_ON_THE_CLIENT: set[str] = set()
#: The only modules that may hold MLflow's client.
GATEWAY = {"nbmodel/store.py", "nbmodel/gateway.py"}


def _client_uses(path: Path) -> list[int]:
    """Lines that reach MLflow's client: ``x.client``, ``MlflowClient``, ``_get_registry_client``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("client", "_get_registry_client"):
            lines.append(node.lineno)
        elif isinstance(node, ast.Name) and node.id == "MlflowClient":
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and any(a.name == "MlflowClient" for a in node.names):
            lines.append(node.lineno)
    return lines


def test_only_the_gateway_touches_mlflows_client() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).as_posix()
        if rel in GATEWAY:
            continue
        uses = _client_uses(path)
        if uses and rel not in STILL_ON_THE_CLIENT:
            offenders[rel] = uses
    assert offenders == {}, f"call MLflow through store.gateway, not its client: {offenders}"


def test_the_allow_list_holds_only_real_offenders() -> None:
    """An entry that no longer uses the client must leave the allow-list (so it only shrinks)."""
    stale = [rel for rel in STILL_ON_THE_CLIENT if not _client_uses(PACKAGE.parent / rel)]
    assert stale == []


def test_the_scan_finds_a_client_call(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f(store):\n    return store.retry(store.client.get_run, 'x')\n")
    assert _client_uses(bad) == [2]


class Page(list):
    def __init__(self, items: list[Any], token: str | None) -> None:
        super().__init__(items)
        self.token = token


class Model:
    def __init__(self, name: str) -> None:
        self.name = name


class PagedClient:
    """An ``http://`` store's client: no SQL engine, pages of ``max_results`` models."""

    def __init__(self, n: int) -> None:
        self.names = [f"m{i:04d}" for i in range(n)]
        self.calls: list[dict[str, Any]] = []

    def search_registered_models(self, max_results: int, page_token: str | None = None,
                                 order_by: list[str] | None = None) -> Page:
        self.calls.append({"max_results": max_results, "page_token": page_token, "order_by": order_by})
        start = int(page_token or 0)
        end = start + max_results
        token = str(end) if end < len(self.names) else None
        return Page([Model(n) for n in self.names[start:end]], token)


class FakeStore:
    artifact_root = None

    def __init__(self, client: Any) -> None:
        self.client = client

    def retry(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        yield


def test_list_models_reads_every_page() -> None:
    client = PagedClient(2500)
    models = Gateway(FakeStore(client)).list_models()
    assert [m.name for m in models] == client.names
    assert [c["page_token"] for c in client.calls] == [None, "1000", "2000"]
    assert all(c["order_by"] == ["name ASC"] for c in client.calls)


@pytest.mark.parametrize("limit, pages", [(3, 1), (1000, 1), (1500, 2)])
def test_list_models_stops_at_the_limit(limit: int, pages: int) -> None:
    client = PagedClient(2500)
    models = Gateway(FakeStore(client)).list_models(limit=limit, order_by=None)
    assert [m.name for m in models] == client.names[:limit]
    assert len(client.calls) == pages and client.calls[0]["order_by"] is None


def test_store_reaches_one_gateway(isolated_store: Any) -> None:
    assert isolated_store.gateway is isolated_store.gateway
    assert isolated_store.registry is isolated_store.gateway


def test_gateway_writes_and_reads_version_tags(commit_iris: Any, isolated_store: Any) -> None:
    commit_iris(C=1.0)
    gw = isolated_store.gateway
    gw.set_version_tag("iris", 1, "stage", "candidate")
    rows, total = gw.versions("iris", version=1)
    assert total == 1 and rows[0].tags["stage"] == "candidate"
    gw.delete_version_tag("iris", 1, "stage")
    assert "stage" not in gw.versions("iris", version=1)[0][0].tags
    assert gw.model("nosuch") is None and gw.model("iris").name == "iris"
    run = gw.get_run(rows[0].run_id)
    assert run.info.run_id == rows[0].run_id
    assert gw.experiment_id("iris") == run.info.experiment_id
