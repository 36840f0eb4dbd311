"""Metrics of a model on data: the task, the checks that data fits, and the scores.

Used at commit time (metrics on the eval data) and by comparison. The quality metrics are
:mod:`nbmodel.metrics`'s; ROC AUC comes from scikit-learn, imported inside the functions, so
importing this module costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import flavors
from .errors import BadData, NotAModel, first_line
from .metrics import CLASSIFIER, KEY_METRICS, LOWER_IS_BETTER, REGRESSOR

if TYPE_CHECKING:
    import numpy as np

__all__ = ["CLASSIFIER", "KEY_METRICS", "LOWER_IS_BETTER", "REGRESSOR", "as_frame_or_array", "as_target",
           "check_fits", "check_labels", "check_model", "detect_task", "key_metrics", "predict",
           "probabilities", "roc_auc", "score", "COMMIT_METRICS"]

#: The metrics a commit records, by task (ROC AUC besides where the model has probabilities).
COMMIT_METRICS = {
    CLASSIFIER: ("accuracy", "balanced_accuracy", "f1_macro"),
    REGRESSOR: ("rmse", "mae", "r2"),
}


def check_model(model: Any, what: str = "the object") -> None:
    """Check that ``model`` can predict.

    Args:
        model: the object to commit.
        what: how the message names it.

    Raises:
        NotAModel: ``model`` is none of the model types nbmodel stores and has no callable
            ``predict``.

    Example:
        >>> check_model([1, 2])
        Traceback (most recent call last):
        nbmodel.errors.NotAModel: the object is a list, not a model: ...
    """
    if model is None or (flavors.kind_of(model) is None and not callable(getattr(model, "predict", None))):
        kind = type(model).__name__
        raise NotAModel(f"{what} is a {kind}, not a model: nbmodel commits {flavors.SUPPORTED}")


def as_frame_or_array(X: Any, what: str) -> Any:
    """Accept DataFrames, 2-D arrays and lists of rows; refuse anything else clearly.

    Args:
        X: the data.
        what: how messages name it (``"the eval data"``).

    Returns:
        ``X`` itself if it is a DataFrame or an array, else ``X`` as an array.

    Raises:
        BadData: ``X`` is a Series, is not 2-D, or has no rows.

    Example:
        >>> as_frame_or_array([[1, 2], [3, 4]], "the eval data").shape
        (2, 2)
    """
    import numpy as np
    import pandas as pd

    if isinstance(X, (pd.DataFrame, np.ndarray)):
        arr = X
    elif isinstance(X, pd.Series):
        raise BadData(f"{what} is a single column (a Series); pass a DataFrame or a 2-D array")
    else:
        try:
            arr = np.asarray(X)
        except Exception as exc:  # noqa: BLE001
            raise BadData(f"{what} cannot be read as a table: {exc}") from exc
    if getattr(arr, "ndim", 0) != 2:
        shape = getattr(arr, "shape", None)
        raise BadData(
            f"{what} must be a table of rows and columns (2-D), got shape {shape}; "
            "for a single row use X.iloc[[i]] or X[i:i+1]"
        )
    if arr.shape[0] == 0:
        raise BadData(f"{what} has no rows")
    return arr


def as_target(y: Any, rows: int, what: str) -> np.ndarray:
    """One column of targets, one per row of the data.

    Args:
        y: a Series, a one-column DataFrame, a list or an array of shape ``(n,)`` or ``(n, 1)``.
        rows: the number of rows of the data.
        what: how messages name it (``"the eval targets"``).

    Returns:
        The targets as a 1-D array.

    Raises:
        BadData: several columns, or a length other than ``rows``.

    Example:
        >>> as_target([[1], [0]], 2, "the targets").tolist()
        [1, 0]
    """
    import numpy as np
    import pandas as pd

    if isinstance(y, pd.DataFrame):
        if y.shape[1] != 1:
            raise BadData(f"{what} has {y.shape[1]} columns; pass one column of targets")
        y = y.iloc[:, 0]
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise BadData(f"{what} must be one column of targets, got shape {arr.shape}")
    if len(arr) != rows:
        raise BadData(f"{what} has {len(arr)} values but the data has {rows} rows; they must match")
    return arr


def check_labels(y: Any, what: str, model: Any = None) -> None:
    """Refuse targets no metric can be computed on faithfully: missing values, or (given a
    fitted classifier) labels none of which is among the model's classes.

    Args:
        y: the targets, as :func:`as_target` returns them.
        what: how messages name them (``"the eval targets"``).
        model: a fitted model; its ``classes_``, if any, are compared with the labels.

    Raises:
        BadData: NaN or None among the targets, or labels of another kind than the classes.

    Example:
        >>> check_labels([0, 1, 1], "the eval targets")  # fine: nothing is raised
    """
    import numpy as np
    import pandas as pd

    arr = np.asarray(y)
    missing = np.asarray(pd.isna(arr), dtype=bool).reshape(-1)
    if missing.any():
        n = int(missing.sum())
        raise BadData(f"{what} have {n} missing value{'s' if n > 1 else ''} (NaN or None), the "
                      f"first at row {int(np.argmax(missing))}; drop those rows or fill them in")
    classes = getattr(model, "classes_", None)
    if classes is None or not len(arr):
        return
    known = {str(c) for c in np.asarray(classes).reshape(-1)}
    seen = {str(v) for v in pd.unique(arr.reshape(-1))}
    if not seen & known:
        sample = ", ".join(sorted(seen)[:3])
        raise BadData(f"none of {what} ({sample}...) is a class the model knows "
                      f"({', '.join(sorted(known)[:5])}); are they the right column, of the right type?")


def check_fits(model: Any, X: Any, what: str) -> None:
    """Check that ``X`` has the columns the fitted model expects, naming what is wrong.

    Args:
        model: a fitted model (``feature_names_in_`` and ``n_features_in_`` are checked if set).
        X: the data, 2-D.
        what: how messages name it.

    Raises:
        BadData: columns missing or unknown, or a different number of columns.

    Example:
        >>> check_fits(model, X_test, "the eval data")  # doctest: +SKIP
    """
    names = getattr(model, "feature_names_in_", None)
    cols = list(getattr(X, "columns", []))
    if names is not None and cols:
        names = [str(n) for n in names]
        cols = [str(c) for c in cols]
        missing = [n for n in names if n not in cols]
        unknown = [c for c in cols if c not in names]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing {', '.join(missing)}")
            if unknown:
                parts.append(f"unknown {', '.join(unknown)}")
            raise BadData(
                f"{what} does not have the model's columns ({'; '.join(parts)}); "
                f"the model was fitted on {', '.join(names)}"
            )
    n = getattr(model, "n_features_in_", None)
    if n is not None and X.shape[1] != n:
        raise BadData(
            f"{what} has {X.shape[1]} columns but the model was fitted on {n}; "
            "pass the same columns it was trained with"
        )


def detect_task(model: Any, y: Any = None) -> str | None:
    """``classifier`` or ``regressor``, from the model first and the target second.

    Args:
        model: the model (scikit-learn's tags, ``_estimator_type``, ``classes_`` or
            ``predict_proba`` tell).
        y: the targets, looked at when the model does not tell.

    Returns:
        :data:`CLASSIFIER`, :data:`REGRESSOR`, or None when neither says.

    Example:
        >>> detect_task(object(), [0.5, 1.7, 2.2])
        'regressor'
    """
    est_type = getattr(model, "_estimator_type", None)
    try:
        from sklearn.base import is_classifier, is_regressor

        if is_classifier(model):
            return CLASSIFIER
        if is_regressor(model):
            return REGRESSOR
    except Exception:  # noqa: BLE001 - non-sklearn objects may break sklearn's tag lookup
        pass
    if est_type in (CLASSIFIER, REGRESSOR):
        return str(est_type)
    if hasattr(model, "classes_") or callable(getattr(model, "predict_proba", None)):
        return CLASSIFIER
    if y is None:
        return None
    import numpy as np

    y = np.asarray(y)
    if y.dtype.kind in "OUSb" or str(y.dtype) == "category":
        return CLASSIFIER
    if y.dtype.kind in "iu" and len(np.unique(y)) <= max(20, int(len(y) ** 0.5)):
        return CLASSIFIER
    return REGRESSOR


def predict(model: Any, X: Any, what: str) -> np.ndarray:
    """The model's predictions on ``X``, as an array.

    Args:
        model: anything with ``predict``.
        X: the data.
        what: how the message names the data.

    Returns:
        ``model.predict(X)`` as an array.

    Raises:
        BadData: the model failed; the message gives the first line of its error.

    Example:
        >>> predict(model, X_test, "the eval data")[:3]  # doctest: +SKIP
        array([0, 2, 1])
    """
    import numpy as np

    try:
        pred = flavors.predict(model, X)
    except Exception as exc:  # noqa: BLE001 - the model's own message says what is wrong
        raise BadData(f"the model could not predict on {what}: {first_line(exc)}") from exc
    return np.asarray(pred)


def probabilities(model: Any, X: Any) -> tuple[np.ndarray | None, list[Any] | None]:
    """A classifier's class probabilities on ``X`` and the classes of their columns.

    Args:
        model: the model; without ``predict_proba`` there are no probabilities.
        X: the data.

    Returns:
        ``(proba, classes)``: a ``(rows, classes)`` float array and the model's classes, or
        ``(None, None)`` when the model has none, fails, or returns a shape that does not fit.

    Example:
        >>> proba, classes = probabilities(model, X_test)  # doctest: +SKIP
        >>> proba.shape, classes  # doctest: +SKIP
        ((30, 3), [0, 1, 2])
    """
    import numpy as np

    try:
        proba = flavors.predict_proba(model, X)
    except Exception:  # noqa: BLE001 - probabilities are a bonus (some SVMs refuse)
        return None, None
    if proba is None:
        return None, None
    proba = np.asarray(proba, dtype=float)
    if proba.ndim != 2 or proba.shape[0] != len(X):
        return None, None
    classes = list(getattr(model, "classes_", range(proba.shape[1])))
    if len(classes) != proba.shape[1]:
        return None, None
    return proba, classes


def roc_auc(y: Any, proba: np.ndarray, classes: list[Any]) -> float | None:
    """ROC AUC from probabilities (one-vs-rest, macro-averaged, for several classes).

    Args:
        y: the true classes.
        proba: the probabilities, one column per class of ``classes``.
        classes: the classes of the columns.

    Returns:
        The AUC, or None where it is undefined (one class in the truth, a class the model
        does not know) or scikit-learn cannot compute it.

    Example:
        >>> roc_auc(np.array([0, 1]), np.array([[0.8, 0.2], [0.3, 0.7]]), [0, 1])
        1.0
    """
    import numpy as np
    from sklearn.metrics import roc_auc_score

    try:
        present = set(np.unique(y).tolist())
        if len(present) < 2 or not present <= set(classes):
            return None
        if proba.shape[1] == 2:
            return float(roc_auc_score(np.asarray(y) == classes[1], proba[:, 1]))
        return float(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes))
    except Exception:  # noqa: BLE001 - AUC is a bonus; a model whose probabilities fail still commits
        return None


def score(model: Any, X: Any, y: Any, *, what: str = "the eval data", task: str | None = None,
          y_pred: Any = None) -> dict[str, float]:
    """Metrics of ``model`` on ``(X, y)``, as a commit records them.

    Classifiers: accuracy, balanced_accuracy, f1_macro and, where ``predict_proba`` exists,
    roc_auc (one-vs-rest for several classes). Regressors: rmse, mae, r2. The values are
    :mod:`nbmodel.metrics`'s, which a comparison reports too.

    Args:
        model: the fitted model.
        X: the eval data.
        y: its targets.
        what: how messages name the data.
        task: :data:`CLASSIFIER` or :data:`REGRESSOR`; detected when not given.
        y_pred: the predictions, if already made (saves predicting twice).

    Returns:
        Metric name to value.

    Raises:
        BadData: the data does not fit the model, or a regressor's targets are not numbers.

    Example:
        >>> score(model, X_test, y_test)  # doctest: +SKIP
        {'accuracy': 0.9667, 'balanced_accuracy': 0.9697, 'f1_macro': 0.9672, 'roc_auc': 0.998}
    """
    import numpy as np

    from . import metrics as M

    X = as_frame_or_array(X, what)
    check_fits(model, X, what)
    y = as_target(y, X.shape[0], f"the targets of {what}")
    check_labels(y, f"the targets of {what}", model)
    task = task or detect_task(model, y)
    pred = predict(model, X, what) if y_pred is None else np.asarray(y_pred)
    if pred.ndim == 2 and pred.shape[1] == 1:  # one column of predictions, as some models return
        pred = pred[:, 0]
    if task == CLASSIFIER:
        labels, (yi, pi) = M.class_indices(y, pred)
        out = M.as_floats(M.classification(M.confusion(yi, pi, len(labels))))
        picked = {k: out[k] for k in COMMIT_METRICS[CLASSIFIER]}
        proba, classes = probabilities(model, X)
        auc = None if proba is None or classes is None else roc_auc(y, proba, classes)
        if auc is not None:
            picked["roc_auc"] = auc
        return picked
    try:
        y_f = y.astype(float)
        pred_f = pred.astype(float)
    except (TypeError, ValueError) as exc:
        raise BadData(f"the targets of {what} are not numbers, so regression metrics "
                      "do not apply") from exc
    out = M.as_floats(M.regression(M.error_sums(y_f, pred_f)))
    return {k: out[k] for k in COMMIT_METRICS[REGRESSOR]}


def key_metrics(metrics: dict[str, float], task: str | None, n: int = 3) -> dict[str, float]:
    """The few metrics worth a column in a history table.

    Args:
        metrics: every stored metric.
        task: the version's task; its :data:`KEY_METRICS` come first.
        n: how many to keep.

    Returns:
        At most ``n`` metrics, the task's key ones in their order, else the first stored.

    Example:
        >>> key_metrics({"mae": 2.0, "rmse": 3.0, "r2": 0.8, "max_error": 9.0}, "regressor")
        {'rmse': 3.0, 'r2': 0.8, 'mae': 2.0}
    """
    order = KEY_METRICS.get(task or "", ()) or tuple(metrics)
    picked = {k: metrics[k] for k in order if k in metrics}
    if not picked:
        picked = dict(list(metrics.items())[:n])
    return dict(list(picked.items())[:n])
