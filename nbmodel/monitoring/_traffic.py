"""Reading recorded traffic back: the read path of monitoring.

Reading prepares each batch once (numeric features cut into the reference's decile bins,
categories coded against the reference's categories, labels given later joined by id) and
caches it per process: a summary then only counts small integers, and a later read costs only
the files that are new.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..metrics import CLASSIFIER, REGRESSOR
from ..refs import Ref
from ..store import get_store
from ._schema import OTHER, Schema, class_name, prediction_reference, schema, target
from ._storage import BATCHES, FEATURE, GROUP, LABELS, MonitorRun, monitor_run
from ._windows import parse_since

#: Rows of batch files prepared together: whole columns at a time, with bounded memory.
PART_ROWS = 2_000_000

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np
    import pandas as pd


@dataclass
class Traffic:
    """Everything recorded for one version, as flat arrays (row order = file order)."""

    schema: Schema
    ts: np.ndarray                 # int64 ms
    codes: np.ndarray              # (features, n) int16 bin / category codes; n_bins[f] = missing
    features: list[str]
    n_bins: list[int]                # bins per feature (without the missing code)
    pred: np.ndarray               # classifier: class codes (int32); regressor: float64
    pred_bin: np.ndarray | None    # regressor: bin of each prediction against the target
    y: np.ndarray                  # like pred; only meaningful where has_y
    has_y: np.ndarray
    lat: np.ndarray | None
    classes: list[str]
    task: str
    files: int
    conf: np.ndarray | None = None   # the predicted class's probability (float32, NaN: none)

    def __len__(self) -> int:
        return len(self.ts)


class _Reader:
    """Per version: the files read so far and their prepared arrays."""

    def __init__(self, sch: Schema, *, skip: frozenset[str] = frozenset(),
                 skip_labels: frozenset[str] = frozenset(),
                 pending: tuple[Any, Any] | None = None) -> None:
        self.schema = sch
        # files a compaction already summarised, and labels it kept (see _compact)
        self.skip = skip
        self.skip_labels = skip_labels
        self.lock = threading.Lock()
        self.files: list[str] = []
        self.file_rows: list[int] = []
        self.seen: set[str] = set()
        self.parts: list[dict[str, Any]] = []
        self.label_files: set[str] = set()
        self.label_parts: list[tuple[str, Any, Any]] = []
        if pending is not None and len(pending[0]):
            self.label_parts.append(("", pending[0], pending[1]))  # older than any label file
        self.classes: list[str] = []
        self.class_index: dict[str, int] = {}
        self.task: str | None = sch.task
        self.joined: tuple[int, int, Traffic] | None = None
        prof = sch.profile or {}
        self.features = list((prof.get("features") or {}).keys())
        self.cat_index: dict[str, dict[str, int]] = {}
        self.n_bins: list[int] = []
        for f in self.features:
            st = prof["features"][f]
            if st.get("kind") == "categorical":
                cats = list(st["freq"])
                if OTHER not in cats:
                    cats.append(OTHER)
                self.cat_index[f] = {c: i for i, c in enumerate(cats)}
                self.n_bins.append(len(cats))
            else:
                self.n_bins.append(len(st["edges"]) + 1)
        tstats = prof.get("target_stats") or {}
        if tstats.get("kind") == "categorical" and self.task != REGRESSOR:
            for c in tstats["freq"]:
                if c != OTHER:
                    self._class(class_name(c))

    def _class(self, c: str) -> int:
        i = self.class_index.get(c)
        if i is None:
            i = self.class_index[c] = len(self.classes)
            self.classes.append(c)
        return i

    def _class_codes(self, values: np.ndarray) -> np.ndarray:
        import numpy as np

        if values.dtype.kind == "f" and len(values) and np.all(np.isfinite(values)) \
                and np.all(np.mod(values, 1) == 0):
            values = values.astype(np.int64)  # 2.0 is the class 2 (class_name): hash integers
        inv, uniq = _factorize(values if values.dtype.kind in "iub" else values.astype(str))
        lookup = np.array([self._class(class_name(u)) for u in uniq], dtype=np.int32)
        return lookup[inv]

    def _guess_task(self, pred: np.ndarray) -> str:
        import numpy as np

        if pred.dtype.kind in "OUSb":
            return CLASSIFIER
        if pred.dtype.kind in "iu":
            return CLASSIFIER
        if pred.dtype.kind == "f" and np.all(np.mod(pred[np.isfinite(pred)], 1) == 0) \
                and len(np.unique(pred)) <= 20:
            return CLASSIFIER
        return REGRESSOR

    def _prepare(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Cut one part (the columns of one or more batch files, see :func:`_columns`) into
        the reference's bins and codes, a whole column at a time."""
        import numpy as np

        n = len(raw["ts"])
        prof = self.schema.profile or {}
        feats = prof.get("features") or {}
        # one contiguous row per feature; a missing value takes the slot after the last bin
        codes = np.empty((len(self.features), n), dtype=np.int16)
        codes[:] = np.asarray(self.n_bins, dtype=np.int16)[:, None]
        for k, f in enumerate(self.features):
            col = raw.get(FEATURE + f)
            if col is None:
                continue
            st = feats[f]
            chunks = [col] if isinstance(col, np.ndarray) else \
                [c.to_numpy(zero_copy_only=False) for c in col.chunks]
            numeric = all(c.dtype.kind in "fiub" for c in chunks)
            if st.get("kind") == "categorical":
                index = self.cat_index[f]
                other = index[OTHER]
                if numeric:
                    col = np.concatenate(chunks).astype(str) if chunks else np.zeros(0, dtype=str)
                inv, uniq = _factorize(col)
                lookup = np.array([self.n_bins[k] if u in ("", "nan", "None") or u is None
                                   else index.get(str(u), other) for u in uniq.tolist()], dtype=np.int16)
                codes[k] = lookup[inv] if len(lookup) else self.n_bins[k]
            elif numeric:
                edges = np.asarray(st["edges"], dtype=np.float64)
                at = 0
                for x in chunks:  # each chunk binned where it lies (a mapped file): no copy
                    codes[k, at:at + len(x)] = bin_codes(x.astype(np.float64, copy=False), edges,
                                                         self.n_bins[k])
                    at += len(x)
        pred = raw["pred"]
        if self.task is None:
            self.task = self._guess_task(pred)
        has_y = raw["has_y"].astype(bool) if raw.get("has_y") is not None else np.zeros(n, dtype=bool)
        out: dict[str, Any] = {"ts": raw["ts"].astype(np.int64), "codes": codes, "has_y": has_y,
                               "ids": raw.get("ids"), "lat": raw.get("lat"), "conf": raw.get("conf")}
        if self.task == CLASSIFIER:
            out["pred"] = self._class_codes(pred)
            y = np.full(n, -1, dtype=np.int32)
            if has_y.any():
                y[has_y] = self._class_codes(raw["y"][has_y])
            out["y"] = y
            out["pred_bin"] = None
        else:
            pred = pred.astype(np.float64)
            out["pred"] = pred
            y = np.full(n, np.nan)
            if has_y.any():
                y[has_y] = _numbers(raw["y"][has_y])
            out["y"] = y
            out["has_y"] = has_y & ~np.isnan(y)  # a label that is not a number is no label
            tstats = prediction_reference(prof, self.task)
            if tstats.get("kind") == "numeric":
                edges = np.asarray(tstats["edges"])
                out["pred_bin"] = np.searchsorted(edges, pred, side="right").astype(np.int16)
            else:
                out["pred_bin"] = None
        return out

    def refresh(self, run: MonitorRun) -> Traffic:

        with self.lock:
            folder = f"{BATCHES}/v{self.schema.version}"
            new = [p for p in run.list(folder) if p not in self.seen and p not in self.skip]
            for paths, cols, rows in read_parts(run, new):
                self.parts.append(self._prepare(cols))
                self.file_rows.extend(rows)
                self.files.extend(paths)
                self.seen.update(paths)
            for path in run.list(LABELS):
                if path not in self.label_files and path not in self.skip_labels:
                    raw = run.read(path)
                    self.label_files.add(path)
                    self.label_parts.append((path, raw["ids"], raw["y"]))
            stamp = (len(self.files), len(self.label_files))
            if self.joined is not None and self.joined[:2] == stamp:
                return self.joined[2]
            traffic = self._join()
            self.joined = (*stamp, traffic)
            return traffic

    def _merge(self) -> None:
        """Fold every part read so far into one, so that a new batch costs one concatenation
        of the arrays rather than one per file ever read."""
        import numpy as np

        parts = self.parts
        if len(parts) < 2:
            return
        n = [len(p["ts"]) for p in parts]
        merged: dict[str, Any] = {
            k: np.concatenate([p[k] for p in parts]) for k in ("ts", "pred", "y", "has_y")}
        merged["codes"] = np.concatenate([p["codes"] for p in parts], axis=1)
        merged["pred_bin"] = np.concatenate([p["pred_bin"] for p in parts]) \
            if all(p["pred_bin"] is not None for p in parts) else None
        for key in ("lat", "conf"):
            merged[key] = np.concatenate([p[key] if p[key] is not None else np.full(k, np.nan, np.float32)
                                          for p, k in zip(parts, n)]) \
                if any(p[key] is not None for p in parts) else None
        merged["ids"] = np.concatenate([p["ids"] if p["ids"] is not None else np.full(k, "", dtype=str)
                                        for p, k in zip(parts, n)]) \
            if any(p["ids"] is not None for p in parts) else None
        self.parts = [merged]

    def _join(self) -> Traffic:
        import numpy as np

        self._merge()
        parts = self.parts
        task = self.task or CLASSIFIER

        def cat(key: str, empty: Any) -> Any:
            if len(parts) == 1:
                return parts[0][key]
            return np.concatenate([p[key] for p in parts]) if parts else empty

        ts = cat("ts", np.zeros(0, dtype=np.int64))
        codes = parts[0]["codes"] if parts else np.zeros((len(self.features), 0), dtype=np.int16)
        pred = cat("pred", np.zeros(0, dtype=np.int32 if task == CLASSIFIER else np.float64))
        y = cat("y", np.zeros(0, dtype=np.int32 if task == CLASSIFIER else np.float64)).copy()
        has_y = cat("has_y", np.zeros(0, dtype=bool)).copy()
        pred_bin = np.concatenate([p["pred_bin"] for p in parts]) \
            if parts and all(p["pred_bin"] is not None for p in parts) else None
        lat = parts[0]["lat"] if parts else None
        conf = parts[0]["conf"] if parts else None
        if self.label_parts and any(p["ids"] is not None for p in parts):
            y, has_y = self._apply_labels(parts, y, has_y, task)
        return Traffic(self.schema, ts, codes, list(self.features), list(self.n_bins), pred, pred_bin,
                       y, has_y, lat, list(self.classes), task, len(self.files), conf)

    def _apply_labels(self, parts: list[dict[str, Any]], y: Any, has_y: Any, task: str) -> tuple[Any, Any]:
        import numpy as np
        import pandas as pd

        ids = np.concatenate([p["ids"] if p["ids"] is not None else np.full(len(p["ts"]), "", dtype=str)
                              for p in parts])
        label_ids = np.concatenate([lp[1] for lp in sorted(self.label_parts, key=lambda t: t[0])])
        label_y = np.concatenate([np.asarray(lp[2]).astype(str) if task == CLASSIFIER else
                                  _numbers(np.asarray(lp[2]))
                                  for lp in sorted(self.label_parts, key=lambda t: t[0])])
        index = pd.Index(label_ids)
        keep = ~index.duplicated(keep="last")  # a later label corrects an earlier one
        index = index[keep]
        label_y = label_y[keep]
        pos = index.get_indexer(ids)
        hit = (pos >= 0) & (ids != "")
        if not hit.any():
            return y, has_y
        if task == CLASSIFIER:
            y = y.astype(np.int32)
            y[hit] = self._class_codes(label_y[pos[hit]])
        else:
            y = y.astype(np.float64)
            values = label_y[pos[hit]]
            y[hit] = values
            hit[hit] = ~np.isnan(values)  # a label that is not a number is no label
        has_y = has_y | hit
        return y, has_y


