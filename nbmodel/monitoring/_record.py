"""Recording predictions and labels: the write path of monitoring.

Everything a caller can get wrong (columns that do not match the version, lengths that differ,
timestamps that cannot be read) is checked before anything is written, so bad input records
nothing. Each call writes one immutable batch file (see :mod:`._storage`).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..display import Shown
from ..errors import BadData, NbmodelError, first_line
from ..evaluate import as_frame_or_array, as_target
from ..metrics import REGRESSOR
from ..refs import Ref, parse_ref
from ._schema import Schema, schema, target
from ._storage import BATCHES, FEATURE, GROUP, LABELS, monitor_run

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


# -- checking a batch --------------------------------------------------------------------------
def _frame(X: Any, sch: Schema) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    if isinstance(X, list) and X and isinstance(X[0], dict):
        X = pd.DataFrame(X)
    X = as_frame_or_array(X, "X")
    cols = sch.columns
    if isinstance(X, pd.DataFrame):
        have = [str(c) for c in X.columns]
        if cols is not None and have == cols:
            return X
        if cols is not None:
            missing = [c for c in cols if c not in have]
            unknown = [c for c in have if c not in cols]
            if missing or unknown:
                parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
                        ([f"unknown {', '.join(unknown)}"] if unknown else [])
                raise BadData(f"X does not have the columns of {sch.ref} ({'; '.join(parts)}); "
                              f"it takes {', '.join(cols)}")
            X = X.rename(columns=str)[cols]
        elif cols is None:
            X = X.rename(columns=str)
        return X
    arr = np.asarray(X)
    if cols is not None and arr.shape[1] != len(cols):
        raise BadData(f"X has {arr.shape[1]} columns but {sch.ref} takes {len(cols)}: {', '.join(cols)}")
    return pd.DataFrame(arr, columns=cols or [f"x{i}" for i in range(arr.shape[1])])


def _labels(y: Any, n: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Values and a mask of which are present (None or NaN mean "no label yet")."""
    import numpy as np
    import pandas as pd

    arr = as_target(y, n, what)
    present = ~pd.isna(arr)
    if arr.dtype.kind in "iub":
        return arr, present
    if arr.dtype.kind == "f":
        return arr, present
    if arr.dtype.kind == "O":
        filled = arr[present]
        numeric = len(filled) and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                                      for v in filled[:100])
        if numeric:
            out = np.full(n, np.nan)
            out[present] = filled.astype(float)
            return out, present
        out = np.array([""] * n, dtype=object)
        out[present] = filled.astype(str)
        return out.astype(str), present
    return arr.astype(str), present


def _timestamps(timestamp: Any, n: int) -> np.ndarray:
    """Milliseconds since the epoch, one per row."""
    import numpy as np
    import pandas as pd

    if timestamp is None:
        return np.full(n, int(_dt.datetime.now(_dt.UTC).timestamp() * 1000), dtype=np.int64)
    if isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool):
        return np.full(n, int(round(float(timestamp) * 1000)), dtype=np.int64)
    scalar = isinstance(timestamp, (str, int, float, _dt.datetime, _dt.date, pd.Timestamp, np.datetime64))
    try:
        if scalar:
            values = pd.DatetimeIndex([_to_timestamp(timestamp)])
        else:
            arr = np.asarray(timestamp)
            if arr.ndim != 1 or len(arr) != n:
                raise BadData(f"timestamp has {arr.size} values but X has {n} rows; give one "
                              "timestamp or one per row")
            if arr.dtype.kind in "iuf":  # seconds since the epoch
                return np.round(arr.astype(np.float64) * 1000).astype(np.int64)
            values = pd.DatetimeIndex(pd.to_datetime(arr, utc=True))
    except BadData:
        raise
    except Exception as exc:  # noqa: BLE001
        raise BadData(f"cannot read the timestamp {timestamp!r}: give a datetime, an ISO date "
                      "('2026-03-01 12:00') or seconds since the epoch") from exc
    if values.tz is None:
        values = values.tz_localize("UTC")
    ms = values.as_unit("ms").asi8.astype(np.int64)
    return np.broadcast_to(ms, (n,)).copy() if len(ms) == 1 else ms


