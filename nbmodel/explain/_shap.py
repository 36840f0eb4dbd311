"""SHAP values of a version on some rows, when the optional ``shap`` package is installed.

Tree ensembles and linear models of scikit-learn get shap's exact explainers; any other model
gets its permutation explainer on a sample of rows, with a fixed seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..flavors import native
from ..metrics import CLASSIFIER

#: Rows explained at most (sampled with the seed), and background rows for the explainers.
MAX_ROWS = 200
BACKGROUND = 50
PERMUTATIONS = 4
SEED = 0
INSTALL = 'SHAP values need the shap package: pip install "shap<0.50"'


def available() -> bool:
    """Whether ``shap`` can be imported (it is optional; importing it is the honest test)."""
    try:
        _import_shap()
    except ImportError:
        return False
    return True


def _import_shap() -> Any:
    """shap, imported without the deprecation warnings its import prints about matplotlib."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import shap
    return shap


@dataclass
class ShapValues:
    """SHAP values of some rows: one per row and feature (for a classifier, of the class the
    model predicts for that row)."""

    features: list[str]
    values: Any          # (rows, features)
    data: Any            # (rows, features) the feature values, as numbers where they are
    rows: list[Any]      # the rows' index labels
    explainer: str
    of: int

    def mean_abs(self) -> list[tuple[str, float]]:
        """Features by mean absolute SHAP value, largest first."""
        import numpy as np

        m = np.abs(self.values).mean(axis=0)
        order = sorted(range(len(self.features)), key=lambda i: (-m[i], self.features[i]))
        return [(self.features[i], float(m[i])) for i in order]


def _frame(X: Any, names: list[str]) -> Any:
    import pandas as pd

    return X if isinstance(X, pd.DataFrame) else pd.DataFrame(X, columns=names)


def _kind(model: Any) -> str:
    name = type(model).__name__
    if any(k in name for k in ("Forest", "Tree", "GradientBoosting", "XGB", "LGBM", "HistGradient")):
        return "tree"
    if hasattr(model, "coef_") and hasattr(model, "intercept_") and not hasattr(model, "steps"):
        return "linear"
    return "permutation"


def shap_values(model: Any, X: Any, task: str | None, names: list[str], *, row: int | None = None
                ) -> ShapValues:
    """SHAP values of ``model`` on (a sample of) ``X``; row ``row`` (a position) always included.

    Raises:
        ImportError: shap is not installed.

    Example:
        >>> shap_values(forest, X_test, "classifier", list(X_test.columns)).mean_abs()[0]  # doctest: +SKIP
        ('petal width (cm)', 0.21)
    """
    import numpy as np

    shap = _import_shap()
    X = _frame(X, names)
    n = len(X)
    rng = np.random.default_rng(SEED)
    idx = np.arange(n) if n <= MAX_ROWS else np.sort(rng.choice(n, size=MAX_ROWS, replace=False))
    if row is not None and row not in idx:
        idx = np.sort(np.append(idx[:-1], row))
    sample = X.iloc[idx]
    background = X.iloc[np.sort(rng.choice(n, size=min(BACKGROUND, n), replace=False))]
    kind = _kind(native(model))
    proba = task == CLASSIFIER and callable(getattr(model, "predict_proba", None))
    if kind == "tree":
        try:
            raw = shap.TreeExplainer(native(model))(sample, check_additivity=False)
        except Exception:  # noqa: BLE001 - trees shap cannot read (XGBoost 3.1+ for shap 0.49)
            kind = "permutation"
    if kind == "linear":
        explainer = shap.LinearExplainer(model, background)
        raw = explainer(sample)
    elif kind == "permutation":
        fn = model.predict_proba if proba else model.predict

        def f(a: Any) -> Any:
            return np.asarray(fn(_frame(a, names) if not isinstance(a, type(X)) else a))

        explainer = shap.Explainer(f, shap.maskers.Independent(background, max_samples=BACKGROUND),
                                   algorithm="permutation", seed=SEED)
        # A few antithetic permutations per row: shap's default of 500 evaluations per row
        # takes minutes on a few hundred rows.
        raw = explainer(sample, max_evals=PERMUTATIONS * (2 * len(names) + 1), silent=True)
    values = np.asarray(raw.values, dtype=float)
    if values.ndim == 3:  # one column per class: take the class predicted for each row
        pred = np.asarray(model.predict(sample))
        classes = list(getattr(model, "classes_", range(values.shape[2])))
        pick = np.array([classes.index(p) if p in classes else 0 for p in pred])
        values = values[np.arange(len(pick)), :, pick]
    data = np.asarray(sample.apply(lambda c: c.astype(float) if c.dtype.kind in "iufb"
                                   else c.astype("category").cat.codes.astype(float)), dtype=float)
    return ShapValues(names, values, data, list(sample.index), kind, n)
