"""Merging two branches of a model: pick the better head, or build one version from both.

``pick`` moves the target branch to the source head, like a fast-forward; it is chosen by
itself when the source head is at least as good as the target's on every key metric of the
data given. ``vote``, ``average`` and ``stack`` commit a new version built from both heads
with two parents: ``nbmodel.parent`` is the target's head, ``nbmodel.merge_parent`` the
source's, both plain MLflow tags of the version. The ensembles are scikit-learn's own
(``VotingClassifier``, ``VotingRegressor``, ``Stacking*``) over the two heads frozen as they
are (``sklearn.frozen.FrozenEstimator``), so the version is stored like any scikit-learn model
and ``mlflow.pyfunc.load_model`` loads it in a fresh process without nbmodel. A new version is
scored against both parents before anything is written, and refused if it is worse than the
better parent on the first key metric unless ``force``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import lineage
from .branches import MAIN, BranchNotFound, _materialize_main, _unknown, check_branch, heads
from .errors import AliasMoved, BadData, BadReference, NbmodelError
from .evaluate import CLASSIFIER, detect_task, key_metrics, score
from .refs import Ref, branch_alias, parse_ref
from .store import get_store
from .versions import T_MERGE_PARENT, Version, _fmt, load, resolve

STRATEGIES = ("pick", "vote", "average", "stack")
T_MERGE = "nbmodel.merge"


class MergeRefused(NbmodelError):
    """A merge that would make things worse, or that cannot be made (nothing was written)."""

    kind = "merge-refused"
    status = 409


@dataclass
class _Scores:
    task: str | None
    target: dict[str, float]
    source: dict[str, float]
    keys: list[str]

    def at_least_as_good(self, a: dict[str, float], b: dict[str, float]) -> bool:
        from .metrics import higher_is_better

        return all((a[k] >= b[k]) if higher_is_better(k) else (a[k] <= b[k]) for k in self.keys)

    def better(self, a: float, b: float) -> bool:
        from .metrics import higher_is_better

        return a > b if higher_is_better(self.keys[0]) else a < b

    def text(self, label: str, metrics: dict[str, float]) -> str:
        return f"{label} " + ", ".join(f"{k} {_fmt(metrics[k])}" for k in self.keys)


def merge(name: str | Ref, source: str, *, into: str = MAIN, eval: Sequence[Any],  # noqa: A002
          strategy: str | None = None, train: Sequence[Any] | None = None, force: bool = False,
          message: str = "", report: Callable[[str], None] | None = None) -> Version:
    """Merge branch ``source`` of a model into branch ``into``.

    Args:
        name: the model (``iris``).
        source: the branch to merge (``experiment``).
        into: the branch that takes the merge (default ``main``).
        eval: ``(X, y)``: both heads (and an ensemble) are scored on it.
        strategy: ``pick``, ``vote``, ``average`` or ``stack``; by default ``pick`` when the
            source head is at least as good on every key metric, else nothing moves if the
            target is, else ``average`` (``vote`` for classifiers without probabilities).
        train: ``(X, y)`` the ``stack`` strategy fits its final model on (required for it).
        force: commit an ensemble even if it is worse than the better parent.
        message: the merge version's message, or why, kept in the audit trail.
        report: called with one line saying what the merge did (the magic prints it).

    Returns:
        The target's head after the merge: the source head (pick), the new two-parent version,
        or the target head unchanged.

    Raises:
        BranchNotFound: a branch does not exist. BadReference: merging a branch into itself, or
        an unknown strategy. MergeRefused: the ensemble is worse than the better parent (without
        ``force``), or cannot be built. BadData: the eval data does not fit. Nothing changes.
        AliasMoved: another kernel moved the target while this one merged.

    Example:
        >>> nbmodel.merge("iris", "experiment", eval=(X_test, y_test))  # doctest: +SKIP
        main: picked iris/5 (experiment) ...
    """
    say = report or (lambda _text: None)
    model = parse_ref(name).name
    check_branch(source)
    check_branch(into)
    if strategy is not None and strategy not in STRATEGIES:
        raise BadReference(f"--strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    if source == into:
        raise BadReference(f"cannot merge {source} into itself; name another branch with --into")
    if eval is None:
        raise BadData("give the data both heads are scored on: --eval X y")
    store = get_store()
    found = heads(store, model)
    for b in (source, into):
        if b not in found:
            raise BranchNotFound(_unknown(model, b, found))
    dst, src = resolve(f"{model}/{found[into]}"), resolve(f"{model}/{found[source]}")
    if dst.version == src.version:
        say(f"{into} and {source} both point to {dst.ref}: nothing to merge")
        return dst
    X, y = _pair(eval, "eval")
    scores = _score(dst, src, X, y)
    chosen = strategy or _default(scores, dst, src)
    if chosen == "keep":
        say(f"{into} stays at {dst.ref}: it is at least as good as {src.ref} ({source}) on "
            + ", ".join(scores.keys) + f"; {scores.text(into, scores.target)}; "
            + scores.text(source, scores.source))
        return dst
    if chosen == "pick":
        if into == MAIN:
            _materialize_main(store, model)
        _move(model, into, src.version, found[into], f"merge {source} ({src.ref}) by pick"
              + (f": {message}" if message else ""))
        say(f"{into} fast-forwarded from {dst.ref} to {src.ref} ({source}); "
            + scores.text(source, scores.source) + "; " + scores.text(into, scores.target))
        return resolve(src.ref)
    train_pair = _pair(train, "train") if train is not None else None
    ensemble = _ensemble(chosen, scores.task, dst, src, X, y, train_pair)
    merged = score(ensemble, X, y, task=scores.task)
    best = scores.target if not scores.better(scores.source[scores.keys[0]],
                                              scores.target[scores.keys[0]]) else scores.source
    key = scores.keys[0]
    if scores.better(best[key], merged[key]) and not force:
        raise MergeRefused(
            f"the {chosen} of {dst.ref} and {src.ref} scores {key} {_fmt(merged[key])}, worse than "
            f"the better parent's {_fmt(best[key])}; nothing was written. Try another --strategy, "
            f"--strategy pick, or --force to commit it anyway")
    return _commit(model, into, source, chosen, ensemble, dst, src, eval, train, message, scores,
                   merged, say)


def _pair(pair: Any, what: str) -> tuple[Any, Any]:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise BadData(f"{what} must be a pair (X, y)")
    return pair[0], pair[1]


def _score(dst: Version, src: Version, X: Any, y: Any) -> _Scores:
    a, b = load(dst), load(src)
    task = dst.task or src.task or detect_task(a, y)
    target = score(a, X, y, task=task)
    source = score(b, X, y, task=task)
    keys = [k for k in key_metrics(target, task) if k in source]
    if not keys:
        raise MergeRefused(f"{dst.ref} and {src.ref} share no metric on this data to compare them by")
    return _Scores(task, target, source, keys)


def _default(scores: _Scores, dst: Version, src: Version) -> str:
    if scores.at_least_as_good(scores.source, scores.target):
        return "pick"
    if scores.at_least_as_good(scores.target, scores.source):
        return "keep"
    if scores.task == CLASSIFIER and not all(
            callable(getattr(load(v), "predict_proba", None)) for v in (dst, src)):
        return "vote"
    return "average"


def _move(model: str, branch: str, to: int, expected: int, why: str) -> None:
    from .aliases import move_pointer

    try:
        move_pointer(model, branch_alias(branch), to, expected=expected, kind="merge", message=why)
    except AliasMoved as exc:
        raise AliasMoved(f"{model}@{branch} moved while merging (another kernel committed to it); "
                         "merge again") from exc


def _ensemble(strategy: str, task: str | None, dst: Version, src: Version, X: Any, y: Any,
              train: tuple[Any, Any] | None) -> Any:
    """The ensemble of the two heads, fitted (the heads stay frozen; only the stack's final
    model learns, on ``train``)."""
    import warnings

    from sklearn.base import BaseEstimator
    from sklearn.frozen import FrozenEstimator

    heads_ = [("target", load(dst, fresh=True)), ("source", load(src, fresh=True))]
    for label, m in heads_:
        if not isinstance(m, BaseEstimator):
            raise MergeRefused(f"--strategy {strategy} builds a scikit-learn ensemble, and "
                               f"{(dst if label == 'target' else src).ref} is not a scikit-learn "
                               "model; use --strategy pick")
    frozen = [(f"{label}_{v.version}", FrozenEstimator(m)) for (label, m), v in zip(heads_, (dst, src))]
    classifier = task == CLASSIFIER
    if strategy == "stack":
        if train is None:
            raise MergeRefused("--strategy stack fits its final model on --train X y; give it")
        X_fit, y_fit = train
        if classifier:
            from sklearn.ensemble import StackingClassifier
            from sklearn.linear_model import LogisticRegression

            model: Any = StackingClassifier(frozen, final_estimator=LogisticRegression(max_iter=1000))
        else:
            from sklearn.ensemble import StackingRegressor

            model = StackingRegressor(frozen)
    else:
        X_fit, y_fit = train if train is not None else (X, y)
        if classifier:
            from sklearn.ensemble import VotingClassifier

            soft = strategy == "average"
            if soft and not all(callable(getattr(m, "predict_proba", None)) for _, m in heads_):
                raise MergeRefused("--strategy average needs predict_proba from both heads; "
                                   "use --strategy vote")
            model = VotingClassifier(frozen, voting="soft" if soft else "hard")
        else:
            from sklearn.ensemble import VotingRegressor

            model = VotingRegressor(frozen)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return model.fit(X_fit, y_fit)
    except Exception as exc:  # noqa: BLE001 - scikit-learn's own message says what is wrong
        from .errors import first_line

        raise MergeRefused(f"cannot build the {strategy} of {dst.ref} and {src.ref}: "
                           f"{first_line(exc)}") from exc


def _commit(model: str, into: str, source: str, strategy: str, ensemble: Any, dst: Version,
            src: Version, eval: Any, train: Any, message: str, scores: _Scores,  # noqa: A002
            merged: dict[str, float], say: Callable[[str], None]) -> Version:
    from .commits import commit

    store = get_store()
    if into == MAIN:
        _materialize_main(store, model)
    # The ensemble continues the target's line: its commit advances the target (from dst only).
    lineage.set_head(ensemble, dst.ref)
    lineage.set_branch(ensemble, model, into)
    text = message or f"merge {source} into {into} ({strategy} of {dst.ref} and {src.ref})"
    # Both parents are registered with the version itself: no crash leaves a merge with one.
    merge_tags = {T_MERGE_PARENT: src.ref, T_MERGE: json.dumps({
        "strategy": strategy, "into": into, "from": source, "parents": [dst.ref, src.ref]})}
    v = commit(ensemble, model, message=text, eval=eval, train=train, parent=dst.ref,
               source=f"# nbmodel.merge: {strategy} of {dst.ref} ({into}) and {src.ref} ({source})\n",
               lineage_tags=merge_tags)
    after = heads(store, model).get(into)
    where = (f"{into} now at {v.ref}" if after == v.version
             else f"{into} was moved by another kernel and stays at {model}/{after}")
    key = scores.keys[0]
    say(f"{v.ref} committed: {strategy} of {dst.ref} ({into}) and {src.ref} ({source}); "
        f"{key} {_fmt(merged[key])} vs {_fmt(scores.target[key])} and {_fmt(scores.source[key])}; "
        f"{where}")
    return resolve(v.ref)
