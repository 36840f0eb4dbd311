"""Running one test case against a model: each kind's check, and what it measured."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import first_line
from ._cases import BadCase, Case

#: Failing rows shown per case.
SHOWN_ROWS = 5
#: Rows of the case's data that robustness cases start from.
ROBUST_ROWS = 5


@dataclass
class CaseResult:
    """What running one case gave.

    Attributes:
        name: the case's name. kind: its kind.
        passed: whether it held.
        measured: what was measured (``0.83 (sex=F)``, ``2 of 30 rows changed``).
        threshold: what the case requires.
        seconds: how long it took.
        rows: the first failing rows, as records, for cases on rows.
        error: set when the case could not run at all (no data, the model crashed).
    """

    name: str
    kind: str
    passed: bool
    measured: str
    threshold: str
    seconds: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form.

        Example:
            >>> CaseResult("a", "rows", True, "3/3", "all").to_dict()["passed"]
            True
        """
        return {"name": self.name, "kind": self.kind, "passed": self.passed,
                "measured": self.measured, "threshold": self.threshold,
                "seconds": round(self.seconds, 4), "rows": self.rows, "error": self.error}


class _Failed(Exception):
    """A case that could not run: its message is the result's ``error``."""


def run_case(model: Any, case: Case, data: tuple[Any, Any] | None) -> CaseResult:
    """Run ``case`` on ``model`` with its data.

    Args:
        model: the loaded model.
        case: the case.
        data: ``(X, y)`` the case runs on, or None for cases that need none.

    Returns:
        The :class:`CaseResult`; a case that cannot run fails with ``error`` set, it never raises.
    """
    start = time.perf_counter()
    try:
        check = _CHECKS[case.kind]
        passed, measured, rows = check(model, case, data)
        error = ""
    except _Failed as exc:
        passed, measured, rows, error = False, "could not run", [], str(exc)
    except BadCase as exc:
        passed, measured, rows, error = False, "could not run", [], str(exc)
    return CaseResult(case.name, case.kind, bool(passed), measured, case.threshold,
                      time.perf_counter() - start, rows, error)


def _need(data: tuple[Any, Any] | None, case: Case, *, y: bool = False) -> tuple[Any, Any]:
    if data is None or data[0] is None or (y and data[1] is None):
        raise _Failed(f"{case.name!r} needs its data: it was stored by fingerprint only; "
                      "give the same data with --eval X y")
    return data


def _predict(model: Any, X: Any) -> Any:
    import numpy as np

    try:
        out = np.asarray(model.predict(X))
    except Exception as exc:  # noqa: BLE001 - the model's own words say what failed
        raise _Failed(f"the model could not predict: {first_line(exc)}") from exc
    return out[:, 0] if out.ndim == 2 and out.shape[1] == 1 else out