def _to_timestamp(t: Any) -> Any:
    import pandas as pd

    if isinstance(t, (int, float)) and not isinstance(t, bool):
        return pd.Timestamp(float(t), unit="s", tz="UTC")
    import numpy as np

    if isinstance(t, np.number):
        return pd.Timestamp(float(t), unit="s", tz="UTC")
    ts = pd.Timestamp(t)
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


def _check_numbers(y: np.ndarray, present: np.ndarray, sch: Schema) -> None:
    """A regressor's labels must be numbers, or every metric of their window would be wrong."""
    if sch.task == REGRESSOR and y.dtype.kind not in "iufb" and present.any():
        example = next(iter(y[present]))
        raise BadData(f"y_true of {sch.ref}, a regressor, must be numbers, not {example!r}")


def prepare_batch(sch: Schema, X: Any, y_pred: Any, y_true: Any = None, *, ids: Any = None,
                  timestamp: Any = None, latency_ms: Any = None,
                  y_proba: Any = None, groups: Any = None) -> dict[str, np.ndarray]:
    """The arrays of one batch file, checked before anything is written.

    Args:
        sch: the version recorded for.
        X, y_pred, y_true, ids, timestamp, latency_ms, y_proba, groups: as for :func:`record`.

    Returns:
        One array per column of the batch file: ``ts``, ``pred``, ``x.<feature>`` (float64,
        or strings for a categorical feature), and ``y``/``has_y``, ``ids``, ``lat``, ``conf``
        (the predicted class's probability), ``g.<group>`` when given.

    Raises:
        BadData: anything that does not fit the version or the number of rows.

    Example:
        >>> prepare_batch(schema("iris", 1), X, clf.predict(X))["pred"]  # doctest: +SKIP
    """
    import numpy as np
    import pandas as pd

    frame = _frame(X, sch)
    n = len(frame)
    pred = as_target(y_pred, n, "y_pred (the predictions)")
    if pred.dtype.kind == "O":
        if pd.isna(pred).any():
            raise BadData("y_pred has missing values; every recorded row needs its prediction")
        pred = pred.astype(str)
    out: dict[str, np.ndarray] = {"ts": _timestamps(timestamp, n), "pred": pred}
    columns = list(frame.columns)
    if all(c in sch.kinds for c in columns):
        kinds = [sch.kinds[c] for c in columns]
    else:
        kinds = [sch.kind(c, frame[c]) for c in columns]
    num_cols = [c for c, k in zip(columns, kinds) if k == "numeric"]
    if num_cols:
        try:
            # one copy of the numeric block, transposed: a contiguous row per feature column
            block = frame if len(num_cols) == len(columns) else frame[num_cols]
            num = np.ascontiguousarray(block.to_numpy(dtype=np.float64).T)
        except (TypeError, ValueError):
            bad = [c for c in num_cols if not pd.api.types.is_numeric_dtype(frame[c])]
            raise BadData(f"column {', '.join(bad) or num_cols[0]} of X is not numeric, but "
                          f"{sch.ref} was trained on numbers there") from None
        for j, c in enumerate(num_cols):
            out[FEATURE + c] = num[j]
    for c, kind in zip(columns, kinds):
        if kind != "numeric":
            out[FEATURE + c] = _text(frame[c])
    if groups is not None:
        out.update(_groups(groups, n, columns))
    if y_true is not None:
        y, present = _labels(y_true, n, "y_true (the labels)")
        _check_numbers(y, present, sch)
        out["y"] = y
        out["has_y"] = present
    if ids is not None:
        id_arr = np.asarray(ids)
        if id_arr.ndim != 1 or len(id_arr) != n:
            raise BadData(f"ids has {id_arr.size} values but X has {n} rows; give one id per row")
        out["ids"] = id_arr.astype(str)
    if latency_ms is not None:
        lat = np.asarray(latency_ms, dtype=np.float32)
        if lat.ndim == 0:
            lat = np.full(n, float(lat), dtype=np.float32)
        if lat.ndim != 1 or len(lat) != n:
            raise BadData(f"latency_ms has {lat.size} values but X has {n} rows")
        out["lat"] = lat
    if y_proba is not None:
        out["conf"] = confidence(y_proba, n)
    return out


