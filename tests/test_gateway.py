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


class ServerStore(FakeStore):
    """A store reached over HTTP, as far as the gateway can tell."""

    is_server = True


def test_together_sends_a_servers_independent_calls_at_once_after_their_first_run() -> None:
    import threading

    threads: list[str] = []
    both = threading.Barrier(2, timeout=5)  # passes only when the two calls run at the same time
    first = True

    def call(x: int) -> Any:
        def run() -> int:
            threads.append(threading.current_thread().name)
            if not first:
                both.wait()
            return x
        return run

    gateway = Gateway(ServerStore(None))
    # The first run imports what MLflow imports lazily: on the calling thread only, since two
    # threads importing protobuf files at once can break each other's imports.
    assert gateway.together(call(1), call(2)) == [1, 2]
    assert threads == [threading.current_thread().name] * 2
    first = False
    assert gateway.together(call(1), call(2)) == [1, 2]
    assert sorted(threads[2:]) == sorted([threading.current_thread().name, "nbmodel-store_0"])


def test_together_finishes_every_call_then_raises_the_first_error_in_order() -> None:
    import time

    done: list[str] = []

    def slow_failure() -> None:
        time.sleep(0.2)
        done.append("slow")
        raise KeyError("first")

    def quick_failure() -> None:
        done.append("quick")
        raise ValueError("second")

    with pytest.raises(KeyError, match="first"):
        Gateway(ServerStore(None)).together(slow_failure, quick_failure)
    assert sorted(done) == ["quick", "slow"]


def test_together_runs_one_after_another_on_a_local_store() -> None:
    import threading

    store = FakeStore(None)
    store.is_server = False  # type: ignore[attr-defined]
    threads: list[str] = []
    Gateway(store).together(lambda: threads.append(threading.current_thread().name),
                            lambda: threads.append(threading.current_thread().name))
    assert threads == [threading.current_thread().name] * 2


def test_a_rollback_to_a_version_that_does_not_exist_changes_nothing(commit_iris: Any,
                                                                     isolated_store: Any) -> None:
    """The rollback no longer reads its target first: the alias move refuses it, and says which
    versions there are."""
    import nbmodel
    from nbmodel.errors import VersionNotFound

    commit_iris(C=1.0)
    commit_iris(C=0.5)
    nbmodel.alias("iris/2", "production")
    trail = [m.key for m in nbmodel.alias_history("iris")]
    with pytest.raises(VersionNotFound, match="versions are 1-2|1, 2"):
        nbmodel.rollback("iris", to=7)
    assert isolated_store.gateway.aliases("iris") == {"production": 2}
    assert [m.key for m in nbmodel.alias_history("iris")] == trail


def test_a_move_whose_trail_entry_fails_puts_the_alias_back(commit_iris: Any, isolated_store: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The alias and its trail entry are written at once; when one write fails the other is
    undone, so the trail never misses a move that happened."""
    import nbmodel

    commit_iris(C=1.0)
    commit_iris(C=0.5)
    nbmodel.alias("iris/1", "production")
    gw = isolated_store.gateway

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the store refused the tag")

    with monkeypatch.context() as m, pytest.raises(RuntimeError, match="refused the tag"):
        m.setattr(gw, "set_model_tag", refuse)
        nbmodel.alias("iris/2", "production")
    assert gw.aliases("iris") == {"production": 1}
    assert [(m.from_version, m.to_version) for m in nbmodel.alias_history("iris")] == [(None, 1)]
