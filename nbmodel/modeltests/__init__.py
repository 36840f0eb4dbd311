"""Model tests: cases stored with a version, run inline or as pytest items, and a release gate.

A version carries test cases: metric rules on named data (overall or per group), expected
predictions for given rows, invariance to a column that should not matter, a direction for a
feature, robustness to abnormal input, and plain Python functions. New versions inherit their
parent's cases. :func:`run_tests` runs them and records the results on the version;
:func:`gate_problem` is what ``%model_alias`` onto a protected alias, ``%model_rollback`` onto
one and ``%model_deploy`` check before they promote it.

Example:
    >>> nbmodel.add_tests("iris/4", rules=["accuracy >= 0.9"], eval=(X_test, y_test))  # doctest: +SKIP
    >>> nbmodel.run_tests("iris/4")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from ._api import (
    CaseList,
    ModelTestReport,
    add_tests,
    execute,
    gate_problem,
    list_tests,
    load_cases,
    record_results,
    refusal,
    remove_test,
    run_tests,
    test_case,
)
from ._cases import ROBUST, BadCase, Case, GateRefused
from ._checks import CaseResult
from ._tags import T_CASES, T_RESULTS, summary_text, tests_summary

__all__ = ["ROBUST", "T_CASES", "T_RESULTS", "BadCase", "Case", "CaseList", "CaseResult",
           "GateRefused", "ModelTestReport", "add_tests", "execute", "gate_problem",
           "inherited_tags", "list_tests", "load_cases", "record_results", "refusal", "remove_test",
           "run_tests", "summary_text", "test_case", "tests_summary"]


def inherited_tags(store: Any, parent: str | None) -> dict[str, str]:
    """The tags that give a new version its parent's test cases (not its results), as a
    commit registers it with them.

    Args:
        store: the store.
        parent: the parent version (``iris/3``), or None.

    Returns:
        ``{T_CASES: ...}`` when the parent has cases, else nothing.

    Example:
        >>> inherited_tags(get_store(), None)  # doctest: +SKIP
        {}
    """
    from ..errors import NbmodelError
    from ..refs import parse_ref

    if not parent:
        return {}
    try:
        p = parse_ref(parent)
        rows, _ = store.gateway.versions(p.name, version=p.version)
    except NbmodelError:
        return {}
    cases = dict(rows[0].tags).get(T_CASES) if rows else None
    return {T_CASES: cases} if cases else {}