def _text(s: pd.Series) -> Any:
    """A categorical column as strings, "" where missing: Arrow-backed strings stay an Arrow
    array (no Python string per value), anything else becomes a numpy array of str."""
    import pandas as pd

    if isinstance(s.array, pd.arrays.ArrowStringArray):
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = pa.array(s)
        return pc.fill_null(arr, "") if arr.null_count else arr
    missing = pd.isna(s).to_numpy()
    if pd.api.types.is_string_dtype(s.dtype):
        col = s.to_numpy(dtype=object)  # arrow-backed strings: no per-value astype
    else:
        col = s.astype(str).to_numpy(dtype=object)
    if missing.any():
        col = col.copy()
        col[missing] = ""
    return col


def _groups(groups: Any, n: int, columns: list[str]) -> dict[str, np.ndarray]:
    """The ``g.<name>`` columns of ``record(..., groups=)``: a named Series, a dict of name to
    values, or plain values (named ``group``)."""
    import numpy as np
    import pandas as pd

    if isinstance(groups, pd.DataFrame):
        named: dict[str, Any] = {str(c): groups[c] for c in groups.columns}
    elif isinstance(groups, dict):
        named = {str(k): v for k, v in groups.items()}
    else:
        name = getattr(groups, "name", None)
        named = {str(name) if name is not None else "group": groups}
    out = {}
    for name, values in named.items():
        if name in columns:
            raise BadData(f"groups {name!r} is also a column of X: group by the column "
                          f"(--groups {name}) or give the series another name")
        arr = np.asarray(values, dtype=object) if not isinstance(values, pd.Series) else values
        if getattr(arr, "ndim", 1) != 1 or len(arr) != n:
            raise BadData(f"groups {name!r} has {len(arr)} values but X has {n} rows; give one "
                          "group per row")
        out[GROUP + name] = _text(pd.Series(np.asarray(arr, dtype=object)))
    return out


