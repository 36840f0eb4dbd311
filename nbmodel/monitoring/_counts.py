"""Window summaries: everything a monitoring view needs, as counts per base window.

A :class:`Counts` holds, for each base window (an hour by default) of one version's traffic:
the rows per feature and reference bin (so PSI and chi-square are exact, KS is measured at
the reference's cut points with a stated bound), the predictions per class or reference bin,
confusion counts or regression error sums of the labelled rows, a latency histogram, and the
rows with a probability and the sum of their confidences per predicted class and confidence bin
(for the estimated accuracy).
Counts add up, so the summaries of two sets of batches merge into the summary of both, and a
view of any width that is a multiple of the base width is a sum of base windows.

Stored as one Parquet table, a row per base window and a fixed-size list column per count
array, with what the arrays mean in the file's metadata (see :func:`to_parquet`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import metrics as M
from ..metrics import CLASSIFIER
from . import _cbpe
from ._stats import (
    QUALITY,
    Summary,
    drift_from_counts,
    feature_counts,
    prediction_counts,
    prediction_drift,
)
from ._windows import _AUTO, MAX_AUTO_WINDOWS, MAX_WINDOWS, WindowSpec, parse_window

if TYPE_CHECKING:
    import numpy as np

    from ._schema import Schema
    from ._traffic import Traffic

#: Latency histogram: bins growing by 4 % from 0.01 ms to 100 s (percentiles read from it are
#: within 2 % of the exact ones), plus one below and one above.
LAT_BINS = 410
ERR = ("n", "sse", "sae", "max_abs", "sy", "syy")


def lat_edges() -> np.ndarray:
    import numpy as np

    return np.geomspace(0.01, 100_000.0, LAT_BINS - 1)


@dataclass
class Counts:
    """Summaries of one version's traffic per base window (see the module docstring)."""

    task: str
    width_ms: int
    features: list[str]
    n_bins: list[int]
    classes: list[str]
    starts: np.ndarray        # (W,) int64 ms, increasing
    volume: np.ndarray        # (W,)
    bins: np.ndarray          # (W, F, S)
    pred: np.ndarray          # (W, P)
    pred_sum: np.ndarray      # (W,) float
    lat: np.ndarray           # (W, L): L is 0 without latencies
    labelled: np.ndarray      # (W,)
    cm: np.ndarray            # (W, C, C) classifier, else (W, 0, 0)
    err: np.ndarray           # (W, 6) regressor error sums (ERR), else (W, 0)
    conf: np.ndarray          # (W, C, 2 Q) float: rows, then summed confidence (Q is 0 without probabilities)

    @property
    def rows(self) -> int:
        return int(self.volume.sum())

    def take(self, sel: Any) -> Counts:
        """The base windows ``sel`` picks (a mask or indices)."""
        return dataclasses.replace(self, **{k: getattr(self, k)[sel] for k in _ARRAYS})


_ARRAYS = ("starts", "volume", "bins", "pred", "pred_sum", "lat", "labelled", "cm", "err", "conf")


def empty(sch: Schema, features: list[str], n_bins: list[int], task: str, width_ms: int) -> Counts:
    """No traffic yet."""
    import numpy as np

    S = max(n_bins, default=0) + 1
    z = np.zeros(0, dtype=np.int64)
    return Counts(task, width_ms, list(features), list(n_bins), [], z, z,
                  np.zeros((0, len(features), S), np.int64),
                  np.zeros((0, 0), np.int64), np.zeros(0), np.zeros((0, 0), np.int64), z,
                  np.zeros((0, 0, 0), np.int64), np.zeros((0, 0)), np.zeros((0, 0, 0)))


