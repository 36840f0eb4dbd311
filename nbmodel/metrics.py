"""Quality metrics, defined once for every place that scores a model.

Commit-time scores, comparisons and monitoring windows all compute the same metrics, so they
are defined here once, from sufficient statistics: a confusion matrix for classifiers and error
sums for regressors. Every function takes arrays with any leading batch axes (one comparison,
one matrix per monitoring window, one per group) and returns arrays of that batch shape, NaN
where a batch has no rows. The definitions follow scikit-learn's (``zero_division=0``; macro
averages over the classes present in the truth or the predictions; balanced accuracy over the
classes present in the truth), which the tests check.

Example:
    >>> import numpy as np
    >>> cm = confusion(np.array([0, 1, 1]), np.array([0, 1, 0]), 2)
    >>> float(classification(cm)["accuracy"])  # doctest: +ELLIPSIS
    0.666...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

CLASSIFIER = "classifier"
REGRESSOR = "regressor"

#: Metrics computed from a confusion matrix, in the order tables show them.
CLASSIFIER_METRICS = ("accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro")
#: Metrics computed from error sums, in the order tables show them.
REGRESSOR_METRICS = ("rmse", "mae", "r2", "max_error")

#: The metrics worth a column in a history table, best first.
KEY_METRICS = {
    CLASSIFIER: ("accuracy", "f1_macro", "roc_auc"),
    REGRESSOR: ("rmse", "r2", "mae"),
}
#: The metric that decides "better" when nothing else is said.
PRIMARY = {CLASSIFIER: "accuracy", REGRESSOR: "rmse"}
LOWER_IS_BETTER = frozenset({"rmse", "mae", "max_error", "log_loss", "predict_ms_per_1000"})


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better.

    Example:
        >>> higher_is_better("rmse")
        False
    """
    return metric not in LOWER_IS_BETTER


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, *,
              batch: np.ndarray | None = None, n_batches: int = 1) -> np.ndarray:
    """Confusion counts from class indices (rows: truth, columns: prediction).

    Args:
        y_true: integer class indices of the truth, ``0 <= i < n_classes``.
        y_pred: integer class indices of the predictions.
        n_classes: the number of classes.
        batch: an optional integer batch index per row (a window, a group).
        n_batches: how many batches ``batch`` indexes.

    Returns:
        ``(n_classes, n_classes)`` counts, or ``(n_batches, n_classes, n_classes)`` with ``batch``.

    Example:
        >>> confusion(np.array([0, 1]), np.array([1, 1]), 2).tolist()
        [[0, 1], [0, 1]]
    """
    import numpy as np

    k = int(n_classes)
    cell = np.asarray(y_true, dtype=np.int64) * k + np.asarray(y_pred, dtype=np.int64)
    if batch is None:
        return np.bincount(cell, minlength=k * k).reshape(k, k)
    cell = np.asarray(batch, dtype=np.int64) * (k * k) + cell
    return np.bincount(cell, minlength=n_batches * k * k).reshape(n_batches, k, k)


def classification(cm: Any) -> dict[str, np.ndarray]:
    """Accuracy, balanced accuracy and macro precision, recall and F1 from confusion counts.

    Args:
        cm: counts of shape ``(..., K, K)``, rows the truth and columns the prediction.

    Returns:
        Each metric of :data:`CLASSIFIER_METRICS` as an array of the batch shape (a 0-d array
        for one matrix); NaN where a matrix holds no rows.

    Example:
        >>> m = classification(np.array([[2, 0], [1, 1]]))
        >>> round(float(m["f1_macro"]), 4)
        0.7333
    """
    import numpy as np

    c = np.asarray(cm, dtype=float)
    tp = np.diagonal(c, axis1=-2, axis2=-1)
    true_n = c.sum(axis=-1)
    pred_n = c.sum(axis=-2)
    total = true_n.sum(axis=-1)
    present = (true_n + pred_n) > 0
    seen = true_n > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        def per_class_mean(num: np.ndarray, den: np.ndarray, where: np.ndarray) -> np.ndarray:
            ratio = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
            count = where.sum(axis=-1)
            return np.where(count > 0, np.where(where, ratio, 0.0).sum(axis=-1) / np.maximum(count, 1),
                            np.nan)

        out = {
            "accuracy": np.where(total > 0, tp.sum(axis=-1) / np.maximum(total, 1), np.nan),
            "balanced_accuracy": per_class_mean(tp, true_n, seen),
            "precision_macro": per_class_mean(tp, pred_n, present),
            "recall_macro": per_class_mean(tp, true_n, present),
            "f1_macro": per_class_mean(2 * tp, true_n + pred_n, present),
        }
    empty = total <= 0
    return {k: np.where(empty, np.nan, v) for k, v in out.items()}


