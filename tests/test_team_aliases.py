"""Alias moves with many kernels on one store: turns, expected holders, protected aliases and
an audit trail that stays a consistent chain and costs the same however long it grows.

The lease (the lock any store can hold, built on MLflow refusing a second registered model of
one name) is tested here against a sqlite store through the gateway, with the file lock turned
off so that only the lease orders the kernels.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import nbmodel
from nbmodel import aliases
from nbmodel.aliases import AliasMoved, ProtectedAlias
from nbmodel.errors import RollbackError
from nbmodel.gateway import LEASE_PREFIX, LeaseBusy
from nbmodel.store import Store


@pytest.fixture(scope="module")
def three(build_store: Any, iris: dict[str, Any]) -> Path:
    from sklearn.linear_model import LogisticRegression

    def fill() -> None:
        for c in (1.0, 0.5, 0.1):
            clf = LogisticRegression(C=c, max_iter=500).fit(iris["X_train"], iris["y_train"])
            nbmodel.commit(clf, "iris", message=f"C={c}")

    return build_store("three", fill)


@pytest.fixture
def store(three: Path, use_store_copy: Any) -> Store:
    return use_store_copy(three)


@pytest.fixture
def lease_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Order kernels by the lease alone, as on a server (the file lock is a no-op there)."""
    monkeypatch.setattr(Store, "is_sqlite", property(lambda self: False))


def _chain(name: str, alias: str) -> list[aliases.AliasMove]:
    moves = list(reversed(nbmodel.alias_history(name, alias).moves))
    for before, after in zip(moves, moves[1:]):
        assert after.from_version == before.to_version, (before, after)
    return moves


# -- expected holders ---------------------------------------------------------------------------

def test_a_move_that_expects_another_holder_is_refused_and_names_who_moved_it(store, monkeypatch):
    monkeypatch.setenv("NBMODEL_USER", "bob")
    nbmodel.alias("iris/1", "production")
    nbmodel.alias("iris/2", "production", expected=1)
    monkeypatch.setenv("NBMODEL_USER", "ann")
    with pytest.raises(AliasMoved) as err:
        nbmodel.alias("iris/3", "production", expected=1)  # read before bob's move
    assert err.value.kind == "alias-moved"
    assert "by bob" in str(err.value) and "iris/2" in str(err.value)
    with pytest.raises(AliasMoved):
        nbmodel.rollback("iris", expected=1)
    with pytest.raises(AliasMoved):
        aliases.delete_alias("iris", "production", expected=3)
    assert store.gateway.aliases("iris") == {"production": 2}  # left as it was
    assert len(_chain("iris", "production")) == 2


def test_expecting_an_unset_alias(store):
    nbmodel.alias("iris/1", "staging", expected=None)
    with pytest.raises(AliasMoved):
        nbmodel.alias("iris/2", "staging", expected=None)


def test_expect_option_of_the_magics(store, shell):
    shell.run("%model_alias iris/1 production")
    shell.run("%model_alias iris/2 production --expect 1")
    err = shell.fails("%model_alias iris/3 production --expect 1")
    assert type(err).__name__ == "UsageError" and "iris/2" in str(err)
    err = shell.fails("%model_rollback iris --expect 3")
    assert type(err).__name__ == "UsageError"
    shell.run("%model_rollback iris --expect 2")
    assert store.gateway.aliases("iris") == {"production": 1}


# -- the lease ----------------------------------------------------------------------------------

def test_a_held_lease_makes_others_wait_then_names_its_holder(store):
    gw = store.gateway
    with gw.lease("iris", owner="ann"):
        started = time.monotonic()
        with pytest.raises(LeaseBusy) as err, gw.lease("iris", owner="bob", wait=0.3):
            pass
        assert time.monotonic() - started < 5
        assert "ann" in str(err.value)
    with gw.lease("iris", owner="bob", wait=0.3):  # released on leaving the block
        pass
    assert gw.model(LEASE_PREFIX + "iris") is None


def test_a_lost_insert_race_whose_winner_already_released_is_waited_out(store, monkeypatch):
    """MLflow's SQL store answers a lost insert race by reading the winner's row; if the winner
    released its lease in between, that read says "not found": the loser must try again."""
    from mlflow.exceptions import MlflowException

    gw = store.gateway
    real = gw._call
    raced = []

    def racing(method, *args, **kwargs):
        if method == "create_registered_model" and not raced:
            raced.append(args[0])
            raise MlflowException(f"Registered Model with name={args[0]} not found",
                                  error_code="RESOURCE_DOES_NOT_EXIST")
        return real(method, *args, **kwargs)

    monkeypatch.setattr(gw, "_call", racing)
    with gw.lease("iris", owner="bob", wait=2.0):
        assert json.loads(gw.model_tags(LEASE_PREFIX + "iris")["nbmodel.lease"])["owner"] == "bob"
    assert raced == [LEASE_PREFIX + "iris"]
    assert gw.model(LEASE_PREFIX + "iris") is None


