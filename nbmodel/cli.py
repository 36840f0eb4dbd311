"""The ``nbmodel`` command: the same core as the magics, from a terminal.

    nbmodel status
    nbmodel log iris [-n 10]
    nbmodel show iris@production
    nbmodel diff iris/2 iris/3
    nbmodel rollback iris [--to 2] [--alias production]
    nbmodel serve iris@production [--port 5001]
    nbmodel serve pipeline --chain features@production classifier@production
    nbmodel monitor iris [--window 1d]
    nbmodel sanitize-file

Every subcommand and its options come from :mod:`nbmodel.commands`, where the magics' come
from too: ``nbmodel X`` takes what ``%model_X`` takes, less what needs a kernel.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .commands import CLI, COMMANDS, run


def build_parser() -> argparse.ArgumentParser:
    """The ``nbmodel`` parser, one subcommand per command declared for the CLI.

    Returns:
        The parser; the chosen subcommand's name lands in ``command``.

    Example:
        >>> build_parser().parse_args(["log", "iris", "-n", "10"]).limit
        10
    """
    parser = argparse.ArgumentParser(prog="nbmodel", description="the model lifecycle over MLflow")
    parser.add_argument("--store", help="the store URI (default: the usual resolution order)")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS.values():
        if not command.cli:
            continue
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        for a in command.args_for(CLI):
            a.add_to(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nbmodel ARGS``: print the result, or nbmodel's error on one line.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        0 on success, 2 when nbmodel refused (the message is on stderr).

    Example:
        >>> main(["log", "iris", "-n", "10"])  # doctest: +SKIP
        0
    """
    from .errors import NbmodelError

    args = build_parser().parse_args(argv)
    try:
        if args.store:
            from .store import set_store

            set_store(args.store)
        result = run(args.command, args)
    except NbmodelError as exc:
        print(f"nbmodel: {exc}", file=sys.stderr)
        return 2
    if result is not None:
        print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
