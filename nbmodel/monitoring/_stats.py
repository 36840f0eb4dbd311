"""Metrics and drift per window, computed by counting.

Every statistic here is a ``numpy.bincount`` over small integer codes: the window of each row,
the reference bin of each feature value, the class of each prediction. No loop runs per row;
the loops run per feature or per window. Quality metrics (accuracy, F1, RMSE, MAE) come from
:mod:`nbmodel.metrics`, one confusion matrix or one set of error sums per window.

Drift against the training reference (the decile bins and category frequencies saved at
commit):

- **PSI** for every feature: ``sum((cur - ref) * ln(cur / ref))`` over the reference bins,
  each fraction floored at 1e-4. Rule of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major.
- **KS** for numeric features: the largest gap between the reference's and the window's
  cumulative distributions, measured at the reference's decile cut points (so it is a lower
  bound of the exact statistic); p-value from the asymptotic two-sample distribution.
- **chi-square** for categorical features: observed counts against the reference's
  frequencies (categories never seen in training are pooled as ``__other__``).
- **prediction drift**: PSI of the predictions against the training predictions'
  distribution (classifiers without it: the training target's).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import metrics as M
from ..metrics import CLASSIFIER, REGRESSOR
from ._schema import OTHER, prediction_reference
from ._windows import WindowSpec, assign, auto_spec

if TYPE_CHECKING:
    import numpy as np

    from ._traffic import Traffic

EPS = 1e-4
PSI_MODERATE = 0.1
PSI_MAJOR = 0.25
#: The quality metrics of each task, per window (alert rules and reports use these names).
QUALITY = {CLASSIFIER: ("accuracy", "f1_macro"), REGRESSOR: ("rmse", "mae")}


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
    #: (W, F): the exact KS statistic lies between ``ks`` and ``ks + ks_bound`` (see the module)
    ks_bound: np.ndarray | None = None

    @property
    def n_windows(self) -> int:
        return len(self.starts)

    def labels(self) -> list[str]:
        """Each window's start as text (a date for whole-day widths)."""
        return [self.window.label(int(s)) for s in self.starts]

    def metric(self, name: str, feature: str | None = None) -> np.ndarray:
        """One value per window for an alert rule's metric (NaN where it does not apply)."""
        import numpy as np

        W = self.n_windows
        if name in ("psi", "ks", "pvalue"):
            table = {"psi": self.psi, "ks": self.ks, "pvalue": self.pvalue}[name]
            if feature is not None:
                if feature not in self.features:
                    return np.full(W, np.nan)
                return table[:, self.features.index(feature)]
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
              until_ms: int | None = None, calibration: Any = None) -> Summary:
    """Windows, metrics and drift of ``tr`` (see the module docstring).

    Args:
        tr: a version's recorded traffic (:func:`~nbmodel.monitoring._traffic.traffic`).
        spec: the window; None for the narrowest width that cuts at most 30 windows.
        since_ms, until_ms: only rows from / before this time (ms since the epoch).
        calibration: the version's calibration (:func:`~nbmodel.monitoring.calibrate`): adds
            the estimated accuracy and F1 of rows recorded with probabilities.

    Returns:
        A :class:`Summary`.

    Raises:
        BadData: a window that cuts too many windows.

    Example:
        >>> summarise(traffic("iris", 1), parse_window("1d")).metrics["accuracy"]  # doctest: +SKIP
    """
    import numpy as np

    tr = _between(tr, since_ms, until_ms)
    if spec is None:
        spec = auto_spec(tr.ts) if len(tr) else WindowSpec("1d", width_ms=86_400_000)
    win, starts, ends = assign(tr.ts, spec)
    W = len(starts)
    volume = np.bincount(win, minlength=W).astype(float)
    metrics: dict[str, np.ndarray] = {"volume": volume}
    metrics.update(_latency(tr, win, W))
    metrics.update(_quality(tr, win, W, volume))
    drift = _feature_drift(tr, win, W)
    pred_dist, metrics["prediction_psi"] = _prediction_drift(tr, win, W, volume)
    if calibration is not None and tr.task == CLASSIFIER:
        from . import _cbpe

        metrics.update(_cbpe.estimate(_cbpe.conf_counts(tr, win, W), tr.classes, calibration))
    sch = tr.schema
    notes = []
    if not sch.has_reference:
        notes.append(f"no drift: {sch.ref} has no training reference; commit with "
                     "--train X_train y_train (nbmodel.commit(..., train=(X_train, y_train))) to add one")
    return Summary(sch.ref, tr.task, spec, starts, ends, metrics, list(tr.features), drift.kinds, drift.psi,
                   drift.ks, drift.pvalue, drift.psi_all, list(tr.classes), pred_dist, sch.has_reference,
                   len(tr), int(tr.has_y.sum()), notes, drift.ks_bound)


