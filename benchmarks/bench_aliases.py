"""Benchmark for issue 12 (the alias audit trail): the cost of a move and of a read as the trail
grows, side by side with the layout before archiving (every entry a tag of the model).

    python benchmarks/bench_aliases.py [--sizes 10,1000,3000] [--repeat 5] [--uri URI]

For each trail length it prints the median of ``--repeat``:
  * a move (``nbmodel.alias``, alternating between two versions) and a rollback;
  * a read of the newest 20 entries (``alias_history(name, limit=20)``) and of the whole trail;
  * the same move and read on a model whose trail is kept the old way (all entries as tags:
    seeded straight into a sqlite store, so only with the default temporary store).
A temporary sqlite store is used unless ``--uri`` names another (an ``http://`` server).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.pop("MLFLOW_TRACKING_URI", None)


def _ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def _legacy_move(store, name: str, to: int) -> None:
    """A move as it was before archiving: read every entry, move, add one more tag."""
    from nbmodel import aliases

    aliases._stack(aliases._entries(store, name, "production"), to)
    store.gateway.set_alias(name, "production", to)
    key = f"{aliases.LOG_PREFIX}{time.time_ns():020d}.legacy"
    store.gateway.set_model_tag(name, key, json.dumps({
        "alias": "production", "from": 3 - to, "to": to, "at": dt.datetime.now(dt.UTC).isoformat(),
        "by": "bench", "why": "", "kind": "set"}))


def _seed_legacy(db: Path, name: str, upto: int, have: int) -> None:
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO registered_model_tags (key, value, name) VALUES (?, ?, ?)",
            [(f"nbmodel.alias_log.{i:020d}.seed00", json.dumps({
                "alias": "production", "from": 1 + (i + 1) % 2, "to": 1 + i % 2,
                "at": "2026-01-01T00:00:00+00:00", "by": "seed", "why": "", "kind": "set"}), name)
             for i in range(have, upto)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,1000,3000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--uri", default=None)
    a = parser.parse_args(argv)
    sizes = [int(s) for s in a.sizes.split(",")]

    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import nbmodel
    from nbmodel import aliases

    folder = Path(tempfile.mkdtemp(prefix="nbmodel-bench-aliases-"))
    os.chdir(folder)
    uri = a.uri or f"sqlite:///{folder / 'mlflow.db'}"
    nbmodel.set_store(uri)
    store = nbmodel.get_store()
    X, y = load_iris(return_X_y=True, as_frame=True)
    legacy = "trail_legacy" if store.is_sqlite else None
    for name in ("trail", legacy):
        if name is None:
            continue
        for c in (1.0, 0.5):
            nbmodel.commit(LogisticRegression(C=c, max_iter=300).fit(X, y), name, message=f"C={c}")

    print(f"store: {uri}; trail kept live: {aliases.LIVE_MAX} entries, archived {aliases.PAGE} a page")
    print(f"{'entries':>8} | {'move':>8} {'rollback':>9} {'read 20':>8} {'read all':>9} |"
          f" {'old move':>9} {'old read':>9}")
    count = legacy_count = 0
    cur = 1
    for size in sizes:

        def move() -> None:
            nonlocal cur, count
            cur = 3 - cur  # always a real move: the other version
            nbmodel.alias(f"trail/{cur}", "production")
            count += 1

        def roll() -> None:
            nonlocal cur, count
            cur = nbmodel.rollback("trail").to_version
            count += 1

        while count < size:
            move()

        cost_move = _ms(move, a.repeat)
        cost_roll = _ms(roll, a.repeat)
        cost_read = _ms(lambda: nbmodel.alias_history("trail", limit=20), a.repeat)
        cost_all = _ms(lambda: nbmodel.alias_history("trail"), max(1, a.repeat // 2))
        old_move = old_read = float("nan")
        if legacy:
            _seed_legacy(store.db_path, legacy, size, legacy_count)
            legacy_count = size

            def old() -> None:
                nonlocal legacy_count
                _legacy_move(store, legacy, 1 + legacy_count % 2)
                legacy_count += 1

            old_move = _ms(old, a.repeat)
            old_read = _ms(lambda: aliases._entries(store, legacy), a.repeat)
        print(f"{size:>8} | {cost_move:>6.1f}ms {cost_roll:>7.1f}ms {cost_read:>6.1f}ms "
              f"{cost_all:>7.1f}ms | {old_move:>7.1f}ms {old_read:>7.1f}ms", flush=True)
    every = nbmodel.alias_history("trail", "production")
    assert len(every) == count, (len(every), count)
    print(f"all {count} entries read back", file=sys.stderr)
    if not a.uri:
        os.chdir(tempfile.gettempdir())
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
