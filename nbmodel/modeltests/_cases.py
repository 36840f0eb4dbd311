"""Test cases: what each kind states, how a one-line declaration becomes one, and how a
version's cases and their data are stored with it.

A version's cases live in one JSON artifact (``nbmodel/tests/cases-DIGEST.json``) of a run in
the model's experiment, named by the version's ``nbmodel.test_cases`` tag. Data a case needs is
kept in the same file when it is small (values as JSON, which round-trips floats exactly), else
only its fingerprint is kept and the data must be given again (``--eval X y``) to run the case.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import textwrap
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import NbmodelError

#: Data sets of at most this many cells are stored with the cases; larger ones by fingerprint.
MAX_STORED_CELLS = 100_000
ARTIFACT = "nbmodel/tests/cases-{}.json"

KINDS = ("metric", "rows", "invariant", "increasing", "robust", "function")
#: Abnormal inputs, and what a case expects of each unless it says otherwise.
ROBUST = {"missing-column": "refused", "wrong-type": "refused", "nan": "answered",
          "empty": "refused", "out-of-range": "answered"}
_OPS = (">=", "<=", "==", ">", "<")
_RULE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|>|<)\s*([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)\s*$")


class BadCase(NbmodelError):
    """A test case that cannot be declared or run as given."""

    kind = "usage"


class GateRefused(NbmodelError):
    """A version whose tests fail, or never ran on its current cases, may not be promoted."""

    kind = "tests-failed"


@dataclass
class Case:
    """One test case of a version.

    Attributes:
        name: unique among the version's cases (``accuracy >= 0.9``, ``nan answered``).
        kind: one of :data:`KINDS`.
        spec: what the kind needs: ``metric``/``op``/``threshold``/``group`` for a metric,
            ``column`` for invariance and direction, ``input``/``expect`` for robustness,
            ``source``/``function`` for a Python function.
        data: the key of the data the case runs on, or None.
    """

    name: str
    kind: str
    spec: dict[str, Any] = field(default_factory=dict)
    data: str | None = None

    @property
    def id(self) -> str:
        """The case's name as a pytest id: no spaces.

        Example:
            >>> Case("accuracy >= 0.9", "metric").id
            'accuracy>=0.9'
        """
        return re.sub(r"\s*(>=|<=|==|>|<)\s*", r"\1", self.name).replace(" ", "_")

    @property
    def threshold(self) -> str:
        """What the case requires, in a few words.

        Example:
            >>> Case("nan answered", "robust", {"input": "nan", "expect": "answered"}).threshold
            'answered'
        """
        s = self.spec
        if self.kind == "metric":
            where = f" in every {s['group']}" if s.get("group") else ""
            return f"{s['op']} {s['threshold']:g}{where}"
        return {"rows": "every row as expected", "invariant": "no prediction changes",
                "increasing": "no prediction falls", "robust": s.get("expect", ""),
                "function": "passes"}.get(self.kind, "")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form, as stored.

        Example:
            >>> Case("a", "rows", data="k").to_dict()["data"]
            'k'
        """
        return asdict(self)


def metric_case(rule: str, *, group: str | None = None) -> Case:
    """A case from a rule such as ``accuracy >= 0.9`` (per group of ``group`` if given).

    Raises:
        BadCase: the rule is not METRIC OP NUMBER, or names an unknown metric.

    Example:
        >>> metric_case("accuracy>=0.9").name
        'accuracy >= 0.9'
    """
    from ..evaluate import COMMIT_METRICS

    m = _RULE.match(rule or "")
    known = sorted({*[k for ks in COMMIT_METRICS.values() for k in ks], "roc_auc"})
    if m is None:
        raise BadCase(f"cannot read the rule {rule!r}: write METRIC OP NUMBER, such as "
                      f"\"accuracy >= 0.9\" (metrics: {', '.join(known)})")
    metric, op, value = m.group(1), m.group(2), float(m.group(3))
    if metric not in known:
        raise BadCase(f"no metric {metric!r}; choose from {', '.join(known)}")
    name = f"{metric} {op} {value:g}" + (f" per {group}" if group else "")
    return Case(name, "metric", {"metric": metric, "op": op, "threshold": value, "group": group})


