"""Explanations and groups: what drives each version, how that changed, and whom it fails.

``_importance`` (permutation importance, recorded at commit and read back), ``_changes`` (how
it moved between two versions, in a sentence), ``_shap`` (SHAP values when the optional
``shap`` is installed), ``_groups`` (every metric per group, the gaps, fairness differences,
group alert rules), ``_side`` (several versions side by side, for compare) and ``_explain``
(:func:`explain` and what it shows).

Example:
    >>> from nbmodel.explain import explain
    >>> explain("iris/3", X_test, y_test, groups="sex")  # doctest: +SKIP
"""

from __future__ import annotations

import sys
import types
from typing import Any

from ._changes import ImportanceChange, changes, version_changes
from ._explain import Explanation, explain, split_groups
from ._groups import GroupReport, group_metrics
from ._importance import Importance, permutation, record_importance, stored
from ._side import GroupsSideBySide, ImportanceSideBySide, groups_side_by_side, side_by_side

__all__ = ["Explanation", "GroupReport", "GroupsSideBySide", "Importance", "ImportanceChange",
           "ImportanceSideBySide", "changes", "explain", "group_metrics", "groups_side_by_side",
           "permutation", "record_importance", "side_by_side", "split_groups", "stored",
           "version_changes"]


class _CallablePackage(types.ModuleType):
    """``nbmodel.explain`` is both this package and the function :func:`explain`: importing the
    package makes it the attribute of ``nbmodel``, so the package answers a call as the function
    does and ``nbmodel.explain("iris/3")`` works whichever was looked up first."""

    def __call__(self, *args: Any, **kwargs: Any) -> Explanation:
        return explain(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
