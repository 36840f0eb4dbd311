"""What the server process serves: one loaded version (:class:`Handle`) per model, and the
:class:`Slot` that follows a model's alias and swaps handles atomically.

A request reads ``slot.handle`` once and uses only that handle, so every answer comes wholly
from one version; a swap is one attribute assignment done after the new version has loaded and
answered its own input example, so a version that fails to load never replaces the one serving.

The fast path: a model whose rows are answered independently -- a scikit-learn estimator (or an
XGBoost or LightGBM one) whose signature is all numeric columns, a bare XGBoost or LightGBM
Booster, or a PyTorch or Keras network committed with its float tensor signature -- asked with
JSON ``dataframe_split`` or ``dataframe_records`` holding plain numbers, is answered by the
native object on a NumPy array, skipping pandas and MLflow's schema enforcement (together about
90% of a request's cost in ``mlflow models serve``), and without importing MLflow. Anything
else (CSV, parquet, ``instances``, ``inputs``, ``params``, strings, nulls, other flavors) goes
through MLflow's own parsing and ``pyfunc`` prediction, so the answers are MLflow's. The fast
path is enabled per version only after the array and DataFrame forms gave the same predictions
on the version's input example.

Fast-path requests that arrive together are answered by one call to ``predict`` (a
:class:`Batcher` per loaded version): under concurrent load most of a request's cost is the
estimator's input validation, which is paid once per call, not once per row. A version batches
only if its predictions for several rows at once equal its predictions row by row on the input
example, so batching never changes an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import first_line
from ..flavors import import_skops, prepare_env

log = logging.getLogger("nbmodel.serving")

DF_SPLIT = "dataframe_split"
DF_RECORDS = "dataframe_records"
INSTANCES = "instances"
INPUTS = "inputs"
FORMATS = (DF_SPLIT, DF_RECORDS, INSTANCES, INPUTS)
PARAMS = "params"

# MLflow column types the fast path can fill from JSON numbers, with their NumPy dtype.
# Only the types whose conversion from JSON numbers MLflow does the same way for every value.
_NUMERIC = {"double": "float64", "long": "int64"}
_INTEGRAL = {"long"}


class NeedsMlflow(Exception):
    """The request takes the slow path, which needs MLflow (imported by the follower thread:
    importing it from two threads at once breaks it)."""

    def __init__(self, payload: Any) -> None:
        super().__init__("slow path")
        self.payload = payload


class RequestError(Exception):
    """A request the server answers with a 4xx JSON error that says what is wrong."""

    def __init__(self, message: str, status: int = 400, code: str = "BAD_REQUEST") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


@dataclass
class Column:
    name: str
    type: str
    required: bool = True


@dataclass
class Handle:
    """One loaded version of a model, immutable once it serves."""

    name: str
    version: int
    path: str
    columns: list[Column] | None
    native: Any = None  # the estimator, for the fast path
    fast: bool = False  # the fast path gave MLflow's answers on the input example
    use_array: bool = False  # the estimator takes a bare array (no column names needed)
    example: dict[str, Any] | None = None  # the serving input example
    loaded_at: float = field(default_factory=time.time)
    recorder: Any = None
    _pyfunc: Any = None
    _pyfunc_lock: threading.Lock = field(default_factory=threading.Lock)

    batcher: Batcher | None = None
    kernel: Any = None  # the estimator's own arithmetic for plain arrays (see _linear_kernel)

    @property
    def batch(self) -> bool:
        """Several requests' rows may go to one predict call."""
        return self.batcher is not None

    @functools.cached_property
    def row_dtype(self) -> str:
        """The NumPy type of a row of the model's columns: theirs when they share one."""
        kinds = set(_dtypes(self)) if self.columns else set()
        return kinds.pop() if len(kinds) == 1 else "float64"

    @property
    def names(self) -> list[str] | None:
        return [c.name for c in self.columns] if self.columns else None

    def pyfunc(self) -> Any:
        """MLflow's pyfunc model of this version (loaded on first use: it imports MLflow)."""
        if self._pyfunc is None:
            with self._pyfunc_lock:
                if self._pyfunc is None:
                    import mlflow.pyfunc

                    # No requirement check: it scans every installed distribution (seconds,
                    # holding the GIL while requests wait), and the server runs where the
                    # kernel that committed the model already checked them.
                    self._pyfunc = mlflow.pyfunc.load_model(self.path, suppress_warnings=True)
        return self._pyfunc


