"""Model types: which library a model comes from, and how MLflow's own flavor for it stores,
loads and asks it.

XGBoost, LightGBM, PyTorch and Keras models are stored with MLflow's flavor for their library
(native file formats, that library's pinned requirements), so plain ``mlflow.pyfunc.load_model``
loads them in a process that never imported the notebook's code. scikit-learn models keep the
sklearn flavor and any other object with ``predict`` the pyfunc wrapper (both in
:mod:`nbmodel.commits`).

A model's library is told from the modules of its classes, looked up in ``sys.modules`` only: a
library the user has not imported is never imported here.

Networks (PyTorch modules, Keras models) answer raw outputs; nbmodel reads a 2-D output of
several columns as class scores: the prediction is the column with the highest score (classes
``0..k-1``), the probabilities are the scores themselves when they already are (non-negative,
rows summing to 1, as after a softmax layer), else their softmax. One column is a regressor's
value. The served answer is MLflow's, the raw output.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass
from typing import Any

__all__ = ["KINDS", "SUPPORTED", "AsEstimator", "Kind", "adapt", "import_skops", "input_width", "kind_of",
           "kind_named", "layer_params", "load_native", "log_model", "native", "predict", "predict_proba",
           "prepare_env", "raw_output"]

#: What nbmodel can store, for messages.
SUPPORTED = ("scikit-learn estimators and pipelines, XGBoost (XGBClassifier, XGBRegressor, Booster), "
             "LightGBM (LGBMClassifier, LGBMRegressor, Booster), PyTorch (torch.nn.Module) and "
             "Keras 3 models, or any object with a predict() method")


@dataclass(frozen=True)
class Kind:
    """A model library nbmodel stores with MLflow's flavor for it."""

    name: str  #: the flavor's name in ``MLmodel`` and the version's ``nbmodel.flavor`` tag
    dists: tuple[str, ...]  #: distributions pinned in its requirements
    network: bool  #: answers raw outputs (scores), not labels


KINDS = {
    "xgboost": Kind("xgboost", ("xgboost",), network=False),
    "lightgbm": Kind("lightgbm", ("lightgbm",), network=False),
    "pytorch": Kind("pytorch", ("torch",), network=True),
    "keras": Kind("keras", ("keras",), network=True),
}

# (library module, class module path, class name) -> kind; the first base class that matches
# in the model's MRO decides (Keras models on the torch backend are torch modules too).
_BASES = (
    ("keras", "keras", "Model", "keras"),
    ("xgboost", "xgboost.sklearn", "XGBModel", "xgboost"),
    ("xgboost", "xgboost.core", "Booster", "xgboost"),
    ("lightgbm", "lightgbm.sklearn", "LGBMModel", "lightgbm"),
    ("lightgbm", "lightgbm.basic", "Booster", "lightgbm"),
    ("torch", "torch.nn.modules.module", "Module", "pytorch"),
)


def kind_of(model: Any) -> Kind | None:
    """The library ``model`` comes from, if nbmodel stores it with that library's flavor.

    Args:
        model: any object.

    Returns:
        Its :class:`Kind`, or None (scikit-learn models and other objects).

    Example:
        >>> kind_of(object()) is None
        True
    """
    mro = type(model).__mro__
    for library, module, cls, kind in _BASES:
        if library not in sys.modules:  # never import a library the user has not
            continue
        for base in mro:
            mod = getattr(base, "__module__", "") or ""
            if base.__name__ == cls and (mod == module or library == "keras" and mod.startswith("keras.")):
                return KINDS[kind]
    return None


def kind_named(flavor: str | None) -> Kind | None:
    """The :class:`Kind` a version's flavor tag names, or None.

    Example:
        >>> kind_named("xgboost").dists
        ('xgboost',)
    """
    return KINDS.get(flavor or "")


# -- asking a model ----------------------------------------------------------------------------

def _is_keras(model: Any) -> bool:
    return kind_of(model) is KINDS["keras"]


def as_input(model: Any, X: Any) -> Any:
    """``X`` as a network takes it: a float32 array (the dtype of a network's weights).

    Example:
        >>> as_input(net, X_test).dtype  # doctest: +SKIP
        dtype('float32')
    """
    import numpy as np

    values = X.to_numpy() if hasattr(X, "to_numpy") else X
    return np.asarray(values, dtype=np.float32)