def _columns(raw: dict[str, Any]) -> dict[str, Any]:
    """A batch file of an earlier version (``.npz``: 2-D ``num``/``cat`` with their column
    names) in the column layout of the Arrow files."""
    out = {k: v for k, v in raw.items() if k not in ("num", "num_cols", "cat", "cat_cols")}
    for key, names in (("num", "num_cols"), ("cat", "cat_cols")):
        for j, c in enumerate(raw.get(names, [])):
            out[FEATURE + str(c)] = raw[key][:, j]
    return out


def _table_columns(table: Any) -> dict[str, Any]:
    """The columns of an Arrow table: features left to Arrow (binned chunk by chunk, or
    encoded by Arrow: see :meth:`_Reader._prepare`), the rest as numpy arrays."""
    import numpy as np

    out: dict[str, Any] = {}
    for name in table.column_names:
        col = table.column(name)
        if name.startswith(FEATURE):
            out[name] = col  # binned chunk by chunk, or encoded by Arrow (see _prepare)
        else:  # a copy: a kept view would keep the mapped file open for the life of the cache
            out[name] = np.array(col.to_numpy(), copy=True) if col.num_chunks == 1 else col.to_numpy()
    return out


def read_parts(run: MonitorRun, paths: list[str]) -> Iterator[tuple[list[str], dict[str, Any], list[int]]]:
    """The columns of ``paths``, a part at a time: consecutive Arrow files with the same
    columns (up to :data:`PART_ROWS` rows) become one part, each ``.npz`` file of an earlier
    version one part of its own.

    Args:
        run: the monitoring run.
        paths: batch files, oldest first.

    Yields:
        ``(the part's files, its columns, rows per file)``.
    """
    import pyarrow as pa

    group: list[str] = []
    tables: list[Any] = []

    def flush() -> Iterator[tuple[list[str], dict[str, Any], list[int]]]:
        if group:
            table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
            yield list(group), _table_columns(table), [t.num_rows for t in tables]
            group.clear()
            tables.clear()

    rows = 0
    for path in paths:
        if not path.endswith(".arrow"):
            yield from flush()
            raw = _columns(run.read(path))
            yield [path], raw, [len(raw["ts"])]
            continue
        table = run.read_table(path)
        if tables and (table.schema != tables[0].schema or rows + table.num_rows > PART_ROWS):
            yield from flush()
            rows = 0
        group.append(path)
        tables.append(table)
        rows += table.num_rows
    yield from flush()