def read_mlmodel(path: str) -> dict[str, Any]:
    """The ``MLmodel`` file of a model folder, as a dict (without importing MLflow)."""
    import yaml

    with open(os.path.join(path, "MLmodel"), encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def _columns(meta: dict[str, Any]) -> list[Column] | None:
    sig = (meta.get("signature") or {}).get("inputs")
    if not sig:
        return None
    try:
        spec = json.loads(sig)
    except ValueError:
        return None
    if not isinstance(spec, list) or not all(isinstance(c, dict) and c.get("name") for c in spec):
        return None  # a tensor signature: no columns to check
    return [Column(str(c["name"]), str(c.get("type", "")), bool(c.get("required", True))) for c in spec]


def _load_native(path: str, meta: dict[str, Any]) -> Any:
    """The scikit-learn estimator, read the way mlflow.sklearn reads it (or an XGBoost or
    LightGBM estimator or Booster, a PyTorch module or a Keras model, read as their flavors
    read them); None if another flavor, or one the fast path cannot answer as MLflow does."""
    flavors = meta.get("flavors") or {}
    if flavors.get("xgboost") or flavors.get("lightgbm"):
        return _load_booster_estimator(path, flavors)
    if flavors.get("pytorch") or flavors.get("keras"):
        return _load_network(path, meta)
    sk = flavors.get("sklearn")
    if not sk:
        return None
    fmt = sk.get("serialization_format", "cloudpickle")
    allowed = os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true").strip().lower() in ("true", "1")
    if fmt in ("cloudpickle", "pickle") and allowed and not sk.get("code"):
        import cloudpickle

        # mlflow.sklearn loads these formats with cloudpickle.load too; reading the file
        # directly lets the server start without importing MLflow (about 2 s).
        with open(os.path.join(path, sk.get("pickled_model", "model.pkl")), "rb") as f:
            return cloudpickle.load(f)
    if fmt == "skops" and allowed and not sk.get("code"):
        return import_skops().load(os.path.join(path, sk.get("pickled_model", "model.skops")),
                             trusted=sk.get("skops_trusted_types"))
    import mlflow.sklearn  # anything else, and MLflow's own refusal when loading is disallowed

    return mlflow.sklearn.load_model(path)


def _load_booster_estimator(path: str, flavors: dict[str, Any]) -> Any:
    """An XGBoost or LightGBM scikit-learn-API estimator, or a bare Booster wrapped as
    mlflow.xgboost's and mlflow.lightgbm's pyfuncs ask it (:class:`BoosterPredictor`), from its
    native file, without MLflow (the rows of a request are independent, so it takes the fast
    path); None for a format read otherwise, which MLflow's pyfunc answers."""
    xgb, lgb = flavors.get("xgboost"), flavors.get("lightgbm")
    if isinstance(xgb, dict) and not xgb.get("code"):
        module, _, cls = str(xgb.get("model_class", "")).rpartition(".")
        if module == "xgboost.core" and cls == "Booster":
            import xgboost

            booster = xgboost.Booster()
            booster.load_model(os.path.join(path, str(xgb.get("data", "model.xgb"))))
            return BoosterPredictor(booster, xgboost.DMatrix)
        if module != "xgboost.sklearn":
            return None
        import xgboost.sklearn

        model = getattr(xgboost.sklearn, cls)()
        model.load_model(os.path.join(path, str(xgb.get("data", "model.xgb"))))
        return model
    if isinstance(lgb, dict) and str(lgb.get("model_class", "")) == "lightgbm.basic.Booster" \
            and not lgb.get("code"):
        import lightgbm

        # mlflow.lightgbm saves a Booster in LightGBM's own text format whatever the
        # serialization format says, and loads it with Booster(model_file=...)
        file = os.path.join(path, str(lgb.get("data", "model.lgb")))
        return BoosterPredictor(lightgbm.Booster(model_file=file))
    if isinstance(lgb, dict) and lgb.get("serialization_format") == "skops" and not lgb.get("code"):
        if not str(lgb.get("model_class", "")).startswith("lightgbm.sklearn."):
            return None
        return import_skops().load(os.path.join(path, str(lgb.get("data", "model.skops"))),
                             trusted=lgb.get("skops_trusted_types"))
    return None


class Scores:
    """Class scores answered on the fast path (a Booster's or a network's, one column per
    class): the JSON answer is the scores themselves, MLflow's answer (``tolist``), while
    monitoring, a shadow and a pipeline's next stage see the class with the highest score
    (``numpy.asarray``), as :func:`_as_recorded` gives them on the slow path. Slices are
    scores too, so the :class:`Batcher` shares one call's answer among its requests."""

    __slots__ = ("values",)

    def __init__(self, values: Any) -> None:
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, key: Any) -> Scores:
        return Scores(self.values[key])

    def tolist(self) -> Any:
        return self.values.tolist()

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        labels = self.values.argmax(axis=1)
        return labels if dtype is None else labels.astype(dtype)

    def __repr__(self) -> str:
        return f"Scores({self.values!r})"


def _scored(out: Any) -> Any:
    """A model's raw answer as the fast path returns it: several columns of scores as
    :class:`Scores`, anything else as it is (a two-class Booster's probabilities, a
    regressor's values), just as :func:`_as_recorded` reads them."""
    if getattr(out, "ndim", 0) == 2 and out.shape[1] > 1:
        return Scores(out)
    return out


def _values(out: Any) -> Any:
    """What a native predictor answered, as the array the client gets."""
    import numpy as np

    return out.values if isinstance(out, Scores) else np.asarray(out)


class BoosterPredictor:
    """An XGBoost or LightGBM Booster asked as MLflow's pyfunc asks it: XGBoost's through a
    ``DMatrix`` of the rows (names checked), LightGBM's on the rows themselves."""

    def __init__(self, booster: Any, dmatrix: Any = None) -> None:
        self.booster = booster
        self._dmatrix = dmatrix

    def raw(self, X: Any) -> Any:
        if self._dmatrix is not None:
            return self.booster.predict(self._dmatrix(X), validate_features=True)
        return self.booster.predict(X)

    def predict(self, X: Any) -> Any:
        return _scored(self.raw(X))


class NetworkPredictor:
    """A PyTorch module or Keras model whose signature is one float32 tensor of rows, asked as
    MLflow's pyfunc asks it after reading a JSON body into that tensor: the values as float32
    (each read as a double first, as pandas reads JSON numbers), a torch module in no-grad
    mode on a tensor of them (column-major, as MLflow's DataFrame gives them), a Keras model's
    ``predict``; the answer is the output array."""

    def __init__(self, call: Any, width: int) -> None:
        self.call = call
        self.width = width  #: the number of values in a row

    def raw(self, X: Any) -> Any:
        import numpy as np

        if isinstance(X, list):
            X = np.array(X, dtype=np.float64)
        # column-major, as pandas' to_numpy gives MLflow the tensor: a matrix kernel rounds
        # differently on another memory layout
        return self.call(np.asarray(X).astype(np.float32, order="F"))

    def predict(self, X: Any) -> Any:
        return _scored(self.raw(X))


def _tensor_width(meta: dict[str, Any]) -> int | None:
    """The row width of a signature that is one float32 tensor of shape (-1, width), as
    nbmodel commits networks; None for any other signature."""
    sig = (meta.get("signature") or {}).get("inputs")
    try:
        spec = json.loads(sig) if sig else None
    except ValueError:
        return None
    if not isinstance(spec, list) or len(spec) != 1 or not isinstance(spec[0], dict):
        return None
    tensor = spec[0].get("tensor-spec") or {}
    shape = tensor.get("shape")
    if spec[0].get("type") != "tensor" or spec[0].get("name") or tensor.get("dtype") != "float32" \
            or not isinstance(shape, list) or len(shape) != 2 or shape[0] != -1:
        return None
    width = shape[1]
    return width if type(width) is int and width > 0 else None


def _load_network(path: str, meta: dict[str, Any]) -> Any:
    """A PyTorch module (torch.export's format) or a Keras 3 model (``.keras`` file) read as
    mlflow.pytorch and mlflow.keras read them, without MLflow, as a :class:`NetworkPredictor`;
    None when the fast path cannot answer as MLflow's pyfunc would: a signature other than
    one float32 tensor of rows (a column signature gets a DataFrame back from the pyfunc),
    a pickled module (its pickle module is MLflow's), an exported Keras model, a GPU."""
    width = _tensor_width(meta)
    flavors = meta.get("flavors") or {}
    if width is None:
        return None
    pt, keras_flavor = flavors.get("pytorch"), flavors.get("keras")
    if isinstance(pt, dict) and not pt.get("code"):
        return _load_torch(path, pt, width)
    if isinstance(keras_flavor, dict) and not keras_flavor.get("save_exported_model"):
        return _load_keras(path, keras_flavor, width)
    return None