def raw_output(model: Any, X: Any) -> Any:
    """What the model itself answers on ``X``, as an array: a network's scores, a booster's
    margins or probabilities, an estimator's predictions. MLflow's pyfunc answers the same.

    Example:
        >>> raw_output(net, X_test).shape  # doctest: +SKIP
        (30, 3)
    """
    import numpy as np

    kind = kind_of(model)
    if kind is KINDS["pytorch"]:
        import torch

        with torch.no_grad():
            out = model(torch.from_numpy(as_input(model, X)))
        return out.detach().cpu().numpy()
    if kind is KINDS["keras"]:
        data = as_input(model, X)
        if len(data) == 0:  # Keras 3's predict fails on no rows (UnboundLocalError): none answered
            width = getattr(model, "output_shape", (None, 1))[-1] or 1
            return np.zeros((0, width), dtype=np.float32)
        return np.asarray(model.predict(data, verbose=0))
    if kind is KINDS["xgboost"] and type(model).__name__ == "Booster":
        import xgboost

        return np.asarray(model.predict(xgboost.DMatrix(X)))
    return np.asarray(model.predict(X))


def _scores(model: Any) -> bool:
    """Whether the model's raw output is class scores (a network or a Booster)."""
    kind = kind_of(model)
    return kind is not None and (kind.network or type(model).__name__ == "Booster")


def _binary_booster(model: Any) -> bool:
    """Whether ``model`` is a Booster trained for two classes: it answers one probability (of
    class 1) per row, not one score per class."""
    import json

    kind = kind_of(model)
    if type(model).__name__ != "Booster" or kind not in (KINDS["xgboost"], KINDS["lightgbm"]):
        return False
    try:
        if kind is KINDS["xgboost"]:
            objective = str(json.loads(model.save_config())["learner"]["objective"]["name"])
            return objective == "binary:logistic"
        objective = str((getattr(model, "params", None) or {}).get("objective", ""))
        return objective in ("binary", "binary_logloss", "cross_entropy", "xentropy")
    except (KeyError, ValueError, TypeError):
        return False


def predict(model: Any, X: Any) -> Any:
    """The model's predictions on ``X``: class labels for scores of several classes (or a
    two-class Booster's probabilities), else the values it answers (one column flattened).

    Example:
        >>> predict(net, X_test)[:3]  # doctest: +SKIP
        array([0, 2, 1])
    """
    out = raw_output(model, X)
    if _binary_booster(model) and out.ndim == 1:
        return (out > 0.5).astype("int64")
    if _scores(model) and out.ndim == 2:
        return out.argmax(axis=1) if out.shape[1] > 1 else out[:, 0]
    return out


