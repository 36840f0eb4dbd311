"""Recording predictions and labels, and reading them back binned against the reference.

Everything a caller can get wrong (columns that do not match the version, lengths that differ,
timestamps that cannot be read) is checked before anything is written, so bad input records
nothing. Reading prepares each batch once (numeric features cut into the reference's decile
bins, categories coded against the reference's categories) and caches it: a summary then only
counts small integers.
"""

from __future__ import annotations

import datetime as _dt
import json
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import BadData, NbmodelError
from ..evaluate import CLASSIFIER, REGRESSOR, as_frame_or_array, as_target
from ..refs import Ref, parse_ref
from ..store import get_store
from ._storage import BATCHES, LABELS, MonitorRun, monitor_run

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

DEFAULT_ALIAS = "production"
OTHER = "__other__"


# -- the version a record belongs to -------------------------------------------------------------
@dataclass
class Schema:
    """What monitoring needs to know about one version, read once per process."""

    name: str
    version: int
    task: str | None
    columns: list[str] | None
    profile: dict[str, Any] | None
    kinds: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    @property
    def has_reference(self) -> bool:
        return bool(self.profile and self.profile.get("features"))

    def kind(self, column: str, series: Any = None) -> str:
        if column in self.kinds:
            return self.kinds[column]
        import pandas as pd

        if series is not None and pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            return "numeric"
        return "categorical"


_schemas: dict[tuple[str, str, int], Schema] = {}
_schemas_lock = threading.Lock()


def target(ref: str | Ref) -> tuple[str, int]:
    """``(name, version)`` that ``ref`` names now; a plain name means the production alias's
    holder, else the newest version."""
    from ..errors import AliasNotFound
    from ..versions import resolve

    r = parse_ref(ref)
    if r.version is not None:
        return r.name, int(r.version)
    registry = getattr(get_store(), "registry", None)
    if r.alias is None and registry is not None and hasattr(registry, "aliases"):
        aliases = registry.aliases(r.name)  # one query; None: no such model
        if aliases and DEFAULT_ALIAS in aliases:
            return r.name, int(aliases[DEFAULT_ALIAS])
        if aliases is not None:
            v = resolve(r)
            return v.name, v.version
    elif r.alias is None:
        try:
            v = resolve(Ref(r.name, alias=DEFAULT_ALIAS))
            return v.name, v.version
        except AliasNotFound:
            pass
    v = resolve(r)  # raises the error that names what exists
    return v.name, v.version


def schema(name: str, version: int) -> Schema:
    store = get_store()
    key = (store.uri, name, int(version))
    with _schemas_lock:
        found = _schemas.get(key)
    if found is not None:
        return found
    from ..versions import resolve

    v = resolve(f"{name}/{version}")
    profile = _load_profile(v.run_id) if v.data else None
    columns = list(v.data["columns"]) if v.data and v.data.get("columns") else _signature_columns(v.uri)
    kinds = {c: f.get("kind", "numeric") for c, f in (profile or {}).get("features", {}).items()}
    found = Schema(v.name, v.version, v.task, columns, profile, kinds)
    with _schemas_lock:
        _schemas[key] = found
    return found


def _load_profile(run_id: str | None) -> dict[str, Any] | None:
    if not run_id:
        return None
    import tempfile

    from ..versions import PROFILE_ARTIFACT

    store = get_store()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = store.retry(store.client.download_artifacts, run_id, PROFILE_ARTIFACT, tmp)
            with open(path, encoding="utf-8") as fh:
                return json.load(fh)
    except Exception:  # noqa: BLE001 - a version without a profile has no drift reference
        return None


def _signature_columns(model_uri: str) -> list[str] | None:
    try:
        import mlflow

        sig = mlflow.models.get_model_info(model_uri).signature
        names = sig.inputs.input_names() if sig is not None and sig.inputs is not None else None
        return [str(n) for n in names] if names and all(isinstance(n, str) for n in names) else None
    except Exception:  # noqa: BLE001 - no signature: any columns are accepted
        return None


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