def robust_case(text: str) -> Case:
    """A robustness case from ``KIND`` or ``KIND=refused|answered``.

    Raises:
        BadCase: an unknown kind or expectation.

    Example:
        >>> robust_case("nan").name
        'nan answered'
        >>> robust_case("empty=answered").spec
        {'input': 'empty', 'expect': 'answered'}
    """
    kind, _, expect = (text or "").strip().partition("=")
    kind = kind.strip().replace("_", "-")
    if kind not in ROBUST:
        raise BadCase(f"no abnormal input {kind!r}; choose from {', '.join(ROBUST)} "
                      "(optionally =refused or =answered)")
    expect = expect.strip() or ROBUST[kind]
    if expect not in ("refused", "answered"):
        raise BadCase(f"--robust {kind}={expect}: say refused or answered")
    return Case(f"{kind} {expect}", "robust", {"input": kind, "expect": expect})


def function_case(name: str, fn: Callable[..., Any]) -> Case:
    """A case from a Python function ``fn(model, data)``, stored by its source.

    Raises:
        BadCase: the function's source cannot be read (define it in a cell or a file).

    Example:
        >>> def test_ok(model, data):
        ...     assert model is not None
        >>> function_case("ok", test_ok).spec["function"]  # doctest: +SKIP
        'test_ok'
    """
    import ast

    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as exc:
        raise BadCase(f"cannot read the source of {getattr(fn, '__name__', fn)!r}: define it "
                      "in a notebook cell or a file") from exc
    node = ast.parse(source).body[0]
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise BadCase(f"{name!r}: a test case is a plain function def test_x(model, data): ...")
    source = "\n".join(source.splitlines()[node.lineno - 1:]) + "\n"  # without its decorators
    return Case(name, "function", {"source": source, "function": node.name})


# ---- data --------------------------------------------------------------------------------------
def _column(values: Any) -> dict[str, Any]:
    import pandas as pd

    s = pd.Series(values)
    dtype = str(s.dtype)
    if dtype == "category" or s.dtype.kind == "M":
        vals = s.astype(str if s.dtype.kind == "M" else object).tolist()
    else:
        vals = s.tolist()
    return {"dtype": dtype, "values": vals, "name": getattr(values, "name", None)}


def _uncolumn(d: dict[str, Any]) -> Any:
    import pandas as pd

    s = pd.Series(d["values"], name=d.get("name"))
    try:
        return s.astype(d["dtype"])
    except (TypeError, ValueError):
        return s


def encode(X: Any, y: Any = None) -> dict[str, Any]:
    """``X`` (and ``y``) as JSON values that read back with the same values and dtypes.

    Example:
        >>> import numpy as np
        >>> X, y = decode(encode(np.eye(2), np.array([0, 1])))
        >>> X.tolist(), y.tolist()
        ([[1.0, 0.0], [0.0, 1.0]], [0, 1])
    """
    import numpy as np
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        x = {"kind": "frame", "columns": [c if isinstance(c, (str, int)) else str(c) for c in X.columns],
             "data": [_column(X[c]) for c in X.columns]}
    else:
        arr = np.asarray(X)
        x = {"kind": "array", "dtype": str(arr.dtype), "values": arr.tolist()}
    out: dict[str, Any] = {"X": x, "y": None}
    if y is not None:
        series = isinstance(y, pd.Series)
        out["y"] = {"kind": "series" if series else "array", **_column(y if series else np.asarray(y))}
    return out


def decode(d: dict[str, Any]) -> tuple[Any, Any]:
    """The ``(X, y)`` that :func:`encode` stored."""
    import numpy as np
    import pandas as pd

    x = d["X"]
    if x["kind"] == "frame":
        X: Any = pd.DataFrame({i: _uncolumn(c) for i, c in enumerate(x["data"])})
        X.columns = x["columns"]
    else:
        X = np.asarray(x["values"], dtype=x["dtype"])
    y = None
    if d.get("y") is not None:
        y = _uncolumn(d["y"])
        if d["y"]["kind"] == "array":
            y = y.to_numpy()
    return X, y


