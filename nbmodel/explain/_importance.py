"""Permutation importance: computed at commit on the eval data, stored on the version, read back.

scikit-learn's :func:`~sklearn.inspection.permutation_importance` (the same figures) with a
fixed seed and a few repeats, scored with the version's primary metric (accuracy for
classifiers, R² for regressors). Its cost is predictions of ``rows x features x repeats`` rows,
so large eval data is sampled (with the same seed) down to a budget, and the repeats stop at a
time budget; the result, and the version's card, say which rows and repeats it used.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from ..metrics import CLASSIFIER

#: The artifact on the version's run that holds every feature's importance.
IMPORTANCE_ARTIFACT = "nbmodel/importance.json"
#: The version tag with the same figures (as many features as fit), read without a download.
T_IMPORTANCE = "nbmodel.importance"
MAX_TAG = 4500

SEED = 0
REPEATS = 5
#: Rows predicted in all (rows x features x repeats) before the eval data is sampled.
ROW_BUDGET = 200_000
#: Seconds the importance may take on more than MIN_ROWS rows: a slow model gets fewer rows
#: (never fewer than MIN_ROWS), then fewer repeats (never fewer than one); the note, and so the
#: card, say so.
TIME_BUDGET = 0.6
MIN_ROWS = 1000


@dataclass
class Importance:
    """Permutation importance of every feature of one version, most important first.

    Attributes:
        features: feature names, most important first.
        mean: the mean drop of ``metric`` when the feature is shuffled, per feature.
        std: its standard deviation over the repeats.
        metric: the score that drops (``accuracy``, ``r2``).
        rows: the eval rows used; ``of`` the rows given (more means a sample).
        repeats: shuffles per feature.
        seed: the random seed of the shuffles and the sample.
        planned: the repeats asked for when the time budget stopped it after ``repeats``
            (None: all were done).
    """

    features: list[str]
    mean: list[float]
    std: list[float]
    metric: str
    rows: int
    of: int
    repeats: int = REPEATS
    seed: int = SEED
    seconds: float = field(default=0.0, compare=False)
    planned: int | None = None

    @property
    def sampled(self) -> bool:
        """Whether the eval data was sampled."""
        return self.rows < self.of

    @property
    def bounded(self) -> bool:
        """Whether it was measured on less than asked: a sample of the rows, or fewer repeats."""
        return self.sampled or self.planned is not None

    @property
    def note(self) -> str:
        """How it was measured, in one line (the sample stated when there is one).

        Example:
            >>> Importance(["a"], [0.1], [0.0], "accuracy", 2000, 10000).note[-46:]
            'seed 0, on a sample of 2000 of 10000 eval rows'
        """
        rows = (f"on a sample of {self.rows} of {self.of} eval rows" if self.sampled
                else f"on {self.rows} eval rows")
        repeats = (f"{self.repeats} of {self.planned} repeats (the time budget stopped it)"
                   if self.planned is not None else f"{self.repeats} repeats")
        return (f"permutation importance (drop in {self.metric}), {repeats}, "
                f"seed {self.seed}, {rows}")

    def rank(self, feature: str) -> int | None:
        """1 for the most important feature; None for a feature it does not have."""
        return self.features.index(feature) + 1 if feature in self.features else None

    def value(self, feature: str) -> tuple[float, float] | None:
        """``(mean, std)`` of one feature, or None."""
        if feature not in self.features:
            return None
        i = self.features.index(feature)
        return self.mean[i], self.std[i]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (the stored artifact).

        Example:
            >>> Importance(["a"], [0.1], [0.0], "accuracy", 10, 10).to_dict()["features"]
            ['a']
        """
        d: dict[str, Any] = {"features": self.features, "mean": self.mean, "std": self.std,
                             "metric": self.metric, "rows": self.rows, "of": self.of,
                             "repeats": self.repeats, "seed": self.seed}
        if self.planned is not None:
            d["planned"] = self.planned
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Importance:
        """The inverse of :meth:`to_dict`."""
        return cls([str(f) for f in d["features"]], [float(x) for x in d["mean"]],
                   [float(x) for x in d["std"]], str(d["metric"]), int(d["rows"]), int(d["of"]),
                   int(d.get("repeats", REPEATS)), int(d.get("seed", SEED)),
                   planned=int(d["planned"]) if d.get("planned") is not None else None)


