"""``compare``: score 2 to 8 versions side by side on the same data.

The steps, each a function: check the references, load the models, agree on one task,
predict, score, test the difference, find the disagreements, draw, save.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import BadData, BadReference
from ..evaluate import (
    as_frame_or_array,
    as_target,
    check_fits,
    check_labels,
    detect_task,
    predict,
    probabilities,
)
from ..metrics import CLASSIFIER, REGRESSOR
from ..refs import Ref
from ..versions import Version
from ._history import MetricHistory, metric_history
from ._plots import figure_kinds, render
from ._progress import Progress
from ._results import Comparison, Disagreements, Figure
from ._saving import log_run
from ._scoring import _disagreements, _score_all, _Scored
from ._significance import significance_tests

if TYPE_CHECKING:
    import numpy as np

MIN_VERSIONS = 2
MAX_VERSIONS = 8


def check_refs(refs: Sequence[str | Ref | Version] | str) -> list[str | Ref | Version]:
    """The references as a list, if there are between two and eight of them.

    The magic calls this before it looks up the eval data, so that the first mistake on the
    line is the one reported.

    Args:
        refs: one reference or several (``"iris/1"``, ``["iris/1", "iris@production"]``).

    Returns:
        The references as a list.

    Raises:
        BadReference: fewer than two or more than eight.

    Example:
        >>> check_refs(["iris/1", "iris/2"])
        ['iris/1', 'iris/2']
    """
    if isinstance(refs, (str, Ref, Version)):
        refs = [refs]
    refs = list(refs)
    if len(refs) < MIN_VERSIONS:
        only = f" (got only {refs[0]})" if refs else ""
        raise BadReference(
            f"compare needs at least two versions{only}: for example %model_compare iris/1 iris/2 "
            "--eval X_test y_test, or %model_compare iris --all for the stored metrics of every version")
    if len(refs) > MAX_VERSIONS:
        raise BadReference(f"compare takes at most {MAX_VERSIONS} versions, got {len(refs)}; "
                           "pick the ones that matter, or use --all for stored metrics")
    return refs


def _resolve_all(refs: list[Any]) -> list[Version]:
    from ..versions import resolve

    out: list[Version] = []
    seen: dict[str, Any] = {}
    for r in refs:
        v = r if isinstance(r, Version) else resolve(r)
        if v.ref in seen:
            raise BadReference(f"{seen[v.ref]} and {r} are the same version ({v.ref}); "
                               "compare different versions")
        seen[v.ref] = r
        out.append(v)
    return out


def _common_task(versions: list[Version], models: list[Any], X: Any, y: np.ndarray) -> str:
    """The one task every model has, after checking that ``X`` fits each of them."""
    tasks: dict[str, list[str]] = {}
    for v, model in zip(versions, models):
        try:
            check_fits(model, X, "the eval data")
        except BadData as exc:
            raise BadData(f"{v.ref}: {exc}") from None
        task = detect_task(model, y)
        tasks.setdefault(task or "unknown", []).append(v.ref)
    if len(tasks) > 1:
        listing = "; ".join(f"{', '.join(r)} {'is a' if len(r) == 1 else 'are'} "
                            f"{k}{'' if len(r) == 1 else 's'}" for k, r in tasks.items())
        raise BadData(f"cannot compare a classifier with a regressor ({listing}); "
                      "compare versions of the same kind")
    task = next(iter(tasks))
    if task not in (CLASSIFIER, REGRESSOR):
        task = detect_task(object(), y) or CLASSIFIER
    return task


#: Repeats of the timed prediction after the scored one, and the seconds they may take.
PREDICT_TIMING_REPEATS = 5
PREDICT_TIMING_BUDGET = 1.0


def _predict_one(v: Version, model: Any, X: Any, rows: int, task: str) -> _Scored:
    """One version's predictions (and a classifier's probabilities), timed."""
    try:
        pred = predict(model, X, "the eval data")
    except BadData as exc:
        raise BadData(f"{v.ref}: {exc}") from None
    elapsed = _prediction_time(model, X)
    if pred.ndim == 2 and pred.shape[1] == 1:
        pred = pred[:, 0]
    if pred.shape[0] != rows:
        raise BadData(f"{v.ref} returned {pred.shape[0]} predictions for {rows} rows")
    if task == REGRESSOR:
        pred = pred.astype(float)
    s = _Scored(v, model, pred, predict_ms=elapsed / rows * 1e6)
    if task == CLASSIFIER:
        s.proba, s.classes = probabilities(model, X)
    return s


def _prediction_time(model: Any, X: Any) -> float:
    """Seconds one prediction of ``X`` takes once warm: the fastest of a few repeats.

    The first call (the one whose predictions are scored) pays for lazy imports and caches and
    once read 25 times slower than the next; the fastest repeat is what the model costs.
    """
    best = float("inf")
    budget = time.perf_counter() + PREDICT_TIMING_BUDGET
    for _ in range(PREDICT_TIMING_REPEATS):
        start = time.perf_counter()
        predict(model, X, "the eval data")
        best = min(best, time.perf_counter() - start)
        if time.perf_counter() > budget:
            break
    return best


def _timed(timings: dict[str, float], step: str, start: float) -> None:
    timings[step] = time.perf_counter() - start


def compare(
    refs: Sequence[str | Ref | Version] | str,
    X: Any = None,
    y: Any = None,
    *,
    log: bool = False,
    plots: bool = True,
    progress: bool | Callable[[int, int, str], None] | None = None,
    all_versions: bool = False,
    groups: Any = None,
) -> Comparison | MetricHistory:
    """Score 2 to 8 versions side by side on the same data.

    Every version is scored on the same data: a metrics table with the best value of each row
    marked, one figure per kind of plot with the versions side by side, the rows where the
    versions disagree, and a plain sentence saying whether the difference is real (McNemar's
    exact test for classifiers, a paired bootstrap of the RMSE difference for regressors).

    Args:
        refs: the versions (``["iris/2", "iris@production", "iris"]``); any mix of forms.
        X: the eval data: a DataFrame or 2-D array with the columns the models were fitted on.
        y: its targets, one per row.
        log: save the comparison as an MLflow run (table, figures, JSON) in the first model's
            experiment, so ``mlflow ui`` shows it.
        plots: draw the figures (confusion matrices and ROC curves for classifiers; predicted
            against true and residuals for regressors).
        progress: ``None`` shows a bar once the work has run about a second; ``False`` never;
            a callable ``(done, total, label)`` receives every step.
        all_versions: instead, plot the stored metrics of every version of the model ``refs``
            names (no eval data needed); see :func:`metric_history`.
        groups: a column of ``X`` (its name) or one group value per row: each version's
            metrics per group, the gaps between groups and the worst group.

    Returns:
        A :class:`Comparison` (HTML table and figures in a notebook, text elsewhere), or with
        ``all_versions`` a :class:`MetricHistory`.

    Raises:
        BadReference: fewer than two or more than eight versions, or one named twice.
        ModelNotFound, VersionNotFound, AliasNotFound: a reference names nothing.
        BadData: data whose columns or length do not fit a model (the message names the
            version and the columns), or a classifier compared with a regressor.

    Example:
        >>> c = nbmodel.compare(["iris/1", "iris/2"], X_test, y_test)  # doctest: +SKIP
        >>> c.winner  # doctest: +SKIP
        'iris/2'
    """
    if all_versions:
        names = [refs] if isinstance(refs, (str, Ref, Version)) else list(refs)
        if len(names) != 1:
            raise BadReference("all_versions takes one model name: compare('iris', all_versions=True)")
        name = names[0]
        return metric_history(name.ref if isinstance(name, Version) else name, log=log)
    ref_list = check_refs(refs)
    if X is None or y is None:
        raise BadData("give the eval data: compare(refs, X_test, y_test); "
                      "or all_versions=True for the stored metrics of every version")
    t0 = time.perf_counter()
    X = as_frame_or_array(X, "the eval data")
    y_arr = as_target(y, X.shape[0], "the eval targets")
    check_labels(y_arr, "the eval targets")
    bar = Progress(len(ref_list) * 2 + 1 + (2 if plots else 0),
                   callback=progress if callable(progress) else None,
                   enabled=progress is not False)
    try:
        result = _run(ref_list, X, y_arr, bar, log=log, plots=plots, t0=t0, groups=groups)
    finally:
        bar.close()
    result.timings["total"] = time.perf_counter() - t0
    return result


def _run(ref_list: list[Any], X: Any, y: np.ndarray, bar: Progress, *, log: bool, plots: bool,
         t0: float, groups: Any = None) -> Comparison:
    """The comparison's steps in order, each timed into ``Comparison.timings``."""
    from ..versions import load

    rows = X.shape[0]
    timings: dict[str, float] = {}
    versions = _resolve_all(ref_list)
    _timed(timings, "resolve", t0)

    t = time.perf_counter()
    models = []
    for v in versions:
        models.append(load(v))
        check_labels(y, "the eval targets", models[-1])
        bar.step(f"loaded {v.ref}")
    _timed(timings, "load", t)
    if groups is not None:  # a column of X, dropped when the models were not fitted on it
        from ..explain import split_groups

        X, groups, group_name = split_groups(X, groups, models[0])

    t = time.perf_counter()
    task = _common_task(versions, models, X, y)
    if task == REGRESSOR:
        try:
            y = y.astype(float)
        except (TypeError, ValueError):
            raise BadData("the eval targets are not numbers, so regressors cannot be scored "
                          "on them") from None
    scored = []
    for v, model in zip(versions, models):
        scored.append(_predict_one(v, model, X, rows, task))
        bar.step(f"scored {v.ref}")
    _timed(timings, "predict", t)

    t = time.perf_counter()
    metrics = _score_all(task, scored, y)
    _timed(timings, "metrics", t)
    result = Comparison(task, versions, rows, metrics, [s.predict_ms for s in scored], [],
                        Disagreements(0, rows, [], [], ""), timings=timings)

    t = time.perf_counter()
    best = result.best_of(result.primary)
    result.tests = significance_tests(task, scored, best[0] if best else 0, y)
    _timed(timings, "significance", t)
    bar.step("significance")

    t = time.perf_counter()
    index = list(X.index) if hasattr(X, "index") else list(range(rows))
    result.disagreements = _disagreements(task, scored, y, index)
    _timed(timings, "disagreements", t)

    from ..explain import groups_side_by_side, side_by_side  # importance and groups

    result.importance = side_by_side(versions)
    if groups is not None:
        result.groups = groups_side_by_side(result.refs, y, [s.pred for s in scored], groups, task,
                                            group_name)
    if plots:
        t = time.perf_counter()
        for name, title, draw in figure_kinds(task, scored):
            result.figures.append(Figure(name, title, render(draw(scored, y))))
            bar.step(f"plotted {title}")
        _timed(timings, "figures", t)
    if log:
        t = time.perf_counter()
        result.run_id = log_run(versions[0].name, f"compare {' '.join(result.refs)}", result,
                                result.to_dict())
        _timed(timings, "log", t)
    return result