def predict_proba(model: Any, X: Any) -> Any:
    """Class probabilities on ``X``, or None when the model has none.

    Example:
        >>> predict_proba(net, X_test).sum(axis=1)[:2]  # doctest: +SKIP
        array([1., 1.], dtype=float32)
    """
    import numpy as np

    fn = getattr(model, "predict_proba", None)
    if not _scores(model) and (kind_of(model) is None or not callable(fn)):
        return fn(X) if callable(fn) else None
    # XGBoost and networks answer float32, whose rows sum to 1 only within float32's precision.
    answer = raw_output(model, X) if _scores(model) or not callable(fn) else fn(X)
    out = np.asarray(answer, dtype=np.float64)
    if _binary_booster(model) and out.ndim == 1:
        out = np.column_stack([1.0 - out, out])
    if out.ndim != 2 or out.shape[1] < 2:
        return None
    if np.all(out >= 0) and np.allclose(out.sum(axis=1), 1.0, atol=1e-4):
        return out / out.sum(axis=1, keepdims=True)
    shifted = np.exp(out - out.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class AsEstimator:
    """A model of one of :data:`KINDS` asked the way scikit-learn's are, for the code that
    only knows that API (permutation importance, SHAP's model-agnostic explainer, test cases):
    ``predict`` gives labels or values (as :func:`predict`), ``predict_proba`` the class
    probabilities of a classifier (as :func:`predict_proba`), ``classes_``, ``n_features_in_``
    and, where the model knows them, ``feature_names_in_``. Data of another width is refused
    with a ValueError that says so, before the library fails its own way. The native object is
    ``model``.

    Example:
        >>> est = adapt(net, "classifier")  # doctest: +SKIP
        >>> est.predict(X_test)[:3], est.predict_proba(X_test).shape  # doctest: +SKIP
        (array([0, 2, 1]), (45, 3))
    """

    def __init__(self, model: Any, task: str | None = None) -> None:
        self.model = model
        self.task = task
        self._width = input_width(model)

    def __repr__(self) -> str:
        return f"AsEstimator({type(self.model).__name__})"

    def _check(self, X: Any) -> None:
        shape = getattr(X, "shape", None)
        if shape is None or len(shape) != 2:
            raise ValueError(f"the model takes a 2-D table of rows, not {type(X).__name__} of shape {shape}")
        if self._width is not None and shape[1] != self._width:
            raise ValueError(f"the model takes {self._width} columns; the data has {shape[1]}")

    def predict(self, X: Any) -> Any:
        """Labels (a classifier's, a network's argmax; NaN where a row's scores are NaN) or
        values (a regressor's).

        Example:
            >>> adapt(net, "classifier").predict(X_test)[:3]  # doctest: +SKIP
            array([0, 2, 1])
        """
        import numpy as np

        self._check(X)
        if kind_of(self.model) in (KINDS["pytorch"], KINDS["keras"]):
            scores = raw_output(self.model, X)
            if scores.ndim == 2 and scores.shape[1] > 1:
                labels = scores.argmax(axis=1)
                unknown = np.isnan(scores).any(axis=1)
                if unknown.any():  # a row whose scores are NaN has no class: not argmax's 0
                    labels = labels.astype(np.float64)
                    labels[unknown] = np.nan
                return labels
        return np.asarray(predict(self.model, X))

    @property
    def predict_proba(self) -> Any:
        """The class probabilities (a classifier's only: a regressor has no such attribute).

        Example:
            >>> adapt(net, "classifier").predict_proba(X_test).shape  # doctest: +SKIP
            (45, 3)
        """
        if not self._classifier():
            raise AttributeError("predict_proba")

        def proba(X: Any) -> Any:
            self._check(X)
            out = predict_proba(self.model, X)
            if out is None:
                raise ValueError("the model gives no class probabilities")
            return out
        return proba

    @property
    def classes_(self) -> Any:
        """The model's classes, or 0..n-1 for a network or Booster that has none of its own.

        Example:
            >>> adapt(net, "classifier").classes_  # doctest: +SKIP
            array([0, 1, 2])
        """
        import numpy as np

        own = getattr(self.model, "classes_", None)
        if own is not None:
            return own
        n = self._classes()
        if not n:
            raise AttributeError("classes_")
        return np.arange(n)

    @property
    def n_features_in_(self) -> int | None:
        """The number of input columns the model takes, where it says.

        Example:
            >>> adapt(net, "classifier").n_features_in_  # doctest: +SKIP
            13
        """
        return self._width

    @property
    def feature_names_in_(self) -> Any:
        """The input columns' names, where the model knows them (else no such attribute).

        Example:
            >>> adapt(booster, "classifier").feature_names_in_[:2]  # doctest: +SKIP
            ['alcohol', 'malic_acid']
        """
        names = _feature_names(self.model)
        if names is None:
            raise AttributeError("feature_names_in_")
        return names

    def _classifier(self) -> bool:
        if self.task is not None:
            return self.task == "classifier"
        return self._classes() > 1

    def _classes(self) -> int:
        """How many class scores the model answers (0 for a regressor, or when unknown),
        from one row of zeros."""
        import numpy as np

        if self.task == "regressor" or self._width is None:
            return 0
        try:
            out = np.asarray(predict_proba(self.model, np.zeros((1, self._width), dtype=np.float32)))
        except Exception:  # noqa: BLE001 - a model that cannot answer zeros: not known
            return 0
        return int(out.shape[1]) if out.ndim == 2 else 0


def adapt(model: Any, task: str | None = None) -> Any:
    """``model`` as scikit-learn's API asks it: an :class:`AsEstimator` for a model of one of
    :data:`KINDS`, any other model as it is.

    Args:
        model: a loaded model.
        task: ``classifier`` or ``regressor`` when known (else told from the model's output).

    Example:
        >>> adapt(object()).__class__.__name__
        'object'
    """
    if isinstance(model, AsEstimator) or kind_of(model) is None:
        return model
    return AsEstimator(model, task)


def native(model: Any) -> Any:
    """The model an :func:`adapt` result stands for (any other model is itself).

    Example:
        >>> native(3)
        3
    """
    return model.model if isinstance(model, AsEstimator) else model


def input_width(model: Any) -> int | None:
    """How many columns a model of one of :data:`KINDS` takes, when it says (None otherwise).

    Example:
        >>> input_width(object()) is None
        True
    """
    kind = kind_of(model)
    try:
        if kind is KINDS["keras"]:
            shape = model.inputs[0].shape
            return int(shape[-1]) if len(shape) == 2 and shape[-1] is not None else None
        if kind is KINDS["pytorch"]:
            for p in model.parameters():  # the first layer's weights: (outputs, inputs)
                return int(p.shape[1]) if p.dim() == 2 else None
            return None
        if kind is KINDS["xgboost"]:
            booster = model if type(model).__name__ == "Booster" else model.get_booster()
            return int(booster.num_features())
        if kind is KINDS["lightgbm"]:
            return int(model.num_feature() if type(model).__name__ == "Booster" else model.n_features_in_)
    except Exception:  # noqa: BLE001 - a model that does not say: no check
        return None
    return None


def _feature_names(model: Any) -> Any:
    """The column names a model was trained with, when it has them (scikit-learn's API, an
    XGBoost Booster's ``feature_names``); None for networks and nameless boosters."""
    import numpy as np

    names = getattr(model, "feature_names_in_", None)
    if names is None and kind_of(model) is KINDS["xgboost"] and type(model).__name__ == "Booster":
        names = model.feature_names
    return None if names is None else np.asarray([str(n) for n in names], dtype=object)


# -- describing a model ------------------------------------------------------------------------

def layer_params(model: Any) -> dict[str, str]:
    """A network's architecture as params: one ``layer.NAME`` per layer and the number of
    parameters (trainable ones too), so a diff shows what changed. Empty for other models.

    Example:
        >>> layer_params(torch.nn.Sequential(torch.nn.Linear(4, 3)))  # doctest: +SKIP
        {'layer.0': 'Linear(in_features=4, out_features=3, bias=True)', 'parameters': '15', ...}
    """
    kind = kind_of(model)
    if kind is KINDS["keras"]:
        out = {}
        for layer in model.layers:
            cfg = layer.get_config()
            shown = ", ".join(f"{k}={cfg[k]}" for k in ("units", "activation", "filters", "kernel_size",
                                                         "rate") if k in cfg)
            out[f"layer.{layer.name}"] = f"{type(layer).__name__}({shown})"
        out["parameters"] = str(int(model.count_params()))
        return out
    if kind is KINDS["pytorch"]:
        out = {}
        for name, sub in model.named_modules():
            if name and not any(True for _ in sub.children()):
                out[f"layer.{name}"] = repr(sub)
        params = list(model.parameters())
        out["parameters"] = str(sum(p.numel() for p in params))
        out["trainable_parameters"] = str(sum(p.numel() for p in params if p.requires_grad))
        return out
    if kind is not None and type(model).__name__ == "Booster":
        return _booster_params(model)
    return {}


def _booster_params(model: Any) -> dict[str, str]:
    import json

    if kind_of(model) is KINDS["lightgbm"]:
        return {str(k): str(v) for k, v in (getattr(model, "params", None) or {}).items()}
    try:
        config = json.loads(model.save_config())["learner"]
        out = {"objective": str(config["objective"]["name"]),
               "num_boosted_rounds": str(model.num_boosted_rounds())}
        train = config["gradient_booster"].get("tree_train_param") or {}
        out.update({k: str(train[k]) for k in ("eta", "max_depth", "lambda", "alpha") if k in train})
        return out
    except (KeyError, ValueError, TypeError):
        return {}


# -- storing and loading -----------------------------------------------------------------------

def _requirements(kind: Kind, model: Any) -> list[str]:
    from .requirements import _version, pinned_requirements

    lines = pinned_requirements(model)
    have = {line.split("==")[0].lower() for line in lines}
    dists = list(kind.dists)
    if kind is KINDS["keras"]:
        import keras

        backend = keras.backend.backend()
        dists.append({"tensorflow": "tensorflow", "jax": "jax"}.get(backend, "torch"))
    for dist in dists:
        version = _version(dist)
        if version and dist.lower() not in have:
            lines.append(f"{dist}=={version}")
    return lines


class _KerasFlavor:
    """``mlflow.keras`` for ``Model.log``, with the model folder made before MLflow writes the
    input example into it (mlflow.keras 3.17 writes it first and fails)."""

    __name__ = "mlflow.keras"

    @staticmethod
    def save_model(*, path: str, **kwargs: Any) -> Any:
        import mlflow.keras

        os.makedirs(path, exist_ok=True)
        return mlflow.keras.save_model(path=path, **kwargs)


def log_model(kind: Kind, model: Any, *, signature: Any, input_example: Any, **common: Any) -> Any:
    """Log ``model`` with MLflow's flavor for ``kind``: its native format, pinned requirements
    of its library, the signature and input example. A network's signature is its tensors
    (float32 rows in, its raw output out), as MLflow's pyfunc for it answers.

    Args:
        kind: the model's :class:`Kind`.
        model: the model.
        signature: MLflow's signature inferred on the model's predictions (replaced for networks).
        input_example: a few rows of the eval or training data.
        common: the rest of ``Model.log``'s arguments (name, run_id, model_id...).

    Returns:
        MLflow's ``ModelInfo``.

    Example:
        >>> info = log_model(KINDS["xgboost"], clf, signature=sig, input_example=X[:5],
        ...                  name="model")  # doctest: +SKIP
    """
    from mlflow.models import Model

    flavor: Any = _mlflow_flavor(kind)
    extra: dict[str, Any] = {}
    if input_example is not None and kind.network:
        from mlflow.models import infer_signature

        input_example = as_input(model, input_example)
        signature = infer_signature(input_example, raw_output(model, input_example))
    if kind is KINDS["xgboost"]:
        extra["xgb_model"] = model
    elif kind is KINDS["lightgbm"]:
        extra["lgb_model"] = model
    elif kind is KINDS["pytorch"]:
        extra["pytorch_model"] = model
        # torch.export's format stores the graph and weights, not a pickle: plain MLflow loads
        # it without the notebook's classes. Without an example to trace, a pickle it must be.
        extra["serialization_format"] = "pt2" if input_example is not None else "pickle"
    else:
        flavor = _KerasFlavor
        extra["model"] = model
    with contextlib.redirect_stdout(io.StringIO()):  # Keras prints a progress bar per predict
        return Model.log(flavor=flavor, signature=signature, input_example=input_example,
                         pip_requirements=_requirements(kind, model), **extra, **common)


def _mlflow_flavor(kind: Kind) -> Any:
    """MLflow's module for ``kind``, imported only when that library's model is stored or loaded."""
    if kind is KINDS["xgboost"]:
        import mlflow.xgboost

        return mlflow.xgboost
    if kind is KINDS["lightgbm"]:
        import mlflow.lightgbm

        return mlflow.lightgbm
    if kind is KINDS["pytorch"]:
        import mlflow.pytorch

        return mlflow.pytorch
    import mlflow.keras

    return mlflow.keras


def import_skops() -> Any:
    """``skops.io``, imported without importing PyTorch.

    skops lists scikit-learn's estimators by walking every scikit-learn package, and walking
    imports sklearn's array-API adapter for torch, and with it torch (seconds, and a server of
    a scikit-learn model that never uses it), wherever torch is installed. Hidden for that
    walk, the adapter imports normally afterwards.

    Example:
        >>> import_skops().__name__
        'skops.io'
    """
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    adapter = "sklearn.externals.array_api_compat.torch"
    hide = adapter not in sys.modules and "torch" not in sys.modules
    if hide:
        sys.modules[adapter] = None  # type: ignore[assignment]  # an ImportError, which the walk skips
    try:
        import skops.io
    finally:
        if hide and adapter in sys.modules and sys.modules[adapter] is None:
            del sys.modules[adapter]
    return skops.io


def prepare_env(meta: dict[str, Any]) -> None:
    """Before a Keras model loads in a process that has not imported Keras yet: the backend it
    was saved with (Keras reads ``KERAS_BACKEND`` once, at import; the default is TensorFlow).

    Example:
        >>> prepare_env({"flavors": {"keras": {"keras_backend": "torch"}}})
    """
    keras_flavor = (meta.get("flavors") or {}).get("keras")
    if isinstance(keras_flavor, dict) and "keras" not in sys.modules and keras_flavor.get("keras_backend"):
        os.environ.setdefault("KERAS_BACKEND", str(keras_flavor["keras_backend"]))


def load_native(kind: Kind, folder: str) -> Any:
    """The model object stored in ``folder`` with ``kind``'s flavor: the estimator or Booster,
    the ``torch.nn.Module`` (for the torch.export format, the exported graph as a module), the
    Keras model.

    Example:
        >>> load_native(KINDS["xgboost"], folder)  # doctest: +SKIP
        XGBClassifier(...)
    """
    import yaml

    with open(os.path.join(folder, "MLmodel"), encoding="utf-8") as f:
        prepare_env(yaml.safe_load(f) or {})
    return _mlflow_flavor(kind).load_model(folder)
