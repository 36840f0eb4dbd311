"""Metrics per group: every metric for each value of a grouping column, and the gaps between them.

The figures are those fairlearn's ``MetricFrame`` gives with scikit-learn's metrics (``by_group``,
``difference()`` as largest minus smallest, ``ratio()`` as smallest over largest), and its
demographic parity and equalized odds differences for binary classifiers; the tests check
them against fairlearn, which nbmodel does not need at run time. Each metric comes from
:mod:`nbmodel.metrics` with one batch per group.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..display import STYLE, Shown, html_table, text_table
from ..errors import BadData
from ..metrics import CLASSIFIER, CLASSIFIER_METRICS, LOWER_IS_BETTER, PRIMARY, REGRESSOR, REGRESSOR_METRICS

if TYPE_CHECKING:
    import numpy as np

#: Groups with fewer rows than this get a bootstrap interval of the primary metric.
SMALL_GROUP = 100
BOOTSTRAP = 1000
SEED = 0
MISSING = "(missing)"
#: Rates of a binary classifier per group, besides the quality metrics.
RATES = ("selection_rate", "true_positive_rate", "false_positive_rate")
#: Whole-population fairness figures of a binary classifier.
PARITY = ("demographic_parity_difference", "equalized_odds_difference")


def _fmt(x: float | None) -> str:
    if x is None or x != x:
        return "-"
    return f"{x:.4g}"


@dataclass(repr=False)
class GroupReport(Shown):
    """Every metric per group, the gaps between groups and the worst group.

    Attributes:
        column: what the groups are (a column's name).
        task: ``classifier`` or ``regressor``.
        groups: the group values, as text, sorted.
        counts: rows per group.
        metrics: metric -> one value per group (NaN where undefined).
        overall: metric -> its value on every row.
        intervals: per group, a 95% bootstrap interval of the primary metric where the group
            is small (under :data:`SMALL_GROUP` rows), else None.
        parity: demographic parity and equalized odds differences (binary classifiers).
        positive: the positive class those use.
    """

    column: str
    task: str
    groups: list[str]
    counts: list[int]
    metrics: dict[str, list[float]]
    overall: dict[str, float]
    intervals: list[tuple[float, float] | None] = field(default_factory=list)
    parity: dict[str, float] = field(default_factory=dict)
    positive: str | None = None

    @property
    def primary(self) -> str:
        """The metric that names the worst group (accuracy, or RMSE)."""
        return PRIMARY[self.task]

    def difference(self, metric: str) -> float:
        """Largest minus smallest value of ``metric`` over the groups (MetricFrame's ``difference()``)."""
        vals = [v for v in self.metrics[metric] if v == v]
        return max(vals) - min(vals) if vals else math.nan

    def ratio(self, metric: str) -> float:
        """Smallest over largest value of ``metric`` (MetricFrame's ``ratio()``); NaN when the
        largest is 0."""
        vals = [v for v in self.metrics[metric] if v == v]
        if not vals or max(vals) == 0:
            return math.nan
        return min(vals) / max(vals)

    @property
    def worst(self) -> str:
        """The group with the worst primary metric."""
        vals = self.metrics[self.primary]
        pick = max if self.primary in LOWER_IS_BETTER else min
        defined = [(v, i) for i, v in enumerate(vals) if v == v]
        if not defined:
            return self.groups[0]
        target = pick(v for v, _ in defined)
        return self.groups[next(i for v, i in defined if v == target)]

    def value(self, metric: str, group: str) -> float:
        """``metric`` of one group (NaN for a group not seen).

        Example:
            >>> report.value("accuracy", "F")  # doctest: +SKIP
            0.71
        """
        if group not in self.groups:  # 1 names the group "1.0" of a float column
            try:
                group = next(g for g in self.groups if float(g) == float(group))
            except (ValueError, StopIteration):
                return math.nan
        return self.metrics[metric][self.groups.index(group)]

    @property
    def sentence(self) -> str:
        """The worst group and the largest gap, in plain words."""
        m = self.primary
        w = self.worst
        gap = self.difference(m)
        return (f"worst group: {self.column}={w} ({m} {_fmt(self.value(m, w))} against "
                f"{_fmt(self.overall[m])} overall); largest {m} gap between groups {_fmt(gap)}")

    # -- display ---------------------------------------------------------------------------
    def _rows(self) -> tuple[list[str], list[list[str]]]:
        names = list(self.metrics)
        head = [self.column, "rows", *names]
        worst = self.worst
        rows = []
        for i, g in enumerate(self.groups):
            cells = [_fmt(self.metrics[k][i]) for k in names]
            ci = self.intervals[i] if i < len(self.intervals) else None
            if ci is not None:
                j = names.index(self.primary)
                cells[j] += f" [{_fmt(ci[0])}, {_fmt(ci[1])}]"
            rows.append([g + (" (worst)" if g == worst else ""), str(self.counts[i]), *cells])
        rows.append(["overall", str(sum(self.counts)), *[_fmt(self.overall.get(k)) for k in names]])
        rows.append(["largest difference", "", *[_fmt(self.difference(k)) for k in names]])
        rows.append(["smallest ratio", "", *[_fmt(self.ratio(k)) for k in names]])
        return head, rows

    def _notes(self) -> list[str]:
        notes = [self.sentence]
        if self.parity:
            notes.append(", ".join(f"{k.replace('_', ' ')} {_fmt(v)}" for k, v in self.parity.items())
                         + f" (positive class {self.positive})")
        if any(ci is not None for ci in self.intervals):
            notes.append(f"[...]: 95% bootstrap interval of {self.primary} for groups under "
                         f"{SMALL_GROUP} rows")
        return notes

    def __str__(self) -> str:
        head, rows = self._rows()
        return "\n".join([f"by group ({self.column}):", text_table(head, rows), *self._notes()])

    def _repr_html_(self) -> str:
        head, rows = self._rows()
        notes = "".join(f"<div class='nbm-line'>{html.escape(n)}</div>" for n in self._notes())
        return STYLE + html_table(head, rows, caption=f"by group ({self.column})") + notes

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form.

        Example:
            >>> report.to_dict()["worst"]  # doctest: +SKIP
            'F'
        """
        def clean(x: float) -> float | None:
            return None if x != x else x

        return {"column": self.column, "task": self.task, "groups": self.groups, "counts": self.counts,
                "metrics": {k: [clean(v) for v in vs] for k, vs in self.metrics.items()},
                "overall": {k: clean(v) for k, v in self.overall.items()},
                "difference": {k: clean(self.difference(k)) for k in self.metrics},
                "ratio": {k: clean(self.ratio(k)) for k in self.metrics},
                "intervals": [list(ci) if ci else None for ci in self.intervals],
                "parity": {k: clean(v) for k, v in self.parity.items()}, "positive": self.positive,
                "worst": self.worst}


def group_codes(groups: Any, n: int, what: str = "the groups") -> tuple[list[str], np.ndarray]:
    """The distinct groups as text, sorted, and each row's index into them.

    Raises:
        BadData: not one value per row.
    """
    import numpy as np
    import pandas as pd

    arr = np.asarray(groups.to_numpy() if isinstance(groups, pd.Series) else groups, dtype=object)
    if arr.ndim != 1 or len(arr) != n:
        raise BadData(f"{what} must give one value per row: got {arr.size} values for {n} rows")
    text = np.array([MISSING if pd.isna(v) else str(v) for v in arr], dtype=object)
    labels, codes = np.unique(text.astype(str), return_inverse=True)
    return [str(x) for x in labels], codes


def group_metrics(y_true: Any, y_pred: Any, groups: Any, *, task: str, column: str = "group",
                  intervals: bool = True) -> GroupReport:
    """Every metric of the task per group, the gaps between groups, and the worst group.

    Args:
        y_true: the true values.
        y_pred: the predictions.
        groups: one group value per row (a column of the data, or any sequence).
        task: ``classifier`` or ``regressor``.
        column: how the groups are named in the output.
        intervals: bootstrap intervals for small groups.

    Returns:
        A :class:`GroupReport`.

    Raises:
        BadData: lengths that differ.

    Example:
        >>> report = group_metrics(y, pred, X["sex"], task="classifier", column="sex")  # doctest: +SKIP
        >>> report.worst  # doctest: +SKIP
        'F'
    """
    import numpy as np

    from .. import metrics as M

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == 2 and y_pred.shape[1] == 1:
        y_pred = y_pred[:, 0]
    n = len(y_true)
    if len(y_pred) != n:
        raise BadData(f"{len(y_pred)} predictions for {n} true values")
    labels, codes = group_codes(groups, n)
    G = len(labels)
    counts = np.bincount(codes, minlength=G)
    positive = None
    parity: dict[str, float] = {}
    if task == CLASSIFIER:
        classes, (yi, pi) = M.class_indices(y_true, y_pred)
        cm = M.confusion(yi, pi, len(classes), batch=codes, n_batches=G)
        per = M.classification(cm)
        whole = M.as_floats(M.classification(cm.sum(axis=0)))
        metrics = {k: [float(v) for v in per[k]] for k in CLASSIFIER_METRICS}
        overall = {k: whole[k] for k in CLASSIFIER_METRICS}
        if len(classes) == 2:
            positive = str(classes[1].item() if hasattr(classes[1], "item") else classes[1])
            rates, rates_all = _binary_rates(cm)
            metrics.update(rates)
            overall.update(rates_all)
            parity = _parity(rates)
        correct = (yi == pi).astype(float)
    elif task == REGRESSOR:
        try:
            yt, yp = y_true.astype(float), y_pred.astype(float)
        except (TypeError, ValueError) as exc:
            raise BadData("the targets are not numbers, so regression metrics do not apply") from exc
        per = M.regression(M.error_sums(yt, yp, batch=codes, n_batches=G))
        whole = M.as_floats(M.regression(M.error_sums(yt, yp)))
        metrics = {k: [float(v) for v in per[k]] for k in REGRESSOR_METRICS}
        overall = {k: whole[k] for k in REGRESSOR_METRICS}
        correct = (yp - yt) ** 2
    else:
        raise BadData(f"metrics per group need a classifier or a regressor, not {task!r}")
    report = GroupReport(column, task, labels, [int(c) for c in counts], metrics, overall,
                         parity=parity, positive=positive)
    report.intervals = _intervals(task, correct, codes, counts) if intervals else [None] * G
    return report


def _binary_rates(cm: np.ndarray) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Selection rate, true and false positive rates per group (class 1 is the positive)."""
    import numpy as np

    def rates(c: np.ndarray) -> dict[str, np.ndarray]:
        c = np.asarray(c, dtype=float)
        tn, fp, fn, tp = c[..., 0, 0], c[..., 0, 1], c[..., 1, 0], c[..., 1, 1]
        n = tn + fp + fn + tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return {"selection_rate": np.where(n > 0, (tp + fp) / np.maximum(n, 1), np.nan),
                    "true_positive_rate": np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), np.nan),
                    "false_positive_rate": np.where(fp + tn > 0, fp / np.maximum(fp + tn, 1), np.nan)}

    per = rates(cm)
    whole = rates(cm.sum(axis=0))
    return ({k: [float(v) for v in per[k]] for k in RATES}, {k: float(whole[k]) for k in RATES})