def error_sums(y_true: np.ndarray, y_pred: np.ndarray, *, batch: np.ndarray | None = None,
               n_batches: int = 1) -> dict[str, np.ndarray]:
    """The sums every regression metric is computed from (per batch with ``batch``).

    Returns:
        ``n`` (rows), ``sse`` (squared errors), ``sae`` (absolute errors), ``max_abs`` (largest
        absolute error), ``sy`` and ``syy`` (sum of the truth and of its squares, for R²).

    Example:
        >>> error_sums(np.array([1.0, 2.0]), np.array([1.5, 2.0]))["sse"].item()
        0.25
    """
    import numpy as np

    y = np.asarray(y_true, dtype=float)
    err = np.asarray(y_pred, dtype=float) - y
    if batch is None:
        return {"n": np.asarray(float(len(y))), "sse": np.asarray(float(np.sum(err ** 2))),
                "sae": np.asarray(float(np.sum(np.abs(err)))),
                "max_abs": np.asarray(float(np.max(np.abs(err))) if len(err) else np.nan),
                "sy": np.asarray(float(np.sum(y))), "syy": np.asarray(float(np.sum(y ** 2)))}
    b = np.asarray(batch, dtype=np.int64)
    max_abs = np.full(n_batches, -np.inf)
    np.maximum.at(max_abs, b, np.abs(err))
    return {"n": np.bincount(b, minlength=n_batches).astype(float),
            "sse": np.bincount(b, err ** 2, minlength=n_batches),
            "sae": np.bincount(b, np.abs(err), minlength=n_batches),
            "max_abs": np.where(np.isfinite(max_abs), max_abs, np.nan),
            "sy": np.bincount(b, y, minlength=n_batches),
            "syy": np.bincount(b, y ** 2, minlength=n_batches)}


def regression(sums: dict[str, Any]) -> dict[str, np.ndarray]:
    """RMSE, MAE, R² and max error from :func:`error_sums` (arrays of any batch shape).

    Returns:
        Each metric of :data:`REGRESSOR_METRICS`; NaN where a batch has no rows (and R² where
        the truth does not vary, as there it is undefined).

    Example:
        >>> m = regression(error_sums(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0])))
        >>> round(float(m["rmse"]), 4), float(m["r2"])
        (0.5774, 0.5)
    """
    import numpy as np

    n = np.asarray(sums["n"], dtype=float)
    has = n > 0
    safe_n = np.maximum(n, 1)
    sse = np.asarray(sums["sse"], dtype=float)
    ss_tot = np.asarray(sums["syy"], dtype=float) - np.asarray(sums["sy"], dtype=float) ** 2 / safe_n
    with np.errstate(invalid="ignore", divide="ignore"):
        # A relative tolerance: syy - sy²/n loses digits when the truth is far from zero.
        varies = ss_tot > 1e-12 * np.maximum(np.asarray(sums["syy"], dtype=float), 1e-300)
        return {
            "rmse": np.where(has, np.sqrt(sse / safe_n), np.nan),
            "mae": np.where(has, np.asarray(sums["sae"], dtype=float) / safe_n, np.nan),
            "r2": np.where(has & varies, 1.0 - sse / np.where(varies, ss_tot, 1.0), np.nan),
            "max_error": np.where(has, np.asarray(sums["max_abs"], dtype=float), np.nan),
        }


def as_floats(metrics: dict[str, Any]) -> dict[str, float]:
    """0-d metric arrays as plain floats (NaN kept), for one matrix or one set of sums.

    Args:
        metrics: what :func:`classification` or :func:`regression` returned for one batch.

    Returns:
        The same names with plain floats.

    Example:
        >>> as_floats({"accuracy": np.asarray(0.5)})
        {'accuracy': 0.5}
    """
    return {k: float(v) for k, v in metrics.items()}


def class_indices(*arrays: Any) -> tuple[np.ndarray, list[np.ndarray]]:
    """The classes seen in any of ``arrays``, sorted, and each array as indices into them.

    The indices are what :func:`confusion` counts, so the truth and every prediction share one
    numbering. Labels of mixed types (numbers beside strings) are compared as text.

    Args:
        *arrays: label arrays of any type: the truth and one or more predictions.

    Returns:
        ``(labels, indices)``: the sorted labels and, per array, its integer indices into them.

    Example:
        >>> labels, (t, p) = class_indices(np.array(["b", "a"]), np.array(["a", "a"]))
        >>> labels.tolist(), t.tolist(), p.tolist()
        (['a', 'b'], [1, 0], [0, 0])
    """
    import numpy as np

    parts = [np.asarray(a) for a in arrays]
    try:
        labels = np.unique(np.concatenate(parts))
    except TypeError:  # numbers beside strings cannot be sorted: compare their text
        parts = [np.asarray([str(x) for x in a]) for a in parts]
        labels = np.unique(np.concatenate(parts))
    return labels, [np.searchsorted(labels, a) for a in parts]