def _load_torch(path: str, flavor: dict[str, Any], width: int) -> Any:
    folder = os.path.join(path, str(flavor.get("model_data", "data")))
    exported = os.path.join(folder, "model.pt2")
    if os.path.exists(os.path.join(folder, "model.pth")) or not os.path.isfile(exported):
        return None  # a pickle, loaded through MLflow's pickle module
    allowed = os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true").strip().lower() in ("true", "1")
    if not allowed or os.environ.get("MLFLOW_DEFAULT_PREDICTION_DEVICE"):
        return None  # MLflow checks the archive, or moves the module to another device
    import torch

    if torch.cuda.is_available():
        return None  # MLflow's pyfunc predicts on the GPU
    module = torch.export.load(exported).module()

    def call(X: Any) -> Any:
        with torch.no_grad():
            out = module(torch.from_numpy(X))
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"the module answered {type(out).__name__}, not one tensor")
        return out.numpy()

    return NetworkPredictor(call, width)


def _load_keras(path: str, flavor: dict[str, Any], width: int) -> Any:
    model_path = os.path.join(path, str(flavor.get("data") or "model"))
    if os.path.isdir(model_path):
        model_path = os.path.join(model_path, "model")
    model_path += ".keras"
    if not os.path.isfile(model_path):
        return None
    import keras

    model = keras.saving.load_model(model_path)

    def call(X: Any) -> Any:
        import numpy as np

        return np.asarray(keras.ops.convert_to_numpy(model.predict(X, verbose=0)))

    return NetworkPredictor(call, width)


def tensor_rows(h: Handle, fmt: str, data: Any) -> list[list[Any]] | None:
    """Rows of plain numbers for a network whose signature is one tensor of rows, or None to
    take the slow path. As MLflow reads a ``dataframe_split`` or ``dataframe_records`` body
    for such a signature, columns count by position (their names are not checked):
    ``columns`` in the split form, the keys of the first record in the records form. Anything
    else (strings, nulls, other widths, records with other keys, integers too large for a
    double) gets MLflow's own answer or error."""
    width = getattr(h.native, "width", None)
    if fmt == DF_SPLIT:
        if not isinstance(data, dict) or "data" not in data or not set(data) <= {"columns", "data", "index"}:
            return None
        cols, rows = data.get("columns"), data["data"]
        if cols is not None and (not isinstance(cols, list) or len(cols) != width
                                 or len({str(c) for c in cols}) != len(cols)):
            return None
        if not isinstance(rows, list) or not rows:
            return None
    elif fmt == DF_RECORDS:
        if not isinstance(data, list) or not data or type(data[0]) is not dict:
            return None
        keys = list(data[0])
        if len(keys) != width:
            return None
        rows = []
        for rec in data:
            if type(rec) is not dict or len(rec) != width or any(k not in rec for k in keys):
                return None
            rows.append([rec[k] for k in keys])
    else:
        return None
    for r in rows:
        if type(r) is not list or len(r) != width:
            return None
        for x in r:
            if type(x) is not float and (type(x) is not int or abs(x) > 2 ** 53):
                return None
    return rows


