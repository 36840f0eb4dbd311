"""Compaction: recorded batches folded into window summaries, raw rows kept for a while.

Per version, a compaction reads the batch files no summary covers yet, counts them per base
window (:mod:`._counts`; an hour unless the first compaction chose another width), adds them
to the newest summary and writes the sum as a new generation in the monitoring run::

    monitor/summaries/v3/g-00000007.parquet   the counts per base window; its metadata lists
                                              the batch and label files it covers
    monitor/summaries/v3/i-00000007.parquet   id, window, prediction, label of retained rows
                                              recorded with ids (for labels that come later)
    monitor/summaries/v3/p-00000007.parquet   labels whose ids no recorded row had yet

Labels that arrive later (``record_labels``) update the windows of the rows they name (at the
next compaction, which a read starts when it sees new labels for a summarised version): the
row's old label (if any) is taken out of its window's confusion counts or error sums and the
new one put in. Batch and label files older than the retention period (30 days unless the
model's monitoring run says otherwise) are deleted once a summary covers them; summaries are
kept forever. A generation is written before anything it replaces is removed, the one before
it stays for readers still on it, and one compaction per model runs at a time (a lease of the
store), so a reader sees every row once and writers (which only add files) never wait.

A read (:func:`view`) is the newest generation (one file) plus the few batch files written
since: a handful of file reads on any store, whatever the number of rows.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..display import Shown
from ..errors import BadData, LeaseBusy
from ..metrics import CLASSIFIER
from ..refs import Ref, parse_ref
from ..store import get_store
from . import _counts
from ._schema import schema, target
from ._storage import BATCHES, LABELS, MonitorRun, monitor_run
from ._traffic import _numbers, _Reader
from ._windows import parse_window

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ._counts import Counts

SUMMARIES = "monitor/summaries"
DEFAULT_WIDTH = "1h"
DEFAULT_RETENTION = "30d"
#: Batch files not yet compacted that make a read compact first.
AUTO_FILES = 64
#: Run tag of the monitoring run holding the retention period set by the user.
T_RETENTION = "nbmodel.monitor.retention"


def _ftime(path: str) -> int:
    """When a batch or label file was written (ns), from its name."""
    try:
        return int(path.rsplit("/", 1)[-1].split("-", 1)[0])
    except ValueError:
        return 0


def _seq(path: str) -> int:
    return int(path.rsplit("/", 1)[-1][2:].split(".", 1)[0])


def _duration_ms(text: str, what: str) -> int:
    try:
        spec = parse_window(text)
    except BadData:
        spec = None
    if spec is None or spec.width_ms is None:
        raise BadData(f"{what} {text!r} is not a duration: use 1h, 7d, 30d, 52w")
    return spec.width_ms


@dataclass(repr=False)  # Shown's repr: the text form
class Compacted(Shown):
    """What one compaction did."""

    name: str
    versions: list[int] = field(default_factory=list)
    files: int = 0
    rows: int = 0
    labels: int = 0
    dropped: int = 0
    seconds: float = 0.0
    retention: str = DEFAULT_RETENTION

    def __str__(self) -> str:
        if not self.versions:
            return f"{self.name}: nothing recorded to compact"
        vs = ", ".join(f"v{v}" for v in self.versions)
        return (f"compacted {self.name} ({vs}): {self.files:,} batch file{'s' if self.files != 1 else ''} "
                f"({self.rows:,} rows) and {self.labels:,} label file{'s' if self.labels != 1 else ''} into "
                f"window summaries; {self.dropped:,} file{'s' if self.dropped != 1 else ''} older than "
                f"{self.retention} removed, in {self.seconds:.1f} s")


# -- one generation ------------------------------------------------------------------------------
_gens: dict[tuple[str, str], tuple[Counts, dict[str, Any]]] = {}
_gens_lock = threading.Lock()


def _newest(run: MonitorRun, version: int) -> tuple[str | None, list[str]]:
    files = run.list(f"{SUMMARIES}/v{version}", ".parquet")
    gens = [p for p in files if p.rsplit("/", 1)[-1].startswith("g-")]
    return (max(gens, key=_seq) if gens else None), files


def _read_gen(run: MonitorRun, path: str) -> tuple[Counts, dict[str, Any]]:
    key = (run.store_uri, path)
    with _gens_lock:
        found = _gens.get(key)
    if found is None:
        found = _counts.from_parquet(run.read_bytes(path))
        with _gens_lock:
            _gens.clear()  # one generation per process is enough: the newest
            _gens[key] = found
    return found


def _frame(run: MonitorRun, path: str, files: list[str]) -> pd.DataFrame | None:
    import io

    import pandas as pd

    if path not in files:
        return None
    return pd.read_parquet(io.BytesIO(run.read_bytes(path)))


def _to_bytes(df: pd.DataFrame) -> bytes:
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False, compression="zstd")
    return buf.getvalue()


# -- reading -------------------------------------------------------------------------------------
@dataclass
class View:
    """A version's counts: the newest summary plus the batches written since."""

    counts: Counts
    uncovered: int
    generation: int


