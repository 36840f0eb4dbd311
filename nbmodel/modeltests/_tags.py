"""Where a version keeps its test cases and its last results: two tags, read without MLflow.

``nbmodel.test_cases`` points at the JSON artifact holding the cases (and their small data)
with the digest that names that set of cases; ``nbmodel.test_results`` holds the last run's
counts and the digest of the cases it ran, so a result is "current" only for the cases the
version holds now.
"""

from __future__ import annotations

import json
from typing import Any

T_CASES = "nbmodel.test_cases"
T_RESULTS = "nbmodel.test_results"


def read_json_tag(tags: dict[str, str], key: str) -> dict[str, Any] | None:
    """One of these tags as a dict, or None when absent or unreadable.

    Example:
        >>> read_json_tag({"k": '{"a": 1}'}, "k")
        {'a': 1}
    """
    try:
        value = json.loads(tags[key])
    except (KeyError, ValueError, TypeError):
        return None
    return value if isinstance(value, dict) else None


def tests_summary(tags: dict[str, str]) -> dict[str, Any] | None:
    """``{"passed": P, "total": T, "current": bool, "cases": N}`` for a version's tags, or
    None when it has no test cases. ``current`` is False when the results are of other cases
    than the version holds now, or when its cases never ran (then ``passed`` is 0 and
    ``total`` the number of cases).

    Args:
        tags: every tag of the version, ``nbmodel.*`` ones included.

    Returns:
        The summary the log, the card and the REST routes show.

    Example:
        >>> tests_summary({})
        >>> tests_summary({T_CASES: '{"digest": "a", "count": 2}'})
        {'passed': 0, 'total': 2, 'current': False, 'cases': 2, 'ran': False}
    """
    cases = read_json_tag(tags, T_CASES)
    if not cases or not cases.get("count"):
        return None
    results = read_json_tag(tags, T_RESULTS)
    if results is None:
        n = int(cases["count"])
        return {"passed": 0, "total": n, "current": False, "cases": n, "ran": False}
    return {"passed": int(results.get("passed", 0)), "total": int(results.get("total", 0)),
            "current": results.get("cases") == cases.get("digest"), "cases": int(cases["count"]),
            "ran": True}


def summary_text(summary: dict[str, Any] | None) -> str:
    """The words the log and the card show: ``7/7 passed``, ``2/3 passed (cases changed
    since)``, ``3 cases, never run``; empty when there are no cases.

    Example:
        >>> summary_text({"passed": 7, "total": 7, "current": True, "cases": 7})
        '7/7 passed'
    """
    if not summary:
        return ""
    if not summary.get("ran", True):
        n = summary["cases"]
        return f"{n} case{'s' if n != 1 else ''}, never run"
    text = f"{summary['passed']}/{summary['total']} passed"
    return text if summary["current"] else text + " (cases changed since)"
