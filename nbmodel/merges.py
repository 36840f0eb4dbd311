"""Merging two branches of a model: pick the better head, or build one version from both.

``pick`` moves the target branch to the source head, like a fast-forward; it is chosen by
itself when the source head is at least as good as the target's on every key metric of the
data given. ``vote``, ``average`` and ``stack`` commit a new version built from both heads
with two parents: ``nbmodel.parent`` is the target's head, ``nbmodel.merge_parent`` the
source's, both plain MLflow tags of the version. Two scikit-learn heads make scikit-learn's
own ensemble (``VotingClassifier``, ``VotingRegressor``, ``Stacking*``) over the heads frozen
as they are (``sklearn.frozen.FrozenEstimator``), stored like any scikit-learn model. Heads of
any other library nbmodel stores (XGBoost, LightGBM, PyTorch, Keras, a generic ``predict``
object) make an :class:`Ensemble` over the heads' own predictions and probabilities, read as
:mod:`nbmodel.flavors` reads them; it is stored as a pyfunc whose code travels with it, so
``mlflow.pyfunc.load_model`` loads either kind in a fresh process without nbmodel. A new
version is scored against both parents before anything is written, and refused if it is worse
than the better parent on the first key metric unless ``force``.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from . import flavors, lineage
from .branches import MAIN, _materialize_main, _unknown, ancestors, check_branch, heads, parents
from .errors import AliasMoved, BadData, BadReference, BranchNotFound, MergeRefused
from .evaluate import CLASSIFIER, detect_task, key_metrics, score
from .flavors import kind_named as _kind_named  # functions, not the module: see Ensemble
from .flavors import load_native as _load_native
from .flavors import predict as _head_predict
from .flavors import predict_proba as _head_proba
from .refs import Ref, branch_alias, parse_ref
from .store import get_store
from .versions import T_MERGE_PARENT, Version, _fmt, load, resolve

STRATEGIES = ("pick", "vote", "average", "stack")
T_MERGE = "nbmodel.merge"

__all__ = ["STRATEGIES", "Ensemble", "MergeRefused", "merge"]


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
    graph = parents(store, model)
    if strategy is None and src.version in ancestors(graph, dst.version):
        # Like git's "Already up to date": the source's work is in the target's line already.
        say(f"{into} at {dst.ref} already contains {source} ({src.ref}): nothing to merge; "
            f"--strategy pick moves {into} back to {src.ref}")
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
    tasks = {t for t in (dst.task or detect_task(a), src.task or detect_task(b)) if t}
    if len(tasks) > 1:
        raise MergeRefused(f"{dst.ref} is a {dst.task or detect_task(a)} and {src.ref} a "
                           f"{src.task or detect_task(b)}: they cannot be compared or merged; "
                           "merge branches of one kind of model")
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
    model learns, on ``train``): scikit-learn's own for two scikit-learn heads, else an
    :class:`Ensemble` over the heads' predictions."""
    from sklearn.base import BaseEstimator

    heads_ = [load(dst, fresh=True), load(src, fresh=True)]
    if strategy == "stack" and train is None:
        raise MergeRefused("--strategy stack fits its final model on --train X y; give it")
    try:
        if all(isinstance(m, BaseEstimator) and flavors.kind_of(m) is None for m in heads_):
            return _sklearn_ensemble(strategy, task, dst, src, heads_, X, y, train)
        made = Ensemble(strategy, task, heads_, [f"{v.name}/{v.version}" for v in (dst, src)],
                        packed=[_packed(v) for v in (dst, src)])
        return made.fit(*(train if train is not None else (X, y)))
    except MergeRefused:
        raise
    except Exception as exc:  # noqa: BLE001 - the heads' own message says what is wrong
        from .errors import first_line

        raise MergeRefused(f"cannot build the {strategy} of {dst.ref} and {src.ref}: "
                           f"{first_line(exc)}") from exc


def _sklearn_ensemble(strategy: str, task: str | None, dst: Version, src: Version,
                      heads_: list[Any], X: Any, y: Any, train: tuple[Any, Any] | None) -> Any:
    import warnings

    from sklearn.frozen import FrozenEstimator

    frozen = [(f"{label}_{v.version}", FrozenEstimator(m))
              for label, m, v in zip(("target", "source"), heads_, (dst, src))]
    classifier = task == CLASSIFIER
    if strategy == "stack":
        assert train is not None
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
            if soft and not all(callable(getattr(m, "predict_proba", None)) for m in heads_):
                raise MergeRefused("--strategy average needs predict_proba from both heads; "
                                   "use --strategy vote")
            model = VotingClassifier(frozen, voting="soft" if soft else "hard")
        else:
            from sklearn.ensemble import VotingRegressor

            model = VotingRegressor(frozen)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X_fit, y_fit)


