"""Branch magics: ``%model_branch`` (list, make, delete) and ``%model_merge``."""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class

from ..commands import run
from ._common import NbmodelUsageError, declared, lookup, shell_of


@magics_class
class BranchMagics(Magics):
    @line_magic
    @declared
    def model_branch(self, args: argparse.Namespace) -> Any:
        """List a model's branches (head, versions ahead of main, last move), make one, or
        delete one. Check one out with %model_checkout NAME@BRANCH; its commits advance it.

        Example: %model_branch iris experiment --from iris/3      %model_branch iris
        """
        return run("branch", args)

    @line_magic
    @declared
    def model_merge(self, args: argparse.Namespace) -> Any:
        """Merge a branch into another (default main), scoring both heads on --eval: pick moves
        the target to the source head; vote, average and stack commit a new version with two
        parents, refused if worse than the better parent unless --force.

        Example: %model_merge iris experiment --eval X_test y_test --strategy average
        """
        from ..merges import merge

        shell = shell_of(self)
        if not args.eval:
            raise NbmodelUsageError(
                f"give the data both heads are scored on: %model_merge {args.name} {args.source} "
                "--eval X_test y_test", "usage")
        eval_ = (lookup(shell, args.eval[0]), lookup(shell, args.eval[1]))
        train = (lookup(shell, args.train[0]), lookup(shell, args.train[1])) if args.train else None
        return merge(args.name, args.source, into=args.into, eval=eval_, strategy=args.strategy,
                     train=train, force=args.force, message=args.message, report=print)