def _spread(values: list[float]) -> float:
    vals = [v for v in values if v == v]
    return max(vals) - min(vals) if vals else math.nan


def _parity(rates: dict[str, list[float]]) -> dict[str, float]:
    """fairlearn's demographic parity difference and equalized odds difference."""
    return {"demographic_parity_difference": _spread(rates["selection_rate"]),
            "equalized_odds_difference": max(_spread(rates["true_positive_rate"]),
                                             _spread(rates["false_positive_rate"]))}


def _intervals(task: str, per_row: np.ndarray, codes: np.ndarray, counts: np.ndarray
               ) -> list[tuple[float, float] | None]:
    """95% percentile bootstrap intervals of the primary metric for the small groups.

    ``per_row`` is 1 for a correct prediction (classifiers: accuracy is its mean) or the squared
    error (regressors: RMSE is the root of its mean).
    """
    import numpy as np

    rng = np.random.default_rng(SEED)
    out: list[tuple[float, float] | None] = []
    for g, count in enumerate(counts):
        if count == 0 or count >= SMALL_GROUP:
            out.append(None)
            continue
        values = per_row[codes == g]
        draws = values[rng.integers(0, count, size=(BOOTSTRAP, count))].mean(axis=1)
        if task == REGRESSOR:
            draws = np.sqrt(draws)
        lo, hi = np.percentile(draws, [2.5, 97.5])
        out.append((float(lo), float(hi)))
    return out


