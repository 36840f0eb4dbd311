"""Fingerprints and reference statistics of training data.

The fingerprint (hash, shape, column names and dtypes) tells two versions' data apart in a
diff; the reference statistics (decile bins and their frequencies for numeric features, category
frequencies for the rest) are what monitoring compares live traffic against.
"""

from __future__ import annotations

import hashlib
from typing import Any

#: Features with more distinct values than this are treated as numeric when they are numbers.
MAX_CATEGORIES = 50
N_BINS = 10


def _columns(X: Any) -> list[str]:
    cols = getattr(X, "columns", None)
    if cols is not None:
        return [str(c) for c in cols]
    return [f"x{i}" for i in range(X.shape[1])]


def data_hash(X: Any, y: Any = None) -> str:
    """A content hash of ``X`` (and ``y``) that ignores the index but not column names.

    Args:
        X: a DataFrame or an array.
        y: the targets, if any.

    Returns:
        A hex digest.

    Example:
        >>> import numpy as np
        >>> data_hash(np.eye(2)) == data_hash(np.eye(2))
        True
    """
    import numpy as np
    import pandas as pd

    h = hashlib.blake2b(digest_size=16)
    for part in (X, y):
        if part is None:
            continue
        if isinstance(part, (pd.DataFrame, pd.Series)):
            names = part.columns if isinstance(part, pd.DataFrame) else [part.name]
            h.update(repr([str(c) for c in names]).encode())
            h.update(repr([str(t) for t in np.atleast_1d(part.dtypes)]).encode())
            h.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
        else:
            arr = np.ascontiguousarray(np.asarray(part))
            h.update(repr((arr.shape, str(arr.dtype))).encode())
            if arr.dtype.kind == "O":
                h.update(pd.util.hash_pandas_object(pd.DataFrame(arr.reshape(len(arr), -1)),
                                                    index=False).to_numpy().tobytes())
            else:
                h.update(arr.tobytes())
    return h.hexdigest()


def fingerprint(X: Any, y: Any = None) -> dict[str, Any]:
    """Hash, shape, column names and dtypes of a data set.

    Args:
        X: a DataFrame or an array.
        y: the targets, if any.

    Returns:
        ``hash``, ``rows``, ``columns``, ``dtypes`` and ``target`` (a description of ``y``).

    Example:
        >>> import numpy as np
        >>> fingerprint(np.zeros((3, 2)))["rows"]
        3
    """
    import numpy as np

    dtypes = getattr(X, "dtypes", None)
    if dtypes is not None:
        types = [str(t) for t in dtypes]
    else:
        types = [str(np.asarray(X).dtype)] * X.shape[1]
    return {
        "hash": data_hash(X, y),
        "rows": int(X.shape[0]),
        "columns": _columns(X),
        "dtypes": types,
        "target": None if y is None else str(np.asarray(y).dtype),
    }


def _feature_stats(values: Any) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    s = pd.Series(values)
    missing = int(s.isna().sum())
    s = s.dropna()
    numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
    # Numbers with few distinct values (counts, codes, 0/1 flags) drift as categories.
    if numeric and s.nunique() > 10:
        arr = s.to_numpy(dtype=float)
        edges = np.unique(np.quantile(arr, np.linspace(0, 1, N_BINS + 1)[1:-1]))
        counts = np.bincount(np.searchsorted(edges, arr, side="right"), minlength=len(edges) + 1)
        return {
            "kind": "numeric",
            "missing": missing,
            "mean": float(arr.mean()) if len(arr) else None,
            "std": float(arr.std()) if len(arr) else None,
            "min": float(arr.min()) if len(arr) else None,
            "max": float(arr.max()) if len(arr) else None,
            # Bin i holds edges[i-1] < x <= edges[i]... as np.searchsorted(edges, x, "right").
            "edges": [float(e) for e in edges],
            "freq": [float(c) / max(len(arr), 1) for c in counts],
        }
    counts = s.astype(str).value_counts()
    top = counts.iloc[:MAX_CATEGORIES]
    freq = {str(k): float(v) / max(len(s), 1) for k, v in top.items()}
    rest = float(counts.iloc[MAX_CATEGORIES:].sum()) / max(len(s), 1)
    if rest:
        freq["__other__"] = rest
    return {"kind": "categorical", "missing": missing, "freq": freq}


def profile(X: Any, y: Any = None) -> dict[str, Any]:
    """The fingerprint plus reference statistics per feature (and of the target).

    Args:
        X: a DataFrame or an array.
        y: the targets, if any.

    Returns:
        The :func:`fingerprint` with ``features`` (per-feature statistics; ``target_stats`` too
        when ``y`` is given), for diffs and drift.

    Example:
        >>> import numpy as np
        >>> "features" in profile(np.zeros((3, 2)))
        True
    """
    import numpy as np
    import pandas as pd

    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X), columns=_columns(X))
    out = fingerprint(X, y)
    out["features"] = {str(c): _feature_stats(frame[c]) for c in frame.columns}
    if y is not None:
        out["target_stats"] = _feature_stats(np.asarray(y))
    return out


def summary(fp: dict[str, Any] | None) -> str:
    """``150 rows x 4 columns, 3f2a9c1b`` for cards and diffs.

    Args:
        fp: a :func:`fingerprint`, or None when none was recorded.

    Returns:
        One line.

    Example:
        >>> summary(None)
        'not recorded (commit with --train X y)'
    """
    if not fp:
        return "not recorded (commit with --train X y)"
    return f"{fp['rows']} rows x {len(fp['columns'])} columns, {fp['hash'][:8]}"