def test_on_a_server_a_lease_is_released_off_the_calling_thread_and_waited_for_by_the_next(
        store, monkeypatch):
    """A server's lease goes with its own round trip: the block returns once its writes are
    done, the delete runs on a thread of its own, and this process's next hold of the same
    lease waits for it (so it never finds its own lease still held)."""
    import threading

    monkeypatch.setattr(Store, "is_server", property(lambda self: True))
    gw = store.gateway
    real = gw._lease_delete
    deleted: list[str] = []

    gate = threading.Event()

    def slow_delete(name: str) -> None:
        gate.wait(30)
        real(name)
        deleted.append(threading.current_thread().name)

    monkeypatch.setattr(gw, "_lease_delete", slow_delete)
    with gw.lease("iris", owner="ann"):
        pass
    assert deleted == []  # the block ended with its delete still held back: it did not wait for it
    gate.set()
    with gw.lease("iris", owner="ann", wait=0.05):  # waits for its own release, not as "busy"
        assert len(deleted) == 1 and deleted[0].startswith("nbmodel-release")
        assert json.loads(gw.model_tags(LEASE_PREFIX + "iris")["nbmodel.lease"])["owner"] == "ann"
    gw._released(LEASE_PREFIX + "iris")
    assert gw.model(LEASE_PREFIX + "iris") is None


def test_a_lapsed_lease_of_a_dead_kernel_is_broken(store):
    gw = store.gateway
    assert gw._lease_create(LEASE_PREFIX + "iris", "ghost", "t0k3n", ttl=-1)  # expired at once
    with gw.lease("iris", owner="bob", wait=0.5):
        assert json.loads(gw.model_tags(LEASE_PREFIX + "iris")["nbmodel.lease"])["owner"] == "bob"
    assert gw.model(LEASE_PREFIX + "iris") is None
    assert gw.model("nbmodel.lockbreak.iris") is None  # nor the lease that broke it


def test_leases_never_show_as_models(store, lease_only):
    gw = store.gateway
    with gw.lease("iris", owner="ann"):
        assert [m.name for m in gw.list_models()] == ["iris"]
        assert [m.name for m in gw.list_models(limit=1)] == ["iris"]
        assert "nbmodel.lock" not in str(nbmodel.status())


def test_moves_take_the_lease_when_there_is_no_file_lock(store, lease_only, monkeypatch):
    taken = []
    real = type(store.gateway).lease

    def spy(self: Any, key: str, **kw: Any) -> Any:
        taken.append(key)
        return real(self, key, **kw)

    monkeypatch.setattr(type(store.gateway), "lease", spy)
    nbmodel.alias("iris/1", "production")
    nbmodel.alias("iris/2", "production")
    nbmodel.rollback("iris")
    assert taken == ["iris", "iris", "iris"]
    assert store.gateway.aliases("iris") == {"production": 1}


# -- concurrent kernels -------------------------------------------------------------------------

