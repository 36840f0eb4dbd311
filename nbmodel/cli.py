"""The ``nbmodel`` command: the same core as the magics, from a terminal.

    nbmodel status
    nbmodel log iris [-n 10]
    nbmodel show iris@production
    nbmodel diff iris/2 iris/3
    nbmodel rollback iris [--to 2] [--alias production]
    nbmodel sanitize-file

Feature modules add subcommands through ``SUBCOMMANDS`` ("module:function" that receives the
argparse subparsers object).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

SUBCOMMANDS: list[str] = [
    "nbmodel.serving:add_cli",
    "nbmodel.monitoring:add_cli",
]


def _build() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nbmodel", description="the model lifecycle over MLflow")
    parser.add_argument("--store", help="the store URI (default: the usual resolution order)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="the store, models, aliases")
    p = sub.add_parser("log", help="a model's history")
    p.add_argument("name", nargs="?")
    p.add_argument("-n", "--max-count", type=int, dest="limit")
    p.add_argument("--aliases", action="store_true")
    p = sub.add_parser("show", help="one version's card")
    p.add_argument("ref")
    p = sub.add_parser("diff", help="what changed between two versions")
    p.add_argument("a")
    p.add_argument("b")
    p = sub.add_parser("alias", help="point an alias at a version")
    p.add_argument("ref")
    p.add_argument("alias")
    p.add_argument("-m", "--message", default="")
    p.add_argument("--force", action="store_true")
    p = sub.add_parser("rollback", help="move an alias back")
    p.add_argument("name")
    p.add_argument("--to")
    p.add_argument("--alias")
    p.add_argument("-m", "--message", default="")
    sub.add_parser("sanitize-file", help="print the path of nbmodel's nbval sanitize file")
    for spec in SUBCOMMANDS:
        module, fn = spec.split(":")
        if importlib.util.find_spec(module) is None:
            continue
        add = getattr(importlib.import_module(module), fn, None)
        if add is not None:
            add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import NbmodelError

    args = _build().parse_args(argv)
    try:
        if args.store:
            from .store import set_store

            set_store(args.store)
        result = _run(args)
    except NbmodelError as exc:
        print(f"nbmodel: {exc}", file=sys.stderr)
        return 2
    if result is not None:
        print(result)
    return 0


def _run(args: argparse.Namespace) -> object:
    import nbmodel

    cmd = args.command
    if cmd == "status":
        return nbmodel.status()
    if cmd == "log":
        return nbmodel.alias_history(args.name) if args.aliases else nbmodel.log(args.name, limit=args.limit)
    if cmd == "show":
        return nbmodel.show(args.ref)
    if cmd == "diff":
        return nbmodel.diff(args.a, args.b)
    if cmd == "alias":
        return nbmodel.alias(args.ref, args.alias, message=args.message, force=args.force)
    if cmd == "rollback":
        return nbmodel.rollback(args.name, alias=args.alias, to=args.to, message=args.message)
    if cmd == "sanitize-file":
        return nbmodel.sanitize_file()
    handler = getattr(args, "handler", None)
    if handler is not None:
        return handler(args)
    raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    sys.exit(main())