def feature_names(model: Any, X: Any) -> list[str]:
    """The names of ``X``'s columns: its own, the model's, else ``x0``, ``x1``..."""
    cols = getattr(X, "columns", None)
    if cols is not None:
        return [str(c) for c in cols]
    names = getattr(model, "feature_names_in_", None)
    if names is not None and len(names) == X.shape[1]:
        return [str(n) for n in names]
    return [f"x{i}" for i in range(X.shape[1])]


def _scorer(task: str | None, y: Any) -> tuple[str, Any]:
    """The metric importance is measured with, and a scorer of predictions against ``y``
    (``pred -> float``), so that each shuffle costs one ``predict`` and nothing else."""
    import numpy as np

    from .. import metrics as M

    if task == CLASSIFIER:
        truth = np.asarray(y)

        def accuracy(pred: Any) -> float:
            return float(np.mean(np.asarray(pred).reshape(len(truth), -1)[:, 0] == truth))
        return "accuracy", accuracy

    target = np.asarray(y, dtype=float)

    def r2(pred: Any) -> float:
        p = np.asarray(pred, dtype=float).reshape(len(target), -1)[:, 0]
        return float(M.regression(M.error_sums(target, p))["r2"])
    return "r2", r2


def named(model: Any, X: Any) -> Any:
    """``X`` with the model's feature names when it is a bare array the model was fitted on by
    name: scikit-learn warns at every prediction otherwise, once per shuffle.

    Example:
        >>> list(named(clf, X_test.to_numpy()).columns)[:1]  # doctest: +SKIP
        ['sepal length (cm)']
    """
    names = getattr(model, "feature_names_in_", None)
    if (names is None or hasattr(X, "columns") or getattr(X, "ndim", 0) != 2
            or len(names) != X.shape[1]):
        return X
    import pandas as pd

    return pd.DataFrame(X, columns=list(names))


def _take(X: Any, idx: Any) -> Any:
    return X.iloc[idx] if hasattr(X, "iloc") else X[idx]


