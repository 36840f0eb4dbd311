"""``%model_explain``: what drives a version's predictions, and how it does per group."""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class

from ._common import NbmodelUsageError, declared, lookup, shell_of


def groups_of(magics: Any, X: Any, name: str | None) -> Any:
    """What ``--groups NAME`` means: a column of ``X`` (its name is passed on), else a variable
    of the notebook with one group per row.

    Args:
        magics: the Magics instance (for the namespace).
        X: the eval data.
        name: the option's value, or None.

    Returns:
        The column's name, the variable's value, or None.

    Example:
        >>> groups_of(self, X_test, "sex")  # doctest: +SKIP
        'sex'
    """
    if name is None:
        return None
    if name in [str(c) for c in getattr(X, "columns", [])]:
        return name
    return lookup(shell_of(magics), name, "column of X or variable")


@magics_class
class ExplainMagics(Magics):
    @line_magic
    @declared
    def model_explain(self, args: argparse.Namespace) -> Any:
        """What drives a version's predictions: permutation importance as a ranked bar chart
        with error bars and a table (recorded at commit, or measured on --eval data); SHAP
        values (a summary plot; the top features of one row with --row N) when shap is
        installed; with --groups, every metric per group, the gaps and the worst group.

        Example: %model_explain iris/3
                 %model_explain iris/3 --eval X_test y_test --groups sex --row 0
        """
        from ..explain import explain

        if args.eval is None:
            if args.groups is not None or args.row is not None:
                raise NbmodelUsageError("--groups and --row need the data: %model_explain "
                                        f"{args.ref} --eval X_test y_test --groups COL", "usage")
            return explain(args.ref, plots=args.plots)
        X = lookup(shell_of(self), args.eval[0])
        y = lookup(shell_of(self), args.eval[1])
        return explain(args.ref, X, y, groups=groups_of(self, X, args.groups), row=args.row,
                       shap=None if args.shap else False, plots=args.plots)
