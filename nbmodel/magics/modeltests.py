"""``%model_test``: declare a version's test cases, list or remove them, or run them."""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class

from ..commands import run
from ._common import NbmodelUsageError, declared, lookup, shell_of


@magics_class
class ModelTestMagics(Magics):
    @line_magic
    @declared
    def model_test(self, args: argparse.Namespace) -> Any:
        """Run a version's test cases (a pass/fail table and a verdict, recorded on the
        version), or declare new ones, stored with it and inherited by its children.

        Example: %model_test iris/4 --add "accuracy >= 0.9" --eval X_test y_test
                 %model_test iris/4 --robust nan --invariant noise --eval X_test y_test
                 %model_test iris/4        %model_test iris/4 --list
        """
        from ..modeltests import add_tests, run_tests

        adding = args.add or args.add_rows or args.invariant or args.increasing or args.robust
        if adding and (args.list or args.remove):
            raise NbmodelUsageError("add cases, or --list, or --remove: one at a time", "usage")
        if args.group and not args.add:
            raise NbmodelUsageError('--group goes with --add: --add "accuracy >= 0.9" --group COL',
                                    "usage")
        shell = shell_of(self)
        eval_ = None
        if args.eval:
            eval_ = (lookup(shell, args.eval[0]), lookup(shell, args.eval[1]))
        if adding:
            rows = None
            if args.add_rows:
                rows = (lookup(shell, args.add_rows[0]), lookup(shell, args.add_rows[1]))
            group = args.group
            if group and eval_ is not None and group not in getattr(eval_[0], "columns", ()) \
                    and group in shell.user_ns:
                group = lookup(shell, group)  # one group value per row, kept in a variable
            return add_tests(args.ref, rules=args.add or (), eval=eval_, group=group,
                             rows=rows, invariant=args.invariant or (),
                             increasing=args.increasing or (), robust=args.robust or ())
        if args.list or args.remove:
            return run("test", args)
        return run_tests(args.ref, eval=eval_)