class Ensemble:
    """The vote, average or stack of models of any library nbmodel stores.

    Each head is asked as :mod:`nbmodel.flavors` asks it (a network's scores become labels and
    probabilities, a Booster's margins too), so XGBoost, LightGBM, PyTorch, Keras and any
    object with ``predict`` can be merged with each other or with scikit-learn. Classifiers:
    ``vote`` takes the label most heads predict (a tie goes to the first class in order, as
    scikit-learn's hard vote does), ``average`` the class of the highest mean probability,
    ``stack`` a logistic regression over the heads' probabilities. Regressors: ``vote`` and
    ``average`` the mean prediction, ``stack`` a ridge regression over the predictions.

    Stored as a pyfunc with this class's code (not a reference to nbmodel), so plain
    ``mlflow.pyfunc.load_model`` loads it where the heads' libraries are installed. Its methods
    name the functions of :mod:`nbmodel.flavors` they call, never the module itself: a module
    pickled by value would carry its loader, and with it whatever that holds.

    Example:
        >>> ens = Ensemble("average", "classifier", [xgb, lr], ["iris/3", "iris/2"])  # doctest: +SKIP
        >>> ens = ens.fit(X_train, y_train)  # doctest: +SKIP
        >>> ens.predict(X_test)[:3]  # doctest: +SKIP
        array([0, 2, 1])
    """

    def __init__(self, strategy: str, task: str | None, heads: list[Any], names: list[str], *,
                 packed: list[tuple[str, bytes] | None] | None = None) -> None:
        self.strategy = strategy
        self.task = task
        self.heads = list(heads)
        self.names = list(names)
        #: A network head travels as its flavor's files (flavor name, tar bytes): an exported
        #: graph or a Keras model does not pickle, and its MLflow flavor loads it anywhere.
        self.packed = list(packed or [None] * len(self.heads))
        self.classes_: Any = None
        self.final: Any = None
        self._head_classes: list[Any] = []

    def __repr__(self) -> str:
        return f"Ensemble({self.strategy} of {', '.join(self.names)})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["heads"] = [None if p else h for h, p in zip(self.heads, self.packed)]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.heads = [h if p is None else _unpack(*p) for h, p in zip(self.heads, self.packed)]

    @property
    def _estimator_type(self) -> str | None:
        return self.task

    # -- what each head says ----------------------------------------------------------------
    def _labels(self, X: Any) -> list[Any]:
        import numpy as np

        return [np.asarray(_head_predict(m, X)).reshape(len(X), -1)[:, 0] for m in self.heads]

    def _probas(self, X: Any) -> list[Any] | None:
        """Each head's probabilities with columns in ``classes_`` order, or None if one has none."""
        import numpy as np

        out = []
        for m, classes in zip(self.heads, self._head_classes):
            p = _head_proba(m, X)
            if p is None or classes is None or len(classes) != np.asarray(p).shape[1]:
                return None
            where = {str(c): i for i, c in enumerate(classes)}
            aligned = np.zeros((len(X), len(self.classes_)))
            for j, c in enumerate(self.classes_):
                if str(c) in where:
                    aligned[:, j] = np.asarray(p)[:, where[str(c)]]
            out.append(aligned)
        return out

    def _features(self, X: Any) -> Any:
        import numpy as np

        if self.task == "classifier":
            probas = self._probas(X)
            if probas is not None:
                return np.hstack(probas)
            return np.column_stack([np.searchsorted(self.classes_, v) for v in self._labels(X)])
        return np.column_stack([np.asarray(v, dtype=float) for v in self._labels(X)])

    # -- learning what little there is to learn ---------------------------------------------
    def fit(self, X: Any, y: Any) -> Ensemble:
        """Find the classes the heads share and, for ``stack``, fit the final model on ``(X, y)``.

        Raises:
            ValueError: the heads are a classifier and a regressor, predict different classes,
                or ``average`` lacks probabilities from a head.

        Example:
            >>> ens = ens.fit(X_train, y_train)  # doctest: +SKIP
        """
        import numpy as np

        if self.task == "classifier":
            self._head_classes = [self._classes_of(m, X) for m in self.heads]
            known = [c for c in self._head_classes if c is not None]
            if len(known) == 2 and {str(c) for c in known[0]} != {str(c) for c in known[1]}:
                raise ValueError(f"{self.names[0]} and {self.names[1]} predict different classes "
                                 f"({_short(known[0])} and {_short(known[1])})")
            classes = known[0] if known else np.unique(np.concatenate(self._labels(X)))
            self.classes_ = np.asarray(classes)
            if self.strategy == "average" and self._probas(X) is None:
                raise ValueError("--strategy average needs probabilities from both heads; "
                                 "use --strategy vote")
        if self.strategy == "stack":
            from sklearn.linear_model import LogisticRegression, RidgeCV

            final: Any = (LogisticRegression(max_iter=1000) if self.task == "classifier"
                          else RidgeCV())
            self.final = final.fit(self._features(X), np.asarray(y))
        return self

    def _classes_of(self, model: Any, X: Any) -> Any:
        import numpy as np

        classes = getattr(model, "classes_", None)
        if classes is not None:
            return np.asarray(classes)
        p = _head_proba(model, X)
        return None if p is None else np.arange(np.asarray(p).shape[1])

    # -- answering ---------------------------------------------------------------------------
    def predict(self, X: Any) -> Any:
        """The ensemble's predictions: labels for a classifier, values for a regressor.

        Example:
            >>> ens.predict(X_test)[:3]  # doctest: +SKIP
            array([0, 2, 1])
        """
        import numpy as np

        if self.strategy == "stack":
            return self.final.predict(self._features(X))
        if self.task != "classifier":
            return np.mean([np.asarray(v, dtype=float) for v in self._labels(X)], axis=0)
        if self.strategy == "average":
            return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
        keys = [str(c) for c in self.classes_]
        votes = np.zeros((len(X), len(keys)))
        for labels in self._labels(X):
            for j, key in enumerate(keys):
                votes[:, j] += np.asarray([str(v) for v in labels]) == key
        return self.classes_[np.argmax(votes, axis=1)]

    @property
    def predict_proba(self) -> Callable[[Any], Any]:
        """Class probabilities (``average``: the heads' mean; ``stack``: the final model's);
        absent, as in scikit-learn, for a hard vote and for regressors.

        Example:
            >>> ens.predict_proba(X_test).shape  # doctest: +SKIP
            (38, 3)
        """
        if self.task != "classifier" or self.strategy == "vote":
            raise AttributeError("predict_proba")

        def proba(X: Any) -> Any:
            import numpy as np

            if self.strategy == "stack":
                return self.final.predict_proba(self._features(X))
            probas = self._probas(X)
            if probas is None:
                raise ValueError("a head gives no probabilities")
            return np.mean(probas, axis=0)

        return proba


