"""What every nbmodel magic shares: its arguments from :mod:`nbmodel.commands`, nbmodel's
errors as one-line UsageErrors, and looking up the user's variables."""

from __future__ import annotations

import argparse
import functools
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments

from ..commands import MAGIC, MAGICS
from ..errors import NbmodelError

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

def NbmodelUsageError(message: str, kind: str = "usage") -> UsageError:  # noqa: N802
    """A UsageError carrying the kind of mistake behind it (tests assert on the kind).

    It must be a plain UsageError, not a subclass: IPython prints a one-line message, with no
    traceback, only for that exact class.
    """
    err = UsageError(message)
    err.kind = kind  # type: ignore[attr-defined]
    return err


def declared(fn: Callable[[Any, argparse.Namespace], Any]) -> Callable[[Any, str], Any]:
    """Make a line magic of a method that takes its parsed arguments.

    The arguments are those :mod:`nbmodel.commands` declares for the magic of the method's
    name, as IPython's ``magic_arguments`` (so ``%model_log?`` and ``--help`` show them): the
    same declaration the CLI is built from. The magic parses its line, keeps the warm starter
    running, and turns nbmodel's errors (and argparse's) into a one-line UsageError.

    Args:
        fn: ``method(self, args)``, named as its command's ``magic`` (``model_log``).

    Returns:
        ``magic(self, line)``, with ``parser`` and the full help as its docstring.

    Raises:
        KeyError: no command declares a magic of that name.

    Example:
        >>> @line_magic  # doctest: +SKIP
        ... @declared
        ... def model_log(self, args): ...
    """

    @functools.wraps(fn)
    def magic(self: Any, line: str = "") -> Any:
        _keep_warm()
        try:
            return fn(self, parse(magic, line))
        except HelpShown:
            return None
        except NbmodelError as exc:
            raise NbmodelUsageError(str(exc), exc.kind) from None

    for a in reversed(MAGICS[fn.__name__].args_for(MAGIC)):
        magic = argument(*a.flags, help=a.help, **dict(a.options))(magic)
    return magic_arguments()(magic)


def shell_of(magics: Any) -> InteractiveShell:
    """The shell a Magics instance belongs to (IPython types it as optional).

    Args:
        magics: the ``Magics`` instance.

    Returns:
        Its shell.

    Raises:
        UsageError: the magics were made without a shell.

    Example:
        >>> shell_of(self).user_ns  # doctest: +SKIP
    """
    shell = magics.shell
    if shell is None:
        raise NbmodelUsageError("nbmodel's magics need an IPython shell", "usage")
    return shell


def _keep_warm() -> None:
    """Every magic keeps the kernel's warm starter running (see nbmodel.serving._warm)."""
    from ..serving import _warm  # standard library only: cheap, and a no-op unless started

    _warm.keep_warm()


def _asked_for_help(line: str) -> bool:
    try:
        words = shlex.split(line)
    except ValueError:
        return False
    return "-h" in words or "--help" in words


def lookup(shell: Any, name: str, what: str = "variable") -> Any:
    """A variable from the user's namespace (or an expression such as ``X.iloc[:50]``),
    or a UsageError naming it."""
    ns = shell.user_ns
    if not name.isidentifier():
        try:
            return eval(name, ns)  # noqa: S307 - the user's own expression in the user's kernel
        except Exception as exc:  # noqa: BLE001
            raise NbmodelUsageError(f"cannot evaluate {name!r}: {exc}", "unknown-variable") from None
    if name not in ns:
        hint = ""
        import difflib

        close = difflib.get_close_matches(name, [k for k in ns if not k.startswith("_")], n=3)
        if close:
            hint = f"; did you mean {', '.join(close)}?"
        raise NbmodelUsageError(f"no {what} named {name!r} in this notebook{hint}", "unknown-variable")
    return ns[name]


class HelpShown(Exception):
    """Raised by :func:`parse` after printing ``--help``; the magic then returns nothing."""


def parse(magic: Any, line: str) -> Any:
    """Parse a magic's line with its declared arguments; ``-h``/``--help`` print the help."""
    name = getattr(magic, "__name__", "magic")
    if _asked_for_help(line):
        print(magic.__doc__)
        raise HelpShown
    try:
        # POSIX splitting, so that -m "more trees" arrives without its quotes.
        words = shlex.split(line)
    except ValueError as exc:
        raise NbmodelUsageError(f"cannot read the arguments ({exc}); check the quotes", "usage") from None
    try:
        return magic.parser.parse_args(words)
    except UsageError as exc:
        raise NbmodelUsageError(f"{exc}; see %{name} --help", "usage") from None