def base_windows(ts: np.ndarray, width_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """The base window of each row and the windows' starts."""
    import numpy as np

    if not len(ts):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    k = ts // width_ms
    k0 = int(k.min())
    rel = k - k0
    span = int(rel.max()) + 1
    if span > 4 * len(ts) + 1_000_000:  # sparse windows: sort instead of a table per slot
        keys, win = np.unique(k, return_inverse=True)
        return win.reshape(-1).astype(np.int64), keys.astype(np.int64) * width_ms
    slots = np.flatnonzero(np.bincount(rel, minlength=span))
    remap = np.zeros(span, dtype=np.int64)
    remap[slots] = np.arange(len(slots))
    return remap[rel], (slots + k0).astype(np.int64) * width_ms


def from_traffic(tr: Traffic, width_ms: int) -> Counts:
    """Count ``tr`` per base window of ``width_ms``.

    Args:
        tr: prepared traffic (labels joined).
        width_ms: the base window's width.

    Returns:
        The :class:`Counts`.
    """
    import numpy as np

    win, starts = base_windows(tr.ts, width_ms)
    W = len(starts)
    volume = np.bincount(win, minlength=W).astype(np.int64)
    lab = tr.has_y.astype(bool)
    labelled = np.bincount(win[lab], minlength=W).astype(np.int64)
    if tr.task == CLASSIFIER:
        C = len(tr.classes)
        cm = M.confusion(tr.y[lab], tr.pred[lab], max(C, 1), batch=win[lab], n_batches=W)[:, :C, :C]
        err = np.zeros((W, 0))
        pred_sum: Any = np.zeros(W)
    else:
        cm = np.zeros((W, 0, 0), dtype=np.int64)
        sums = M.error_sums(tr.y[lab], tr.pred[lab], batch=win[lab], n_batches=W)
        err = np.stack([np.asarray(sums[k], dtype=float) for k in ERR], axis=1)
        pred_sum = np.bincount(win, tr.pred, minlength=W)
    lat = np.zeros((W, 0), dtype=np.int64)
    if tr.lat is not None and np.isfinite(tr.lat).any():
        ok = np.isfinite(tr.lat)
        b = np.searchsorted(lat_edges(), tr.lat[ok], side="right")
        lat = np.bincount(win[ok] * LAT_BINS + b, minlength=W * LAT_BINS).reshape(W, LAT_BINS)
    conf = _cbpe.conf_counts(tr, win, W)
    if tr.task == CLASSIFIER:
        conf = conf[:, : len(tr.classes)]
    return Counts(tr.task, width_ms, list(tr.features), list(tr.n_bins), list(tr.classes), starts, volume,
                  feature_counts(tr, win, W), prediction_counts(tr, win, W)[:, : len(tr.classes)]
                  if tr.task == CLASSIFIER else prediction_counts(tr, win, W),
                  pred_sum, lat, labelled, cm, err, conf)


def _with_classes(c: Counts, classes: list[str]) -> Counts:
    """``c`` indexed by ``classes`` (a superset of its own, in another order)."""
    import numpy as np

    if c.classes == classes or c.task != CLASSIFIER:
        return c
    W, C = len(c.starts), len(classes)
    pos = np.array([classes.index(k) for k in c.classes], dtype=np.int64)
    pred = np.zeros((W, C), dtype=np.int64)
    pred[:, pos] = c.pred
    cm = np.zeros((W, C, C), dtype=np.int64)
    cm[:, pos[:, None], pos[None, :]] = c.cm
    Q = c.conf.shape[2] if c.conf.ndim == 3 else 0
    conf = np.zeros((W, C, Q), dtype=c.conf.dtype)
    if Q:
        conf[:, pos, :] = c.conf
    return dataclasses.replace(c, classes=list(classes), pred=pred, cm=cm, conf=conf)


def _pad(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    import numpy as np

    if a.shape == shape:
        return a
    out = np.zeros(shape, dtype=a.dtype)
    out[tuple(slice(0, k) for k in a.shape)] = a
    return out


def merge(a: Counts, b: Counts) -> Counts:
    """The summaries of both (counts added window by window).

    Args:
        a, b: counts of the same version and base width.

    Returns:
        Their sum.
    """
    import numpy as np

    if not len(b.starts):
        return a
    if not len(a.starts):
        return b
    classes = list(a.classes) + [k for k in b.classes if k not in a.classes]
    a, b = _with_classes(a, classes), _with_classes(b, classes)
    starts = np.union1d(a.starts, b.starts)
    ia = np.searchsorted(starts, a.starts)
    ib = np.searchsorted(starts, b.starts)
    W = len(starts)
    out: dict[str, Any] = {"starts": starts}
    for k in _ARRAYS[1:]:
        x, y = getattr(a, k), getattr(b, k)
        tail = tuple(max(p, q) for p, q in zip(x.shape[1:], y.shape[1:]))
        x, y = _pad(x, (len(ia), *tail)), _pad(y, (len(ib), *tail))
        acc = np.zeros((W, *tail), dtype=np.result_type(x.dtype, y.dtype))
        acc[ia] += x
        if k == "err" and tail and tail[0]:
            m = ERR.index("max_abs")
            mx = np.full(W, np.nan)
            mx[ia] = x[:, m]
            mx[ib] = np.fmax(mx[ib], y[:, m])
            acc[ib] += y
            acc[:, m] = mx
        else:
            acc[ib] += y
        out[k] = acc
    return dataclasses.replace(a, classes=classes, **out)


# -- Parquet -----------------------------------------------------------------------------------
def to_parquet(c: Counts, meta: dict[str, Any]) -> bytes:
    """One Parquet file: a row per base window, a fixed-size list column per count array,
    the shapes and ``meta`` in the file's metadata.

    Args:
        c: the counts.
        meta: what else the file should carry (JSON-able).

    Returns:
        The file's bytes (zstd-compressed).
    """
    import io

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    W = len(c.starts)
    cols: dict[str, Any] = {"start": pa.array(c.starts, pa.int64())}
    shapes = {}
    for k in _ARRAYS[1:]:
        a = np.ascontiguousarray(getattr(c, k))
        shapes[k] = list(a.shape[1:])
        size = int(np.prod(a.shape[1:])) if a.ndim > 1 else 0
        if a.ndim == 1:
            cols[k] = pa.array(a)
        elif size:
            cols[k] = pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), size)
    info = {**meta, "task": c.task, "width_ms": c.width_ms, "features": c.features, "n_bins": c.n_bins,
            "classes": c.classes, "shapes": shapes, "windows": W}
    table = pa.table(cols).replace_schema_metadata({"nbmodel": json.dumps(info)})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def from_parquet(data: bytes) -> tuple[Counts, dict[str, Any]]:
    """Read :func:`to_parquet`'s file back.

    Args:
        data: the file's bytes.

    Returns:
        ``(counts, metadata)``.
    """
    import io

    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    info = json.loads(table.schema.metadata[b"nbmodel"])
    W = info["windows"]
    arrays: dict[str, Any] = {"starts": table.column("start").to_numpy()}
    for k in _ARRAYS[1:]:
        shape = tuple(info["shapes"][k])
        if k in table.column_names:
            col = table.column(k).combine_chunks()
            values = col.to_numpy() if not shape else col.values.to_numpy(zero_copy_only=False)
            arrays[k] = np.asarray(values).reshape((W, *shape))
        else:
            dtype = float if k in ("pred_sum", "err", "conf") else np.int64
            arrays[k] = np.zeros((W, *shape), dtype=dtype)
    arrays["conf"] = _cbpe.with_sums(arrays["conf"])  # files from before the sums: counts only
    c = Counts(info["task"], info["width_ms"], info["features"], info["n_bins"], info["classes"], **arrays)
    return c, info


