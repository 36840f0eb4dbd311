"""What each version predicted, how it scored, and the rows where the versions disagree.

The quality metrics are :mod:`nbmodel.metrics`'s, the same that commit time records; only
ROC AUC and log loss, which need probabilities, come from scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import metrics as M
from ..evaluate import roc_auc
from ..metrics import CLASSIFIER
from ..versions import Version, _fmt
from ._results import Disagreements, label

if TYPE_CHECKING:
    import numpy as np

#: Metrics that need a classifier's probabilities; a version without them leaves them empty.
PROBABILITY_METRICS = ("roc_auc", "log_loss")
#: The rows of a comparison's table, in order.
TABLE_METRICS = {CLASSIFIER: M.CLASSIFIER_METRICS + PROBABILITY_METRICS, M.REGRESSOR: M.REGRESSOR_METRICS}
#: Rows shown in the disagreement table.
DISAGREEMENT_ROWS = 10


@dataclass
class _Scored:
    version: Version
    model: Any
    pred: Any
    proba: Any = None
    classes: list[Any] | None = None
    predict_ms: float = 0.0
    metrics: dict[str, float | None] = field(default_factory=dict)


def _classifier_metrics(y: np.ndarray, s: _Scored, cm: np.ndarray | None = None) -> dict[str, float | None]:
    """Every metric of a classifier's table row; ROC AUC and log loss None without probabilities.

    ``cm`` is the confusion matrix over every class seen in the truth or any prediction (as
    :func:`_score_all` counts it for all versions at once); without it, it is counted here.
    """
    if cm is None:
        labels, (yi, pi) = M.class_indices(y, s.pred)
        cm = M.confusion(yi, pi, len(labels))
    out: dict[str, float | None] = dict(M.as_floats(M.classification(cm)))
    out.update(_probability_metrics(y, s))
    return out


def _probability_metrics(y: np.ndarray, s: _Scored) -> dict[str, float | None]:
    from sklearn import metrics as skm

    out: dict[str, float | None] = dict.fromkeys(PROBABILITY_METRICS)
    if s.proba is None or s.classes is None:
        return out
    out["roc_auc"] = roc_auc(y, s.proba, s.classes)
    if out["roc_auc"] is not None:
        try:
            out["log_loss"] = float(skm.log_loss(y, s.proba, labels=s.classes))
        except ValueError:
            pass
    return out


def _regressor_metrics(y: np.ndarray, s: _Scored) -> dict[str, float | None]:
    return dict(M.as_floats(M.regression(M.error_sums(y, s.pred))))


def _score_all(task: str, scored: list[_Scored], y: np.ndarray) -> dict[str, list[float | None]]:
    """Fill every version's metrics; the table's rows, leaving out rows no version has.

    Classifiers' confusion matrices are counted in one pass, one batch per version.
    """
    import numpy as np

    if task == CLASSIFIER:
        labels, idx = M.class_indices(y, *[s.pred for s in scored])
        n = len(scored)
        cms = M.confusion(np.tile(idx[0], n), np.concatenate(idx[1:]), len(labels),
                          batch=np.repeat(np.arange(n), len(y)), n_batches=n)
        for s, cm in zip(scored, cms):
            s.metrics = _classifier_metrics(y, s, cm)
    else:
        for s in scored:
            s.metrics = _regressor_metrics(y, s)
    table = {k: [s.metrics.get(k) for s in scored] for k in TABLE_METRICS[task]}
    return {k: vals for k, vals in table.items() if any(x is not None for x in vals)}


def _disagreements(task: str, scored: list[_Scored], y: np.ndarray, index: Sequence[Any]) -> Disagreements:
    import numpy as np

    preds = [s.pred for s in scored]
    refs = [s.version.ref for s in scored]
    head = ["row", *refs, "truth"]
    n = len(y)
    picked: Sequence[int]
    if task == CLASSIFIER:
        differ = np.zeros(n, dtype=bool)
        for p in preds[1:]:
            differ |= p != preds[0]
        picked = np.flatnonzero(differ)[:DISAGREEMENT_ROWS].tolist()
        rule = "different predicted classes"
        count = int(differ.sum())
    else:
        stacked = np.vstack(preds).astype(float)
        spread = stacked.max(axis=0) - stacked.min(axis=0)
        sd = float(np.std(y.astype(float)))
        tol = 0.1 * sd if sd > 0 else 0.0
        differ = spread > tol
        count = int(differ.sum())
        order = np.argsort(-spread, kind="stable")
        picked = [int(i) for i in order[:DISAGREEMENT_ROWS] if differ[i]]
        rule = f"predictions further apart than 10% of the target's s.d., {_fmt(tol)}"
    table = [[str(index[i]), *[label(p[i]) for p in preds], label(y[i])] for i in picked]
    return Disagreements(count, n, head, table, rule)