_readers: dict[tuple[str, str, int], tuple[str, _Reader]] = {}
_readers_lock = threading.Lock()


def view(name: str, version: int) -> View | None:
    """The counts of ``name/version``, or None when it was never compacted.

    Args:
        name: the model.
        version: the version.

    Returns:
        The :class:`View`.
    """
    for attempt in (0, 1):
        try:
            return _view(name, version)
        except (FileNotFoundError, OSError):
            if attempt:
                raise
            clear_caches()  # a compaction removed a file between the listing and the read
    return None


def _view(name: str, version: int) -> View | None:
    run = monitor_run(name, create=False)
    path, files = _newest(run, version)
    if path is None:
        return None
    counts, meta = _read_gen(run, path)
    key = (run.store_uri, name, int(version))
    with _readers_lock:
        held = _readers.get(key)
    if held is None or held[0] != path:
        sch = schema(name, version)
        pend = _frame(run, path.replace("/g-", "/p-"), files)
        pending = (pend["id"].to_numpy(), pend["y"].to_numpy()) if pend is not None and len(pend) else None
        reader = _Reader(sch, skip=frozenset(meta["covered"]), skip_labels=frozenset(meta["labels"]),
                         pending=pending)
        for c in counts.classes:
            reader._class(c)
        with _readers_lock:
            _readers[key] = held = (path, reader)
    tr = held[1].refresh(run)
    if len(tr):
        counts = _counts.merge(counts, _counts.from_traffic(tr, counts.width_ms))
    return View(counts, tr.files, int(meta["seq"]))


def pending_files(name: str, version: int) -> tuple[int, int]:
    """Batch files of ``name/version`` and label files of the model that no summary covers
    yet (labels only once the version has a summary; a few listings)."""
    run = monitor_run(name, create=False)
    path, _ = _newest(run, version)
    if path is None:
        return len(run.list(f"{BATCHES}/v{version}")), 0
    meta = _read_gen(run, path)[1]
    covered, labels = set(meta["covered"]), set(meta["labels"])
    return (sum(1 for p in run.list(f"{BATCHES}/v{version}") if p not in covered),
            sum(1 for p in run.list(LABELS) if p not in labels))


def auto_compact(name: str, version: int) -> None:
    """Compact ``name/version`` first when many batch files wait, or labels that may belong to
    rows already summarised (another kernel compacting now is left to it)."""
    batches, labels = pending_files(name, version)
    if batches < AUTO_FILES and not labels:
        return
    try:
        compact(f"{name}/{version}", wait=0.5)
    except LeaseBusy:
        pass


# -- compacting ----------------------------------------------------------------------------------
def retention_of(run: MonitorRun) -> str:
    """The retention period of a model's raw rows (its monitoring run's tag, else 30 days)."""
    tags = dict(get_store().gateway.get_run(run.run_id).data.tags or {})
    return tags.get(T_RETENTION) or DEFAULT_RETENTION