def _inputs(model: Any) -> list[str] | None:
    """The column names the model was fitted on, where it says (None when it does not)."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        try:
            names = model.metadata.get_input_schema().input_names()
        except Exception:  # noqa: BLE001 - no signature, or not a pyfunc model
            return None
    return [str(n) for n in names]


def _records(X: Any, index: Any, **extra: Any) -> list[dict[str, Any]]:
    import pandas as pd

    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
    out = []
    for i in list(index)[:SHOWN_ROWS]:
        row = {str(k): _plain(v) for k, v in frame.iloc[int(i)].items()}
        row.update({k: _plain(v[int(i)]) for k, v in extra.items()})
        out.append(row)
    return out


def _plain(v: Any) -> Any:
    item = getattr(v, "item", None)
    return item() if callable(item) else v


def _fmt(x: float) -> str:
    from ..versions import _fmt as fmt

    return fmt(x)


def _same(a: Any, b: Any) -> Any:
    import numpy as np

    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        return np.isclose(a.astype(float), b.astype(float), rtol=1e-6, atol=1e-9, equal_nan=True)
    return a == b


# ---- the kinds ---------------------------------------------------------------------------------
def _metric(model: Any, case: Case, data: Any) -> tuple[bool, str, list[dict[str, Any]]]:
    import numpy as np

    from ..evaluate import score

    X, y = _need(data, case, y=True)
    s = case.spec
    metric, op, threshold, group = s["metric"], s["op"], float(s["threshold"]), s.get("group")

    def value(Xp: Any, yp: Any, what: str) -> float:
        try:
            got = score(model, Xp, yp, what=what)
        except Exception as exc:  # noqa: BLE001
            raise _Failed(first_line(exc)) from exc
        if metric not in got:
            raise _Failed(f"{metric} does not apply to this model (it has {', '.join(got)})")
        return float(got[metric])

    if not group:
        v = value(X, y, "the case's data")
        return _holds(v, op, threshold), _fmt(v), []
    if not hasattr(X, "columns") or group not in X.columns:
        raise _Failed(f"--group {group}: the data has no column {group!r}")
    ys = np.asarray(y)
    col = X[group]
    inputs = _inputs(model)
    if inputs is not None and group not in inputs:
        X = X.drop(columns=[group])  # a grouping column the model was not fitted on
    values = []
    for g in sorted(col.dropna().unique().tolist(), key=str):
        mask = (col == g).to_numpy()
        values.append((value(X[mask], ys[mask], f"the rows where {group}={g}"), str(g)))
    if not values:
        raise _Failed(f"the column {group!r} has no values")
    failing = [t for t in values if not _holds(t[0], op, threshold)]
    pick = max if op in ("<=", "<") else min
    v, g = failing[0] if op == "==" and failing else pick(values, key=lambda t: t[0])
    return not failing, f"{_fmt(v)} ({group}={g})", []


def _holds(v: float, op: str, threshold: float) -> bool:
    return {">=": v >= threshold, ">": v > threshold, "<=": v <= threshold,
            "<": v < threshold, "==": v == threshold}[op]


def _rows(model: Any, case: Case, data: Any) -> tuple[bool, str, list[dict[str, Any]]]:
    import numpy as np

    X, y = _need(data, case, y=True)
    got = _predict(model, X)
    want = np.asarray(y)
    ok = _same(got, want)
    bad = np.flatnonzero(~ok)
    rows = _records(X, bad, expected=want, got=got)
    return not len(bad), f"{len(want) - len(bad)} of {len(want)} rows as expected", rows


def _changed(X: Any, column: str) -> Any:
    import numpy as np

    if not hasattr(X, "columns") or column not in X.columns:
        raise _Failed(f"the data has no column {column!r}")
    if len(X) < 2:
        raise _Failed("the data needs at least 2 rows")
    return X.copy(), np.random.default_rng(0)


def _invariant(model: Any, case: Case, data: Any) -> tuple[bool, str, list[dict[str, Any]]]:
    import numpy as np

    X, _ = _need(data, case)
    column = case.spec["column"]
    X2, rng = _changed(X, column)
    values = X[column].to_numpy()
    shuffled = values[rng.permutation(len(values))]
    if (shuffled == values).all() and values.dtype.kind in "iuf":
        shuffled = values + 1  # a constant column: change it some other way
    X2[column] = shuffled
    before, after = _predict(model, X), _predict(model, X2)
    bad = np.flatnonzero(~_same(before, after))
    rows = _records(X, bad, before=before, after=after)
    return not len(bad), f"{len(bad)} of {len(before)} predictions changed", rows


def _increasing(model: Any, case: Case, data: Any) -> tuple[bool, str, list[dict[str, Any]]]:
    import numpy as np

    X, _ = _need(data, case)
    column = case.spec["column"]
    X2, _rng = _changed(X, column)
    values = X[column].to_numpy(dtype=float)
    step = float(np.nanstd(values)) or 1.0
    X2[column] = values + step

    def output(frame: Any) -> Any:
        proba = getattr(model, "predict_proba", None)
        if callable(proba):
            try:
                return np.asarray(proba(frame), dtype=float)[:, -1]
            except Exception as exc:  # noqa: BLE001
                raise _Failed(f"the model could not give probabilities: {first_line(exc)}") from exc
        return _predict(model, frame).astype(float)

    before, after = output(X), output(X2)
    bad = np.flatnonzero(after < before - 1e-9)
    rows = _records(X, bad, before=before, after=after)
    return not len(bad), f"{len(bad)} of {len(before)} fell when {column} rose by {_fmt(step)}", rows


def abnormal(X: Any, kind: str) -> Any:
    """A few rows of ``X`` made abnormal in the way ``kind`` names (see ``ROBUST``).

    Example:
        >>> import pandas as pd
        >>> abnormal(pd.DataFrame({"a": [1.0, 2.0]}), "nan")["a"].isna().tolist()
        [True, False]
    """
    import numpy as np
    import pandas as pd

    is_frame = isinstance(X, pd.DataFrame)
    frame = X.iloc[:ROBUST_ROWS].copy() if is_frame else pd.DataFrame(np.asarray(X)[:ROBUST_ROWS])
    numeric = [c for c in frame.columns if frame[c].dtype.kind in "iuf"]
    if kind == "missing-column":
        frame = frame.drop(columns=frame.columns[0])
    elif kind == "wrong-type":
        col = (numeric or list(frame.columns))[0]
        frame[col] = frame[col].astype(object)
        frame[col] = "not a number"
    elif kind == "nan":
        for c in numeric:
            frame[c] = frame[c].astype(float)
        frame.loc[frame.index[0], numeric] = np.nan
    elif kind == "empty":
        frame = frame.iloc[:0]
    elif kind == "out-of-range":
        for c in numeric:
            v = frame[c].astype(float)
            frame[c] = v.max() + 1000 * (v.max() - v.min() + 1)
    return frame if is_frame else frame.to_numpy()


#: Errors that refuse an input clearly; others (AttributeError, IndexError...) are crashes.
_CLEAR = (ValueError, TypeError, KeyError)


def _robust(model: Any, case: Case, data: Any) -> tuple[bool, str, list[dict[str, Any]]]:
    import numpy as np

    X, _ = _need(data, case)
    kind, expect = case.spec["input"], case.spec["expect"]
    bad_input = abnormal(X, kind)
    try:
        out = np.asarray(model.predict(bad_input))
    except Exception as exc:  # noqa: BLE001 - how it refuses is what the case checks
        clear = isinstance(exc, _CLEAR) or type(exc).__name__ == "MlflowException"
        said = first_line(exc)
        if expect == "refused" and clear and said:
            return True, f"refused: {said}", []
        how = "refused" if clear and said else f"crashed ({type(exc).__name__})"
        return False, f"{how}: {said}", []
    n = len(bad_input)
    finite = out.dtype.kind not in "fc" or bool(np.isfinite(out.astype(float)).all())
    answered = len(out) == n and finite
    got = f"answered {len(out)} of {n} rows" + ("" if finite else " with NaN")
    if expect == "answered":
        return answered, got, []
    return False, f"{got}, not refused", []


def _function(model: Any, case: Case, data: Any) -> tuple[bool, str, list[dict[str, Any]]]:
    import numpy as np
    import pandas as pd

    ns: dict[str, Any] = {"np": np, "pd": pd, "__name__": "nbmodel_test_case"}
    try:
        exec(compile(case.spec["source"], f"<test case {case.name}>", "exec"), ns)  # noqa: S102 - the case's own stored source
    except Exception as exc:  # noqa: BLE001
        raise _Failed(f"its source does not run: {first_line(exc)}") from exc
    fn = ns[case.spec["function"]]
    try:
        out = fn(model, data)
    except AssertionError as exc:
        return False, f"assertion failed: {first_line(exc)}" if str(exc) else "assertion failed", []
    except Exception as exc:  # noqa: BLE001
        return False, f"error: {first_line(exc)}", []
    if out is False:
        return False, "returned False", []
    if isinstance(out, (int, float)) and not isinstance(out, bool):
        return True, _fmt(float(out)), []
    return True, "passed", []


_CHECKS = {"metric": _metric, "rows": _rows, "invariant": _invariant,
           "increasing": _increasing, "robust": _robust, "function": _function}
