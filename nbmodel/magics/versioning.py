"""Versioning magics: commit, log, show, diff, checkout, tag, alias, rollback, retire, status,
store. Each parses its line, calls the core function of the same name, and returns its result
(which shows as HTML in a notebook and as text elsewhere)."""

from __future__ import annotations

import re
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ._common import NbmodelUsageError, lookup, parse, parse_pairs, usage_errors


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
    return var if var.isidentifier() else f"model_{var}"


@magics_class
class VersioningMagics(Magics):
    @magic_arguments()
    @argument("var", help="the variable holding the fitted model")
    @argument("-n", "--name", help="the registered model's name (default: the model the object "
              "was checked out from, else the variable's name)")
    @argument("-m", "--message", default="", help="what changed, like a commit message")
    @argument("--eval", nargs=2, metavar=("X", "y"), help="variables of the eval data to score on")
    @argument("--train", nargs=2, metavar=("X", "y"),
              help="variables of the training data: fingerprint and drift reference")
    @argument("--tag", action="append", metavar="KEY=VALUE", help="a tag (repeatable)")
    @line_magic
    @usage_errors
    def model_commit(self, line: str = "") -> Any:
        """Register the model in VAR as a new version, fully described.

        Records hyper-parameters, metrics on --eval, signature and input example, pinned
        requirements, the training data's fingerprint and reference statistics (--train), the
        cells that built the model, the parent version and the message.

        Example: %model_commit clf -n iris -m "more trees" --eval X_test y_test --train X_train y_train
        """
        from ..commits import commit
        from ..lineage import head_of
        from ..refs import parse_ref

        args = parse(self.model_commit, line)
        model = lookup(self.shell, args.var, "variable")
        eval_ = train = None
        if args.eval:
            eval_ = (lookup(self.shell, args.eval[0]), lookup(self.shell, args.eval[1]))
        if args.train:
            train = (lookup(self.shell, args.train[0]), lookup(self.shell, args.train[1]))
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

    @magic_arguments()
    @argument("name", nargs="?", help="the model (may be left out when the store has one)")
    @argument("-n", "--max-count", type=int, default=None, dest="limit", help="show at most N versions")
    @argument("--aliases", action="store_true", help="show the audit trail of alias moves instead")
    @line_magic
    @usage_errors
    def model_log(self, line: str = "") -> Any:
        """A model's history, newest first: version, aliases, age, message, key metrics, parent.

        Where versions branch, a lineage graph like `git log --graph`.
        Example: %model_log iris -n 10      %model_log iris --aliases
        """
        from ..aliases import alias_history
        from ..history import log

        args = parse(self.model_log, line)
        if args.limit is not None and args.limit < 1:
            raise NbmodelUsageError("-n takes a number of versions from 1", "usage")
        if args.aliases:
            if not args.name:
                raise NbmodelUsageError("name the model: %model_log NAME --aliases", "usage")
            return alias_history(args.name)
        return log(args.name, limit=args.limit)

    @magic_arguments()
    @argument("ref", help="iris, iris/3, iris@production or models:/iris/3")
    @line_magic
    @usage_errors
    def model_show(self, line: str = "") -> Any:
        """One version's card. Example: %model_show iris@production"""
        from ..versions import show

        return show(parse(self.model_show, line).ref)

    @magic_arguments()
    @argument("a", help="the older version (e.g. iris/2)")
    @argument("b", help="the newer version (e.g. iris/3)")
    @line_magic
    @usage_errors
    def model_diff(self, line: str = "") -> Any:
        """What changed between two versions: params, metrics with deltas, tags, training data,
        signature and the source cells. Example: %model_diff iris/2 iris/3"""
        from ..diffs import diff

        args = parse(self.model_diff, line)
        return diff(args.a, args.b)

    @magic_arguments()
    @argument("ref", help="the version to load")
    @argument("--as", dest="var", help="the variable to load it into (default: the model's name)")
    @line_magic
    @usage_errors
    def model_checkout(self, line: str = "") -> None:
        """Load a version's model into a variable; its next commit records that version as parent.

        Example: %model_checkout iris/2 --as clf
        """
        from ..versions import checkout, resolve

        args = parse(self.model_checkout, line)
        if args.var is not None and not args.var.isidentifier():
            raise NbmodelUsageError(f"{args.var!r} is not a valid variable name", "usage")
        v = resolve(args.ref)
        var = args.var or _var_name_for(v.name)
        self.shell.user_ns[var] = checkout(v.ref)
        print(f"{v.ref} checked out as {var}; commit it with %model_commit {var}")

    @magic_arguments()
    @argument("ref", help="the version")
    @argument("tags", nargs="+", metavar="KEY=VALUE")
    @line_magic
    @usage_errors
    def model_tag(self, line: str = "") -> Any:
        """Set tags on a version. Example: %model_tag iris/3 stage=candidate owner=ana"""
        from ..versions import tag

        args = parse(self.model_tag, line)
        v = tag(args.ref, parse_pairs(args.tags))
        print(f"{v.ref} tagged " + ", ".join(f"{k}={v.tags.get(k, '')}" for k in parse_pairs(args.tags)))

    @magic_arguments()
    @argument("ref", help="the version the alias should point to (iris/3)")
    @argument("alias", help="the alias (production)")
    @argument("-m", "--message", default="", help="why, kept in the audit trail")
    @argument("--force", action="store_true", help="allow a retired version")
    @argument("--delete", action="store_true", help="remove the alias instead (REF is the model)")
    @line_magic
    @usage_errors
    def model_alias(self, line: str = "") -> Any:
        """Point an alias at a version; every move is kept in an audit trail
        (%model_log NAME --aliases). Example: %model_alias iris/3 production -m "best on holdout"
        """
        from ..aliases import delete_alias, set_alias

        args = parse(self.model_alias, line)
        if args.delete:
            return delete_alias(args.ref, args.alias, message=args.message)
        return set_alias(args.ref, args.alias, message=args.message, force=args.force)

    @magic_arguments()
    @argument("name", help="the model (iris), or the alias to move (iris@staging)")
    @argument("--to", metavar="VERSION", help="the version to move to (default: the previous holder)")
    @argument("--alias", default=None, help="the alias to move back (default: production)")
    @argument("-m", "--message", default="", help="why, kept in the audit trail")
    @line_magic
    @usage_errors
    def model_rollback(self, line: str = "") -> Any:
        """Move an alias back to the version that held it before, or to --to VERSION.

        Example: %model_rollback iris      %model_rollback iris --to 2 --alias staging
        """
        from ..aliases import rollback

        args = parse(self.model_rollback, line)
        to = args.to
        if to is not None:
            to = to.split("/")[-1]
            if not to.isdigit():
                raise NbmodelUsageError(f"--to takes a version number, not {args.to!r}", "usage")
        return rollback(args.name, alias=args.alias, to=to, message=args.message)

    @magic_arguments()
    @argument("ref", help="the version to retire")
    @argument("-m", "--message", default="", help="why")
    @argument("--force", action="store_true", help="retire even if an alias points to it")
    @argument("--undo", action="store_true", help="bring a retired version back")
    @line_magic
    @usage_errors
    def model_retire(self, line: str = "") -> None:
        """Archive a version: kept in history, refused by deploy and alias unless forced.

        Example: %model_retire iris/1 -m "trained on the old data"
        """
        from ..versions import retire, unretire

        args = parse(self.model_retire, line)
        if args.undo:
            v = unretire(args.ref)
            print(f"{v.ref} is no longer retired")
        else:
            v = retire(args.ref, message=args.message, force=args.force)
            print(f"{v.ref} retired")

    @magic_arguments()
    @line_magic
    @usage_errors
    def model_status(self, line: str = "") -> Any:
        """The store in use, its models with their newest version and aliases, and what runs."""
        from ..history import status

        parse(self.model_status, line)
        return status()

    @magic_arguments()
    @argument("uri", nargs="?", help="sqlite:///FILE.db, http://HOST:PORT, or 'default' to go back")
    @line_magic
    @usage_errors
    def model_store(self, line: str = "") -> None:
        """Show or set the store this session uses.

        Example: %model_store sqlite:///course.db      %model_store http://127.0.0.1:5000
        """
        from ..store import resolve_uri, set_store

        args = parse(self.model_store, line)
        if args.uri:
            store = set_store(None if args.uri == "default" else args.uri)
            print(f"store: {store.uri}")
        else:
            uri, origin = resolve_uri()
            print(f"store: {uri} ({origin})")
