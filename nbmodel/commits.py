"""``nbmodel.commit``: register a new, fully described version in one fast step.

Everything that can fail on the user's input (not a model, data of the wrong shape, unknown
columns) is checked before the store is touched. The version is registered last, in one call
that carries its message and tags, after the model's artifacts are complete: a commit killed at
any point leaves no version whose artifacts are missing. A failure after the run was created
deletes that run, so the store is as it was.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import branches, flavors, lineage
from .errors import BadData, NbmodelError, first_line
from .evaluate import as_frame_or_array, as_target, check_fits, check_labels, check_model, detect_task, score
from .refs import check_name, check_tag_key, parse_ref
from .source import cells_from_shell, current_shell
from .store import Store, get_store, mlflow_calls
from .tagpack import pack
from .versions import (
    MODEL_ARTIFACT,
    PROFILE_ARTIFACT,
    SOURCE_ARTIFACT,
    T_DATA,
    T_ESTIMATOR,
    T_FLAVOR,
    T_METRICS,
    T_PARENT,
    T_TASK,
    T_USER,
    TAG,
    Version,
    _user,
)

MAX_PARAM_LEN = 6000
MAX_TAG_VALUE = 8000  # MLflow's longest run tag value
INPUT_EXAMPLE_ROWS = 5


def _flatten_params(model: Any) -> dict[str, str]:
    """``get_params(deep=True)``: pipelines give ``clf__C`` etc.; objects show their class."""
    get_params = getattr(model, "get_params", None)
    params: dict[str, Any] = {}
    if callable(get_params):
        try:
            params = get_params(deep=True)
        except Exception:  # noqa: BLE001
            params = {}
    else:
        params = {k: v for k, v in vars(model).items()
                  if not k.startswith("_") and isinstance(v, (str, int, float, bool, type(None)))}
    out = {}
    for k, v in params.items():
        if hasattr(v, "get_params") or callable(v) and not isinstance(v, type):
            is_object = not callable(v) or hasattr(v, "get_params")
            v = type(v).__name__ if is_object else getattr(v, "__name__", repr(v))
        text = str(v)
        out[str(k)] = text if len(text) <= MAX_PARAM_LEN else text[: MAX_PARAM_LEN - 3] + "..."
    return out


def _is_sklearn(model: Any) -> bool:
    try:
        from sklearn.base import BaseEstimator
    except ImportError:  # pragma: no cover
        return False
    return isinstance(model, BaseEstimator)


def _estimator_name(model: Any) -> str:
    kind = type(model)
    name = f"{kind.__module__}.{kind.__qualname__}"
    steps = getattr(model, "steps", None)
    if isinstance(steps, list) and steps:
        inner = ", ".join(type(s).__name__ for _, s in steps)
        name += f"[{inner}]"
    return name


def _input_example(X: Any) -> Any:
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        return X.iloc[:INPUT_EXAMPLE_ROWS]
    return X[:INPUT_EXAMPLE_ROWS]


def _pair(pair: Any, what: str) -> tuple[Any, Any]:
    if pair is None:
        return None, None
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise BadData(f"{what} must be a pair (X, y)")
    return pair[0], pair[1]


@dataclass
class _Inputs:
    """What a commit reads from the user's input, all of it before anything is written."""

    task: str | None
    metrics: dict[str, float]
    profile: dict[str, Any] | None
    signature: Any
    example: Any
    sklearn_flavor: bool
    source: str | None
    params: dict[str, str]
    eval_data: tuple[Any, Any] | None = None