# -- rules that name a group (monitoring alerts) -------------------------------------------------
GAP, RATIO = "_gap", "_ratio"
FAIRNESS = {"demographic_parity": "demographic_parity_difference",
            "equalized_odds": "equalized_odds_difference"}


def _base(metric: str) -> str | None:
    for suffix in (GAP, RATIO):
        if metric.endswith(suffix):
            return metric[: -len(suffix)]
    return None


def quality_task(metric: str) -> str | None:
    """The task a per-group metric belongs to, or None for a metric no group has."""
    if metric in CLASSIFIER_METRICS or metric in RATES or metric in FAIRNESS:
        return CLASSIFIER
    if metric in REGRESSOR_METRICS:
        return REGRESSOR
    base = _base(metric)
    return quality_task(base) if base and base not in FAIRNESS else None


def is_group_rule(metric: str, feature: str | None) -> bool:
    """Whether an alert rule is about groups: ``accuracy[sex=F]``, ``accuracy_gap``,
    ``f1_macro_ratio[sex]``, ``demographic_parity``, ``equalized_odds[sex]``.

    Example:
        >>> is_group_rule("accuracy", "sex=F"), is_group_rule("accuracy_gap", None)
        (True, True)
    """
    if feature is not None and "=" in feature:
        return quality_task(metric) is not None and _base(metric) is None and metric not in FAIRNESS
    return (metric in FAIRNESS or _base(metric) is not None) and quality_task(metric) is not None