def _between(tr: Traffic, since_ms: int | None, until_ms: int | None) -> Traffic:
    """The rows of ``tr`` from ``since_ms`` and before ``until_ms``."""
    import numpy as np

    if since_ms is None and until_ms is None:
        return tr
    sel = np.ones(len(tr.ts), dtype=bool)
    if since_ms is not None:
        sel &= tr.ts >= since_ms
    if until_ms is not None:
        sel &= tr.ts < until_ms

    def pick(a: Any) -> Any:
        return None if a is None else a[sel]

    return dataclasses.replace(tr, ts=tr.ts[sel], codes=tr.codes[:, sel], pred=tr.pred[sel],
                               pred_bin=pick(tr.pred_bin), y=tr.y[sel], has_y=tr.has_y[sel], lat=pick(tr.lat),
                               conf=pick(tr.conf))


def _latency(tr: Traffic, win: np.ndarray, W: int) -> dict[str, np.ndarray]:
    """The median and 95th percentile latency of served traffic per window."""
    import numpy as np

    lat = tr.lat
    if lat is None or not np.isfinite(lat).any():
        return {}
    order = np.argsort(win, kind="stable")
    bounds = np.cumsum(np.bincount(win, minlength=W))[:-1]
    p50 = np.full(W, np.nan)
    p95 = np.full(W, np.nan)
    for i, chunk in enumerate(np.split(lat[order], bounds)):
        chunk = chunk[np.isfinite(chunk)]
        if len(chunk):
            p50[i], p95[i] = np.percentile(chunk, [50, 95])
    return {"latency_p50": p50, "latency_p95": p95}


def _quality(tr: Traffic, win: np.ndarray, W: int, volume: np.ndarray) -> dict[str, np.ndarray]:
    """Quality where labels exist: one confusion matrix (classifier) or one set of
    error sums (regressor) per window, scored by :mod:`nbmodel.metrics`."""
    import numpy as np

    lab = tr.has_y.astype(bool)
    out: dict[str, np.ndarray] = {"labelled": np.bincount(win[lab], minlength=W).astype(float)}
    if tr.task == CLASSIFIER:
        cm = M.confusion(tr.y[lab], tr.pred[lab], max(len(tr.classes), 1), batch=win[lab], n_batches=W)
        scores = M.classification(cm)
    else:
        sums = M.error_sums(tr.y[lab], tr.pred[lab], batch=win[lab], n_batches=W)
        scores = M.regression(sums)
    out.update({name: scores[name] for name in QUALITY[tr.task]})
    if tr.task != CLASSIFIER:
        out["prediction_mean"] = np.bincount(win, tr.pred, minlength=W) / np.maximum(volume, 1)
    return out


class _Drift(NamedTuple):
    kinds: list[str]
    psi: np.ndarray        # (W, F)
    ks: np.ndarray         # (W, F)
    pvalue: np.ndarray     # (W, F)
    psi_all: np.ndarray    # (F,)
    ks_bound: np.ndarray   # (W, F)


def feature_counts(tr: Traffic, win: np.ndarray, W: int) -> np.ndarray:
    """Rows per window, feature and reference bin: ``(W, F, S)``, where bin ``n_bins[f]`` of
    feature ``f`` counts its missing values (``S`` is one more than the most bins)."""
    import numpy as np

    F = len(tr.features)
    S = max(tr.n_bins, default=0) + 1
    out = np.zeros((W, F, S), dtype=np.int64)
    base = win * S
    for j in range(F):
        out[:, j, :] = np.bincount(base + tr.codes[j], minlength=W * S).reshape(W, S)
    return out


def _feature_drift(tr: Traffic, win: np.ndarray, W: int) -> _Drift:
    return drift_from_counts(tr.schema.profile or {}, tr.features, tr.n_bins, feature_counts(tr, win, W))