def _example(path: str, meta: dict[str, Any]) -> dict[str, Any] | None:
    info = meta.get("saved_input_example_info") or {}
    name = info.get("serving_input_path")
    if not name:
        return None
    try:
        with open(os.path.join(path, name), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def recorded_tags(name: str, version: int) -> dict[str, str] | None:
    """The version's artifact digests tag, from the store the server serves from.

    A sqlite store is read directly (no MLflow import); another store through its gateway
    once MLflow is imported (the server imports it in the background, and follows alias moves
    only after that). None when it cannot be read here: the kernel checked the files before
    starting the server.
    """
    import sys

    from ..digests import TAG
    from ..tagpack import PACK, unpack

    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri.startswith("sqlite:///") and os.path.isabs(uri[len("sqlite:///"):]):
        import sqlite3

        try:
            with contextlib.closing(sqlite3.connect(f"file:{uri[len('sqlite:///'):]}?mode=ro",
                                                    uri=True, timeout=5)) as conn:
                rows = conn.execute("SELECT key, value FROM model_version_tags WHERE name = ? AND "
                                    "version = ? AND key IN (?, ?)",
                                    (name, int(version), TAG, PACK)).fetchall()
        except sqlite3.Error:
            return None
        # the digests as a commit keeps them (in nbmodel's one tag) or as older ones did
        digests = unpack({str(k): str(v) for k, v in rows}).get(TAG)
        return {TAG: digests} if digests is not None else {}
    if uri and "mlflow.tracking.client" in sys.modules:
        from ..store import get_store

        rows, _ = get_store().gateway.versions(name, version=int(version))
        return dict(rows[0].tags) if rows else None
    return None


def load_handle(name: str, version: int, path: str, *, with_pyfunc: bool = False) -> Handle:
    """Load a version from its local model folder and check it answers its input example.

    The folder's files are first checked against the digests recorded at commit, so a
    tampered version never loads (the caller keeps serving the old one and says why).

    Raises:
        Exception: whatever loading or the check raised; the caller keeps the old handle.
    """
    from ..digests import verify

    verify(path, recorded_tags(name, int(version)), what=f"{name}/{version}")
    meta = read_mlmodel(path)
    prepare_env(meta)  # a Keras model: the backend it was saved with, before Keras is imported
    h = Handle(name=name, version=int(version), path=path, columns=_columns(meta))
    h.native = _load_native(path, meta)
    h.example = _example(path, meta)
    if isinstance(h.native, NetworkPredictor) and not h.columns:
        h.fast = _check_tensor(h)  # rows by position, as MLflow reads them for a tensor
        if h.fast and _check_batch(h):
            h.batcher = Batcher(h)
        elif not h.fast:
            with_pyfunc = True
    elif h.native is None or not h.columns or not callable(getattr(h.native, "predict", None)):
        with_pyfunc = True  # no fast path: MLflow's pyfunc answers everything
    elif all(c.type in _NUMERIC for c in h.columns):
        h.fast, h.use_array = _check_fast(h)
        if h.use_array:
            h.kernel = _check_kernel(h)
        if h.fast and _check_batch(h):
            h.batcher = Batcher(h)
    if with_pyfunc:
        h.pyfunc()
        if h.example is not None and not h.fast:
            predict_slow(h, json.dumps(h.example).encode(), "application/json")
    return h


def _check_fast(h: Handle) -> tuple[bool, bool]:
    """(fast path usable, bare array usable): both must agree with the DataFrame form."""
    import numpy as np

    rows = _example_rows(h)[:5]
    try:
        frame = _frame(h, rows)
        want = _values(h.native.predict(frame))
    except Exception:  # noqa: BLE001 - the model cannot answer even its example: slow path
        return False, False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "X does not have valid feature names"
            got = _values(h.native.predict(_array(h, rows)))
        same = got.shape == want.shape and got.dtype == want.dtype and bool(np.all(got == want))
    except Exception:  # noqa: BLE001 - e.g. a pipeline selecting columns by name
        same = False
    return True, same


#: scikit-learn's linear models whose predict is one matrix product: their answers are computed
#: here as scikit-learn computes them, without its per-call input validation (which costs a
#: one-row request about a hundred times the product itself).
_LINEAR_CLASSIFIERS = frozenset({"LogisticRegression", "RidgeClassifier", "SGDClassifier",
                                 "LinearSVC", "Perceptron"})
_LINEAR_REGRESSORS = frozenset({"LinearRegression", "Ridge", "Lasso", "ElasticNet", "SGDRegressor",
                                "LinearSVR", "HuberRegressor", "BayesianRidge"})


def _linear_kernel(model: Any) -> Any:
    """``predict`` of a fitted scikit-learn linear model as its own arithmetic on a finite numeric
    array (``LinearClassifierMixin.predict``, ``LinearModel._decision_function``), or None."""
    import numpy as np

    kind = type(model).__name__
    if not type(model).__module__.startswith("sklearn.") or \
            kind not in _LINEAR_CLASSIFIERS | _LINEAR_REGRESSORS:
        return None
    coef, intercept = getattr(model, "coef_", None), getattr(model, "intercept_", None)
    if not isinstance(coef, np.ndarray) or intercept is None:
        return None
    coef_t = coef.T
    if kind in _LINEAR_REGRESSORS:
        return lambda X: X @ coef_t + intercept
    classes = getattr(model, "classes_", None)
    if classes is None or coef.ndim != 2:
        return None

    def classify(X: Any) -> Any:
        scores = X @ coef_t + intercept
        if scores.shape[1] == 1:
            return classes.take((scores[:, 0] > 0).astype(int))
        return classes.take(scores.argmax(axis=1))

    return classify


def _check_kernel(h: Handle) -> Any:
    """The model's kernel when it gives exactly the estimator's answers on the example rows."""
    import numpy as np

    kernel = _linear_kernel(h.native)
    if kernel is None:
        return None
    rows = _example_rows(h)
    try:
        X = _array(h, rows)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            want = np.asarray(h.native.predict(X))
        got = np.asarray(_kernel_input_predict(kernel, X))
    except Exception:  # noqa: BLE001 - anything odd: the estimator answers
        return None
    same = got.shape == want.shape and got.dtype == want.dtype and bool(np.array_equal(got, want))
    return kernel if same else None


def _kernel_input_predict(kernel: Any, X: Any) -> Any:
    import numpy as np

    if X.dtype.kind != "f":
        X = X.astype(np.float64)  # as scikit-learn's check_array converts integers
    return kernel(X)


def _example_rows(h: Handle) -> list[list[Any]]:
    if not h.columns:  # a network's tensor of rows: the example's rows of that width
        width = getattr(h.native, "width", 0)
        given = (h.example or {}).get(INPUTS)
        rows = [r for r in given[:8] if isinstance(r, list) and len(r) == width] \
            if isinstance(given, list) else []
        return rows or [[0.0] * width]
    ex = (h.example or {}).get(DF_SPLIT)
    if isinstance(ex, dict) and ex.get("columns") == h.names and isinstance(ex.get("data"), list):
        rows = [r for r in ex["data"][:8] if isinstance(r, list)]
        if rows:
            return rows
    return [[0] * len(h.columns)]


def _check_tensor(h: Handle) -> bool:
    """Whether a network answers its example rows on the fast path: one row of outputs per
    row, the same given as rows of JSON numbers or as the float32 array MLflow would make."""
    import numpy as np

    rows = _example_rows(h)[:5]
    try:
        got = _values(h.native.predict(rows))
        want = _values(h.native.predict(np.array(rows, dtype=np.float32)))
    except Exception:  # noqa: BLE001 - the network cannot answer its example: slow path
        return False
    return (got.ndim >= 1 and len(got) == len(rows) and got.shape == want.shape
            and got.dtype == want.dtype and bool(np.array_equal(got, want, equal_nan=True)))


def _check_batch(h: Handle) -> bool:
    """Whether the model answers rows independently: its predictions for the example rows
    (each repeated, so there are at least two) in one call equal its predictions row by row,
    in dtype and shape, and in value exactly, except that floats may differ in their last bits
    (the matrix kernels round a one-row call differently, just as they do when a client sends
    the same rows in one request or in several)."""
    import numpy as np

    rows = _example_rows(h)
    rows = [r for r in rows for _ in (0, 1)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            together = _values(_predict_native(h, rows))
            alone = [_values(_predict_native(h, [r])) for r in rows]
        if together.ndim == 0 or len(together) != len(rows):
            return False
        apart = np.concatenate(alone)
        if apart.shape != together.shape or apart.dtype != together.dtype:
            return False
        if apart.dtype.kind in "fc":
            scale = max(1.0, float(np.max(np.abs(together))))
            return bool(np.all(np.abs(apart - together) <= 1e-12 * scale))
        return bool(np.array_equal(apart, together))
    except Exception:  # noqa: BLE001 - anything odd: answer each request on its own
        return False


def _dtypes(h: Handle) -> list[str]:
    return [_NUMERIC[c.type] for c in h.columns]  # type: ignore[union-attr]


def _array(h: Handle, rows: list[list[Any]]) -> Any:
    import numpy as np

    return np.array(rows, dtype=h.row_dtype)


def _frame(h: Handle, rows: list[list[Any]]) -> Any:
    import numpy as np
    import pandas as pd

    names = h.names or []
    cols: list[Any] = list(zip(*rows)) if rows else [[] for _ in names]
    return pd.DataFrame({n: np.array(c, dtype=d) for n, c, d in zip(names, cols, _dtypes(h))})


# -- answering -------------------------------------------------------------------------------
def predict_json(h: Handle, body: bytes) -> tuple[bytes, Any, Any]:
    """Answer a JSON body on the fast path: ``(response bytes, input rows, predictions)``.

    Raises:
        RequestError: the body cannot be read or does not fit the model.
        NeedsMlflow: the body takes MLflow's parsing.
    """
    payload, rows = parse_json(h, body)
    if rows is None:
        raise NeedsMlflow(payload)
    out = predict_rows(h, rows)
    return dump(out), rows, out


def _format(payload: Any) -> str:
    """The payload's one format key.

    Raises:
        RequestError: not an object, unknown keys, or not exactly one format key.
    """
    if not isinstance(payload, dict):
        raise RequestError(
            f"the body must be a JSON object with one of the keys {', '.join(FORMATS)}, "
            f"not a {type(payload).__name__}")
    unknown = [k for k in payload if k not in FORMATS and k != PARAMS]
    given = [k for k in payload if k in FORMATS]
    if unknown:
        raise RequestError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in the body; "
            f"use one of {', '.join(FORMATS)} (and optionally params)")
    if len(given) != 1:
        raise RequestError(
            f"the body must have exactly one of the keys {', '.join(FORMATS)}"
            + (f"; it has {', '.join(given)}" if given else ""))
    return given[0]


def _too_deep() -> RequestError:
    return RequestError("the body nests its values too deeply to read; send rows of plain values "
                        "(a list of lists, or a list of objects)")


#: The standard library's C scanner, called directly for a body that is one JSON object:
#: ``json.loads`` adds an encoding guess and two whitespace matches around the same call.
_scan_once = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def loads(body: bytes) -> Any:
    """The JSON body as Python values.

    Raises:
        RequestError: not JSON, or nested too deeply to read (Python's parser recurses).
    """
    if body[:1] == b"{" and body[-1:] == b"}":
        # The common case, one object with nothing around it; anything odd (another encoding,
        # invalid JSON, trailing data) is read again below, for json.loads' own answer or error.
        try:
            text = body.decode()
            value, end = _scan_once(text, 0)
            if end == len(text):
                return value
        except Exception:  # noqa: BLE001 - read again below
            pass
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(f"the body is not valid JSON: {first_line(exc)}") from None
    except RecursionError:
        raise _too_deep() from None


def parse_json(h: Handle, body: bytes) -> tuple[Any, list[list[Any]] | None]:
    """``(payload, rows)``: the body read and checked, with its rows when the fast path can
    answer them (else None: MLflow's parsing answers the payload).

    Raises:
        RequestError: the body cannot be read or names columns the model does not take.
    """
    payload = loads(body)
    if type(payload) is dict and len(payload) == 1:
        for key in payload:
            if key in FORMATS:  # the usual body: one format key and nothing else
                return payload, fast_rows(h, payload, key)
    fmt = _format(payload)
    return payload, fast_rows(h, payload, fmt)


def fast_rows(h: Handle, payload: dict[str, Any], fmt: str) -> list[list[Any]] | None:
    """The payload's rows when the fast path can answer them, else None."""
    if h.fast and PARAMS not in payload:
        if not h.columns:  # a network's tensor signature: values by position
            return tensor_rows(h, fmt, payload[fmt])
        return _fast_rows(h, fmt, payload[fmt])
    return None


_SPLIT_KEYS = frozenset({"columns", "data", "index"})
#: Per signature (a version's column list): its names and the positions of its integral
#: columns, worked out once rather than on every request. Bounded: cleared when it grows.
_PLANS: dict[int, tuple[list[Column], list[str], list[int]]] = {}


def _plan(h: Handle) -> tuple[list[Column], list[str], list[int]]:
    cols = h.columns or []
    plan = _PLANS.get(id(cols))
    if plan is None or plan[0] is not cols:
        if len(_PLANS) >= 256:
            _PLANS.clear()
        plan = _PLANS[id(cols)] = (cols, [c.name for c in cols],
                                   [i for i, c in enumerate(cols) if c.type in _INTEGRAL])
    return plan


def _fast_rows(h: Handle, fmt: str, data: Any) -> list[list[Any]] | None:
    """Rows of plain numbers in the model's column order, or None to take the slow path.

    Missing or unknown columns are named here; anything unusual (strings, nulls, nested
    values) is left to the slow path, which gives MLflow's own answer or error.
    """
    _, names, integral = _plan(h)
    if fmt == DF_SPLIT:
        if not isinstance(data, dict) or any(k not in _SPLIT_KEYS for k in data):
            return None
        cols, rows = data.get("columns"), data.get("data")
        if not isinstance(cols, list) or not isinstance(rows, list):
            return None
        if cols != names:
            _check_names(h, cols)
            if len(cols) != len(names) or set(cols) != set(names):
                return None
            order = [cols.index(n) for n in names]
            rows = [[r[i] for i in order] if isinstance(r, list) and len(r) == len(cols) else r
                    for r in rows]
        width = len(names)
        for r in rows:
            if type(r) is not list or len(r) != width:
                return None
            for x in r:
                if type(x) is not float and type(x) is not int:
                    return None
        return rows if not integral or _integral_ok(h, rows) else None
    if fmt == DF_RECORDS:
        if not isinstance(data, list) or not data:
            return None
        out = []
        for rec in data:
            if type(rec) is not dict:
                return None
            if len(rec) != len(names) or any(n not in rec for n in names):
                _check_names(h, list(rec))
                return None
            row = [rec[n] for n in names]
            for x in row:
                if type(x) is not float and type(x) is not int:
                    return None
            out.append(row)
        return out if not integral or _integral_ok(h, out) else None
    return None


def _integral_ok(h: Handle, rows: list[list[Any]]) -> bool:
    """MLflow refuses 2.0 for a long column; such rows take the slow path for its error."""
    idx = [i for i, c in enumerate(h.columns or []) if c.type in _INTEGRAL]
    return all(type(r[i]) is int for r in rows for i in idx)


def _check_names(h: Handle, cols: list[Any]) -> None:
    names = h.names or []
    required = {c.name for c in h.columns or [] if c.required}
    have = [str(c) for c in cols]
    missing = [n for n in names if n not in have and n in required]
    extra = [c for c in have if c not in names]
    dup = sorted({c for c in have if have.count(c) > 1})
    parts = []
    if missing:
        parts.append(f"missing column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
    if extra:
        parts.append(f"unknown column{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}")
    if dup:
        parts.append(f"repeated column{'s' if len(dup) > 1 else ''} {', '.join(map(repr, dup))}")
    if parts:
        raise RequestError(
            f"{'; '.join(parts)}; {h.name} version {h.version} takes the columns "
            f"{', '.join(map(repr, names))}")


def _predict_native(h: Handle, rows: list[list[Any]]) -> Any:
    if not h.columns:  # a network's tensor signature: it reads the rows itself
        return h.native.predict(rows)
    if h.kernel is not None:
        import numpy as np

        X = _array(h, rows)
        if np.isfinite(X).all():  # NaN or infinity: the estimator refuses it in its own words
            return _kernel_input_predict(h.kernel, X)
        return h.native.predict(X)
    return h.native.predict(_array(h, rows) if h.use_array else _frame(h, rows))


def predict_rows(h: Handle, rows: list[list[Any]]) -> Any:
    """The native estimator's predictions for ``rows``.

    Raises:
        RequestError: the model could not predict (its own message, first line).
    """
    try:
        return _predict_native(h, rows)
    except Exception as exc:  # noqa: BLE001 - the model's own message says what is wrong
        raise RequestError(f"{h.name} version {h.version} could not predict: {first_line(exc)}") from None


# -- pipelines: one stage's predictions as the next stage's input ------------------------------
def _as_2d(previous: Any) -> Any:
    """The previous stage's predictions as a 2-D array (a 1-D one is one column).

    Raises:
        RequestError: they are not rows of values (say, a 3-D tensor).
    """
    import numpy as np

    values = previous.to_numpy() if hasattr(previous, "to_numpy") else np.asarray(previous)
    if values.ndim == 1:
        values = values.reshape(-1, 1)
    if values.ndim != 2:
        raise RequestError(f"the previous stage answered a {values.ndim}-D array, which is no "
                           "table of rows for the next stage", 500, "INTERNAL_ERROR")
    return values


def stage_rows(h: Handle, previous: Any) -> list[list[Any]] | None:
    """The previous stage's predictions as rows for ``h``'s fast path, or None when they do
    not fit it (not numbers, another width, or ``h`` has no fast path)."""
    if not h.fast or not h.columns:
        return None
    values = _as_2d(previous)
    if values.shape[1] != len(h.columns) or values.dtype.kind not in "fiu":
        return None
    if values.dtype.kind == "f" and any(c.type in _INTEGRAL for c in h.columns):
        return None  # MLflow's schema decides what fractions in a long column mean
    return values.tolist()


def stage_frame(h: Handle, previous: Any) -> Any:
    """The previous stage's predictions as a DataFrame for ``h``, its columns named from
    ``h``'s signature when the widths agree (a DataFrame's own names are kept otherwise)."""
    import pandas as pd

    if hasattr(previous, "columns"):
        frame = previous
    else:
        frame = pd.DataFrame(_as_2d(previous))
    names = h.names
    if names and len(names) == frame.shape[1] and list(frame.columns) != names:
        frame = frame.set_axis(names, axis=1)
    return frame


def predict_frame(h: Handle, frame: Any) -> Any:
    """``h``'s pyfunc predictions for a DataFrame (a later stage of a pipeline).

    Raises:
        RequestError: the model could not predict (its own message, first line).
    """
    from mlflow.exceptions import MlflowException

    try:
        return h.pyfunc().predict(frame)
    except MlflowException as exc:
        raise RequestError(f"{h.name} version {h.version} could not predict: "
                           f"{_schema_message(exc)}", 500, "INTERNAL_ERROR") from None
    except Exception as exc:  # noqa: BLE001 - the model's own message says what is wrong
        raise RequestError(f"{h.name} version {h.version} could not predict: {first_line(exc)}",
                           500, "INTERNAL_ERROR") from None


class Batcher:
    """Answers the fast-path requests of one version that are waiting together with one call
    to ``predict``, on the event loop.

    A request adds its rows and waits; the first one to arrive schedules :meth:`flush` for the
    loop's next turn, by which time the other requests read in the same turn have added theirs.
    With one request waiting this costs one turn of the loop; under load it answers several
    requests for the price of one validation. If the joint call fails, each request is
    answered on its own, so one bad request never fails another.

    The batchers of one loop turn flush together (:func:`_flush_turn`): when a canary splits
    a turn's requests between two versions, or a server answers several models, the versions
    whose own arithmetic answers plain arrays share one array and one check of it, and each
    predicts on its own rows. A split then costs little more than the second version's
    arithmetic, not a second request's worth of overhead.
    """

    MAX_ROWS = 1024

    def __init__(self, handle: Handle) -> None:
        self.handle = handle
        self.waiting: list[tuple[list[list[Any]], asyncio.Future[Any]]] = []
        self.calls = 0  # predict calls made (for tests and the benchmark)
        self.answered = 0  # requests answered

    def predict(self, rows: list[list[Any]]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.waiting.append((rows, fut))
        if len(self.waiting) == 1:
            _join_turn(loop, self)
        return fut

    def flush(self) -> None:
        waiting, self.waiting = self.waiting, []
        group: list[tuple[list[list[Any]], asyncio.Future[Any]]] = []
        size = 0
        for item in waiting:
            if group and size + len(item[0]) > self.MAX_ROWS:
                self._answer(group)
                group, size = [], 0
            group.append(item)
            size += len(item[0])
        if group:
            self._answer(group)

    def _answer(self, group: list[tuple[list[list[Any]], asyncio.Future[Any]]]) -> None:
        h = self.handle
        self.calls += 1
        self.answered += len(group)
        if len(group) > 1:
            rows = [r for part, _ in group for r in part]
            try:
                out = _predict_native(h, rows)
                if len(out) == len(rows):
                    self.settle(group, out)
                    return
            except Exception:  # noqa: BLE001 - answer each on its own, with its own error
                pass
            self.calls += len(group)
        for part, fut in group:
            if fut.done():
                continue
            try:
                fut.set_result(predict_rows(h, part))
            except RequestError as exc:
                fut.set_exception(exc)

    @staticmethod
    def settle(group: list[tuple[list[list[Any]], asyncio.Future[Any]]], out: Any) -> None:
        """Give each request of ``group`` its own rows' share of ``out`` (their predictions,
        in order)."""
        start = 0
        for part, fut in group:
            if not fut.done():
                fut.set_result(out[start:start + len(part)])
            start += len(part)


#: the batchers with requests waiting for this thread's event loop's next turn: (loop, list)
_turn = threading.local()


def _join_turn(loop: asyncio.AbstractEventLoop, batcher: Batcher) -> None:
    """Have ``batcher`` flushed on the loop's next turn, with every batcher that joins it
    before then (one callback per turn, however many versions have requests waiting)."""
    pending: tuple[Any, list[Batcher]] | None = getattr(_turn, "pending", None)
    if pending is None or pending[0] is not loop:
        pending = _turn.pending = (loop, [])
        loop.call_soon(_flush_turn, pending)
    pending[1].append(batcher)


def _flush_turn(pending: tuple[Any, list[Batcher]]) -> None:
    if getattr(_turn, "pending", None) is pending:
        _turn.pending = None  # requests read from now on wait for the next turn
    batchers = pending[1]
    if len(batchers) > 1:
        _answer_together(batchers)
    for b in batchers:
        b.flush()  # what is left: a version alone in its turn, or one the shared array did not suit


def _answer_together(batchers: list[Batcher]) -> None:
    """Answer the requests of the versions in ``batchers`` that have their own arithmetic
    for arrays (see :func:`_linear_kernel`) from one array per input width and type: one
    conversion and one check of the values, then each version's arithmetic on its own rows.
    A version it does not suit keeps its requests waiting for its own flush: values that are
    not finite (the estimator refuses them in its own words), a turn over ``MAX_ROWS`` rows,
    or a failure of its arithmetic."""
    import numpy as np

    shared: dict[tuple[str, int], list[Batcher]] = {}
    for b in batchers:
        h = b.handle
        if h.kernel is not None and h.columns and b.waiting:
            shared.setdefault((h.row_dtype, len(h.columns)), []).append(b)
    for (dtype, _), group in shared.items():
        if len(group) < 2:
            continue
        rows: list[list[Any]] = []
        ends = []
        for b in group:
            for part, _ in b.waiting:
                rows.extend(part)
            ends.append(len(rows))
        if len(rows) > Batcher.MAX_ROWS:
            continue
        try:
            X = np.array(rows, dtype=dtype)
            if not np.isfinite(X).all():
                continue
        except (TypeError, ValueError):  # rows of another width: each version answers its own
            continue
        start = 0
        for b, end in zip(group, ends):
            own, start = X[start:end], end
            try:
                out = _kernel_input_predict(b.handle.kernel, own)
            except Exception:  # noqa: BLE001 - its own flush answers each request with its error
                continue
            if len(out) == len(own):
                waiting, b.waiting = b.waiting, []
                b.calls += 1
                b.answered += len(waiting)
                b.settle(waiting, out)


def dump(predictions: Any) -> bytes:
    """The response body ``{"predictions": ...}``, as MLflow's scoring server writes it."""
    tolist = getattr(predictions, "tolist", None)
    value = tolist() if callable(tolist) else predictions
    if type(value) is list and len(value) == 1 and type(value[0]) is int:
        return b'{"predictions": [%d]}' % value[0]  # one row's class: the usual answer
    if type(value) is list and all(type(v) is int for v in value):
        # class labels or counts: written as json.dumps writes them, without its encoder setup
        # (a large share of a one-row request)
        return b'{"predictions": [' + ", ".join(map(str, value)).encode() + b"]}"
    try:
        return json.dumps({"predictions": value}).encode()
    except TypeError:
        from io import StringIO

        from mlflow.pyfunc.scoring_server import predictions_to_json

        buf = StringIO()
        predictions_to_json(predictions, buf)
        return buf.getvalue().encode()


def _type_error(h: Handle, col: Column, value: Any, row: int) -> RequestError:
    kind = "null" if value is None else type(value).__name__
    kind = {"str": "a string", "bool": "a boolean", "float": "a fraction", "list": "a list",
            "dict": "an object"}.get(kind, kind)
    return RequestError(
        f"column {col.name!r} of {h.name} version {h.version} takes {col.type} values; "
        f"row {row} has {value!r} ({kind})")


def predict_slow(h: Handle, body: bytes, content_type: str, payload: Any = None) -> tuple[bytes, Any, Any]:
    """Answer through MLflow's own parsing and pyfunc prediction."""
    if content_type == "application/json" and payload is None:
        payload = loads(body)
    try:
        return _slow(h, payload, body, content_type)
    except RecursionError:
        raise _too_deep() from None


def _slow(h: Handle, payload: Any, body: bytes, content_type: str) -> tuple[bytes, Any, Any]:
    from io import BytesIO, StringIO

    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server as ss

    model = h.pyfunc()
    schema = model.metadata.get_input_schema()
    if content_type == "application/json" and isinstance(payload, dict):
        _check_values(h, payload)
    try:
        if content_type == "application/json":
            parsed = ss._parse_json_data(payload, model.metadata, schema)
            data, params = parsed.data, parsed.params
        elif content_type == "text/csv":
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise RequestError("the CSV body is not UTF-8 text") from None
            data, params = ss.parse_csv_input(StringIO(text), schema=schema), None
        else:
            data, params = ss.parse_parquet_input(BytesIO(body)), None
    except MlflowException as exc:
        raise RequestError(first_line(exc)) from None
    _check_frame(h, data)
    try:
        import inspect

        if params is not None and "params" in inspect.signature(model.predict).parameters:
            out = model.predict(data, params=params)
        else:
            out = model.predict(data)
    except MlflowException as exc:
        raise RequestError(f"{h.name} version {h.version} could not predict: "
                           f"{_schema_message(exc)}") from None
    except Exception as exc:  # noqa: BLE001
        raise RequestError(f"{h.name} version {h.version} could not predict: {first_line(exc)}") from None
    buf = StringIO()
    ss.predictions_to_json(out, buf)
    return buf.getvalue().encode(), data, _as_recorded(model, out)


def _scores_out(flavors: dict[str, Any]) -> bool:
    """Whether a model of these flavors answers class scores rather than labels: a network, or
    an XGBoost or LightGBM Booster (whose multi-class answer is one probability per class)."""
    if "pytorch" in flavors or "keras" in flavors:
        return True
    booster = flavors.get("xgboost") or flavors.get("lightgbm")
    return isinstance(booster, dict) and str(booster.get("model_class", "")).endswith(".Booster")


def _as_recorded(model: Any, out: Any) -> Any:
    """The predictions monitoring records: a network's or a Booster's class scores (one column
    per class) as the class with the highest score, as nbmodel reads them everywhere else."""
    if _scores_out(model.metadata.flavors):
        import numpy as np

        scores = np.asarray(out)
        if scores.ndim == 2 and scores.shape[1] > 1:
            return scores.argmax(axis=1)
    return out


def _check_frame(h: Handle, data: Any) -> None:
    """Name missing, unknown and wrongly typed columns before MLflow's longer messages."""
    if not h.columns or not hasattr(data, "columns"):
        return
    cols = list(data.columns)
    if all(isinstance(c, int) for c in cols) and len(cols) == len(h.columns):
        return  # positional columns: MLflow matches them by position
    _check_names(h, cols)
    for col in h.columns:
        if col.type not in _NUMERIC or col.name not in data:
            continue
        series = data[col.name]
        if series.dtype.kind in "fiu":
            continue
        for i, x in enumerate(series.tolist()):
            if x is None or isinstance(x, bool) or not isinstance(x, (int, float)):
                if x is None and not col.required:
                    continue
                raise _type_error(h, col, x, i)


def _check_values(h: Handle, payload: dict[str, Any]) -> None:
    """Name the first value of a wrong type in a tabular JSON body (MLflow's own message
    speaks of float64 conversions)."""
    if not h.columns:
        return
    types = {c.name: c for c in h.columns if c.type in _NUMERIC}
    split, records = payload.get(DF_SPLIT), payload.get(DF_RECORDS)
    rows: list[dict[str, Any]] = []
    if (isinstance(split, dict) and isinstance(split.get("columns"), list)
            and isinstance(split.get("data"), list)):
        cols = split["columns"]
        _check_names(h, cols)
        rows = [dict(zip(cols, r)) for r in split["data"] if isinstance(r, list)]
    elif isinstance(records, list):
        rows = [r for r in records if isinstance(r, dict)]
        for r in rows:
            _check_names(h, list(r))
    for i, row in enumerate(rows):
        for name, x in row.items():
            col = types.get(name)
            if col is None or x is None:
                continue
            ok = type(x) is int or (type(x) is float and col.type not in _INTEGRAL)
            if not ok:
                raise _type_error(h, col, x, i)


def _schema_message(exc: Any) -> str:
    text = str(getattr(exc, "message", exc))
    for marker in ("Error: ", "error: "):
        if marker in text:
            text = text.rsplit(marker, 1)[-1]
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def quiet_sklearn() -> None:
    """The fast path hands bare arrays to estimators fitted on DataFrames (after checking the
    columns itself); scikit-learn would warn about the missing names on every request."""
    warnings.filterwarnings("ignore", message="X does not have valid feature names")


@dataclass
class Slot:
    """A model served by this process, following ``name@alias``."""

    name: str
    alias: str | None
    handle: Handle | None = None
    error: str | None = None  # why the wanted version is not the one serving
    failed_version: int | None = None
    failed_at: float = 0.0
    requests: int = 0
    errors: int = 0
    swaps: int = 0
    #: a canary or shadow rollout (as the record says), and its loaded candidate while it runs
    rollout: Any = None
    candidate: Handle | None = None
    shadow: Any = None
    rollout_error: str | None = None
    #: requests, errors and seconds answered per version during a rollout (this worker's)
    per_version: dict[int, list[float]] = field(default_factory=dict)
    #: a pipeline's stages, called in order (each follows its own alias); None for a model
    stages: list[Slot] | None = None
    seconds: float = 0.0  # time spent answering (a pipeline stage's mean latency)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.alias}" if self.alias else self.name

    def rollout_status(self) -> dict[str, Any] | None:
        ro = self.rollout
        if ro is None:
            return None
        c = self.candidate
        return {
            "kind": ro.kind, "candidate": ro.candidate, "share": ro.share, "state": ro.state,
            "reason": ro.reason, "serving": self.handle.version if self.handle else None,
            "loaded": c is not None and c.version == ro.candidate, "error": self.rollout_error,
            "versions": {str(v): {"requests": int(f[0]), "errors": int(f[1]),
                                  "mean_ms": round(1000 * f[2] / (f[0] - f[1]), 4) if f[0] > f[1] else None}
                         for v, f in self.per_version.items()},
            "shadow": self.shadow.status() if self.shadow is not None else None,
        }

    def status(self) -> dict[str, Any]:
        if self.stages is not None:
            return self.pipeline_status()
        h = self.handle
        return {
            "ref": self.ref, "name": self.name, "alias": self.alias,
            "version": h.version if h else None, "loaded_at": h.loaded_at if h else None,
            "requests": self.requests, "errors": self.errors, "swaps": self.swaps,
            "error": self.error, "fast": bool(h and h.fast), "batch": bool(h and h.batch),
            # requests answered per predict call by this version's batcher (this worker's)
            "per_call": (round(h.batcher.answered / h.batcher.calls, 2)
                         if h and h.batcher is not None and h.batcher.calls else None),
            "monitored": bool(h and h.recorder is not None),
            "columns": h.names if h else None,
            "rollout": self.rollout_status(),
        }

    def pipeline_status(self) -> dict[str, Any]:
        """A pipeline's status: its own requests and errors, and each stage's model, alias,
        version and figures (``version`` is None: a pipeline has none of its own)."""
        stages = []
        for s in self.stages or []:
            h = s.handle
            ok = s.requests - s.errors
            stages.append({"ref": s.ref, "name": s.name, "alias": s.alias,
                           "version": h.version if h else None, "requests": s.requests,
                           "errors": s.errors, "error": s.error, "swaps": s.swaps,
                           "mean_ms": round(1000 * s.seconds / ok, 4) if ok > 0 else None})
        errors = [f"{s['ref']}: {s['error']}" for s in stages if s["error"]]
        return {
            "ref": self.ref, "name": self.name, "alias": None, "version": None,
            "loaded_at": None, "requests": self.requests, "errors": self.errors, "swaps": 0,
            "error": "; ".join(errors) or self.error, "fast": False, "batch": False,
            "per_call": None, "monitored": False,
            "columns": (self.stages[0].handle.names
                        if self.stages and self.stages[0].handle else None),
            "rollout": None, "stages": stages,
            "serving": bool(stages) and all(s["version"] is not None for s in stages),
        }


def model_dir(gateway: Any, name: str, version: int) -> str:
    """A local folder holding the version's model files (downloaded if the store is remote)."""
    uri = gateway.version_download_uri(name, version)
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    if uri.startswith("/") and Path(uri, "MLmodel").is_file():
        return uri
    from ..versions import download_model

    # one folder per loaded version, removed when this server ends (or by the next download
    # once it is gone); a server only downloads what it swaps in
    return download_model(f"models:/{name}/{version}")