def prepare_batch(sch: Schema, X: Any, y_pred: Any, y_true: Any = None, *, ids: Any = None,
                  timestamp: Any = None, latency_ms: Any = None) -> dict[str, np.ndarray]:
    """The arrays of one batch file; raises BadData before anything is written."""
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
    cat_cols = [c for c, k in zip(columns, kinds) if k != "numeric"]
    if num_cols:
        try:
            part = frame if len(num_cols) == len(columns) else frame[num_cols]
            out["num"] = part.to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            bad = [c for c in num_cols if not pd.api.types.is_numeric_dtype(frame[c])]
            raise BadData(f"column {', '.join(bad) or num_cols[0]} of X is not numeric, but "
                          f"{sch.ref} was trained on numbers there") from None
        out["num_cols"] = np.array(num_cols, dtype=str)
    if cat_cols:
        cat = np.empty((n, len(cat_cols)), dtype=object)
        for j, c in enumerate(cat_cols):
            s = frame[c]
            missing = pd.isna(s).to_numpy()
            if pd.api.types.is_string_dtype(s.dtype):
                cat[:, j] = s.to_numpy(dtype=object)  # arrow-backed strings: no per-value astype
            else:
                cat[:, j] = s.astype(str).to_numpy()
            cat[missing, j] = ""
        out["cat"] = cat.astype(str)
        out["cat_cols"] = np.array(cat_cols, dtype=str)
    if y_true is not None:
        y, present = _labels(y_true, n, "y_true (the labels)")
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
    return out


@dataclass
class Recorded:
    """What one record() call stored."""

    ref: str
    rows: int
    labelled: int
    path: str

    def __str__(self) -> str:
        labels = f", {self.labelled} with labels" if self.labelled else ""
        return f"recorded {self.rows} prediction{'s' if self.rows != 1 else ''} for {self.ref}{labels}"

    __repr__ = __str__

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


def record(ref: str | Ref, X: Any, y_pred: Any, y_true: Any = None, *, ids: Any = None,
           timestamp: Any = None, latency_ms: Any = None) -> Recorded:
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
    arrays = prepare_batch(sch, X, y_pred, y_true, ids=ids, timestamp=timestamp, latency_ms=latency_ms)
    run = monitor_run(name)
    try:
        path = run.write(f"{BATCHES}/v{version}", arrays)
    except NbmodelError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise NbmodelError(f"could not record for {sch.ref}: {str(exc).splitlines()[0]}") from exc
    labelled = int(arrays["has_y"].sum()) if "has_y" in arrays else 0
    return Recorded(sch.ref, len(arrays["ts"]), labelled, path)


def record_labels(name: str | Ref, ids: Any, y_true: Any) -> Recorded:
    """Attach true values that arrived later to predictions recorded with ``ids``.

    Labels belong to the model, not a version: they join whichever version answered.

    Raises:
        BadData: ids and y_true of different lengths, or no ids.

    Example:
        >>> nbmodel.record_labels("iris", ["a1", "a2"], [0, 2])  # doctest: +SKIP
    """
    import numpy as np

    r = parse_ref(name)
    id_arr = np.asarray(ids)
    if id_arr.ndim != 1 or len(id_arr) == 0:
        raise BadData("ids must be a list of the ids given to nbmodel.record, one per label")
    y, present = _labels(y_true, len(id_arr), "y_true (the labels)")
    if not present.any():
        raise BadData("y_true has no labels (all missing)")
    target(r)  # the model must exist
    run = monitor_run(r.name)
    path = run.write(LABELS, {"ids": id_arr.astype(str)[present], "y": y[present],
                              "ts": np.array([int(_dt.datetime.now(_dt.UTC).timestamp() * 1000)])})
    return Recorded(r.name, int(present.sum()), int(present.sum()), path)


# -- reading back ----------------------------------------------------------------------------
@dataclass
class Traffic:
    """Everything recorded for one version, as flat arrays (row order = file order)."""

    schema: Schema
    ts: np.ndarray                 # int64 ms
    codes: np.ndarray              # (features, n) int16 bin / category codes; n_bins[f] = missing
    features: list[str]
    n_bins: list[int]                # bins per feature (without the missing code)
    pred: np.ndarray               # classifier: class codes (int32); regressor: float64
    pred_bin: np.ndarray | None    # regressor: bin of each prediction against the target
    y: np.ndarray                  # like pred; only meaningful where has_y
    has_y: np.ndarray
    lat: np.ndarray | None
    classes: list[str]
    task: str
    files: int

    def __len__(self) -> int:
        return len(self.ts)