def _packed(v: Version) -> tuple[str, bytes] | None:
    """A network version's stored files as tar bytes (see :class:`Ensemble`), else None."""
    import io
    import shutil
    import tarfile

    from .versions import _verified_copy

    kind = flavors.kind_named(v.flavor)
    if kind is None or not kind.network:
        return None
    folder = _verified_copy(v)
    try:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            tar.add(folder, arcname="model")
        return kind.name, buf.getvalue()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _unpack(flavor: str, blob: bytes) -> Any:
    """The head :func:`_packed` stored, loaded with its MLflow flavor."""
    import io
    import shutil
    import tarfile
    import tempfile

    kind = _kind_named(flavor)
    if kind is None:
        raise ValueError(f"an ensemble head of flavor {flavor!r}, which this code cannot load")
    folder = tempfile.mkdtemp(prefix="ensemble-")
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            tar.extractall(folder, filter="data")
        return _load_native(kind, f"{folder}/model")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _short(classes: Any) -> str:
    shown = [str(c) for c in list(classes)[:4]]
    return ", ".join(shown) + (", ..." if len(classes) > 4 else "")


@contextlib.contextmanager
def _code_by_value() -> Iterator[None]:
    """While an :class:`Ensemble` is stored: its code and the code that asks its heads travel
    with the pickle, so loading it needs MLflow and the heads' libraries, not nbmodel."""
    import warnings

    import cloudpickle

    modules = [sys.modules[__name__], flavors]
    for module in modules:
        cloudpickle.register_pickle_by_value(module)
    try:
        # MLflow asks for type hints on every pyfunc's predict, in a filter of its own that an
        # "ignore" outside cannot reach; the pyfunc has none on purpose (they would be a schema).
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            yield
        for w in seen:
            if not (issubclass(w.category, UserWarning) and "type hints" in str(w.message)):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    finally:
        for module in modules:
            cloudpickle.unregister_pickle_by_value(module)


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
    with _code_by_value() if isinstance(ensemble, Ensemble) else contextlib.nullcontext():
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