def confidence(y_proba: Any, n: int) -> np.ndarray:
    """The probability of the predicted class per row: the row's largest probability
    (``predict_proba``'s output), or ``max(p, 1 - p)`` for one probability per row (binary).

    Args:
        y_proba: ``(n, classes)`` probabilities, or ``(n,)`` of the positive class.
        n: the number of rows.

    Returns:
        float32 values in [0, 1], NaN where a row has none.

    Raises:
        BadData: not one row of probabilities per prediction.

    Example:
        >>> confidence([[0.2, 0.8], [0.6, 0.4]], 2).tolist()
        [0.800000011920929, 0.6000000238418579]
    """
    import numpy as np

    try:
        p = np.asarray(y_proba, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadData("y_proba must be numbers: predict_proba's output, one row per prediction") from None
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim not in (1, 2) or len(p) != n:
        raise BadData(f"y_proba has {len(p) if p.ndim else 1} rows but X has {n}; give predict_proba's "
                      "output, one row per prediction")
    with np.errstate(invalid="ignore"):
        conf = p.max(axis=1) if p.ndim == 2 else np.maximum(p, 1 - p)
    if np.any((conf < 0) | (conf > 1)):
        raise BadData("y_proba holds values outside [0, 1]; give probabilities (predict_proba)")
    return conf.astype(np.float32)


@dataclass(repr=False)  # Shown's repr: the text form
class Recorded(Shown):
    """What one record() call stored."""

    ref: str
    rows: int
    labelled: int
    path: str

    def __str__(self) -> str:
        labels = f", {self.labelled} with labels" if self.labelled else ""
        return f"recorded {self.rows} prediction{'s' if self.rows != 1 else ''} for {self.ref}{labels}"


def record(ref: str | Ref, X: Any, y_pred: Any, y_true: Any = None, *, ids: Any = None,
           timestamp: Any = None, latency_ms: Any = None, y_proba: Any = None,
           groups: Any = None) -> Recorded:
    """Record a batch of predictions of a version, for monitoring.

    Args:
        ref: the model or version (``iris``, ``iris/3``, ``iris@production``); a plain name
            means the version holding the ``production`` alias, else the newest.
        X: the inputs, with the columns of the version's signature (a DataFrame in any column
            order, or a 2-D array in the signature's order).
        y_pred: the predictions, one per row.
        y_true: the true values where already known (None or NaN for rows without one).
        ids: one id per row, to attach labels later with :func:`record_labels`.
        timestamp: when the predictions were made: one value (a datetime, an ISO string, or
            seconds since the epoch) or one per row; default now.
        latency_ms: time taken to answer, one value or one per row (served traffic).
        y_proba: a classifier's ``predict_proba(X)``: with a calibration
            (:func:`~nbmodel.monitoring.calibrate`) it gives the estimated accuracy and F1 of
            windows whose labels have not arrived.
        groups: one group per row kept apart from X (a person's sex, a region), for
            ``monitor(..., groups=NAME)`` and group alert rules: a named Series (its name is
            the group column's), a dict of name to values, or plain values (named ``group``).

    Returns:
        A :class:`Recorded` summary.

    Raises:
        BadData: if X, y_pred, y_true, ids or timestamp do not fit; nothing is recorded then.

    Example:
        >>> nbmodel.record("iris", X_batch, clf.predict(X_batch), ids=batch_ids)  # doctest: +SKIP
        recorded 100 predictions for iris/1
    """
    name, version = target(ref)
    sch = schema(name, version)
    arrays = prepare_batch(sch, X, y_pred, y_true, ids=ids, timestamp=timestamp, latency_ms=latency_ms,
                           y_proba=y_proba, groups=groups)
    run = monitor_run(name)
    try:
        path = run.write(f"{BATCHES}/v{version}", arrays)
    except NbmodelError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise NbmodelError(f"could not record for {sch.ref}: {first_line(exc)}") from exc
    labelled = int(arrays["has_y"].sum()) if "has_y" in arrays else 0
    return Recorded(sch.ref, len(arrays["ts"]), labelled, path)


def record_labels(name: str | Ref, ids: Any, y_true: Any) -> Recorded:
    """Attach true values that arrived later to predictions recorded with ``ids``.

    Labels belong to the model, not a version: they join whichever version answered. A later
    label for the same id corrects an earlier one.

    Args:
        name: the model (``iris``; a version or alias in the reference is ignored).
        ids: the ids given to :func:`record`, one per label.
        y_true: the true values, one per id (None or NaN: no label yet).

    Returns:
        A :class:`Recorded` summary of the labels stored.

    Raises:
        BadData: ids and y_true of different lengths, no ids, or no labels at all.
        ModelNotFound: no model of that name.

    Example:
        >>> nbmodel.record_labels("iris", ["a1", "a2"], [0, 2])  # doctest: +SKIP
        recorded 2 predictions for iris, 2 with labels
    """
    import numpy as np

    r = name if isinstance(name, Ref) else parse_ref(name)
    id_arr = np.asarray(ids)
    if id_arr.ndim != 1 or len(id_arr) == 0:
        raise BadData("ids must be a list of the ids given to nbmodel.record, one per label")
    y, present = _labels(y_true, len(id_arr), "y_true (the labels)")
    if not present.any():
        raise BadData("y_true has no labels (all missing)")
    _check_numbers(y, present, schema(*target(r)))  # and the model must exist
    run = monitor_run(r.name)
    k = int(present.sum())
    path = run.write(LABELS, {"ids": id_arr.astype(str)[present], "y": y[present],
                              "ts": np.full(k, int(_dt.datetime.now(_dt.UTC).timestamp() * 1000))})
    return Recorded(r.name, int(present.sum()), int(present.sum()), path)

