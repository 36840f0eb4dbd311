"""``%model_compare``: versions side by side on the same eval data, or stored metrics by version.

Parses the line, looks the eval variables up in the user's namespace, and returns the core's
result (an HTML table and figures in a notebook, text elsewhere).
"""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class

from ._common import NbmodelUsageError, declared, lookup, shell_of


@magics_class
class CompareMagics(Magics):
    @line_magic
    @declared
    def model_compare(self, args: argparse.Namespace) -> Any:
        """Compare versions side by side on the same data.

        A metrics table with the best value of each row marked, confusion matrices and ROC
        curves (classifiers) or predicted-against-true and residuals (regressors), the rows
        where the versions disagree, and whether the difference is real (McNemar's exact test;
        a paired bootstrap of the RMSE difference). With --all, the metrics stored at commit
        for every version of a model, plotted against the version number, aliases marked.

        Example: %model_compare iris/2 iris@production --eval X_test y_test
                 %model_compare iris --all
        """
        from ..comparison import _check_refs, compare, metric_history

        if args.all_versions:
            if len(args.refs) != 1:
                raise NbmodelUsageError("--all takes one model name: %model_compare iris --all",
                                        "usage")
            if args.eval:
                raise NbmodelUsageError("--all plots the stored metrics and takes no --eval; "
                                        "leave one of them out", "usage")
            return metric_history(args.refs[0], log=args.log, plots=args.plots)
        _check_refs(args.refs)  # the count of versions first: the first mistake is reported
        if not args.eval:
            raise NbmodelUsageError(
                "give the eval data: %model_compare "
                f"{' '.join(args.refs)} --eval X_test y_test (or --all for stored metrics)", "usage")
        X = lookup(shell_of(self), args.eval[0])
        y = lookup(shell_of(self), args.eval[1])
        from .explain import groups_of

        return compare(args.refs, X, y, log=args.log, plots=args.plots,
                       groups=groups_of(self, X, args.groups))