def rule_column(metric: str, feature: str | None) -> str | None:
    """The grouping column a group rule names (``sex`` of ``accuracy[sex=F]``), or None."""
    if feature is None:
        return None
    return feature.split("=", 1)[0].strip()


def rule_value(metric: str, feature: str | None, report: GroupReport) -> float:
    """The value a group rule checks, from one window's :class:`GroupReport`.

    Example:
        >>> rule_value("accuracy", "sex=F", report)  # doctest: +SKIP
        0.71
    """
    if feature is not None and "=" in feature:
        group = feature.split("=", 1)[1].strip()
        return report.value(metric, group) if metric in report.metrics else math.nan
    if metric in FAIRNESS:
        return report.parity.get(FAIRNESS[metric], math.nan)
    base = _base(metric) or metric
    if base not in report.metrics:
        return math.nan
    return report.difference(base) if metric.endswith(GAP) else report.ratio(base)


def window_values(metric: str, feature: str | None, y_true: Any, y_pred: Any, groups: Any,
                  window: Any, n_windows: int, task: str) -> np.ndarray:
    """A group rule's value in each window (NaN where a window has no labelled rows).

    Args:
        metric, feature: the rule's metric and what its ``[...]`` holds.
        y_true, y_pred, groups: the labelled rows.
        window: each row's window index.
        n_windows: how many windows.
        task: the version's task.

    Returns:
        One value per window.

    Example:
        >>> window_values("accuracy", "sex=F", y, pred, sex, w, 3, "classifier")  # doctest: +SKIP
        array([0.92, 0.9 , 0.71])
    """
    import numpy as np

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    groups, window = np.asarray(groups, dtype=object), np.asarray(window)
    out = np.full(n_windows, np.nan)
    for w in range(n_windows):
        rows = window == w
        if rows.any():
            report = group_metrics(y_true[rows], y_pred[rows], groups[rows], task=task,
                                   intervals=False)
            out[w] = rule_value(metric, feature, report)
    return out
