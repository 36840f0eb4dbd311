"""Windows, metrics and drift, computed by counting.

Every statistic here is a ``numpy.bincount`` over small integer codes: the window of each row,
the reference bin of each feature value, the class of each prediction. No loop runs per row;
the loops run per feature or per window.

Drift against the training reference (the decile bins and category frequencies saved at
commit):

- **PSI** for every feature: ``sum((cur - ref) * ln(cur / ref))`` over the reference bins,
  each fraction floored at 1e-4. Rule of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major.
- **KS** for numeric features: the largest gap between the reference's and the window's
  cumulative distributions, measured at the reference's decile cut points (so it is a lower
  bound of the exact statistic); p-value from the asymptotic two-sample distribution.
- **chi-square** for categorical features: observed counts against the reference's
  frequencies (categories never seen in training are pooled as ``__other__``).
- **prediction drift**: PSI of the predictions against the training target's distribution.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import BadData
from ..evaluate import CLASSIFIER

if TYPE_CHECKING:
    import numpy as np

    from ._record import Traffic

EPS = 1e-4
PSI_MODERATE = 0.1
PSI_MAJOR = 0.25
_UNITS = {"s": 1_000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_AUTO = ("1m", "5m", "15m", "1h", "6h", "1d", "1w")
MAX_AUTO_WINDOWS = 30
MAX_WINDOWS = 5000


@dataclass(frozen=True)
class WindowSpec:
    """A time width (``1h``, ``1d``) or a number of rows per window (``500``)."""

    text: str
    width_ms: int | None = None
    rows: int | None = None

    def label(self, start_ms: int) -> str:
        t = _dt.datetime.fromtimestamp(start_ms / 1000, _dt.UTC)
        if self.width_ms is not None and self.width_ms % 86_400_000 == 0:
            return f"{t:%Y-%m-%d}"
        if self.width_ms is not None and self.width_ms % 60_000 == 0:
            return f"{t:%Y-%m-%d %H:%M}"
        return f"{t:%Y-%m-%d %H:%M:%S}"


def parse_window(text: str | int | None) -> WindowSpec | None:
    """``1h``, ``30m``, ``1d``, ``2w``, a number of rows (``500``), or None/``auto``."""
    if text is None or str(text).strip().lower() in ("", "auto"):
        return None
    s = str(text).strip().lower()
    if s.isdigit():
        rows = int(s)
        if rows < 1:
            raise BadData("--window in rows must be at least 1")
        return WindowSpec(s, rows=rows)
    m = re.fullmatch(r"(\d+)\s*(s|m|min|h|d|w)", s)
    if not m or int(m.group(1)) < 1:
        raise BadData(f"--window {text!r} is not a width: use 15m, 1h, 6h, 1d, 1w (time) "
                      "or a number of rows such as 500")
    return WindowSpec(f"{int(m.group(1))}{m.group(2) if m.group(2) != 'min' else 'm'}",
                      width_ms=int(m.group(1)) * _UNITS[m.group(2)])


def parse_since(text: Any, *, now: _dt.datetime | None = None) -> int:
    """Milliseconds since the epoch: an ISO date or time, a datetime, or ``7d``/``12h`` ago."""
    import pandas as pd

    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return int(float(text) * 1000)
    if isinstance(text, str):
        m = re.fullmatch(r"(\d+)\s*(s|m|min|h|d|w)(\s+ago)?", text.strip().lower())
        if m:
            now = now or _dt.datetime.now(_dt.UTC)
            return int(now.timestamp() * 1000) - int(m.group(1)) * _UNITS[m.group(2)]
    try:
        ts = pd.Timestamp(text)
    except Exception as exc:  # noqa: BLE001
        raise BadData(f"--since {text!r} is not a time: give a date (2026-03-01), a time "
                      "(2026-03-01 12:00) or a duration ago (7d, 12h)") from exc
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)


def _auto_spec(ts: np.ndarray) -> WindowSpec:
    """The narrowest of 1m, 5m, 15m, 1h, 6h, 1d, 1w that cuts at most 30 windows."""
    lo, hi = int(ts.min()), int(ts.max())
    for text in _AUTO:
        spec = parse_window(text)
        assert spec is not None and spec.width_ms is not None
        if hi // spec.width_ms - lo // spec.width_ms + 1 <= MAX_AUTO_WINDOWS:
            return spec
    return parse_window(_AUTO[-1])  # type: ignore[return-value]


def _psi(cur: np.ndarray, ref: np.ndarray) -> np.ndarray:
    import numpy as np

    c = np.clip(cur, EPS, None)
    r = np.clip(ref, EPS, None)
    return np.sum((c - r) * np.log(c / r), axis=-1)


def _fractions(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    n = counts.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts / n[..., None], n


@dataclass
class Summary:
    """Per-window metrics and drift of one version's recorded traffic."""

    ref: str
    task: str
    window: WindowSpec
    starts: np.ndarray                     # int64 ms, one per window
    ends: np.ndarray
    metrics: dict[str, np.ndarray]         # name -> (W,)
    features: list[str]
    kinds: list[str]
    psi: np.ndarray                        # (W, F)
    ks: np.ndarray                         # (W, F), NaN for categorical features
    pvalue: np.ndarray                     # (W, F), KS or chi-square p-value
    psi_all: np.ndarray                    # (F,) over every window together
    classes: list[str]
    pred_dist: np.ndarray | None           # classifier: (W, C) fractions
    has_reference: bool
    total: int
    labelled: int
    notes: list[str] = field(default_factory=list)

    @property
    def n_windows(self) -> int:
        return len(self.starts)

    def labels(self) -> list[str]:
        if self.window.rows is not None:
            return [f"{self.window.label(int(s))}" for s in self.starts]
        return [self.window.label(int(s)) for s in self.starts]

    def metric(self, name: str, feature: str | None = None) -> np.ndarray:
        """One value per window for an alert rule's metric (NaN where it does not apply)."""
        import numpy as np

        W = self.n_windows
        if name in ("psi", "ks", "pvalue"):
            table = {"psi": self.psi, "ks": self.ks, "pvalue": self.pvalue}[name]
            if feature is not None:
                return table[:, self.features.index(feature)] if feature in self.features else np.full(W, np.nan)
            if table.shape[1] == 0:
                return np.full(W, np.nan)
            with np.errstate(all="ignore"):
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    return np.nanmin(table, axis=1) if name == "pvalue" else np.nanmax(table, axis=1)
        return self.metrics.get(name, np.full(W, np.nan))

    def worst_feature(self, name: str, w: int) -> str | None:
        import numpy as np

        table = {"psi": self.psi, "ks": self.ks, "pvalue": self.pvalue}[name]
        row = table[w]
        if not len(row) or np.all(np.isnan(row)):
            return None
        return self.features[int(np.nanargmin(row) if name == "pvalue" else np.nanargmax(row))]

    def frame(self) -> Any:
        """One row per window: start, end and every metric (a pandas DataFrame)."""
        import pandas as pd

        df = pd.DataFrame({"start": pd.to_datetime(self.starts, unit="ms", utc=True),
                           "end": pd.to_datetime(self.ends, unit="ms", utc=True), **self.metrics})
        for j, f in enumerate(self.features):
            df[f"psi[{f}]"] = self.psi[:, j]
        return df

    def drift_frame(self) -> Any:
        """Features by window: PSI (a pandas DataFrame, windows as columns)."""
        import pandas as pd

        return pd.DataFrame(self.psi.T, index=self.features, columns=self.labels())


