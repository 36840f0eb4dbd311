"""Accuracy before labels: confidence-based performance estimation (CBPE).

Written after the method NannyML publishes as CBPE: a classifier's predicted probabilities,
once calibrated on reference data whose labels are known, say how often each prediction is
right; summed over a window they give the expected confusion matrix, hence an expected accuracy
and F1, while the labels have not arrived. It holds under covariate shift (the inputs move, the
relation from inputs to labels does not) for a model whose probabilities are calibrated on the
reference; it cannot see concept drift.

Windows keep only sums, so that compaction and late merging stay exact and a summary's size does
not grow with its rows: per (window, predicted class, bin of the confidence) -- the predicted
class's probability cut into :data:`CONF_BINS` equal bins -- the number of rows and the sum of
their confidences. The reference (:func:`calibrate`) gives the same per (predicted class, bin),
plus how many of those predictions were right and, for the wrong ones, which class was true.

The expected right answers of a window's cell are the sum of its confidences plus its rows times
the reference's correction of that cell (right minus summed confidence, per row), shrunk as far
as the reference's few rows there leave it uncertain. The shrinkage is empirical Bayes in two
levels: a predicted class's correction over all its rows is kept in proportion to how far it
stands out of its noise (by more than :data:`CLASS_Z` standard errors: a model under- or
overconfident throughout); each cell's departure from that gets the weight ``tau2 / (tau2 + v)``,
with ``v = m (1 - m) / n`` the sampling variance of the cell's correction and ``tau2`` how far,
beyond that noise, the reference's cells depart on average. A calibrated model is thus taken at
its word where the reference saw few rows (a covariate shift fills exactly those cells: a per-bin
frequency from 40 reference rows is off by 0.05), and a miscalibrated one is corrected as far as
the reference shows it. Then per window:

- expected right answers on the diagonal, per predicted class;
- the expected wrong ones spread over the true classes as the reference's mistakes of c did;
- estimated accuracy and macro F1 from that matrix, by :mod:`nbmodel.metrics`.

Summaries written before the sums existed (counts only) and calibrations without them still read:
a cell's summed confidence is then taken as its rows times the reference's mean confidence in the
cell, and an old calibration keeps the per-bin frequency with two pseudo-rows at the bin's middle.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import metrics as M
from ..display import Shown
from ..errors import BadData
from ..refs import Ref
from ..store import get_store
from ._schema import class_name, target

if TYPE_CHECKING:
    import numpy as np

    from ._traffic import Traffic

CONF_BINS = 20
PSEUDO_ROWS = 2.0
#: The least ``m (1 - m)`` a cell's sampling variance is computed with (confidences of 0 or 1).
VAR_FLOOR = 0.01
#: Standard errors by which a class's overall correction must stand out of noise to be applied.
CLASS_Z = 2.5
CALIBRATION = "monitor/calibration"
#: The metrics it adds per window (alert rules name them; ``est_f1`` is a synonym).
ESTIMATED = ("est_accuracy", "est_f1_macro")


def conf_bin(conf: np.ndarray) -> np.ndarray:
    """The confidence bin of each probability (NaN gives -1)."""
    import numpy as np

    b = np.floor(np.nan_to_num(conf, nan=-1.0) * CONF_BINS).astype(np.int64)
    return np.where(np.isnan(conf), -1, np.clip(b, 0, CONF_BINS - 1))


def conf_counts(tr: Traffic, win: np.ndarray, W: int) -> np.ndarray:
    """Per window and predicted class, the rows with a probability in each confidence bin and
    the sum of their confidences: ``(W, C, 2 Q)``, counts in ``[..., :Q]`` and sums in
    ``[..., Q:]`` (``Q`` is 0 for traffic recorded without probabilities)."""
    import numpy as np

    C = max(len(tr.classes), 1)
    if tr.conf is None or tr.task != "classifier":
        return np.zeros((W, C, 0))
    b = conf_bin(tr.conf)
    ok = b >= 0
    cell = (win[ok] * C + tr.pred[ok].astype(np.int64)) * CONF_BINS + b[ok]
    size = W * C * CONF_BINS
    n = np.bincount(cell, minlength=size).reshape(W, C, CONF_BINS)
    total = np.bincount(cell, tr.conf[ok].astype(np.float64), minlength=size).reshape(W, C, CONF_BINS)
    return np.concatenate([n.astype(np.float64), total], axis=2)


def with_sums(conf: np.ndarray) -> np.ndarray:
    """Counts-only ``(W, C, Q)`` of summaries written before the sums, as ``(W, C, 2 Q)`` with
    NaN sums (read as the reference's mean confidence of the cell)."""
    import numpy as np

    if conf.ndim != 3 or conf.shape[2] != CONF_BINS:
        return conf
    return np.concatenate([conf.astype(np.float64), np.full(conf.shape, np.nan)], axis=2)


@dataclass(repr=False)
class Calibration(Shown):
    """How often a version's predictions were right on the reference, by class and confidence."""

    ref: str
    classes: list[str]
    n: list[list[int]]             # (C, Q) reference rows
    right: list[list[int]]         # (C, Q) of them right
    mistakes: list[list[int]]      # (C, C): [predicted][true] counts of wrong predictions
    accuracy: float
    conf_sum: list[list[float]] | None = None  # (C, Q) their summed confidence (None: older)

    def __str__(self) -> str:
        rows = int(sum(map(sum, self.n)))
        return (f"calibrated {self.ref} on {rows:,} reference rows (accuracy {self.accuracy:.3f}); "
                "%model_monitor now shows est_accuracy and est_f1_macro per window")

    def _spread(self, classes: list[str]) -> np.ndarray:
        """Where the wrong predictions of each class went, ``(C predicted, C true)``."""
        import numpy as np

        C = len(classes)
        spread = np.zeros((C, C))
        where = {c: i for i, c in enumerate(self.classes)}
        wrong = np.asarray(self.mistakes, dtype=float)
        for i, c in enumerate(classes):
            k = where.get(c)
            if k is not None:
                for j, t in enumerate(classes):
                    if j != i and t in where:
                        spread[i, j] = wrong[k, where[t]]
            if spread[i].sum() == 0:  # no mistakes of this class on the reference: any other
                spread[i] = 1.0
                spread[i, i] = 0.0
            spread[i] /= max(spread[i].sum(), 1e-12)
        return spread

    def p_right(self, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """For traffic whose classes are ``classes``: P(right) per (class, bin), ``(C, Q)``,
        with two pseudo-rows at the bin's middle (the estimate of calibrations without sums),
        and where the wrong predictions of each class went, ``(C predicted, C true)``."""
        import numpy as np

        mid = (np.arange(CONF_BINS) + 0.5) / CONF_BINS
        p = np.tile(mid, (len(classes), 1))
        where = {c: i for i, c in enumerate(self.classes)}
        n, right = (np.asarray(x, dtype=float) for x in (self.n, self.right))
        for i, c in enumerate(classes):
            k = where.get(c)
            if k is not None:
                p[i] = (right[k] + PSEUDO_ROWS * mid) / (n[k] + PSEUDO_ROWS)
        return p, self._spread(classes)

    def correction(self, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """For traffic whose classes are ``classes`` (a calibration with sums): per (class, bin)
        the shrunk correction to add per row to the summed confidence, and the reference's mean
        confidence (the bin's middle where it has no row), both ``(C, Q)``."""
        import numpy as np

        assert self.conf_sum is not None
        mid = (np.arange(CONF_BINS) + 0.5) / CONF_BINS
        n, right, total = (np.asarray(x, dtype=float) for x in (self.n, self.right, self.conf_sum))
        has = n > 0
        safe = np.maximum(n, 1.0)
        m = np.where(has, total / safe, mid)
        corr = np.where(has, (right - total) / safe, 0.0)
        var = np.maximum(m * (1 - m), VAR_FLOOR)
        v = np.where(has, var / safe, np.inf)
        # per predicted class: the correction of all its rows, kept as far as it stands out of
        # its own noise by more than CLASS_Z standard errors (a model under- or overconfident
        # throughout), the prior of the class's cells
        n_c = np.maximum(n.sum(axis=1), 1.0)
        mu = (right - total).sum(axis=1) / n_c
        v_c = (n * var).sum(axis=1) / n_c ** 2
        keep = np.maximum(0.0, 1.0 - CLASS_Z ** 2 * v_c / np.maximum(mu ** 2, 1e-300))
        prior = np.broadcast_to((keep * mu)[:, None], corr.shape)
        # each cell's departure from it, shrunk by how much its rows can tell
        d = np.where(has, corr - prior, 0.0)
        tau2 = max(0.0, float((n * (d ** 2 - np.where(has, v, 0.0))).sum() / max(n.sum(), 1.0)))
        shrunk = np.where(has, prior + tau2 / (tau2 + v) * d, prior)
        out_corr = np.zeros((len(classes), CONF_BINS))
        out_mean = np.tile(mid, (len(classes), 1))
        where = {c: i for i, c in enumerate(self.classes)}
        for i, c in enumerate(classes):
            k = where.get(c)
            if k is not None:
                out_corr[i], out_mean[i] = shrunk[k], m[k]
        return out_corr, out_mean


def estimate(counts: np.ndarray, classes: list[str], cal: Calibration | None) -> dict[str, np.ndarray]:
    """Estimated accuracy and macro F1 per window (NaN where no row has a probability).

    Args:
        counts: ``(W, C, 2 Q)`` from :func:`conf_counts` (added over any windows), or the
            ``(W, C, Q)`` counts of older summaries.
        classes: the classes ``counts`` is indexed by.
        cal: the version's calibration (None: nothing to estimate).

    Returns:
        ``{"est_accuracy": (W,), "est_f1_macro": (W,)}``, or ``{}`` without a calibration or
        probabilities.
    """
    import numpy as np

    if cal is None or counts.ndim != 3 or counts.shape[2] not in (CONF_BINS, 2 * CONF_BINS):
        return {}
    counts = with_sums(counts)
    c, total = counts[:, :, :CONF_BINS], counts[:, :, CONF_BINS:]
    if not np.nansum(c):
        return {}
    C = counts.shape[1]
    names = classes[:C] + [f"?{i}" for i in range(C - len(classes))]
    if cal.conf_sum is None:
        p, spread = cal.p_right(names)
        right = np.einsum("wcq,cq->wc", c, p)             # expected right, per predicted class
    else:
        corr, mean = cal.correction(names)
        spread = cal._spread(names)
        total = np.where(np.isnan(total), c * mean, total)
        right = (total + c * corr).sum(axis=2)
        right = np.clip(right, 0.0, c.sum(axis=2))
    wrong = c.sum(axis=2) - right
    cm = np.einsum("wc,ct->wtc", wrong, spread)           # rows: truth, columns: prediction
    idx = np.arange(C)
    cm[:, idx, idx] += right
    scores = M.classification(cm)
    n = c.sum(axis=(1, 2))
    return {"est_accuracy": np.where(n > 0, scores["accuracy"], np.nan),
            "est_f1_macro": np.where(n > 0, scores["f1_macro"], np.nan)}


def calibrate(ref: str | Ref, y_pred: Any, y_proba: Any, y_true: Any) -> Calibration:
    """Calibrate the estimated accuracy of a version on reference data with known labels
    (its evaluation set, say): how often its predictions were right at each confidence.

    Args:
        ref: the version (``iris/3``; a name means the version monitoring resolves it to).
        y_pred: the version's predictions on the reference rows.
        y_proba: its ``predict_proba`` on them.
        y_true: their true labels.

    Returns:
        The :class:`Calibration`, kept in the store with the version's monitoring.

    Raises:
        BadData: lengths that differ, or no rows.

    Example:
        >>> nbmodel.monitoring.calibrate("iris/1", clf.predict(X_test), clf.predict_proba(X_test),
        ...                              y_test)  # doctest: +SKIP
    """
    import numpy as np

    from ._record import confidence
    from ._storage import monitor_run

    name, version = target(ref)
    pred = np.asarray(y_pred)
    truth = np.asarray(y_true)
    if pred.ndim != 1 or not len(pred) or len(truth) != len(pred):
        raise BadData("calibrate takes y_pred and y_true of the same rows, one value per row, "
                      "and at least one")
    conf = confidence(y_proba, len(pred))
    p_names = np.array([class_name(v) for v in pred.tolist()], dtype=object)
    t_names = np.array([class_name(v) for v in truth.tolist()], dtype=object)
    classes = sorted(set(p_names) | set(t_names))
    index = {c: i for i, c in enumerate(classes)}
    pi = np.array([index[c] for c in p_names])
    ti = np.array([index[c] for c in t_names])
    b = conf_bin(conf)
    ok = b >= 0
    C = len(classes)
    n = np.bincount(pi[ok] * CONF_BINS + b[ok], minlength=C * CONF_BINS).reshape(C, CONF_BINS)
    hit = ok & (pi == ti)
    right = np.bincount(pi[hit] * CONF_BINS + b[hit], minlength=C * CONF_BINS).reshape(C, CONF_BINS)
    total = np.bincount(pi[ok] * CONF_BINS + b[ok], conf[ok].astype(np.float64),
                        minlength=C * CONF_BINS).reshape(C, CONF_BINS)
    miss = pi != ti
    mistakes = np.bincount(pi[miss] * C + ti[miss], minlength=C * C).reshape(C, C)
    cal = Calibration(f"{name}/{version}", classes, n.tolist(), right.tolist(), mistakes.tolist(),
                      float((pi == ti).mean()), [[float(x) for x in row] for row in total])
    data = json.dumps({"classes": classes, "n": cal.n, "right": cal.right, "mistakes": cal.mistakes,
                       "accuracy": cal.accuracy, "conf_sum": cal.conf_sum}).encode()
    monitor_run(name).write_bytes(CALIBRATION, f"v{version}.json", data)
    with _cache_lock:
        _cache[(get_store().uri, name, version)] = cal
    return cal


_cache: dict[tuple[str, str, int], Calibration | None] = {}
_cache_lock = threading.Lock()
#: How long "no calibration" is believed before looking again (another kernel may calibrate).
_MISSING_SECONDS = 10.0
_missing_at: dict[tuple[str, str, int], float] = {}


def load(name: str, version: int) -> Calibration | None:
    """The version's calibration, or None (read once per process, and again after
    :func:`calibrate`)."""
    import time

    from ._storage import monitor_run

    key = (get_store().uri, name, int(version))
    with _cache_lock:
        if key in _cache and (_cache[key] is not None or
                              time.monotonic() - _missing_at.get(key, 0.0) < _MISSING_SECONDS):
            return _cache[key]
    run = monitor_run(name, create=False)
    path = f"{CALIBRATION}/v{version}.json"
    found = None
    if path in run.list(CALIBRATION, ".json"):
        data = json.loads(run.read_bytes(path))
        found = Calibration(f"{name}/{version}", data["classes"], data["n"], data["right"],
                            data["mistakes"], data["accuracy"], data.get("conf_sum"))
    with _cache_lock:
        _cache[key] = found
        _missing_at[key] = time.monotonic()
    return found


def clear_caches() -> None:
    """Forget the calibrations read so far."""
    with _cache_lock:
        _cache.clear()