# -- a Summary from counts ---------------------------------------------------------------------
def fits(c: Counts, spec: WindowSpec | None) -> bool:
    """Whether windows of ``spec`` are sums of base windows (auto, or a multiple of the width)."""
    return spec is None or (spec.width_ms is not None and spec.width_ms % c.width_ms == 0)


def auto(c: Counts) -> WindowSpec:
    """The narrowest of the automatic widths, a multiple of the base width, that cuts at most
    30 windows."""
    spec = None
    for text in _AUTO:
        spec = parse_window(text)
        assert spec is not None and spec.width_ms is not None
        if spec.width_ms % c.width_ms:
            continue
        if not len(c.starts) or len(set((c.starts // spec.width_ms).tolist())) <= MAX_AUTO_WINDOWS:
            return spec
    return spec  # type: ignore[return-value]


def summarise_counts(c: Counts, sch: Schema, spec: WindowSpec | None, *, since_ms: int | None = None,
                     until_ms: int | None = None, calibration: Any = None) -> Summary:
    """The same :class:`~nbmodel.monitoring.Summary` as a raw read gives, from counts.

    ``since``/``until`` keep the base windows that overlap the span. Latency percentiles come
    from the histogram (within 2 %); everything else is exact.

    Args:
        c: the version's counts.
        sch: its schema.
        spec: the window (auto or a multiple of ``c.width_ms``; see :func:`fits`).
        since_ms, until_ms: the span.
        calibration: the version's :class:`~nbmodel.monitoring._cbpe.Calibration`, if any.

    Returns:
        The summary.

    Raises:
        BadData: more than :data:`~nbmodel.monitoring._windows.MAX_WINDOWS` windows.
    """
    import numpy as np

    from ..errors import BadData

    sel = np.ones(len(c.starts), dtype=bool)
    if since_ms is not None:
        sel &= c.starts + c.width_ms > since_ms
    if until_ms is not None:
        sel &= c.starts < until_ms
    if not sel.all():
        c = c.take(sel)
    if spec is None:
        spec = auto(c)
    assert spec.width_ms is not None
    keys, group = np.unique(c.starts // spec.width_ms, return_inverse=True)
    group = group.reshape(-1)
    W = len(keys)
    if W > MAX_WINDOWS:
        raise BadData(f"--window {spec.text} gives {W:,} windows; choose a wider one "
                      f"or --since to look at fewer (at most {MAX_WINDOWS})")
    starts = keys.astype(np.int64) * spec.width_ms

    def add(a: np.ndarray) -> np.ndarray:
        out = np.zeros((W, *a.shape[1:]), dtype=a.dtype)
        np.add.at(out, group, a)
        return out

    volume = add(c.volume).astype(float)
    metrics: dict[str, np.ndarray] = {"volume": volume}
    if c.lat.shape[1]:
        metrics.update(_latency(add(c.lat)))
    labelled = add(c.labelled).astype(float)
    metrics["labelled"] = labelled
    if c.task == CLASSIFIER:
        scores = M.classification(add(c.cm)) if len(c.classes) else \
            {k: np.full(W, np.nan) for k in QUALITY[CLASSIFIER]}
    else:
        err = add(c.err) if c.err.shape[1] else np.zeros((W, len(ERR)))
        if c.err.shape[1]:
            mx = np.full(W, -np.inf)
            np.fmax.at(mx, group, np.nan_to_num(c.err[:, ERR.index("max_abs")], nan=-np.inf))
            err[:, ERR.index("max_abs")] = np.where(np.isfinite(mx), mx, np.nan)
        scores = M.regression({k: err[:, i] for i, k in enumerate(ERR)})
    metrics.update({k: np.asarray(scores[k], dtype=float) for k in QUALITY[c.task]})
    if c.task != CLASSIFIER:
        metrics["prediction_mean"] = add(c.pred_sum) / np.maximum(volume, 1)
    prof = sch.profile or {}
    drift = drift_from_counts(prof, c.features, c.n_bins, add(c.bins))
    pred_dist, metrics["prediction_psi"] = prediction_drift(c.task, c.classes, prof, add(c.pred), volume)
    if c.conf.ndim == 3 and c.conf.shape[2]:
        metrics.update(_cbpe.estimate(add(c.conf), c.classes, calibration))
    notes = []
    if not sch.has_reference:
        notes.append(f"no drift: {sch.ref} has no training reference; commit with "
                     "--train X_train y_train (nbmodel.commit(..., train=(X_train, y_train))) to add one")
    return Summary(sch.ref, c.task, spec, starts, starts + spec.width_ms, metrics, list(c.features),
                   drift.kinds, drift.psi, drift.ks, drift.pvalue, drift.psi_all, list(c.classes), pred_dist,
                   sch.has_reference, int(volume.sum()), int(labelled.sum()), notes, drift.ks_bound)


def _latency(hist: np.ndarray) -> dict[str, np.ndarray]:
    """p50 and p95 from latency histograms: the geometric middle of the bin holding them."""
    import numpy as np

    edges = lat_edges()
    mids = np.r_[edges[0], np.sqrt(edges[:-1] * edges[1:]), edges[-1]]
    W = hist.shape[0]
    out = {"latency_p50": np.full(W, np.nan), "latency_p95": np.full(W, np.nan)}
    cum = np.cumsum(hist, axis=1)
    tot = cum[:, -1]
    for key, q in (("latency_p50", 0.5), ("latency_p95", 0.95)):
        has = tot > 0
        pos = np.array([np.searchsorted(cum[w], q * tot[w]) for w in np.flatnonzero(has)], dtype=np.int64)
        out[key][has] = mids[np.minimum(pos, len(mids) - 1)]
    return out
