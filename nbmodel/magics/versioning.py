"""Versioning magics: commit, log, show, diff, checkout, tag, alias, rollback, retire, status,
store. Each parses its line, calls the core function of the same name, and returns its result
(which shows as HTML in a notebook and as text elsewhere)."""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class

from ..commands import parse_pairs, run
from ._common import NbmodelUsageError, declared, lookup, shell_of


def _summary(v: Any) -> str:
    from ..versions import _fmt

    parts = [f"{v.ref} committed"]
    parts.append(f"parent {v.parent}" if v.parent else "first version")
    km = v.key_metrics
    if km:
        k, x = next(iter(km.items()))
        parts.append(f"{k} {_fmt(x)}")
    return ", ".join(parts)


def _var_name_for(name: str) -> str:
    var = re.sub(r"\W", "_", name)
    return var if var.isidentifier() and not keyword.iskeyword(var) else f"model_{var}"


@magics_class
class VersioningMagics(Magics):
    @line_magic
    @declared
    def model_commit(self, args: argparse.Namespace) -> Any:
        """Register the model in VAR as a new version, fully described.

        Records hyper-parameters, metrics on --eval, signature and input example, pinned
        requirements, the training data's fingerprint and reference statistics (--train), the
        cells that built the model, the parent version and the message.

        Example: %model_commit clf -n iris -m "more trees" --eval X_test y_test --train X_train y_train
        """
        from ..commits import commit
        from ..lineage import head_of
        from ..refs import parse_ref

        model = lookup(shell_of(self), args.var, "variable")
        eval_ = train = None
        if args.eval:
            eval_ = (lookup(shell_of(self), args.eval[0]), lookup(shell_of(self), args.eval[1]))
        if args.train:
            train = (lookup(shell_of(self), args.train[0]), lookup(shell_of(self), args.train[1]))
        name = args.name
        if name is None:
            head = head_of(model)
            name = parse_ref(head).name if head else args.var
        names = [args.var, *(args.train or [])]
        from ..evaluate import check_model

        check_model(model, f"{args.var!r}")
        v = commit(model, name, message=args.message, eval=eval_, train=train,
                   tags=parse_pairs(args.tag), var_names=names)
        print(_summary(v))
        return v

    @line_magic
    @declared
    def model_log(self, args: argparse.Namespace) -> Any:
        """A model's history, newest first: version, aliases, age, message, key metrics, parent.

        Where versions branch, a lineage graph like `git log --graph`.
        Example: %model_log iris -n 10      %model_log iris --aliases
        """
        return run("log", args)

    @line_magic
    @declared
    def model_show(self, args: argparse.Namespace) -> Any:
        """One version's card. Example: %model_show iris@production"""
        return run("show", args)

    @line_magic
    @declared
    def model_diff(self, args: argparse.Namespace) -> Any:
        """What changed between two versions: params, metrics with deltas, tags, training data,
        signature and the source cells. Example: %model_diff iris/2 iris/3"""
        return run("diff", args)

    @line_magic
    @declared
    def model_checkout(self, args: argparse.Namespace) -> None:
        """Load a version's model into a variable; its next commit records that version as parent.

        Example: %model_checkout iris/2 --as clf
        """
        from ..versions import checkout, resolve

        if args.var is not None and (not args.var.isidentifier() or keyword.iskeyword(args.var)):
            raise NbmodelUsageError(f"{args.var!r} is not a valid variable name; choose another, "
                                    "such as clf", "usage")
        from ..lineage import branch_of

        v = resolve(args.ref)
        var = args.var or _var_name_for(v.name)
        model = checkout(args.ref)
        shell_of(self).user_ns[var] = model
        on = branch_of(model)
        where = f" (branch {on})" if on else ""
        print(f"{v.ref}{where} checked out as {var}; commit it with %model_commit {var}")

    @line_magic
    @declared
    def model_tag(self, args: argparse.Namespace) -> None:
        """Set tags on a version. Example: %model_tag iris/3 stage=candidate owner=ana"""
        print(run("tag", args))

    @line_magic
    @declared
    def model_alias(self, args: argparse.Namespace) -> Any:
        """Point an alias at a version; every move is kept in an audit trail
        (%model_log NAME --aliases). Example: %model_alias iris/3 production -m "best on holdout"
        """
        return run("alias", args)

    @line_magic
    @declared
    def model_rollback(self, args: argparse.Namespace) -> Any:
        """Move an alias back to the version that held it before, or to --to VERSION.

        Example: %model_rollback iris      %model_rollback iris --to 2 --alias staging
        """
        return run("rollback", args)

    @line_magic
    @declared
    def model_retire(self, args: argparse.Namespace) -> None:
        """Archive a version: kept in history, refused by deploy and alias unless forced.

        Example: %model_retire iris/1 -m "trained on the old data"
        """
        print(run("retire", args))

    @line_magic
    @declared
    def model_status(self, args: argparse.Namespace) -> Any:
        """The store in use, its models with their newest version and aliases, and what runs.

        Returns:
            The status report (see :func:`nbmodel.overview.status`), which the notebook shows.

        Example:
            >>> %model_status  # doctest: +SKIP
        """
        return run("status", args)

    @line_magic
    @declared
    def model_store(self, args: argparse.Namespace) -> None:
        """Show or set the store this session uses.

        Example: %model_store sqlite:///course.db      %model_store http://127.0.0.1:5000
        """
        from ..store import resolve_uri, set_store

        if args.uri:
            store = set_store(None if args.uri == "default" else args.uri)
            print(f"store: {store.uri}")
            if store.created and store.db_path is not None:
                # A notice beside the answer: the store line stays the one line scripts read.
                print(f"created a new, empty store: {store.db_path} (artifacts will go to "
                      f"{store.artifact_root})", file=sys.stderr)
        else:
            uri, origin = resolve_uri()
            print(f"store: {uri} ({origin})")