def bin_codes(x: np.ndarray, edges: np.ndarray, missing: int) -> np.ndarray:
    """The reference bin of each value (``searchsorted(edges, x, side="right")``), ``missing``
    for NaN. With the few edges of a profile, counting the edges each value reaches in whole
    vectorised passes is several times faster than a binary search per value.

    Args:
        x: float64 values.
        edges: the bin edges, increasing.
        missing: the code of a missing value.

    Returns:
        int16 codes.

    Example:
        >>> import numpy as np
        >>> bin_codes(np.array([0.5, 1.0, np.nan]), np.array([1.0, 2.0]), 3).tolist()
        [0, 1, 3]
    """
    import numpy as np

    if len(edges) > 60:
        b = np.searchsorted(edges, x, side="right").astype(np.int16)
    else:
        acc = np.zeros(len(x), dtype=np.int8)
        hit = np.empty(len(x), dtype=bool)
        for e in edges:
            np.greater_equal(x, e, out=hit)
            acc += hit.view(np.int8)
        b = acc.astype(np.int16)
    b[np.isnan(x)] = missing
    return b


def _factorize(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Codes and distinct values, by hashing (sorting strings, as np.unique does, costs more);
    an Arrow column is encoded by Arrow itself, without making Python strings."""
    import numpy as np
    import pandas as pd

    if not isinstance(values, np.ndarray):
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        enc = pc.dictionary_encode(arr.fill_null(""))
        return (np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64),
                np.asarray(enc.dictionary.to_numpy(zero_copy_only=False), dtype=object))

    codes, uniq = pd.factorize(values, use_na_sentinel=False)
    return np.asarray(codes, dtype=np.int64), np.asarray(uniq)


def _numbers(values: np.ndarray) -> np.ndarray:
    """Regression labels as floats; NaN for any that is not a number."""
    import numpy as np
    import pandas as pd

    if values.dtype.kind in "iufb":
        return values.astype(np.float64)
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)


_readers: dict[tuple[str, str, int], _Reader] = {}
_readers_lock = threading.Lock()


def traffic(name: str, version: int) -> Traffic:
    """All recorded traffic of ``name/version``, prepared; only files new since the last call
    are read.

    Args:
        name: the model.
        version: the version number.

    Returns:
        The :class:`Traffic`, labels given later joined in.

    Example:
        >>> len(traffic("iris", 1))  # doctest: +SKIP
        360
    """
    store = get_store()
    key = (store.uri, name, int(version))
    with _readers_lock:
        reader = _readers.get(key)
        if reader is None:
            reader = _readers[key] = _Reader(schema(name, version))
    return reader.refresh(monitor_run(name, create=False))


def recorded(ref: str | Ref, *, since: Any = None, labelled: bool = False) -> pd.DataFrame:
    """The recorded traffic of a version as a DataFrame, oldest first: the features, then
    ``timestamp``, ``y_pred``, ``y_true`` (None where unknown, labels given later included),
    ``id`` and ``latency_ms``.

    Args:
        ref: the model or version, as for :func:`~nbmodel.monitoring.record`.
        since: only rows from this time (a date, or ``2d`` ago).
        labelled: only rows whose true value is known.

    Returns:
        A pandas DataFrame.

    Raises:
        BadData: a ``since`` that is not a time.

    Example:
        >>> df = nbmodel.monitoring.recorded("iris", since="2d", labelled=True)  # doctest: +SKIP
        >>> clf.fit(df[features], df["y_true"])  # retrain on recent data  # doctest: +SKIP
    """
    import numpy as np
    import pandas as pd

    name, version = target(ref)
    sch = schema(name, version)
    tr = traffic(name, version)
    reader = _readers[(get_store().uri, name, int(version))]
    run = monitor_run(name, create=False)
    frames = []
    groups: list[str] = []
    for _, raw, _ in read_parts(run, reader.files[: tr.files]):
        cols: dict[str, Any] = {}
        for k, v in raw.items():
            if k.startswith(FEATURE):
                cols[k[len(FEATURE):]] = v.to_numpy() if not isinstance(v, np.ndarray) else v
        df = pd.DataFrame(cols)
        if sch.columns:
            df = df[[c for c in sch.columns if c in df.columns]]
        for k, v in raw.items():
            if k.startswith(GROUP):
                df[k[len(GROUP):]] = v
                if k[len(GROUP):] not in groups:
                    groups.append(k[len(GROUP):])
        df["timestamp"] = pd.to_datetime(raw["ts"], unit="ms", utc=True)
        df["y_pred"] = raw["pred"]
        df["id"] = raw["ids"] if "ids" in raw else None
        df["latency_ms"] = raw["lat"] if "lat" in raw else np.nan
        frames.append(df)
    columns = [*(sch.columns or []), *groups, "timestamp", "y_pred", "y_true", "id", "latency_ms"]
    if not frames:
        return pd.DataFrame(columns=columns)
    df = pd.concat(frames, ignore_index=True)
    if tr.task == CLASSIFIER:
        classes = np.array(tr.classes + [""], dtype=object)
        names = classes[np.where(tr.has_y, tr.y, len(tr.classes))]
        kind = df["y_pred"].dtype.kind
        values: list[Any]
        if kind in "iu":
            values = [int(v) if v != "" else None for v in names]
        elif kind == "f":
            values = [float(v) if v != "" else None for v in names]
        else:
            values = [v if v != "" else None for v in names]
        df["y_true"] = pd.Series(values, dtype=object)
    else:
        df["y_true"] = np.where(tr.has_y, tr.y, np.nan)
    df = df[columns].sort_values("timestamp", kind="stable")
    if since is not None:
        df = df[df["timestamp"] >= pd.Timestamp(parse_since(since), unit="ms", tz="UTC")]
    if labelled:
        df = df[df["y_true"].notna()]
    return df.reset_index(drop=True)


def clear_caches() -> None:
    """Forget the traffic read so far (the files stay in the store)."""
    with _readers_lock:
        _readers.clear()
