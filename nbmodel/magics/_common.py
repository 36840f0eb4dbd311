"""What every nbmodel magic shares: its arguments from :mod:`nbmodel.commands`, nbmodel's
errors as one-line UsageErrors, and looking up the user's variables."""

from __future__ import annotations

import functools
import shlex
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments

from ..commands import MAGIC, MAGICS
from ..errors import NbmodelError

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

F = TypeVar("F", bound=Callable[..., Any])


def NbmodelUsageError(message: str, kind: str = "usage") -> UsageError:  # noqa: N802
    """A UsageError carrying the kind of mistake behind it (tests assert on the kind).

    It must be a plain UsageError, not a subclass: IPython prints a one-line message, with no
    traceback, only for that exact class.
    """
    err = UsageError(message)
    err.kind = kind  # type: ignore[attr-defined]
    return err


def declared(fn: F) -> F:
    """Give a magic the arguments :mod:`nbmodel.commands` declares for it.

    The magic's ``parser`` and its help (``%model_log?``, ``--help``) are IPython's
    ``magic_arguments``, built from the one declaration the CLI is built from too.

    Args:
        fn: the magic method, named as its command's ``magic`` (``model_log``).

    Returns:
        The method, with ``parser`` and the full help as its docstring.

    Raises:
        KeyError: no command declares a magic of that name.

    Example:
        >>> @declared  # doctest: +SKIP
        ... def model_log(self, line=""): ...
    """
    command = MAGICS[fn.__name__]
    for a in reversed(command.args_for(MAGIC)):
        fn = argument(*a.flags, help=a.help, **dict(a.options))(fn)
    return magic_arguments()(fn)  # type: ignore[no-any-return]


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
    return shell  # type: ignore[no-any-return]


def usage_errors(fn: F) -> F:
    """Run a magic; nbmodel's errors (and argparse's) become a short UsageError."""

    @functools.wraps(fn)
    def wrapper(self: Any, line: str = "", *args: Any, **kwargs: Any) -> Any:
        _keep_warm()
        try:
            return fn(self, line, *args, **kwargs)
        except HelpShown:
            return None
        except NbmodelError as exc:
            raise NbmodelUsageError(str(exc), exc.kind) from None

    return wrapper  # type: ignore[return-value]


def _keep_warm() -> None:
    """Every magic keeps the kernel's warm starter running (see nbmodel.serving._warm)."""
    warm = sys.modules.get("nbmodel.serving._warm")
    if warm is not None:  # only when the extension started one
        warm.keep_warm()


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