def summarise(tr: Traffic, spec: WindowSpec | None = None, *, since_ms: int | None = None,
              until_ms: int | None = None) -> Summary:
    """Windows, metrics and drift of ``tr`` (see the module docstring)."""
    import numpy as np
    from scipy import stats

    sch = tr.schema
    ts = tr.ts
    sel = None
    if since_ms is not None or until_ms is not None:
        sel = np.ones(len(ts), dtype=bool)
        if since_ms is not None:
            sel &= ts >= since_ms
        if until_ms is not None:
            sel &= ts < until_ms
        ts = ts[sel]

    def pick(a: Any) -> Any:
        return a if a is None or sel is None else a[sel]

    codes = tr.codes if sel is None else tr.codes[:, sel]
    pred, pred_bin, y, has_y, lat = (pick(tr.pred), pick(tr.pred_bin), pick(tr.y), pick(tr.has_y),
                                     pick(tr.lat))
    n = len(ts)
    if spec is None:
        spec = _auto_spec(ts) if n else WindowSpec("1d", width_ms=86_400_000)

    # 1. the window of every row
    if n == 0:
        win = np.zeros(0, dtype=np.int64)
        starts = ends = np.zeros(0, dtype=np.int64)
    elif spec.rows is not None:
        order = np.argsort(ts, kind="stable")
        win = np.empty(n, dtype=np.int64)
        win[order] = np.arange(n, dtype=np.int64) // spec.rows
        sorted_ts = ts[order]
        starts = sorted_ts[:: spec.rows].astype(np.int64)
        last = np.minimum(np.arange(len(starts)) * spec.rows + spec.rows - 1, n - 1)
        ends = sorted_ts[last].astype(np.int64) + 1
    else:
        w = spec.width_ms
        k = ts // w
        k0 = int(k.min())
        rel = k - k0
        span = int(rel.max()) + 1
        if span > 50_000_000:
            raise BadData(f"--window {spec.text} cuts {span:,} windows; choose a wider one")
        present = np.bincount(rel, minlength=span) > 0
        slots = np.flatnonzero(present)
        if len(slots) > MAX_WINDOWS:
            raise BadData(f"--window {spec.text} gives {len(slots):,} windows; choose a wider one "
                          f"or --since to look at fewer (at most {MAX_WINDOWS})")
        remap = np.full(span, -1, dtype=np.int64)
        remap[slots] = np.arange(len(slots))
        win = remap[rel]
        starts = (slots + k0) * w
        ends = starts + w
    W = len(starts)
    volume = np.bincount(win, minlength=W).astype(float)
    metrics: dict[str, np.ndarray] = {"volume": volume}

    # 2. latency of served traffic
    if lat is not None and np.isfinite(lat).any():
        order = np.argsort(win, kind="stable")
        bounds = np.cumsum(np.bincount(win, minlength=W))[:-1]
        p50 = np.full(W, np.nan)
        p95 = np.full(W, np.nan)
        for i, chunk in enumerate(np.split(lat[order], bounds)):
            chunk = chunk[np.isfinite(chunk)]
            if len(chunk):
                p50[i], p95[i] = np.percentile(chunk, [50, 95])
        metrics["latency_p50"] = p50
        metrics["latency_p95"] = p95

    # 3. quality where labels exist
    lab = has_y.astype(bool)
    nlab = np.bincount(win[lab], minlength=W).astype(float)
    metrics["labelled"] = nlab
    classes = list(tr.classes)
    pred_dist = None
    with np.errstate(invalid="ignore", divide="ignore"):
        if tr.task == CLASSIFIER:
            C = max(len(classes), 1)
            pc_all = np.bincount(win * C + pred, minlength=W * C).reshape(W, C)
            pred_dist = pc_all / np.maximum(volume, 1)[:, None]
            correct = lab & (pred == y)
            metrics["accuracy"] = np.where(nlab > 0, np.bincount(win[correct], minlength=W) / nlab, np.nan)
            tp = np.bincount(win[correct] * C + y[correct], minlength=W * C).reshape(W, C)
            pc = np.bincount(win[lab] * C + pred[lab], minlength=W * C).reshape(W, C)
            tc = np.bincount(win[lab] * C + y[lab], minlength=W * C).reshape(W, C)
            denom = pc + tc
            f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)
            present = denom > 0
            f1_macro = np.where(present.any(axis=1),
                                np.nansum(np.where(present, f1, 0), axis=1) / np.maximum(present.sum(axis=1), 1),
                                np.nan)
            metrics["f1_macro"] = np.where(nlab > 0, f1_macro, np.nan)
        else:
            err = np.where(lab, pred - np.nan_to_num(y), 0.0)
            metrics["rmse"] = np.where(nlab > 0, np.sqrt(np.bincount(win, err ** 2, minlength=W) / nlab), np.nan)
            metrics["mae"] = np.where(nlab > 0, np.bincount(win, np.abs(err), minlength=W) / nlab, np.nan)
            metrics["prediction_mean"] = np.bincount(win, pred, minlength=W) / np.maximum(volume, 1)

    # 4. drift per feature against the reference
    prof = sch.profile or {}
    feats = prof.get("features") or {}
    F = len(tr.features)
    psi = np.full((W, F), np.nan)
    ks = np.full((W, F), np.nan)
    pval = np.full((W, F), np.nan)
    psi_all = np.full(F, np.nan)
    kinds = []
    S = max(tr.n_bins, default=0) + 1  # every feature's bins plus its missing slot
    base = win * S
    for j, f in enumerate(tr.features):
        st = feats[f]
        B = tr.n_bins[j]
        counts = np.bincount(base + codes[j], minlength=W * S).reshape(W, S)[:, :B].astype(float)
        cur, m = _fractions(counts)
        kinds.append(st.get("kind", "numeric"))
        if st.get("kind") == "categorical":
            ref = np.array([st["freq"].get(k, 0.0) for k in _categories(st)], dtype=float)
        else:
            ref = np.asarray(st["freq"], dtype=float)
        ref = ref / ref.sum() if ref.sum() > 0 else ref
        has = m > 0
        psi[has, j] = _psi(cur[has], ref)
        tot = counts.sum(axis=0)
        if tot.sum() > 0:
            psi_all[j] = float(_psi(tot / tot.sum(), ref))
        if st.get("kind") == "categorical":
            expected = np.clip(ref, EPS, None)
            expected = expected / expected.sum()
            exp_counts = expected[None, :] * m[:, None]
            with np.errstate(invalid="ignore", divide="ignore"):
                chi = np.sum((counts - exp_counts) ** 2 / np.where(exp_counts > 0, exp_counts, 1), axis=1)
            dof = max(int(((ref > 0) | (counts.sum(axis=0) > 0)).sum()) - 1, 1)
            pval[has, j] = stats.chi2.sf(chi[has], dof)
        else:
            ref_rows = max(int(prof.get("rows") or 0) - int(st.get("missing") or 0), 1)
            gap = np.abs(np.cumsum(cur[:, :-1], axis=1) - np.cumsum(ref[:-1])[None, :])
            d = gap.max(axis=1) if gap.shape[1] else np.zeros(W)
            ks[has, j] = d[has]
            n_eff = m * ref_rows / (m + ref_rows)
            pval[has, j] = stats.kstwobign.sf(d[has] * np.sqrt(n_eff[has]))

    # 5. prediction drift against the training target
    from ._record import _prediction_reference

    tstats = _prediction_reference(prof, tr.task)
    pred_psi = np.full(W, np.nan)
    if n and tstats:
        if tr.task == CLASSIFIER and tstats.get("kind") == "categorical" and pred_dist is not None:
            ref = np.array([tstats["freq"].get(k, 0.0) for k in classes], dtype=float)
            pred_psi = np.where(volume > 0, _psi(pred_dist, ref), np.nan)
        elif pred_bin is not None and tstats.get("kind") == "numeric":
            B = len(tstats["edges"]) + 1
            counts = np.bincount(win * B + pred_bin.astype(np.int64), minlength=W * B).reshape(W, B)
            cur, m = _fractions(counts.astype(float))
            pred_psi = np.where(m > 0, _psi(np.nan_to_num(cur), np.asarray(tstats["freq"], dtype=float)), np.nan)
    metrics["prediction_psi"] = pred_psi

    notes = []
    if not sch.has_reference:
        notes.append(f"no drift: {sch.ref} has no training reference; commit with "
                     "--train X_train y_train (nbmodel.commit(..., train=(X_train, y_train))) to add one")
    return Summary(sch.ref, tr.task, spec, starts, ends, metrics, list(tr.features), kinds, psi, ks, pval,
                   psi_all, classes, pred_dist, sch.has_reference, n, int(lab.sum()), notes)


def _categories(st: dict[str, Any]) -> list[str]:
    cats = list(st["freq"])
    if "__other__" not in cats:
        cats.append("__other__")
    return cats


def severity(psi: float) -> str:
    if psi != psi:
        return ""
    if psi >= PSI_MAJOR:
        return "major shift"
    if psi >= PSI_MODERATE:
        return "moderate shift"
    return "stable"