def commit(
    model: Any,
    name: str | None = None,
    *,
    message: str = "",
    eval: Sequence[Any] | None = None,  # noqa: A002 - the contract's own word
    train: Sequence[Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    source: str | None = None,
    parent: str | None = None,
    var_names: Sequence[str] | None = None,
    lineage_tags: Mapping[str, str] | None = None,
) -> Version:
    """Register ``model`` as the next version of ``name``.

    Args:
        model: a fitted scikit-learn estimator or pipeline, or any object with ``predict``.
        name: the registered model's name; defaults to the model the object was checked out
            from or last committed as.
        message: what changed, like a commit message (the version's MLflow description).
        eval: ``(X, y)`` to score the model on; the metrics are recorded.
        train: ``(X, y)`` it was trained on; its fingerprint and per-feature reference
            statistics are recorded for diffs and drift.
        tags: extra tags for the version and its run.
        source: the code that built the model; in IPython, the cells that built it are found
            in the session's history.
        parent: the parent version; defaults to the version the object was checked out from
            or last committed as, else the version this kernel last committed or checked out
            for ``name`` (its HEAD), else the newest version of ``name`` when the commit began.
        var_names: names the model and data have in the caller's namespace, for slicing cells.
        lineage_tags: nbmodel's own tags of the version that registration must carry (a
            merge's second parent), so no crash can leave the version without them.

    Returns:
        The new :class:`~nbmodel.versions.Version`.

    Raises:
        NotAModel, BadData: bad input, before anything is written.
        NbmodelError: the store refused the write; nothing of the commit stays behind.

    Example:
        >>> v = nbmodel.commit(clf, "iris", message="more trees", eval=(X_test, y_test))  # doctest: +SKIP
        >>> v.ref  # doctest: +SKIP
        'iris/3'
    """
    check_model(model)
    head = lineage.head_of(model)
    name = _model_name(name, head)
    if not isinstance(message, str):
        raise BadData("the message must be a string")
    user_tags = _user_tags(tags)
    if parent is not None:
        parent = str(parse_ref(parent))
    inputs = _read_inputs(model, eval, train, source, var_names)
    store = get_store()
    parent = _parent(store, name, parent, head)
    mv, run_id = _write(store, model, name, message, user_tags, parent, inputs, lineage_tags)
    ref = f"{name}/{int(mv.version)}"
    _name_run(store, run_id, ref)
    branches.after_commit(store, model, name, ref, parent)
    lineage.set_head(model, ref)
    return Version.from_mlflow(mv, aliases=[])


def _parent(store: Store, name: str, given: str | None, head: str | None) -> str | None:
    """The contract's parent: given, else the object's head, else this kernel's HEAD for
    ``name``, else main's head now (the newest version until the model has branches), read
    before this commit writes anything (a version another kernel registers while this one
    commits is never its parent)."""
    own = given or head or lineage.kernel_head(name)
    if own is not None:
        return own
    return branches.default_parent(store, name)


def _model_name(name: str | None, head: str | None) -> str:
    """The model a commit goes to: ``name``, else the one the object was checked out from."""
    if name is None:
        if head is None:
            raise BadData("give the model a name: nbmodel.commit(model, 'iris')")
        name = parse_ref(head).name
    ref = parse_ref(name)
    if ref.version is not None or ref.alias is not None:
        raise BadData(f"commit to a model name, not a version: use {ref.name!r}")
    return check_name(ref.name)


def _user_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    user_tags = {str(k): str(v) for k, v in (tags or {}).items()}
    for k, v in user_tags.items():
        if k.startswith(TAG) or not k:
            raise BadData(f"tag key {k!r} is not allowed; keys starting with 'nbmodel.' are nbmodel's own")
        check_tag_key(k)
        if len(v) > MAX_TAG_VALUE:
            raise BadData(f"the value of tag {k!r} is {len(v)} characters long; a run keeps at "
                          f"most {MAX_TAG_VALUE}")
    return user_tags


def _read_inputs(model: Any, eval: Sequence[Any] | None, train: Sequence[Any] | None,  # noqa: A002
                 source: str | None, var_names: Sequence[str] | None) -> _Inputs:
    """Everything that reads the user's input: what can fail on it fails here, before any write."""
    X_eval, y_eval = _pair(eval, "eval")
    X_train, y_train = _pair(train, "train")
    task = None
    metrics: dict[str, float] = {}
    profile = None
    if X_train is not None:
        X_train, task, profile = _train_profile(model, X_train, y_train)
    if X_eval is not None:
        X_eval = as_frame_or_array(X_eval, "the eval data")
        check_fits(model, X_eval, "the eval data")
        y_eval = as_target(y_eval, X_eval.shape[0], "the eval targets")
        check_labels(y_eval, "the eval targets", model)
        task = task or detect_task(model, y_eval)
        metrics = score(model, X_eval, y_eval, task=task)
    task = task or detect_task(model)
    sample = X_eval if X_eval is not None else X_train
    signature, example = _signature(model, sample) if sample is not None else (None, None)
    return _Inputs(task, metrics, profile, signature, example, _is_sklearn(model),
                   _source(model, source, var_names),
                   {**_flatten_params(model), **flavors.layer_params(model)},
                   None if X_eval is None else (X_eval, y_eval))


def _train_profile(model: Any, X_train: Any, y_train: Any) -> tuple[Any, str | None, dict[str, Any]]:
    """The training data checked, the task it shows, and its profile (the drift reference)."""
    from .data import _feature_stats
    from .data import profile as make_profile
    from .evaluate import predict

    X_train = as_frame_or_array(X_train, "the training data")
    check_fits(model, X_train, "the training data")
    y_train = as_target(y_train, X_train.shape[0], "the training targets")
    check_labels(y_train, "the training targets", model)
    task = detect_task(model, y_train)
    profile = make_profile(X_train, y_train)
    # The predictions on the training data are the reference for prediction drift.
    profile["prediction_stats"] = _feature_stats(predict(model, X_train, "the training data"))
    return X_train, task, profile


def _signature(model: Any, sample: Any) -> tuple[Any, Any]:
    """MLflow's signature of the model on a few rows of ``sample``, and those rows."""
    import warnings

    from mlflow.models import infer_signature

    from .evaluate import predict

    example = _input_example(sample)
    with warnings.catch_warnings():
        # MLflow hints about integer columns on every inference; not the user's concern here.
        warnings.simplefilter("ignore")
        return infer_signature(example, predict(model, example, "the input example")), example


def _source(model: Any, source: str | None, var_names: Sequence[str] | None) -> str | None:
    """The code that built the model: given, else sliced from the IPython session's cells."""
    if source is not None:
        return source
    names = list(var_names or [])
    shell = current_shell()
    if shell is not None and not names:
        names = [k for k, v in shell.user_ns.items() if v is model and not k.startswith("_")]
    return cells_from_shell(shell, names) if names else None


def _write(store: Store, model: Any, name: str, message: str, user_tags: dict[str, str],
           parent: str | None, inputs: _Inputs,
           lineage_tags: Mapping[str, str] | None = None) -> tuple[Any, str]:
    """Run, artifacts and model; then the version, registered in one call. A failure deletes
    the run (and the model logged in it), so nothing half-done stays behind.

    Returns:
        MLflow's new model version and the id of its run.
    """
    gateway = store.gateway
    user = _user()
    # nbmodel's run tags go with the run's creation: a write of their own cost a transaction.
    run_tags = {"mlflow.note.content": message, "mlflow.user": user, **user_tags,
                "nbmodel.task": inputs.task or "", "nbmodel.estimator": _estimator_name(model)}
    if inputs.source:
        run_tags["mlflow.source.type"] = "NOTEBOOK"
    new_experiment = not gateway.has_experiment(name)
    try:
        run = gateway.create_run(store.experiment_id(name), run_name=f"{name} commit", tags=run_tags)
    except BaseException:
        if new_experiment:
            gateway.purge(experiment=name)
        raise
    run_id = run.info.run_id
    logged: list[str] = []  # the logged models this commit created
    try:
        if inputs.source:
            gateway.log_text(run_id, inputs.source, SOURCE_ARTIFACT)
        if inputs.profile is not None:
            gateway.log_dict(run_id, inputs.profile, PROFILE_ARTIFACT)
        model_uri, model_id, flavor, location = _log_model(store, name, model, run_id, inputs.signature,
                                                           inputs.example, inputs.sklearn_flavor, logged)
        # Params and metrics in one write, after the model: metrics logged before it, MLflow
        # would read them back and log each again to link it to the model.
        _log_run(store, run_id, inputs.params, inputs.metrics, model_id)
        version_tags = _version_tags(model, inputs, flavor, user, user_tags)
        from .explain import record_importance  # permutation importance on the eval data
        version_tags.update(record_importance(gateway, run_id, flavors.adapt(model, inputs.task),
                                             inputs.eval_data, inputs.task))
        from .digests import recorded_tags  # the files' SHA-256, checked on every load
        with mlflow_calls():  # quiet: a download from a server draws progress bars otherwise
            version_tags.update(recorded_tags(model_uri, location))
        from .modeltests import inherited_tags  # the parent's test cases travel to its child
        version_tags.update(inherited_tags(store, parent))
        version_tags.update(lineage_tags or {})
        # Finished before the version exists: a kernel killed after registering leaves no
        # RUNNING run behind a version (its name is set once the number is known).
        gateway.finish_run(run_id)
        mv = _register(store, name, model_uri, model_id, run_id, version_tags, message, parent)
    except BaseException as exc:
        _discard(store, run_id, logged, name if new_experiment else None)
        if isinstance(exc, (NbmodelError, KeyboardInterrupt)):
            raise
        if isinstance(exc, Exception):
            raise NbmodelError(f"could not commit {name}: {first_line(exc)}") from exc
        raise
    return mv, run_id


def _discard(store: Store, run_id: str, logged: list[str], experiment: str | None) -> None:
    """Remove what a failed commit wrote: the logged models it created, its run and, if the
    commit created it, the model's experiment."""
    store.gateway.purge(run_id=run_id, logged_models=list(logged), experiment=experiment)
    logged.clear()


def _version_tags(model: Any, inputs: _Inputs, flavor: str, user: str,
                  user_tags: dict[str, str]) -> dict[str, str]:
    """The version's own tags: what a history shows without reading the run."""
    tags = {
        T_TASK: inputs.task or "",
        T_ESTIMATOR: _estimator_name(model),
        T_FLAVOR: flavor,
        T_METRICS: json.dumps({k: round(v, 6) for k, v in inputs.metrics.items()}),
        T_USER: user,
        **user_tags,
    }
    if inputs.profile is not None:
        fingerprint = ("hash", "rows", "columns", "dtypes", "target")
        tags[T_DATA] = json.dumps({k: inputs.profile[k] for k in fingerprint})
    if inputs.source:
        tags["nbmodel.source_sha"] = hashlib.sha1(inputs.source.encode()).hexdigest()[:12]
    return tags


def _name_run(store: Store, run_id: str, ref: str) -> None:
    """Name the finished run after its version, for ``mlflow ui``."""
    try:
        store.gateway.finish_run(run_id, name=ref)  # searchable as attributes.run_name = 'iris/3'
    except Exception:  # noqa: BLE001 - cosmetic; the version is registered and complete
        pass


def _log_run(store: Store, run_id: str, params: dict[str, str], metrics: dict[str, float],
             model_id: str | None = None) -> None:
    """Params and the eval metrics (linked to the logged model, as MLflow's ``log_model`` links
    them) in one batch per 100 params."""
    from mlflow.entities import Metric, Param
    from mlflow.utils.time import get_current_time_millis

    now = get_current_time_millis()
    ps = [Param(k, v) for k, v in params.items()]
    ms = [Metric(k, v, now, 0, model_id=model_id) for k, v in metrics.items()]
    # MLflow takes at most 100 params per batch.
    for i in range(0, max(len(ps), 1), 100):
        store.gateway.log_batch(run_id, metrics=ms if i == 0 else [], params=ps[i:i + 100])


def _pyfunc_wrapper(model: Any) -> Any:
    """Wrap any object with ``predict`` as a pyfunc model.

    The class is made inside this function, so cloudpickle stores it by value: loading the
    version needs MLflow and the object's own packages, not nbmodel.
    """
    from mlflow.pyfunc import PythonModel

    # No type hints on predict: MLflow reads them as a schema and warns about Any.
    class NbmodelPredict(PythonModel):
        def __init__(self, model):  # noqa: ANN001
            self.model = model

        def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201, ARG002
            return self.model.predict(model_input)

    return NbmodelPredict(model)


def _logged_model_id(store: Store, name: str, run_id: str, flavor: str, logged: list[str]) -> str:
    """A logged model in the experiment of model ``name``: left to itself, MLflow puts every
    logged model in the session's active experiment (Default), not its run's. Its id is added
    to ``logged``; a format that fails deletes it again."""
    experiment_id = store.experiment_id(name)
    created = store.gateway._call("create_logged_model", experiment_id, name=MODEL_ARTIFACT,
                                  source_run_id=run_id, tags={"mlflow.loggedModel.flavor": flavor})
    logged.append(str(created.model_id))
    return str(created.model_id)


def _log_model(store: Store, name: str, model: Any, run_id: str, signature: Any, example: Any,
               sklearn_flavor: bool, logged: list[str]) -> tuple[str, str | None, str, str | None]:
    """Log the model in its flavor. Returns its URI, logged model id, flavor and artifact
    location (local files are read in place for their digests)."""
    import warnings

    import mlflow
    from mlflow.models import Model

    from .requirements import _modules_in, pinned_requirements
    from .store import quiet_logs, unchecked_serving_input, use_in_mlflow

    use_in_mlflow(store.uri)
    common = dict(artifact_path=None, name=MODEL_ARTIFACT, run_id=run_id, signature=signature,
                  input_example=example)
    with (warnings.catch_warnings(), quiet_logs("mlflow", level=logging.ERROR), mlflow_calls(),
          unchecked_serving_input()):
        # MLflow warns and logs about its own internals (pydantic, serialisation advice, input
        # validation) on every log; nbmodel chose the format deliberately.
        warnings.simplefilter("ignore")
        kind = flavors.kind_of(model)
        if kind is not None:  # XGBoost, LightGBM, PyTorch, Keras: MLflow's flavor for each
            model_id = _logged_model_id(store, name, run_id, kind.name, logged)
            info = flavors.log_model(kind, model, model_id=model_id, **common)
            return info.model_uri, info.model_id, kind.name, info.artifact_path
        if sklearn_flavor:
            # skops (MLflow's default, safe to load) when the model is made of scikit-learn,
            # numpy and scipy parts only; skops refuses to load types it does not trust, so
            # anything it cannot round-trip is saved with cloudpickle, still as sklearn flavor.
            trusted = _skops_trusted_types(model) if _modules_in(model) <= _SKOPS_SAFE else None
            for fmt in (["skops"] if trusted is not None else []) + ["cloudpickle"]:
                extra = {"skops_trusted_types": trusted} if fmt == "skops" and trusted else {}
                try:
                    info = Model.log(flavor=mlflow.sklearn, sk_model=model, serialization_format=fmt,
                                     pip_requirements=pinned_requirements(model, serializer=fmt),
                                     model_id=_logged_model_id(store, name, run_id, "sklearn", logged),
                                     **extra, **common)
                except Exception as exc:  # noqa: BLE001 - try the next format, then the generic wrapper
                    _discard_logged(store, logged)
                    if _store_failed(exc):
                        raise  # another format would not help, and must not be chosen silently
                    continue
                return info.model_uri, info.model_id, "sklearn", info.artifact_path
        # MLflow asks for type hints on predict, in a coloured warning under a filter of its own
        # that no "ignore" reaches: the wrapper has none on purpose (its schema is the signature
        # nbmodel infers), so that warning is caught here and any other passed on.
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            info = Model.log(flavor=mlflow.pyfunc, python_model=_pyfunc_wrapper(model),
                             pip_requirements=pinned_requirements(model),
                             model_id=_logged_model_id(store, name, run_id, "python_function", logged),
                             **common)
        for w in seen:
            if "Add type hints to the `predict` method" not in str(w.message):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return info.model_uri, info.model_id, "pyfunc", info.artifact_path


def _store_failed(exc: BaseException) -> bool:
    """Whether saving a model failed in the store (an upload, a full or read-only disk), not in
    its serialisation format: then a fallback format would only hide the failure."""
    import traceback

    from .errors import StoreError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, StoreError) or getattr(seen, "errno", None) in _DISK_ERRORS:
            return True
        for frame in traceback.extract_tb(seen.__traceback__):
            # MLflow's tracking service uploads the saved files; its stores write them.
            if any(p in frame.filename.replace("\\", "/") for p in _STORE_CODE):
                return True
        seen = seen.__cause__ or seen.__context__
    return False