def compact(ref: str | Ref, *, retention: str | None = None, width: str | None = None,
            wait: float = 30.0) -> Compacted:
    """Fold a model's recorded batches into window summaries and drop raw rows past retention.

    Args:
        ref: the model (every version with records) or one version (``iris/3``).
        retention: how long raw rows are kept (``30d``, ``7d``, ``52w``); saved for the model,
            so later compactions (and automatic ones) keep to it. Default: the saved one, else 30d.
        width: the base window of a version's first compaction (default ``1h``); views of any
            multiple of it read only summaries.
        wait: seconds to wait for another kernel's compaction of the model.

    Returns:
        A :class:`Compacted` report.

    Raises:
        BadData: a retention or width that is not a duration.
        LeaseBusy: another kernel kept compacting for longer than ``wait``.

    Example:
        >>> nbmodel.monitoring.compact("iris", retention="7d")  # doctest: +SKIP
        compacted iris (v1): 120 batch files (120,000 rows) and 0 label files into window summaries; ...
    """
    from ..versions import _user

    r = ref if isinstance(ref, Ref) else parse_ref(ref)
    width_ms = _duration_ms(width or DEFAULT_WIDTH, "--width")
    retention_ms = _duration_ms(retention, "--retention") if retention else None
    store = get_store()
    target(r)  # a model or version that does not exist says so
    run = monitor_run(r.name)
    if retention is not None:
        store.gateway.set_run_tag(run.run_id, T_RETENTION, retention)
    else:
        retention = retention_of(run)
        retention_ms = _duration_ms(retention, "the saved retention")
    assert retention_ms is not None
    versions = [int(r.version)] if r.version is not None else \
        sorted(int(f[1:]) for f in run.folders(BATCHES) if f[1:].isdigit())
    out = Compacted(r.name, retention=retention)
    t0 = time.perf_counter()
    with store.gateway.lease(f"{r.name}.monitor", owner=_user(), ttl=300.0, wait=wait):
        for v in versions:
            _compact_version(run, r.name, v, width_ms, retention_ms, out)
    out.seconds = time.perf_counter() - t0
    return out