class _Reader:
    """Per version: the files read so far and their prepared arrays."""

    def __init__(self, sch: Schema) -> None:
        self.schema = sch
        self.lock = threading.Lock()
        self.files: list[str] = []
        self.seen: set[str] = set()
        self.parts: list[dict[str, Any]] = []
        self.label_files: set[str] = set()
        self.label_parts: list[tuple[str, Any, Any]] = []
        self.classes: list[str] = []
        self.class_index: dict[str, int] = {}
        self.task: str | None = sch.task
        self.joined: tuple[int, int, Traffic] | None = None
        prof = sch.profile or {}
        self.features = list((prof.get("features") or {}).keys())
        self.cat_index: dict[str, dict[str, int]] = {}
        self.n_bins: list[int] = []
        for f in self.features:
            st = prof["features"][f]
            if st.get("kind") == "categorical":
                cats = list(st["freq"])
                if OTHER not in cats:
                    cats.append(OTHER)
                self.cat_index[f] = {c: i for i, c in enumerate(cats)}
                self.n_bins.append(len(cats))
            else:
                self.n_bins.append(len(st["edges"]) + 1)
        tstats = prof.get("target_stats") or {}
        if tstats.get("kind") == "categorical" and self.task != REGRESSOR:
            for c in tstats["freq"]:
                if c != OTHER:
                    self._class(c)

    def _class(self, c: str) -> int:
        i = self.class_index.get(c)
        if i is None:
            i = self.class_index[c] = len(self.classes)
            self.classes.append(c)
        return i

    def _class_codes(self, values: np.ndarray) -> np.ndarray:
        import numpy as np

        uniq, inv = np.unique(values.astype(str), return_inverse=True)
        lookup = np.array([self._class(str(u)) for u in uniq], dtype=np.int32)
        return lookup[inv.reshape(-1)]

    def _guess_task(self, pred: np.ndarray) -> str:
        import numpy as np

        if pred.dtype.kind in "OUSb":
            return CLASSIFIER
        if pred.dtype.kind in "iu":
            return CLASSIFIER
        if pred.dtype.kind == "f" and np.all(np.mod(pred[np.isfinite(pred)], 1) == 0) \
                and len(np.unique(pred)) <= 20:
            return CLASSIFIER
        return REGRESSOR

    def _prepare(self, raw: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        n = len(raw["ts"])
        prof = self.schema.profile or {}
        feats = prof.get("features") or {}
        # one contiguous row per feature; a missing value takes the slot after the last bin
        codes = np.empty((len(self.features), n), dtype=np.int16)
        codes[:] = np.asarray(self.n_bins, dtype=np.int16)[:, None]
        num_cols = {str(c): j for j, c in enumerate(raw.get("num_cols", []))}
        cat_cols = {str(c): j for j, c in enumerate(raw.get("cat_cols", []))}
        for k, f in enumerate(self.features):
            st = feats[f]
            if st.get("kind") == "categorical":
                if f in cat_cols:
                    col = raw["cat"][:, cat_cols[f]]
                elif f in num_cols:
                    col = raw["num"][:, num_cols[f]].astype(str)
                else:
                    continue
                index = self.cat_index[f]
                other = index[OTHER]
                uniq, inv = np.unique(col, return_inverse=True)
                lookup = np.array([self.n_bins[k] if u in ("", "nan", "None") else index.get(str(u), other)
                                   for u in uniq], dtype=np.int16)
                codes[k] = lookup[inv.reshape(-1)]
            elif f in num_cols:
                x = raw["num"][:, num_cols[f]]
                b = np.searchsorted(np.asarray(st["edges"]), x, side="right").astype(np.int16)
                b[np.isnan(x)] = self.n_bins[k]
                codes[k] = b
        pred = raw["pred"]
        if self.task is None:
            self.task = self._guess_task(pred)
        has_y = raw["has_y"] if "has_y" in raw else np.zeros(n, dtype=bool)
        out: dict[str, Any] = {"ts": raw["ts"].astype(np.int64), "codes": codes, "has_y": has_y,
                               "ids": raw.get("ids"), "lat": raw.get("lat")}
        if self.task == CLASSIFIER:
            out["pred"] = self._class_codes(pred)
            y = np.full(n, -1, dtype=np.int32)
            if has_y.any():
                y[has_y] = self._class_codes(raw["y"][has_y])
            out["y"] = y
            out["pred_bin"] = None
        else:
            pred = pred.astype(np.float64)
            out["pred"] = pred
            y = np.full(n, np.nan)
            if has_y.any():
                try:
                    y[has_y] = raw["y"][has_y].astype(np.float64)
                except ValueError:
                    pass
            out["y"] = y
            tstats = _prediction_reference(prof, self.task)
            if tstats.get("kind") == "numeric":
                out["pred_bin"] = np.searchsorted(np.asarray(tstats["edges"]), pred, side="right").astype(np.int16)
            else:
                out["pred_bin"] = None
        return out

    def refresh(self, run: MonitorRun) -> Traffic:

        with self.lock:
            folder = f"{BATCHES}/v{self.schema.version}"
            for path in run.list(folder):
                if path not in self.seen:
                    self.parts.append(self._prepare(run.read(path)))
                    self.files.append(path)
                    self.seen.add(path)
            for path in run.list(LABELS):
                if path not in self.label_files:
                    raw = run.read(path)
                    self.label_files.add(path)
                    self.label_parts.append((path, raw["ids"], raw["y"]))
            stamp = (len(self.files), len(self.label_files))
            if self.joined is not None and self.joined[:2] == stamp:
                return self.joined[2]
            traffic = self._join()
            self.joined = (*stamp, traffic)
            return traffic

    def _merge(self) -> None:
        """Fold every part read so far into one, so that a new batch costs one concatenation
        of the arrays rather than one per file ever read."""
        import numpy as np

        parts = self.parts
        if len(parts) < 2:
            return
        n = [len(p["ts"]) for p in parts]
        merged: dict[str, Any] = {
            k: np.concatenate([p[k] for p in parts]) for k in ("ts", "pred", "y", "has_y")}
        merged["codes"] = np.concatenate([p["codes"] for p in parts], axis=1)
        merged["pred_bin"] = np.concatenate([p["pred_bin"] for p in parts]) \
            if all(p["pred_bin"] is not None for p in parts) else None
        merged["lat"] = np.concatenate([p["lat"] if p["lat"] is not None else np.full(k, np.nan, np.float32)
                                        for p, k in zip(parts, n)]) \
            if any(p["lat"] is not None for p in parts) else None
        merged["ids"] = np.concatenate([p["ids"] if p["ids"] is not None else np.full(k, "", dtype=str)
                                        for p, k in zip(parts, n)]) \
            if any(p["ids"] is not None for p in parts) else None
        self.parts = [merged]

    def _join(self) -> Traffic:
        import numpy as np

        self._merge()
        parts = self.parts
        task = self.task or CLASSIFIER

        def cat(key: str, empty: Any) -> Any:
            if len(parts) == 1:
                return parts[0][key]
            return np.concatenate([p[key] for p in parts]) if parts else empty

        ts = cat("ts", np.zeros(0, dtype=np.int64))
        codes = parts[0]["codes"] if parts else np.zeros((len(self.features), 0), dtype=np.int16)
        pred = cat("pred", np.zeros(0, dtype=np.int32 if task == CLASSIFIER else np.float64))
        y = cat("y", np.zeros(0, dtype=np.int32 if task == CLASSIFIER else np.float64)).copy()
        has_y = cat("has_y", np.zeros(0, dtype=bool)).copy()
        pred_bin = np.concatenate([p["pred_bin"] for p in parts]) \
            if parts and all(p["pred_bin"] is not None for p in parts) else None
        lat = None
        if any(p["lat"] is not None for p in parts):
            lat = np.concatenate([p["lat"] if p["lat"] is not None else np.full(len(p["ts"]), np.nan, np.float32)
                                  for p in parts])
        if self.label_parts and any(p["ids"] is not None for p in parts):
            y, has_y = self._apply_labels(parts, y, has_y, task)
        return Traffic(self.schema, ts, codes, list(self.features), list(self.n_bins), pred, pred_bin,
                       y, has_y, lat, list(self.classes), task, len(self.files))

    def _apply_labels(self, parts: list[dict[str, Any]], y: Any, has_y: Any, task: str) -> tuple[Any, Any]:
        import numpy as np
        import pandas as pd

        ids = np.concatenate([p["ids"] if p["ids"] is not None else np.full(len(p["ts"]), "", dtype=str)
                              for p in parts])
        label_ids = np.concatenate([lp[1] for lp in sorted(self.label_parts, key=lambda t: t[0])])
        label_y = np.concatenate([np.asarray(lp[2]).astype(str) if task == CLASSIFIER else
                                  np.asarray(lp[2], dtype=np.float64)
                                  for lp in sorted(self.label_parts, key=lambda t: t[0])])
        index = pd.Index(label_ids)
        keep = ~index.duplicated(keep="last")  # a later label corrects an earlier one
        index = index[keep]
        label_y = label_y[keep]
        pos = index.get_indexer(ids)
        hit = (pos >= 0) & (ids != "")
        if not hit.any():
            return y, has_y
        if task == CLASSIFIER:
            y = y.astype(np.int32)
            y[hit] = self._class_codes(label_y[pos[hit]])
        else:
            y = y.astype(np.float64)
            y[hit] = label_y[pos[hit]]
        has_y = has_y | hit
        return y, has_y


def _prediction_reference(prof: dict[str, Any], task: str | None) -> dict[str, Any]:
    """What predictions are compared with: the training predictions' statistics when the profile
    has them, else (classifiers only) the training target's class frequencies. A regressor's
    predictions spread less than its target, so the target would show drift that is not there."""
    if prof.get("prediction_stats"):
        return prof["prediction_stats"]
    if task == CLASSIFIER:
        return prof.get("target_stats") or {}
    return {}


_readers: dict[tuple[str, str, int], _Reader] = {}
_readers_lock = threading.Lock()


def traffic(name: str, version: int) -> Traffic:
    """All recorded traffic of ``name/version``, prepared; new files only are read."""
    store = get_store()
    key = (store.uri, name, int(version))
    with _readers_lock:
        reader = _readers.get(key)
        if reader is None:
            reader = _readers[key] = _Reader(schema(name, version))
    return reader.refresh(monitor_run(name))


def recorded(ref: str | Ref, *, since: Any = None, labelled: bool = False) -> pd.DataFrame:
    """The recorded traffic of a version as a DataFrame, oldest first: the features, then
    ``timestamp``, ``y_pred``, ``y_true`` (None where unknown, labels given later included),
    ``id`` and ``latency_ms``.

    Useful to retrain on recent data: ``df = nbmodel.recorded("iris", since="2d", labelled=True)``.
    """
    import numpy as np
    import pandas as pd

    name, version = target(ref)
    sch = schema(name, version)
    tr = traffic(name, version)
    reader = _readers[(get_store().uri, name, int(version))]
    run = monitor_run(name)
    frames = []
    for path in reader.files[: tr.files]:
        raw = run.read(path)
        cols: dict[str, Any] = {}
        for j, c in enumerate(raw.get("num_cols", [])):
            cols[str(c)] = raw["num"][:, j]
        for j, c in enumerate(raw.get("cat_cols", [])):
            cols[str(c)] = raw["cat"][:, j]
        df = pd.DataFrame(cols)
        if sch.columns:
            df = df[[c for c in sch.columns if c in df.columns]]
        df["timestamp"] = pd.to_datetime(raw["ts"], unit="ms", utc=True)
        df["y_pred"] = raw["pred"]
        df["id"] = raw["ids"] if "ids" in raw else None
        df["latency_ms"] = raw["lat"] if "lat" in raw else np.nan
        frames.append(df)
    columns = [*(sch.columns or []), "timestamp", "y_pred", "y_true", "id", "latency_ms"]
    if not frames:
        return pd.DataFrame(columns=columns)
    df = pd.concat(frames, ignore_index=True)
    if tr.task == CLASSIFIER:
        classes = np.array(tr.classes + [""], dtype=object)
        values = classes[np.where(tr.has_y, tr.y, len(tr.classes))]
        kind = df["y_pred"].dtype.kind
        if kind in "iu":
            values = [int(v) if v != "" else None for v in values]
        elif kind == "f":
            values = [float(v) if v != "" else None for v in values]
        else:
            values = [v if v != "" else None for v in values]
        df["y_true"] = pd.Series(values, dtype=object)
    else:
        df["y_true"] = np.where(tr.has_y, tr.y, np.nan)
    df = df[columns].sort_values("timestamp", kind="stable")
    if since is not None:
        from ._stats import parse_since

        df = df[df["timestamp"] >= pd.Timestamp(parse_since(since), unit="ms", tz="UTC")]
    if labelled:
        df = df[df["y_true"].notna()]
    return df.reset_index(drop=True)


def clear_caches() -> None:
    from . import _storage

    with _schemas_lock:
        _schemas.clear()
    with _readers_lock:
        _readers.clear()
    _storage.clear_caches()