def sample_size(model: Any, X: Any, repeats: int = REPEATS) -> int:
    """How many eval rows importance uses: all, or fewer within :data:`ROW_BUDGET` and, for a
    slow model on more than :data:`MIN_ROWS` rows, :data:`TIME_BUDGET` (one prediction timed)."""
    n, f = X.shape[0], max(X.shape[1], 1)
    rows = min(n, max(MIN_ROWS, ROW_BUDGET // (f * repeats)))
    if rows <= MIN_ROWS:
        return rows
    start = time.perf_counter()
    model.predict(_take(X, slice(0, MIN_ROWS)))
    per_row = (time.perf_counter() - start) / MIN_ROWS
    affordable = int(TIME_BUDGET / max(per_row * f * repeats, 1e-12))
    if affordable < rows:
        # Round down to two significant figures so that timing noise rarely changes the sample.
        digits = len(str(max(affordable, 1))) - 2
        affordable = int(round(affordable, -digits)) if digits > 0 else affordable
        rows = max(MIN_ROWS, min(rows, affordable))
    return rows


class _Shuffles:
    """scikit-learn's shuffles of one column, drawn exactly as ``permutation_importance`` draws
    them (its own seeded generator per column; each repeat shuffles the shuffled column again),
    so the figures equal scikit-learn's while the repeats can run in any order."""

    def __init__(self, column: Any, seed: int) -> None:
        import numpy as np

        self.rng = np.random.RandomState(seed)
        self.order = np.arange(len(column))
        self.column = column

    def next(self) -> Any:
        self.rng.shuffle(self.order)
        col = self.column
        if hasattr(col, "iloc"):
            shuffled = col.iloc[self.order]
            shuffled.index = col.index
        else:
            shuffled = col[self.order]
        self.column = shuffled
        return shuffled


def _drops(model: Any, X: Any, score: Any, repeats: int, seed: int, budget: float | None,
           since: float) -> tuple[list[list[float]], bool]:
    """The drop of the score per feature and repeat, one repeat of every feature at a time,
    stopping before a repeat that would end more than ``budget`` seconds after ``since`` (a
    ``perf_counter`` time), never before the first.

    Without a budget (small data, measured whole), each repeat's shuffled copies go to the model
    in one ``predict`` (see :func:`_one_call`): on a few hundred rows, a call's own overhead
    costs more than its rows.

    Returns:
        The drops (features x repeats done) and whether the budget stopped it.
    """
    import numpy as np

    frame = hasattr(X, "iloc")
    work = X.copy()
    baseline_pred = model.predict(work)
    baseline = score(baseline_pred)
    # scikit-learn seeds every column's shuffles with one number drawn from the seed.
    column_seed = np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)
    columns = [X.iloc[:, j] if frame else X[:, j] for j in range(X.shape[1])]
    shuffles = [_Shuffles(c, column_seed) for c in columns]
    drops: list[list[float]] = [[] for _ in columns]
    batched = budget is None and len(columns) > 0
    start = time.perf_counter()
    for done in range(repeats):
        now = time.perf_counter()
        if done and budget is not None and now - since + (now - start) / done > budget:
            return drops, True
        shuffled = [sh.next() for sh in shuffles]
        scores = _one_call(model, work, shuffled, score, baseline_pred if done == 0 else None) \
            if batched else None
        if scores is None:
            batched = False
            scores = []
            for j, (original, column) in enumerate(zip(columns, shuffled)):
                if frame:
                    work.isetitem(j, column)
                    scores.append(score(model.predict(work)))
                    work.isetitem(j, original)
                else:
                    work[:, j] = column
                    scores.append(score(model.predict(work)))
                    work[:, j] = original
        for j, s in enumerate(scores):
            drops[j].append(baseline - s)
    return drops, False


#: Rows in one batched ``predict`` at most (the copies of one repeat are split beyond it).
BATCH_ROWS = 50_000


def _one_call(model: Any, work: Any, shuffled: list[Any], score: Any,
              check: Any = None) -> list[float] | None:
    """The score of ``work`` with each column in turn replaced by its shuffle, the copies stacked
    and predicted together (in parts of at most :data:`BATCH_ROWS` rows).

    With ``check`` (the predictions on ``work`` itself, made alone), the unshuffled rows go first
    in the stack and must be predicted the same: a model whose rows depend on each other (or
    that refuses a long input) gets None, and the caller predicts each copy alone.
    """
    import numpy as np

    n, f = work.shape[0], len(shuffled)
    per = max(1, BATCH_ROWS // max(n, 1))
    blocks: list[Any] = [None] if check is not None else []
    blocks.extend(range(f))
    preds: list[Any] = []
    try:
        for lo in range(0, len(blocks), per):
            part = blocks[lo:lo + per]
            preds.append(np.asarray(model.predict(_stack(work, shuffled, part))))
        pred = np.concatenate(preds) if len(preds) > 1 else preds[0]
    except Exception:  # noqa: BLE001 - predicted one copy at a time instead
        return None
    if pred.shape[0] != n * len(blocks):
        return None
    if check is not None:
        first, check = pred[:n], np.asarray(check)
        same = (first.shape == check.shape
                and (np.array_equal(first, check)
                     or (first.dtype.kind == "f" and check.dtype.kind == "f"
                         and bool(np.allclose(first, check, rtol=1e-12, atol=0.0, equal_nan=True)))))
        if not same:
            return None
        pred = pred[n:]
    return [score(pred[j * n:(j + 1) * n]) for j in range(f)]


def _stack(work: Any, shuffled: list[Any], part: list[int | None]) -> Any:
    """Copies of ``work``, one per entry of ``part``: unchanged for None, else with column j
    replaced by its shuffle; stacked into one frame or array."""
    import numpy as np

    n = work.shape[0]
    if hasattr(work, "iloc"):
        import pandas as pd

        if work.dtypes.nunique() == 1 and work.columns.is_unique:
            # One dtype (all float, say): stacked as an array of that dtype, then named again.
            values = work.to_numpy()
            stacked = np.concatenate([values] * len(part))
            for k, j in enumerate(part):
                if j is not None:
                    stacked[k * n:(k + 1) * n, j] = np.asarray(shuffled[j])
            return pd.DataFrame(stacked, columns=work.columns)
        copies = []
        for j in part:
            copy = work.copy(deep=False) if j is None else work.copy()
            if j is not None:
                copy.isetitem(j, shuffled[j])
            copies.append(copy)
        return pd.concat(copies, ignore_index=True)
    big = np.concatenate([work] * len(part))
    for k, j in enumerate(part):
        if j is not None:
            big[k * n:(k + 1) * n, j] = shuffled[j]
    return big


def permutation(model: Any, X: Any, y: Any, task: str | None, *, repeats: int = REPEATS,
                seed: int = SEED, rows: int | None = None,
                budget: float | None = TIME_BUDGET) -> Importance:
    """Permutation importance of every feature of ``X``, most important first.

    The figures are scikit-learn's :func:`~sklearn.inspection.permutation_importance` (the same
    shuffles, the same seed), computed on one native thread: on a busy machine, threads of
    BLAS or OpenMP waiting for each other made small predictions many times slower.

    Args:
        model: anything with ``predict``.
        X: eval data (a DataFrame or a 2-D array), already checked to fit the model.
        y: its targets.
        task: ``classifier`` (scored by accuracy) or ``regressor`` (by R²).
        repeats: shuffles per feature.
        seed: the seed of the shuffles and of the sample.
        rows: how many rows to use (default :func:`sample_size`).
        budget: seconds it may take on more than :data:`MIN_ROWS` rows; fewer repeats are
            done when they would take longer (at least one; the note says so). None: no limit.
            Smaller data is measured whole with every repeat, so that small examples show the
            same figures every time, however busy the machine.

    Returns:
        An :class:`Importance`.

    Example:
        >>> permutation(clf, X_test, y_test, "classifier").features[0]  # doctest: +SKIP
        'petal width (cm)'
    """
    import numpy as np
    from threadpoolctl import threadpool_limits

    start = time.perf_counter()
    X = named(model, X)
    n = X.shape[0]
    y = np.asarray(y)
    if n <= MIN_ROWS:
        budget = None
    with threadpool_limits(limits=1):
        use = sample_size(model, X, repeats) if rows is None else min(rows, n)
        if use < n:
            idx = np.sort(np.random.default_rng(seed).choice(n, size=use, replace=False))
            X, y = _take(X, idx), y[idx]
        metric, score = _scorer(task, y)
        drops, stopped = _drops(model, X, score, repeats, seed, budget, start)
    names = feature_names(model, X)
    drop = np.asarray(drops, dtype=float).reshape(len(names), -1)  # features x repeats done
    mean = [float(m) for m in np.mean(drop, axis=1)]
    std = [float(s) for s in np.std(drop, axis=1)]
    order = sorted(range(len(names)), key=lambda i: (-mean[i], names[i]))
    return Importance([names[i] for i in order], [mean[i] for i in order], [std[i] for i in order],
                      metric, use, n, drop.shape[1] if len(names) else repeats, seed,
                      time.perf_counter() - start, planned=repeats if stopped else None)


# -- at commit --------------------------------------------------------------------------------
def at_commit(model: Any, X: Any, y: Any, task: str | None) -> Importance | None:
    """The importance a commit records, or None without eval data or when it cannot be measured
    (a model that fails on shuffled data must not fail the commit)."""
    if X is None or y is None:
        return None
    try:
        return permutation(model, X, y, task, budget=TIME_BUDGET)
    except Exception:  # noqa: BLE001 - importance is a bonus of the commit
        return None


def record_importance(gateway: Any, run_id: str, model: Any, eval_data: tuple[Any, Any] | None,
                      task: str | None) -> dict[str, str]:
    """The commit's hook: measure importance on the eval data, write the artifact on the
    version's run, and return the version's tag (nothing without eval data).

    Args:
        gateway: the store's gateway.
        run_id: the commit's run.
        model: the model committed.
        eval_data: ``(X, y)``, checked already, or None.
        task: the version's task.

    Returns:
        ``{"nbmodel.importance": JSON}``, or ``{}``.

    Example:
        >>> record_importance(store.gateway, run_id, clf, (X_test, y_test), "classifier")  # doctest: +SKIP
    """
    X, y = eval_data if eval_data is not None else (None, None)
    imp = at_commit(model, X, y, task)
    if imp is None:
        return {}
    gateway.log_dict(run_id, imp.to_dict(), IMPORTANCE_ARTIFACT)
    return {T_IMPORTANCE: _tag_text(imp)}


def card_note(tags: dict[str, str]) -> str | None:
    """The version card's line on importance, from the version's tags: how it was measured, when
    that was less than asked (a sample of the eval data, or fewer repeats); else None.

    Reads the tag only (JSON, no download), as a history of many versions is listed.

    Example:
        >>> card_note({T_IMPORTANCE: '{"features":["a"],"mean":[0.1],"std":[0],"metric":"r2",'
        ...            '"rows":2000,"of":10000}'})
        'permutation importance (drop in r2), 5 repeats, seed 0, on a sample of 2000 of 10000 eval rows'
    """
    text = tags.get(T_IMPORTANCE)
    if not text:
        return None
    try:
        imp = Importance.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError):
        return None
    return imp.note if imp.bounded else None


def _tag_text(imp: Importance) -> str:
    """The figures as a tag: every feature when they fit, else the top ones and ``"more"``."""
    d = imp.to_dict()
    d["mean"] = [round(x, 6) for x in imp.mean]
    d["std"] = [round(x, 6) for x in imp.std]
    text = json.dumps(d, separators=(",", ":"))
    k = len(imp.features)
    while len(text) > MAX_TAG and k > 1:
        k = max(1, k * 3 // 4)
        part = {**d, "features": d["features"][:k], "mean": d["mean"][:k], "std": d["std"][:k],
                "more": len(imp.features) - k}
        text = json.dumps(part, separators=(",", ":"))
    return text


def stored(version: Any) -> Importance | None:
    """The importance recorded with a version at commit, or None (committed without eval data,
    or before nbmodel recorded it).

    Args:
        version: a :class:`~nbmodel.versions.Version`.

    Returns:
        The :class:`Importance`, every feature (from the run's artifact when the tag holds only
        the top ones).

    Example:
        >>> stored(nbmodel.resolve("iris/3")).features[:2]  # doctest: +SKIP
        ['petal width (cm)', 'petal length (cm)']
    """
    from ..versions import all_tags

    text = all_tags(version).get(T_IMPORTANCE)
    if not text:
        return None
    try:
        d = json.loads(text)
        if d.get("more") and version.run_id:
            d = _artifact(version.run_id) or d
        return Importance.from_dict(d)
    except (ValueError, KeyError, TypeError):
        return None


def _artifact(run_id: str) -> dict[str, Any] | None:
    import tempfile

    from ..store import get_store

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = get_store().gateway.download_artifacts(run_id, IMPORTANCE_ARTIFACT, tmp)
            with open(path) as fh:
                return dict(json.load(fh))
        except Exception:  # noqa: BLE001 - the tag's top features are still there
            return None