RACER = textwrap.dedent("""
    import json, os, sys, time
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    import nbmodel
    from nbmodel import aliases
    from nbmodel.store import Store
    uri, folder, me, kernels, rounds, mode = sys.argv[1:7]
    me, kernels, rounds = int(me), int(kernels), int(rounds)
    if mode == "lease":
        Store.is_sqlite = property(lambda self: False)
    nbmodel.set_store(uri)
    gw = nbmodel.get_store().gateway

    def barrier(tag):
        open(os.path.join(folder, f"{tag}-{me}"), "w").close()
        deadline = time.monotonic() + 120
        while not all(os.path.exists(os.path.join(folder, f"{tag}-{k}")) for k in range(kernels)):
            if time.monotonic() > deadline:
                raise SystemExit("barrier timed out")
            time.sleep(0.01)

    results = []
    for r in range(rounds):
        barrier(f"start{r}")
        seen = gw.aliases("iris")["production"]  # every kernel reads before any moves
        barrier(f"read{r}")
        try:
            if r % 2:
                aliases.rollback("iris", expected=seen, message=f"k{me} r{r}")
            else:
                target = seen % 3 + 1
                aliases.set_alias(f"iris/{target}", "production", expected=seen, message=f"k{me} r{r}")
            results.append("won")
        except aliases.AliasMoved as exc:
            results.append("moved" if "by " in str(exc) else "unnamed")
    print(json.dumps(results))
""")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["file-lock", "lease"])
def test_kernels_racing_on_stale_reads_one_wins_each_round(store, tmp_path, mode, kernel_env):
    kernels, rounds = 4, 6
    nbmodel.alias("iris/1", "production")
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    sync = tmp_path / f"sync-{mode}"
    sync.mkdir()
    procs = [subprocess.Popen([sys.executable, str(script), store.uri, str(sync), str(k), str(kernels),
                               str(rounds), mode], env=kernel_env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k in range(kernels)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    for r in range(rounds):
        column = sorted(res[r] for res in results)
        assert column == ["moved"] * (kernels - 1) + ["won"], (r, column)  # the losers learn who
    moves = _chain("iris", "production")
    assert len(moves) == 1 + rounds
    assert [m.kind for m in moves[1:]] == ["set", "rollback"] * (rounds // 2)
    for m in moves[1:]:
        if m.kind == "rollback":  # each undoes the move just before it, never a later one
            assert m.to_version == moves[moves.index(m) - 1].from_version
    assert store.gateway.model(LEASE_PREFIX + "iris") is None


# -- protected aliases --------------------------------------------------------------------------

def test_only_allowed_users_move_a_protected_alias_and_refusals_are_kept(store, monkeypatch):
    monkeypatch.setenv("NBMODEL_USER", "alice")
    nbmodel.alias("iris/1", "production")
    aliases.protect("iris", "production", "alice,bob", message="release gate")
    monkeypatch.setenv("NBMODEL_USER", "carol")
    with pytest.raises(ProtectedAlias) as err:
        nbmodel.alias("iris/2", "production")
    assert err.value.kind == "protected-alias" and "alice, bob" in str(err.value)
    with pytest.raises(ProtectedAlias):
        nbmodel.rollback("iris", to=2)
    with pytest.raises(ProtectedAlias):
        aliases.unprotect("iris", "production")
    nbmodel.alias("iris/2", "staging")  # other aliases stay open
    assert store.gateway.aliases("iris")["production"] == 1
    monkeypatch.setenv("NBMODEL_USER", "bob")
    nbmodel.alias("iris/3", "production")
    nbmodel.rollback("iris")
    monkeypatch.setenv("NBMODEL_USER", "alice")
    aliases.unprotect("iris", "production")
    monkeypatch.setenv("NBMODEL_USER", "carol")
    nbmodel.alias("iris/2", "production")
    moves = _chain("iris", "production")
    assert [(m.kind, m.by) for m in moves] == [
        ("set", "alice"), ("protect", "alice"), ("refused", "carol"), ("refused", "carol"),
        ("refused", "carol"), ("set", "bob"), ("rollback", "bob"), ("unprotect", "alice"),
        ("set", "carol")]
    assert "release gate" in moves[1].why and "refused set to iris/2" in moves[2].why
    assert [m.to_version for m in moves] == [1, 1, 1, 1, 1, 3, 1, 1, 2]


def test_protect_through_the_magic(store, shell, monkeypatch):
    monkeypatch.setenv("NBMODEL_USER", "alice")
    shell.run("%model_alias iris/1 production")
    shell.run("%model_alias iris --protect production --allow alice,bob")
    assert "only alice, bob" in str(nbmodel.alias_history("iris", "production").moves[0])
    monkeypatch.setenv("NBMODEL_USER", "carol")
    err = shell.fails("%model_alias iris/2 production")
    assert type(err).__name__ == "UsageError" and "protected" in str(err)
    err = shell.fails("%model_alias iris --unprotect production")
    assert type(err).__name__ == "UsageError" and "only alice, bob" in str(err)
    err = shell.fails("%model_alias iris --protect production")
    assert "--allow" in str(err)
    monkeypatch.setenv("NBMODEL_USER", "bob")
    shell.run("%model_alias iris --unprotect production")
    monkeypatch.setenv("NBMODEL_USER", "carol")
    shell.run("%model_alias iris/2 production")


# -- a bounded trail ----------------------------------------------------------------------------

class _Counter:
    """Counts what reaches the store: SQL reads, client calls and retried writes."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.tags_read = 0
        gw = type(store.gateway)
        for method in ("_query", "_call"):
            real = getattr(gw, method)
            monkeypatch.setattr(gw, method, self._wrap(real))
        real_tags = gw.model_tags

        def model_tags(gw_self: Any, name: str, prefix: str = "") -> Any:
            out = real_tags(gw_self, name, prefix)
            self.tags_read += len(out or {})
            return out

        monkeypatch.setattr(gw, "model_tags", model_tags)
        real_retry = store.retry
        monkeypatch.setattr(store, "retry", self._wrap(real_retry))

    def _wrap(self, fn: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return fn(*args, **kwargs)
        return counted

    def cost(self, fn: Any) -> tuple[int, int]:
        self.calls = self.tags_read = 0
        fn()
        return self.calls, self.tags_read


def test_the_trail_is_archived_in_pages_none_lost_and_a_move_costs_the_same(
        commit_iris, monkeypatch):
    monkeypatch.setattr(aliases, "LIVE_MAX", 10)
    monkeypatch.setattr(aliases, "PAGE", 4)
    commit_iris(C=1.0)
    commit_iris(C=0.5)
    store = nbmodel.get_store()
    counter = _Counter(store, monkeypatch)

    def move(i: int) -> Any:
        return lambda: nbmodel.alias(f"iris/{1 + i % 2}", "production", message=f"#{i}")

    costs = {}
    for i in range(41):
        calls, tags_read = counter.cost(move(i))
        assert tags_read <= 2 * (10 + 2)  # the live entries, the head, twice at most
        if i in (5, 25, 39):  # none of these archives (an archive comes every PAGE moves)
            costs[i] = calls
    assert costs[5] == costs[25] == costs[39], costs
    live = store.gateway.model_tags("iris", aliases.LOG_PREFIX)
    assert len(live) <= 10
    head = json.loads(store.gateway.model_tags("iris", aliases.HEAD_TAG)[aliases.HEAD_TAG])
    assert head["pages"] >= 7

    calls, _ = counter.cost(lambda: nbmodel.alias_history("iris", limit=5))
    recent = nbmodel.alias_history("iris", limit=5)
    assert [m.why for m in recent] == [f"#{i}" for i in range(40, 35, -1)] and recent.more
    assert calls < 10  # the newest page is read from the tags alone, no archive page
    assert "older moves" in str(recent)
    assert [m.why for m in nbmodel.alias_history("iris", limit=4, offset=20)] == [
        f"#{i}" for i in range(20, 16, -1)]

    every = _chain("iris", "production")
    assert [m.why for m in every] == [f"#{i}" for i in range(41)]
    assert len({m.key for m in every}) == 41
    nbmodel.rollback("iris")  # the stack survived the archiving
    assert store.gateway.aliases("iris") == {"production": 2}


def test_rollbacks_walk_back_through_a_history_that_returned_to_a_version(store):
    for v in (1, 2, 1, 2):
        nbmodel.alias(f"iris/{v}", "production")
    assert [nbmodel.rollback("iris").to_version for _ in range(3)] == [1, 2, 1]
    with pytest.raises(RollbackError):
        nbmodel.rollback("iris")


def test_a_trail_written_before_heads_still_rolls_back(store):
    for i, (frm, to) in enumerate([(None, 1), (1, 2), (2, 3)]):
        store.gateway.set_model_tag("iris", f"{aliases.LOG_PREFIX}{i:020d}.abc", json.dumps({
            "alias": "production", "from": frm, "to": to, "at": "2026-01-01T00:00:00+00:00",
            "by": "ann", "why": "", "kind": "set"}))
    store.gateway.set_alias("iris", "production", 3)
    assert nbmodel.rollback("iris").to_version == 2
    assert nbmodel.rollback("iris").to_version == 1
    assert len(_chain("iris", "production")) == 5


# -- retirement under the same turn -------------------------------------------------------------

@pytest.mark.parametrize("mode", ["file-lock", "lease"])
def test_a_version_retired_while_another_kernel_moves_an_alias_to_it_never_holds_it(
        store, monkeypatch, mode):
    """Retire reads "no alias holds iris/3", another kernel points production at iris/3, then
    retire writes: without one turn for both, production ends on a retired version."""
    import threading

    from nbmodel import versions
    from nbmodel.errors import RetiredVersion

    if mode == "lease":
        monkeypatch.setattr(Store, "is_sqlite", property(lambda self: False))
    real_resolve = versions.resolve
    outcome: list[Any] = []

    def mover() -> None:
        try:
            outcome.append(nbmodel.alias("iris/3", "production"))
        except RetiredVersion as exc:
            outcome.append(exc)

    def resolve_then_let_another_kernel_move(ref: Any, **kw: Any) -> Any:
        v = real_resolve(ref, **kw)
        if not outcome and threading.current_thread() is threading.main_thread() and not v.retired:
            t = threading.Thread(target=mover)
            t.start()
            t.join(timeout=1.5)  # it finishes now unless retire holds the model's turn
            monkeypatch.setattr(versions, "resolve", real_resolve)
            finish.append(t)
        return v

    finish: list[threading.Thread] = []
    monkeypatch.setattr(versions, "resolve", resolve_then_let_another_kernel_move)
    nbmodel.retire("iris/3", message="leaks the test set")
    for t in finish:
        t.join(timeout=30)
    assert outcome and isinstance(outcome[0], RetiredVersion), outcome
    held = store.gateway.aliases("iris") or {}
    assert held.get("production") != 3, "production points at a retired version"