def data_entry(X: Any, y: Any = None) -> tuple[str, dict[str, Any]]:
    """A data set's key (its content hash) and what is stored of it: the values when small,
    else only the fingerprint."""
    import numpy as np

    from ..data import data_hash

    key = data_hash(X, y)[:16]
    shape = np.shape(X)
    cells = int(np.prod(shape)) if shape else 0
    if cells <= MAX_STORED_CELLS:
        return key, {"stored": True, "rows": int(shape[0]) if shape else 0, **encode(X, y)}
    return key, {"stored": False, "rows": int(shape[0]), "fingerprint": key}


# ---- a version's set of cases --------------------------------------------------------------------
@dataclass
class CaseSet:
    """A version's cases and their data, as stored."""

    cases: list[Case] = field(default_factory=list)
    data: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """Names this exact set of cases (and data): results record it to stay "current"."""
        text = json.dumps({"cases": [c.to_dict() for c in self.cases], "data": sorted(self.data)},
                          sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def add(self, case: Case, data: tuple[str, dict[str, Any]] | None = None) -> None:
        """Add a case, replacing one of the same name."""
        if data is not None:
            case.data = data[0]
            self.data.setdefault(*data)
        self.cases = [c for c in self.cases if c.name != case.name] + [case]

    def remove(self, name: str) -> Case:
        """Remove the case ``name`` (its data goes when no case uses it).

        Raises:
            BadCase: no case of that name.
        """
        found = next((c for c in self.cases if c.name == name or c.id == name), None)
        if found is None:
            names = ", ".join(repr(c.name) for c in self.cases) or "none"
            raise BadCase(f"no test case {name!r}; the cases are {names}")
        self.cases.remove(found)
        used = {c.data for c in self.cases}
        self.data = {k: v for k, v in self.data.items() if k in used}
        return found

    def to_dict(self) -> dict[str, Any]:
        return {"format": 1, "cases": [c.to_dict() for c in self.cases], "data": self.data}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CaseSet:
        return cls([Case(**c) for c in d.get("cases", [])], dict(d.get("data", {})))


_cache: dict[tuple[str, str], CaseSet] = {}
_cache_lock = threading.Lock()


def read_cases(store: Any, pointer: dict[str, Any] | None) -> CaseSet:
    """The case set a ``nbmodel.test_cases`` tag points at (an empty one for no tag).

    Stored sets never change (a change writes a new file), so they are cached by digest.
    """
    import tempfile

    if not pointer or not pointer.get("run"):
        return CaseSet()
    key = (str(pointer["run"]), str(pointer.get("digest")))
    with _cache_lock:
        if key in _cache:
            return _copy(_cache[key])
    with tempfile.TemporaryDirectory(prefix="nbmodel-cases-") as tmp:
        try:
            path = store.gateway.download_artifacts(key[0], ARTIFACT.format(key[1]), tmp)
            with open(path, encoding="utf-8") as f:
                cases = CaseSet.from_dict(json.load(f))
        except Exception as exc:  # noqa: BLE001 - a deleted run: say what is lost
            raise BadCase(f"the test cases of this version cannot be read ({exc}); "
                          "declare them again with %model_test REF --add ...") from exc
    with _cache_lock:
        _cache[key] = cases
    return _copy(cases)


def _copy(cases: CaseSet) -> CaseSet:
    return CaseSet([Case(c.name, c.kind, dict(c.spec), c.data) for c in cases.cases], dict(cases.data))


def write_cases(store: Any, name: str, ref: str, cases: CaseSet) -> dict[str, Any]:
    """Store a case set in a run of the model's experiment; return the tag's value."""
    digest = cases.digest
    gw = store.gateway
    run = gw.create_run(store.experiment_id(name), run_name=f"{ref} test cases",
                        tags={"nbmodel.test_cases_of": ref})
    run_id = run.info.run_id
    gw.log_dict(run_id, cases.to_dict(), ARTIFACT.format(digest))
    gw.finish_run(run_id)
    with _cache_lock:
        _cache[(run_id, digest)] = _copy(cases)
    return {"run": run_id, "digest": digest, "count": len(cases.cases)}