_STORE_CODE = ("/mlflow/store/", "/mlflow/tracking/_tracking_service/")
_DISK_ERRORS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT, errno.EIO})


def _discard_logged(store: Store, logged: list[str]) -> None:
    """Delete the logged models in ``logged`` (of a format or a commit that failed)."""
    store.gateway.purge(logged_models=list(logged))
    logged.clear()


def _skops_trusted_types(model: Any) -> list[str] | None:
    """The types skops would refuse to load in ``model``, when all of them are scikit-learn's,
    numpy's or scipy's own (a tree's ``sklearn.tree._tree.Tree``): trusting those keeps the safe
    format. None when something else is inside: that model goes to cloudpickle."""
    try:
        sio = flavors.import_skops()  # without importing PyTorch where it is installed

        untrusted = sio.get_untrusted_types(data=sio.dumps(model))
    except Exception:  # noqa: BLE001 - skops cannot even write it
        return None
    if all(t.split(".")[0] in _SKOPS_SAFE for t in untrusted):
        return list(untrusted)
    return None


_SKOPS_SAFE = frozenset({"sklearn", "numpy", "scipy"})


def _register(store: Store, name: str, model_uri: str, model_id: str | None, run_id: str,
              tags: dict[str, str], message: str, parent: str | None) -> Any:
    """Register the version under the store's write lock (sqlite numbers never collide)."""
    from mlflow.exceptions import MlflowException

    with store.write_lock():
        # A model with a parent version exists: trying to create it again was a failed write
        # (and on a server a round trip) in every commit. Deleted since? Then it is made anew.
        created = False
        if not (parent or "").startswith(f"{name}/"):
            created = store.gateway.create_model(name, {"nbmodel.managed": "true"})
        # nbmodel's fields in one tag: a server reads a history in a time that grows with the
        # number of tags per version (see nbmodel.tagpack).
        tags = pack({**tags, T_PARENT: parent or ""})
        try:
            try:
                return store.gateway.create_version(name, model_uri, run_id=run_id, tags=tags,
                                                    description=message or None, model_id=model_id)
            except MlflowException as exc:
                if created or getattr(exc, "error_code", "") != "RESOURCE_DOES_NOT_EXIST":
                    raise
            created = store.gateway.create_model(name, {"nbmodel.managed": "true"})
            return store.gateway.create_version(name, model_uri, run_id=run_id, tags=tags,
                                                description=message or None, model_id=model_id)
        except BaseException:
            if created:  # no empty model stays listed
                with contextlib.suppress(Exception):
                    store.gateway.delete_model(name)
            raise
