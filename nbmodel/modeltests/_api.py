"""Declaring, listing, removing and running a version's test cases, and the release gate."""

from __future__ import annotations

import datetime as _dt
import html
import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..display import Shown
from ..refs import Ref
from ._cases import (
    BadCase,
    Case,
    CaseSet,
    GateRefused,
    data_entry,
    decode,
    function_case,
    metric_case,
    read_cases,
    robust_case,
    write_cases,
)
from ._checks import CaseResult, run_case
from ._tags import T_CASES, T_RESULTS, read_json_tag, summary_text, tests_summary

#: Failing case names kept in the results tag (the run's artifact keeps them all).
MAX_NAMED = 20
RESULTS_ARTIFACT = "nbmodel/tests/results.json"
#: Most distinct values a grouping column may have (more is a continuous column: bin it first).
MAX_GROUPS = 30

#: Functions registered with :func:`test_case` in this session, by case name.
_registered: dict[str, Callable[..., Any]] = {}


# ---- listing ---------------------------------------------------------------------------------
@dataclass(repr=False)
class CaseList(Shown):
    """A version's test cases, as a table."""

    ref: str
    cases: list[Case]
    data: dict[str, dict[str, Any]] = field(default_factory=dict)
    note: str = ""

    def __iter__(self) -> Any:
        return iter(self.cases)

    def __len__(self) -> int:
        return len(self.cases)

    def _rows(self) -> list[list[str]]:
        rows = []
        for c in self.cases:
            d = self.data.get(c.data or "")
            if d is None:
                where = "-"
            elif d.get("stored"):
                where = f"{d['rows']} rows, stored"
            else:
                where = f"{d['rows']} rows, by fingerprint {c.data}"
            rows.append([c.name, c.kind, c.threshold, where])
        return rows

    _head = ["case", "kind", "requires", "data"]

    def _title(self) -> str:
        n = len(self.cases)
        return f"{self.ref}: {n} test case{'s' if n != 1 else ''}"

    def __str__(self) -> str:
        from ..display import text_table

        lines = [self.note] if self.note else []
        if not self.cases:
            return "\n".join([*lines, f"{self.ref}: no test cases yet"])
        return "\n".join([*lines, self._title(), text_table(self._head, self._rows())])

    def _repr_html_(self) -> str:
        from ..display import html_table

        note = f"<div class='nbm-line'>{html.escape(self.note)}</div>" if self.note else ""
        if not self.cases:
            return note + f"<div class='nbm-line'>{html.escape(self.ref)}: no test cases yet</div>"
        return note + html_table(self._head, self._rows(), caption=self._title())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form.

        Example:
            >>> CaseList("iris/3", []).to_dict()
            {'ref': 'iris/3', 'cases': []}
        """
        return {"ref": self.ref, "cases": [c.to_dict() | {"threshold": c.threshold} for c in self.cases]}


def _version_cases(ref: str | Ref) -> tuple[Any, Any, CaseSet, dict[str, str]]:
    from ..store import get_store
    from ..versions import all_tags, resolve

    v = resolve(ref)
    store = get_store()
    tags = all_tags(v)
    return v, store, read_cases(store, read_json_tag(tags, T_CASES)), tags


def list_tests(ref: str | Ref) -> CaseList:
    """The test cases a version holds (its own and those inherited from its parent).

    Args:
        ref: the version (``iris/4``, ``iris@candidate``).

    Returns:
        A :class:`CaseList`, shown as a table.

    Example:
        >>> nbmodel.list_tests("iris/4")  # doctest: +SKIP
    """
    v, _store, cases, _tags = _version_cases(ref)
    return CaseList(v.ref, cases.cases, cases.data)


def _save(v: Any, store: Any, cases: CaseSet, note: str) -> CaseList:
    pointer = write_cases(store, v.name, v.ref, cases)
    if cases.cases:
        store.gateway.set_version_tag(v.name, v.version, T_CASES, json.dumps(pointer))
    else:
        store.gateway.delete_version_tag(v.name, v.version, T_CASES)
    return CaseList(v.ref, cases.cases, cases.data, note)


def add_tests(ref: str | Ref, *, rules: Sequence[str] = (), eval: Sequence[Any] | None = None,  # noqa: A002
              group: Any = None, rows: Sequence[Any] | None = None,
              invariant: Sequence[str] = (), increasing: Sequence[str] = (),
              robust: Sequence[str] = ()) -> CaseList:
    """Declare test cases on a version; they are stored with it and its children inherit them.

    Args:
        ref: the version.
        rules: metric rules (``"accuracy >= 0.9"``), or names of functions registered with
            :func:`test_case` in this session.
        eval: ``(X, y)`` the metric, invariance, direction, robustness and function cases run on.
        group: with ``rules``: the rule must hold in every group: a column of ``X`` (its
            name), or one group value per row (a Series, stored with the case's data under its
            name; the model is never given it).
        rows: ``(X, y)``: these rows must get exactly these predictions.
        invariant: columns whose change must not change any prediction.
        increasing: columns whose rise must not lower any prediction (a regressor's) or
            probability (of a classifier's last class).
        robust: abnormal inputs (``nan``, ``missing-column``, ``wrong-type``, ``empty``,
            ``out-of-range``), each optionally ``=refused`` or ``=answered``.

    Returns:
        The version's cases now, as a :class:`CaseList`.

    Raises:
        BadCase: a rule cannot be read, or a case lacks the data it needs. Nothing is stored.

    Example:
        >>> nbmodel.add_tests("iris/4", rules=["accuracy >= 0.9"], eval=(X_test, y_test),
        ...                   robust=["nan"])  # doctest: +SKIP
    """
    pair = None if eval is None else (eval[0], eval[1])
    if group is not None and not isinstance(group, str):
        pair, group = _with_groups(pair, group)
    new: list[tuple[Case, tuple[Any, Any] | None]] = []
    for rule in rules:
        fn = _registered.get(rule)
        new.append((function_case(rule, fn) if fn is not None else metric_case(rule, group=group), pair))
    if group and not [r for r in rules if r not in _registered]:
        raise BadCase("--group goes with a metric rule: --add \"accuracy >= 0.9\" --group COL")
    if rows is not None:
        new.append((Case(f"expected rows ({len(rows[0])})", "rows"), (rows[0], rows[1])))
    for col in invariant:
        new.append((Case(f"invariant to {col}", "invariant", {"column": col}), pair))
    for col in increasing:
        new.append((Case(f"increasing in {col}", "increasing", {"column": col}), pair))
    for text in robust:
        new.append((robust_case(text), pair))
    if not new:
        raise BadCase("nothing to add: give --add RULE, --add-rows X y, --invariant COL, "
                      "--increasing COL or --robust KIND")
    for case, data in new:
        _check_data(case, data)
    v, store, cases, _tags = _version_cases(ref)
    for case, data in new:
        cases.add(case, data_entry(*data) if data is not None else None)
    names = ", ".join(repr(c.name) for c, _ in new)
    return _save(v, store, cases, f"added {names} to {v.ref}")


def _check_data(case: Case, data: tuple[Any, Any] | None) -> None:
    """Refuse a case whose data cannot serve it, before anything is stored."""
    if data is None:
        if case.kind != "function":
            raise BadCase(f"{case.name!r} needs data to run on: add --eval X y")
        return
    X, y = data
    if case.kind in ("metric", "rows") and y is None:
        raise BadCase(f"{case.name!r} needs targets: --eval X y")
    for what in ("group", "column"):
        col = case.spec.get(what)
        if col is not None and col not in getattr(X, "columns", ()):
            raise BadCase(f"{case.name!r}: the data has no column {col!r} (give a DataFrame that has it)")
    group = case.spec.get("group")
    if group is not None:
        distinct, n = X[group].nunique(), len(X)
        if distinct > MAX_GROUPS or (distinct > 10 and distinct > n // 2):
            raise BadCase(f"{case.name!r}: {group!r} has {distinct} distinct values in {n} rows; group by "
                          f"a column with a few values (bin it first, e.g. pd.cut(X[{group!r}], 4))")


def _with_groups(pair: tuple[Any, Any] | None, groups: Any) -> tuple[tuple[Any, Any], str]:
    """The case's data with one group value per row added as a column, and that column's name."""
    import numpy as np
    import pandas as pd

    if pair is None:
        raise BadCase("--group with one value per row needs the data it belongs to: --eval X y")
    X, y = pair
    if not isinstance(X, pd.DataFrame):
        raise BadCase("--group with one value per row needs X as a DataFrame")
    values = np.asarray(groups)
    if values.ndim != 1 or len(values) != len(X):
        raise BadCase(f"--group has {values.shape[0] if values.ndim else 1} values for {len(X)} rows: "
                      "give one group value per row of X")
    name = str(getattr(groups, "name", None) or "group")
    if name in X.columns:
        raise BadCase(f"--group: X already has a column {name!r}; name the groups otherwise "
                      "(Series.rename) or give the column's name")
    return (X.assign(**{name: values}), y), name


def remove_test(ref: str | Ref, name: str) -> CaseList:
    """Remove one test case from a version.

    Args:
        ref: the version.
        name: the case's name (or its id, as pytest shows it).

    Returns:
        The cases left.

    Raises:
        BadCase: the version has no case of that name.

    Example:
        >>> nbmodel.remove_test("iris/4", "nan answered")  # doctest: +SKIP
    """
    v, store, cases, _tags = _version_cases(ref)
    gone = cases.remove(name)
    return _save(v, store, cases, f"removed {gone.name!r} from {v.ref}")


def test_case(name: str, *, ref: str | Ref | None = None,
              eval: Sequence[Any] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:  # noqa: A002
    """Register a plain function ``fn(model, data)`` as a test case, stored by its source.

    The function passes unless it raises (an ``assert`` that fails) or returns False; a
    number it returns is shown as the measured value. ``data`` is the ``(X, y)`` stored with
    the case, or None. With ``ref`` the case is added to that version at once; else add it
    later by name: ``%model_test iris/4 --add NAME``.

    Args:
        name: the case's name.
        ref: a version to add it to now.
        eval: ``(X, y)`` stored with the case and passed as ``data``.

    Returns:
        A decorator that returns the function unchanged.

    Example:
        >>> @nbmodel.test_case("predicts every class")  # doctest: +SKIP
        ... def every_class(model, data):
        ...     assert set(model.predict(data[0])) == {0, 1, 2}
    """

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        function_case(name, fn)  # its source must be readable now, not at the first run
        _registered[name] = fn
        if ref is not None:
            add_tests(ref, rules=[name], eval=eval)
        return fn

    return register


test_case.__test__ = False  # type: ignore[attr-defined]  # pytest must not collect it


# ---- running ---------------------------------------------------------------------------------
@dataclass(repr=False)
class ModelTestReport(Shown):
    """The results of running a version's test cases: a pass/fail table and a verdict."""

    ref: str
    results: list[CaseResult]
    digest: str = ""

    @property
    def passed(self) -> int:
        """How many cases passed."""
        return sum(r.passed for r in self.results)

    @property
    def failed(self) -> list[str]:
        """The names of the cases that failed."""
        return [r.name for r in self.results if not r.passed]

    @property
    def ok(self) -> bool:
        """Whether every case passed."""
        return not self.failed

    @property
    def verdict(self) -> str:
        """One line: ``iris/4: 7/7 tests passed`` or which failed.

        Example:
            >>> ModelTestReport("iris/4", []).verdict
            'iris/4: 0/0 tests passed'
        """
        head = f"{self.ref}: {self.passed}/{len(self.results)} tests passed"
        if self.ok:
            return head
        return f"{head}; failing: {', '.join(self.failed)}"

    def _rows(self) -> list[list[str]]:
        return [["pass" if r.passed else "FAIL", r.name, r.error or r.measured, r.threshold,
                 f"{r.seconds * 1000:.0f} ms"] for r in self.results]

    _head = ["result", "case", "measured", "requires", "time"]

    def _failing_rows(self) -> list[tuple[str, list[dict[str, Any]]]]:
        return [(r.name, r.rows) for r in self.results if not r.passed and r.rows]

    def __str__(self) -> str:
        from ..display import text_table

        parts = [text_table(self._head, self._rows())]
        for name, rows in self._failing_rows():
            head = list(rows[0])
            parts.append(f"first failing rows of {name}:\n"
                         + text_table(head, [[_cell(r.get(k)) for k in head] for r in rows]))
        parts.append(self.verdict)
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        from ..display import badge, html_table

        cells = []
        for row, r in zip(self._rows(), self.results):
            out = [html.escape(c) for c in row]
            out[0] = badge("pass") if r.passed else badge("FAIL", kind="retired")
            cells.append(out)
        parts = [html_table(self._head, cells, caption=f"tests of {self.ref}", raw=True)]
        for name, rows in self._failing_rows():
            head = list(rows[0])
            parts.append(html_table(head, [[_cell(r.get(k)) for k in head] for r in rows],
                                    caption=f"first failing rows of {name}"))
        kind = "ok" if self.ok else "fail"
        parts.append(f"<div class='nbm-line nbm-verdict-{kind}'><b>{html.escape(self.verdict)}</b></div>")
        return "".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form.

        Example:
            >>> ModelTestReport("iris/4", []).to_dict()["passed"]
            0
        """
        return {"ref": self.ref, "passed": self.passed, "total": len(self.results),
                "failed": self.failed, "verdict": self.verdict, "cases": self.digest,
                "results": [r.to_dict() for r in self.results]}


def _cell(v: Any) -> str:
    from ..versions import _fmt

    if isinstance(v, float):
        return _fmt(v)
    return str(v)


def case_data(cases: CaseSet, case: Case, given: Sequence[Any] | None,
              cache: dict[str, Any] | None = None) -> tuple[Any, Any] | None:
    """The ``(X, y)`` a case runs on: stored with it, or the data given when it has the same
    fingerprint; None when neither."""
    from ..data import data_hash

    if case.data is None:
        return None
    cache = {} if cache is None else cache
    if case.data in cache:
        return cache[case.data]
    entry = cases.data.get(case.data, {})
    found = None
    if entry.get("stored"):
        found = decode(entry)
    elif given is not None:
        if "given" not in cache:
            cache["given"] = data_hash(given[0], given[1])[:16]
        if cache["given"] == case.data:
            found = (given[0], given[1])
    cache[case.data] = found
    return found


def execute(model: Any, cases: CaseSet, case: Case, given: Sequence[Any] | None = None,
            cache: dict[str, Any] | None = None) -> CaseResult:
    """Run one case of a set on a loaded model (warnings of the model's library are kept out
    of the report)."""
    data = case_data(cases, case, given, cache)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_case(model, case, data)


def load_cases(ref: str | Ref) -> tuple[Any, CaseSet]:
    """A version and its case set.

    Raises:
        BadCase: the version has no cases.
    """
    v, _store, cases, _tags = _version_cases(ref)
    if not cases.cases:
        raise BadCase(f"{v.ref} has no test cases; declare one, for example "
                      f"%model_test {v.ref} --add \"accuracy >= 0.9\" --eval X_test y_test")
    return v, cases


def run_tests(ref: str | Ref, *, eval: Sequence[Any] | None = None, record: bool = True) -> ModelTestReport:  # noqa: A002
    """Run every test case of a version, and record the results on it.

    Args:
        ref: the version.
        eval: ``(X, y)`` for cases whose data was stored by fingerprint only.
        record: keep the results on the version (tags and a run), as the gate reads them.

    Returns:
        A :class:`ModelTestReport`: a table, the first failing rows and a verdict.

    Raises:
        BadCase: the version has no test cases.

    Example:
        >>> nbmodel.run_tests("iris/4")  # doctest: +SKIP
        iris/4: 7/7 tests passed
    """
    from ..flavors import adapt
    from ..versions import load

    v, cases = load_cases(ref)
    model = adapt(load(v), v.task)  # XGBoost, LightGBM, networks: asked as scikit-learn's
    cache: dict[str, Any] = {}
    results = [execute(model, cases, c, eval, cache) for c in cases.cases]
    report = ModelTestReport(v.ref, results, cases.digest)
    if record:
        record_results(v, report)
    return report


def record_results(v: Any, report: ModelTestReport) -> None:
    """Keep a run's results on the version: a tag the log, card and gate read, and a run
    with the counts as metrics and every result as an artifact."""
    from mlflow.entities import Metric

    from ..store import get_store

    store = get_store()
    gw = store.gateway
    run = gw.create_run(store.experiment_id(v.name), run_name=f"{v.ref} tests",
                        tags={"nbmodel.tests_of": v.ref})
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    gw.log_batch(run_id, metrics=[Metric("tests_passed", report.passed, now, 0),
                                  Metric("tests_total", len(report.results), now, 0)])
    gw.log_dict(run_id, report.to_dict(), RESULTS_ARTIFACT)
    gw.finish_run(run_id, status="FINISHED" if report.ok else "FAILED")
    value = {"cases": report.digest, "passed": report.passed, "total": len(report.results),
             "failed": report.failed[:MAX_NAMED], "run": run_id,
             "at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
    gw.set_version_tag(v.name, v.version, T_RESULTS, json.dumps(value))


# ---- the gate --------------------------------------------------------------------------------
def gate_problem(ref: Any) -> str | None:
    """Why a version may not be promoted, or None when it may.

    A version with no test cases passes; one with cases passes only if its last recorded run
    was of its current cases and every case passed.

    Args:
        ref: the version (a reference or a :class:`~nbmodel.versions.Version`).

    Returns:
        ``"fails its tests: a, b"``, ``"has 3 test cases never run on it"``, or None.

    Example:
        >>> nbmodel.modeltests.gate_problem("iris/4")  # doctest: +SKIP
        'fails its tests: nan answered'
    """
    from ..versions import Version, all_tags, resolve

    v = ref if isinstance(ref, Version) else resolve(ref)
    tags = all_tags(v)
    summary = tests_summary(tags)
    if summary is None:
        return None
    if not summary["current"]:
        n = summary["cases"]
        return (f"has {n} test case{'s' if n != 1 else ''} not yet run on it "
                f"({summary_text(summary)})")
    if summary["passed"] < summary["total"]:
        failed = (read_json_tag(tags, T_RESULTS) or {}).get("failed") or []
        return f"fails its tests: {', '.join(failed)}" if failed else "fails its tests"
    return None


def refusal(ref: str, problem: str) -> GateRefused:
    """The error a gated move raises, saying what to do."""
    return GateRefused(f"{ref} {problem}; run %model_test {ref} and fix the model, "
                       "or pass --force (kept in the audit trail)")