def _compact_version(run: MonitorRun, name: str, version: int, width_ms: int, retention_ms: int,
                     out: Compacted) -> None:
    import numpy as np
    import pandas as pd

    sch = schema(name, version)
    folder = f"{SUMMARIES}/v{version}"
    path, files = _newest(run, version)
    if path is not None:
        old, meta = _read_gen(run, path)
        width_ms = old.width_ms
        idx = _frame(run, path.replace("/g-", "/i-"), files)
        pend = _frame(run, path.replace("/g-", "/p-"), files)
    else:
        old, meta, idx, pend = None, {"covered": [], "labels": [], "seq": 0}, None, None
    idx = idx if idx is not None else pd.DataFrame(
        {"id": pd.Series(dtype=str), "start": pd.Series(dtype=np.int64), "ftime": pd.Series(dtype=np.int64),
         "has_y": pd.Series(dtype=bool), "pred": pd.Series(dtype=object), "y": pd.Series(dtype=object)})
    pend = pend if pend is not None else pd.DataFrame(
        {"id": pd.Series(dtype=str), "y": pd.Series(dtype=object), "ftime": pd.Series(dtype=np.int64)})
    reader = _Reader(sch, skip=frozenset(meta["covered"]), skip_labels=frozenset(meta["labels"]),
                     pending=(pend["id"].to_numpy(), pend["y"].to_numpy()) if len(pend) else None)
    if old is not None:
        for c in old.classes:
            reader._class(c)
    tr = reader.refresh(run)
    new_files = list(reader.files)
    new_labels = sorted(reader.label_files)
    if not new_files and not new_labels and old is not None and not _expired(meta, idx, retention_ms):
        return
    task = tr.task
    counts = _counts.from_traffic(tr, width_ms)
    if old is not None:
        counts = _counts.merge(old, counts)
    elif not len(tr):
        counts = _counts.empty(sch, tr.features, tr.n_bins, task, width_ms)
    # labels that came now, for rows compacted before
    parts = [(p, ids, y) for p, ids, y in reader.label_parts if p]
    labels = _label_frame(parts, task)
    counts, idx, matched = _relabel(counts, idx, labels, task)
    # the rows read now that carry ids, for labels still to come
    ids = reader.parts[0]["ids"] if reader.parts else None
    new_ids: set[str] = set()
    if ids is not None and len(tr):
        has = ids != ""
        ftime = np.repeat(np.array([_ftime(p) for p in new_files], dtype=np.int64), reader.file_rows)
        cls = np.array(tr.classes + [""], dtype=object)
        if task == CLASSIFIER:
            pred_v: Any = cls[tr.pred[has]]
            y_v: Any = cls[np.where(tr.has_y, tr.y, len(tr.classes))[has]]
        else:
            pred_v, y_v = tr.pred[has].astype(object), np.where(tr.has_y, tr.y, np.nan)[has].astype(object)
        fresh = pd.DataFrame({"id": ids[has].astype(str), "start": (tr.ts[has] // width_ms) * width_ms,
                              "ftime": ftime[has], "has_y": tr.has_y[has], "pred": pred_v, "y": y_v})
        idx = pd.concat([idx, fresh], ignore_index=True) if len(idx) else fresh
        new_ids = set(fresh["id"])
    # labels whose rows have not been recorded yet wait for them
    if len(labels):
        waiting = labels[~labels["id"].isin(matched) & ~labels["id"].isin(new_ids)]
        kept = pend[~pend["id"].isin(set(labels["id"]) | new_ids)]
        pend = pd.concat([kept, waiting[["id", "y", "ftime"]]], ignore_index=True)
    elif new_ids and len(pend):
        pend = pend[~pend["id"].isin(new_ids)]
    # retention: raw files (and index rows) older than it go; their counts stay
    cutoff = time.time_ns() - retention_ms * 1_000_000
    covered = sorted(set(meta["covered"]) | set(new_files))
    label_files = sorted(set(meta["labels"]) | set(new_labels))
    drop = [p for p in covered if _ftime(p) < cutoff] + [p for p in label_files if _ftime(p) < cutoff]
    gone = set(drop)
    idx = idx[idx["ftime"] >= cutoff]
    pend = pend[pend["ftime"] >= cutoff]
    seq = int(meta["seq"]) + 1
    run.write_bytes(folder, f"i-{seq:08d}.parquet", _to_bytes(idx.reset_index(drop=True)))
    run.write_bytes(folder, f"p-{seq:08d}.parquet", _to_bytes(pend.reset_index(drop=True)))
    run.write_bytes(folder, f"g-{seq:08d}.parquet", _counts.to_parquet(counts, {
        "covered": [p for p in covered if p not in gone], "labels": [p for p in label_files if p not in gone],
        "seq": seq, "compacted_at": time.time_ns(), "retention_ms": retention_ms}))
    for p in drop:
        run.delete(p)
    for p in files:  # generations before the previous one
        if _seq(p) < seq - 1:
            run.delete(p)
    out.versions.append(version)
    out.files += len(new_files)
    out.rows += len(tr)
    out.labels += len(new_labels)
    out.dropped += len(drop)


def _expired(meta: dict[str, Any], idx: pd.DataFrame, retention_ms: int) -> bool:
    cutoff = time.time_ns() - retention_ms * 1_000_000
    return any(_ftime(p) < cutoff for p in [*meta["covered"], *meta["labels"]]) or \
        bool(len(idx) and (idx["ftime"] < cutoff).any())


def _label_frame(parts: list[tuple[str, Any, Any]], task: str) -> pd.DataFrame:
    """The labels of ``parts`` (oldest file first), the latest per id."""
    import numpy as np
    import pandas as pd

    from ._schema import class_name

    if not parts:
        return pd.DataFrame({"id": [], "y": [], "ftime": []})
    parts = sorted(parts, key=lambda t: t[0])
    ids = np.concatenate([np.asarray(p[1]).astype(str) for p in parts])
    if task == CLASSIFIER:
        ys: Any = np.array([class_name(v) for p in parts for v in np.asarray(p[2]).tolist()], dtype=object)
    else:
        ys = np.concatenate([_numbers(np.asarray(p[2])) for p in parts]).astype(object)
    ftime = np.concatenate([np.full(len(p[1]), _ftime(p[0]), dtype=np.int64) for p in parts])
    df = pd.DataFrame({"id": ids, "y": ys, "ftime": ftime})
    return df.drop_duplicates("id", keep="last").reset_index(drop=True)


def _relabel(counts: Counts, idx: pd.DataFrame, labels: pd.DataFrame, task: str
             ) -> tuple[Counts, pd.DataFrame, set[str]]:
    """Move the quality counts of compacted rows whose labels came (or changed) now."""
    import numpy as np

    if not len(labels) or not len(idx):
        return counts, idx, set()
    lab = labels.set_index("id")["y"]
    hit = idx["id"].isin(lab.index).to_numpy()
    if not hit.any():
        return counts, idx, set()
    rows = idx[hit]
    new_y = lab.reindex(rows["id"]).to_numpy()
    w = np.searchsorted(counts.starts, rows["start"].to_numpy())
    old_has = rows["has_y"].to_numpy(dtype=bool)
    if task == CLASSIFIER:
        classes = list(counts.classes) + sorted({str(v) for v in new_y} - set(counts.classes))
        counts = _counts._with_classes(counts, classes) if classes != counts.classes else counts
        if counts.cm.shape[1] < len(classes):
            counts = dataclasses.replace(counts, cm=_counts._pad(counts.cm, (len(counts.starts), len(classes),
                                                                              len(classes))))
        code = {c: i for i, c in enumerate(classes)}
        p = np.array([code[str(v)] for v in rows["pred"]], dtype=np.int64)
        cm = counts.cm.copy()
        labelled = counts.labelled.copy()
        if old_has.any():
            oy = np.array([code[str(v)] for v in rows["y"][old_has]], dtype=np.int64)
            np.subtract.at(cm, (w[old_has], oy, p[old_has]), 1)
            np.subtract.at(labelled, w[old_has], 1)
        ny = np.array([code[str(v)] for v in new_y], dtype=np.int64)
        np.add.at(cm, (w, ny, p), 1)
        np.add.at(labelled, w, 1)
        counts = dataclasses.replace(counts, cm=cm, labelled=labelled)
    else:
        err = counts.err.copy() if counts.err.shape[1] else np.zeros((len(counts.starts), len(_counts.ERR)))
        labelled = counts.labelled.copy()
        pred = rows["pred"].to_numpy(dtype=float)

        def put(sel: np.ndarray, y: np.ndarray, sign: float) -> None:
            e = pred[sel] - y
            parts = (("n", np.ones_like(y)), ("sse", e ** 2), ("sae", np.abs(e)), ("sy", y), ("syy", y ** 2))
            for k, v in parts:
                np.add.at(err[:, _counts.ERR.index(k)], w[sel], sign * v)
            np.add.at(labelled, w[sel], int(sign))

        if old_has.any():
            put(old_has, rows["y"].to_numpy(dtype=float)[old_has], -1.0)
        ny = new_y.astype(float)
        ok = ~np.isnan(ny)
        put(ok, ny[ok], 1.0)
        m = _counts.ERR.index("max_abs")
        top = np.full(len(err), -np.inf)
        np.maximum.at(top, w[ok], np.abs(pred[ok] - ny[ok]))
        err[:, m] = np.fmax(err[:, m], np.where(np.isfinite(top), top, np.nan))
        counts = dataclasses.replace(counts, err=err, labelled=labelled)
    idx = idx.copy()
    idx.loc[hit, "y"] = new_y
    idx.loc[hit, "has_y"] = True
    return counts, idx, set(rows["id"])


def clear_caches() -> None:
    """Forget the summaries read so far."""
    with _gens_lock:
        _gens.clear()
    with _readers_lock:
        _readers.clear()


__all__ = ["AUTO_FILES", "Compacted", "compact", "view"]