def drift_from_counts(prof: dict[str, Any], features: list[str], n_bins: list[int],
                      bins: np.ndarray) -> _Drift:
    """PSI, KS and p-values of every feature per window against the reference, from the rows
    per window and reference bin (:func:`feature_counts`): a raw read and a compacted one
    give the same figures.

    Args:
        prof: the version's training profile.
        features: the features, in the order of ``bins``.
        n_bins: bins per feature (without the missing slot).
        bins: ``(W, F, S)`` counts.

    Returns:
        The drift tables.
    """
    import numpy as np
    from scipy import stats

    feats = prof.get("features") or {}
    W = bins.shape[0]
    F = len(features)
    psi = np.full((W, F), np.nan)
    ks = np.full((W, F), np.nan)
    bound = np.full((W, F), np.nan)
    pval = np.full((W, F), np.nan)
    psi_all = np.full(F, np.nan)
    kinds = []
    for j, f in enumerate(features):
        st = feats[f]
        B = n_bins[j]
        counts = bins[:, j, :B].astype(float)
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
            # inside one bin each distribution rises by at most that bin's share, so the gap
            # between the cut points can exceed the gap at them by at most the larger share
            bound[has, j] = np.max(np.maximum(np.nan_to_num(cur[has]), ref[None, :]), axis=1)
            n_eff = m * ref_rows / (m + ref_rows)
            pval[has, j] = stats.kstwobign.sf(d[has] * np.sqrt(n_eff[has]))
    return _Drift(kinds, psi, ks, pval, psi_all, bound)


def _prediction_drift(tr: Traffic, win: np.ndarray, W: int, volume: np.ndarray
                      ) -> tuple[np.ndarray | None, np.ndarray]:
    """The classes predicted per window (classifiers) and the PSI of the predictions
    against the training predictions (or, for a classifier without them, the target)."""
    return prediction_drift(tr.task, tr.classes, tr.schema.profile or {},
                            prediction_counts(tr, win, W), volume)


def prediction_counts(tr: Traffic, win: np.ndarray, W: int) -> np.ndarray:
    """Predictions per window and class (classifier) or reference bin of the predictions
    (regressor with a reference; else no columns): ``(W, P)``."""
    import numpy as np

    if tr.task == CLASSIFIER:
        C = max(len(tr.classes), 1)
        return np.bincount(win * C + tr.pred, minlength=W * C).reshape(W, C)
    tstats = prediction_reference(tr.schema.profile or {}, tr.task)
    if tr.pred_bin is None or tstats.get("kind") != "numeric":
        return np.zeros((W, 0), dtype=np.int64)
    B = len(tstats["edges"]) + 1
    return np.bincount(win * B + tr.pred_bin.astype(np.int64), minlength=W * B).reshape(W, B)


def prediction_drift(task: str, classes: list[str], prof: dict[str, Any], counts: np.ndarray,
                     volume: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """The classes' shares per window (classifiers) and the PSI of the predictions, from
    :func:`prediction_counts`."""
    import numpy as np

    W = len(volume)
    pred_dist = None
    if task == CLASSIFIER:
        pred_dist = counts / np.maximum(volume, 1)[:, None]
    tstats = prediction_reference(prof, task)
    pred_psi = np.full(W, np.nan)
    if not volume.sum() or not tstats:
        return pred_dist, pred_psi
    if pred_dist is not None and tstats.get("kind") == "categorical":
        ref = np.array([tstats["freq"].get(k, 0.0) for k in classes], dtype=float)
        pred_psi = np.where(volume > 0, _psi(pred_dist, ref), np.nan)
    elif task != CLASSIFIER and counts.shape[1] and tstats.get("kind") == "numeric":
        cur, m = _fractions(counts.astype(float))
        with np.errstate(invalid="ignore", divide="ignore"):
            ref = np.asarray(tstats["freq"], dtype=float)
            pred_psi = np.where(m > 0, _psi(np.nan_to_num(cur), ref), np.nan)
    return pred_dist, pred_psi


def _categories(st: dict[str, Any]) -> list[str]:
    cats = list(st["freq"])
    if OTHER not in cats:
        cats.append(OTHER)
    return cats


def severity(psi: float) -> str:
    """A PSI in words, by the usual rule of thumb.

    Args:
        psi: a population stability index (NaN: no value).

    Returns:
        ``stable``, ``moderate shift``, ``major shift``, or ``""`` for NaN.

    Example:
        >>> severity(0.3)
        'major shift'
    """
    if psi != psi:
        return ""
    if psi >= PSI_MAJOR:
        return "major shift"
    if psi >= PSI_MODERATE:
        return "moderate shift"
    return "stable"
