"""Metrics of a model on data: the task, the checks that data fits, and the scores.

Used at commit time (metrics on the eval data) and by comparison. scikit-learn is imported
inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import BadData, NotAModel

if TYPE_CHECKING:
    import numpy as np

CLASSIFIER = "classifier"
REGRESSOR = "regressor"

#: Metrics shown in histories, best first; ``higher`` says which direction is better.
KEY_METRICS = {
    CLASSIFIER: ("accuracy", "f1_macro", "roc_auc"),
    REGRESSOR: ("rmse", "r2", "mae"),
}
LOWER_IS_BETTER = frozenset({"rmse", "mae", "max_error", "log_loss", "predict_ms_per_1000"})


def check_model(model: Any, what: str = "the object") -> None:
    """Raise NotAModel unless ``model`` can predict."""
    if model is None or not callable(getattr(model, "predict", None)):
        kind = type(model).__name__
        raise NotAModel(
            f"{what} is a {kind}, not a model: nbmodel commits objects with a predict() "
            "method (a fitted scikit-learn estimator or pipeline, or your own class)"
        )


def as_frame_or_array(X: Any, what: str) -> Any:
    """Accept DataFrames, 2-D arrays and lists of rows; refuse anything else clearly."""
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


def check_fits(model: Any, X: Any, what: str) -> None:
    """Check that ``X`` has the columns the fitted model expects, naming what is wrong."""
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
    """``classifier`` or ``regressor``, from the model first and the target second."""
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
        return est_type
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
    import numpy as np

    try:
        pred = model.predict(X)
    except Exception as exc:  # noqa: BLE001 - the model's own message says what is wrong
        raise BadData(f"the model could not predict on {what}: {str(exc).splitlines()[0]}") from exc
    return np.asarray(pred)


def score(model: Any, X: Any, y: Any, *, what: str = "the eval data", task: str | None = None,
          y_pred: Any = None) -> dict[str, float]:
    """Metrics of ``model`` on ``(X, y)``.

    Classifiers: accuracy, balanced_accuracy, f1_macro and, where ``predict_proba`` exists,
    roc_auc (one-vs-rest for several classes). Regressors: rmse, mae, r2.

    Raises:
        BadData: if the data does not fit the model.
    """
    import numpy as np
    from sklearn import metrics as skm

    X = as_frame_or_array(X, what)
    check_fits(model, X, what)
    y = as_target(y, X.shape[0], f"the targets of {what}")
    task = task or detect_task(model, y)
    pred = predict(model, X, what) if y_pred is None else np.asarray(y_pred)
    out: dict[str, float] = {}
    if task == CLASSIFIER:
        out["accuracy"] = skm.accuracy_score(y, pred)
        out["balanced_accuracy"] = skm.balanced_accuracy_score(y, pred)
        out["f1_macro"] = skm.f1_score(y, pred, average="macro", zero_division=0)
        auc = _roc_auc(model, X, y)
        if auc is not None:
            out["roc_auc"] = auc
    else:
        try:
            y_f = y.astype(float)
            pred_f = pred.astype(float)
        except (TypeError, ValueError) as exc:
            raise BadData(f"the targets of {what} are not numbers, so regression metrics "
                          "do not apply") from exc
        out["rmse"] = float(np.sqrt(skm.mean_squared_error(y_f, pred_f)))
        out["mae"] = skm.mean_absolute_error(y_f, pred_f)
        out["r2"] = skm.r2_score(y_f, pred_f) if len(y_f) > 1 else float("nan")
    return {k: float(v) for k, v in out.items()}


def _roc_auc(model: Any, X: Any, y: Any) -> float | None:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    proba_fn = getattr(model, "predict_proba", None)
    if not callable(proba_fn):
        return None
    try:
        proba = np.asarray(proba_fn(X))
        classes = list(getattr(model, "classes_", range(proba.shape[1])))
        present = set(np.unique(y).tolist())
        if len(present) < 2 or not present <= set(classes):
            return None
        if proba.shape[1] == 2:
            return float(roc_auc_score(y == classes[1], proba[:, 1]))
        return float(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes))
    except Exception:  # noqa: BLE001 - AUC is a bonus; a model whose probabilities fail still commits
        return None


def key_metrics(metrics: dict[str, float], task: str | None, n: int = 3) -> dict[str, float]:
    """The few metrics worth a column in a history table."""
    order = KEY_METRICS.get(task or "", ()) or tuple(metrics)
    picked = {k: metrics[k] for k in order if k in metrics}
    if not picked:
        picked = dict(list(metrics.items())[:n])
    return dict(list(picked.items())[:n])
