"""Every nbmodel command's options, declared once for the magics, the CLI and the REST routes.

A :class:`Command` names its magic (``%model_log``), its CLI subcommand (``nbmodel log``), its
arguments (flags, types, defaults, help) and, where a terminal can run it, the function that
calls the core. :mod:`nbmodel.magics` builds each magic's ``magic_arguments`` parser from it,
:mod:`nbmodel.cli` builds the subcommands from it, and the REST routes' fields are tested
against it, so the three cannot drift. An argument that only makes sense in a kernel (a
variable's name, a live widget) is declared for the magic only.

Nothing heavy is imported here: the runners import the core when they run.

Example:
    >>> from nbmodel.commands import COMMANDS
    >>> [a.flags for a in COMMANDS["log"].args]
    [('name',), ('-n', '--max-count'), ('--aliases',), ('--branch',), ('--branches',)]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import NbmodelError

MAGIC = "magic"
CLI = "cli"
BOTH = frozenset({MAGIC, CLI})


class UsageProblem(NbmodelError):
    """Options that parse but do not go together (``--all`` with ``--eval``, ``-n 0``)."""

    kind = "usage"


@dataclass(frozen=True)
class Arg:
    """One argument of a command, in argparse's terms.

    Attributes:
        flags: ``("name",)`` for a positional, ``("-n", "--max-count")`` for an option.
        help: the help line shown by ``--help`` and ``%model_x?``.
        options: argparse keywords (``type``, ``default``, ``action``, ``nargs``, ``dest``...).
        where: the surfaces that take it: the magic, the CLI, or both.
    """

    flags: tuple[str, ...]
    help: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    where: frozenset[str] = BOTH

    @property
    def dest(self) -> str:
        """The attribute the parsed value lands in, as argparse names it.

        Example:
            >>> Arg(("-n", "--max-count")).dest
            'max_count'
        """
        if "dest" in self.options:
            return str(self.options["dest"])
        long = [f for f in self.flags if f.startswith("--")]
        return (long or list(self.flags))[0].lstrip("-").replace("-", "_")

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Add this argument to an argparse parser.

        Args:
            parser: the parser (a CLI subparser).

        Example:
            >>> p = argparse.ArgumentParser()
            >>> arg("--to").add_to(p)
            >>> p.parse_args(["--to", "2"]).to
            '2'
        """
        parser.add_argument(*self.flags, help=self.help, **dict(self.options))


def arg(*flags: str, help: str = "", where: frozenset[str] = BOTH, **options: Any) -> Arg:  # noqa: A002
    """Declare an argument (the keywords are argparse's).

    Args:
        *flags: the positional's name, or the option's flags.
        help: the help line.
        where: ``BOTH`` (default), ``frozenset({MAGIC})`` or ``frozenset({CLI})``.
        **options: argparse keywords.

    Returns:
        The :class:`Arg`.

    Example:
        >>> arg("-n", "--max-count", type=int, dest="limit").dest
        'limit'
    """
    return Arg(tuple(flags), help, options, where)


@dataclass(frozen=True)
class Route:
    """A REST route that runs the same command: its method, path and body or query fields.

    ``fields`` map each field of the request to the argument (dest) it stands for; the REST
    tests check them against the command's arguments and against ``openapi.yaml``. A field is
    named as the option it stands for, except the parts of a REF (``name``, ``version``,
    ``target``), which routes carry in their path or, for an alias, as ``version``.
    """

    method: str
    path: str
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def body_fields(self) -> list[str]:
        """The fields of the request body or query: those not in the path.

        Example:
            >>> COMMANDS["rollback"].routes[0].body_fields
            ['alias', 'to', 'message']
        """
        return [f for f in self.fields if "{" + f + "}" not in self.path]


@dataclass(frozen=True)
class Command:
    """One command of nbmodel: its names on each surface, its arguments and its runner.

    Attributes:
        name: the CLI subcommand and the key in :data:`COMMANDS` (``log``).
        help: one line for ``nbmodel --help``.
        args: the arguments, in order.
        magic: the line magic's name (``model_log``), or None for a terminal-only command.
        cli: whether ``nbmodel NAME`` exists.
        run: calls the core with the parsed arguments; the magics that need nothing from the
            kernel call it too, so both surfaces give the same result.
        routes: the REST routes that run it.
    """

    name: str
    help: str
    args: tuple[Arg, ...] = ()
    magic: str | None = None
    cli: bool = True
    run: Callable[[argparse.Namespace], Any] | None = None
    routes: tuple[Route, ...] = ()

    def args_for(self, surface: str) -> list[Arg]:
        """The arguments one surface takes.

        Args:
            surface: ``MAGIC`` or ``CLI``.

        Returns:
            The arguments declared for that surface, in order.

        Example:
            >>> [a.dest for a in COMMANDS["monitor"].args_for(CLI)][:2]
            ['name', 'window']
        """
        return [a for a in self.args if surface in a.where]


# ---- the runners: parsed arguments -> the core ------------------------------------------------


def _status(a: argparse.Namespace) -> Any:
    from .overview import status

    return status()


def _log(a: argparse.Namespace) -> Any:
    from .aliases import alias_history
    from .history import log

    if a.limit is not None and a.limit < 1:
        raise UsageProblem("-n takes a number of versions from 1")
    branch, branches = getattr(a, "branch", None), getattr(a, "branches", False)
    if sum(map(bool, (a.aliases, branch, branches))) > 1:
        raise UsageProblem("give one of --aliases, --branch B and --branches")
    if (a.aliases or branches) and not a.name:
        raise UsageProblem(f"name the model: log NAME {'--aliases' if a.aliases else '--branches'}")
    if a.aliases:
        return alias_history(a.name, limit=a.limit)
    if branches:
        from .branches import branches as list_branches

        return list_branches(a.name)
    return log(a.name, limit=a.limit, branch=branch)


def _show(a: argparse.Namespace) -> Any:
    from .versions import show

    return show(a.ref)


def _diff(a: argparse.Namespace) -> Any:
    from .diffs import diff

    return diff(a.a, a.b)


def parse_pairs(items: list[str] | None, what: str = "tag") -> dict[str, str]:
    """Read ``KEY=VALUE`` arguments.

    Args:
        items: the arguments as typed.
        what: what they are, for the error.

    Returns:
        The pairs, keys and values stripped.

    Raises:
        UsageProblem: an item has no ``=`` or an empty key.

    Example:
        >>> parse_pairs(["stage=candidate", "owner = ana"])
        {'stage': 'candidate', 'owner': 'ana'}
    """
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageProblem(f"{what} {item!r} is not key=value (for example stage=candidate)")
        out[key.strip()] = value.strip()
    return out


def _tag(a: argparse.Namespace) -> str:
    from .versions import tag

    pairs = parse_pairs(a.tags)
    v = tag(a.ref, pairs)
    return f"{v.ref} tagged " + ", ".join(f"{k}={v.tags.get(k, '')}" for k in pairs)


def _alias(a: argparse.Namespace) -> Any:
    from .aliases import ANY, delete_alias, protect, set_alias, unprotect

    expected = ANY if a.expect is None else a.expect
    if a.protect or a.unprotect:
        if a.protect and a.unprotect:
            raise UsageProblem("give --protect or --unprotect, not both")
        if a.expect is not None or a.delete or a.force:
            raise UsageProblem("--protect and --unprotect take only --allow and -m")
        if a.unprotect:
            if a.allow:
                raise UsageProblem("--unprotect takes no --allow")
            return unprotect(a.ref, a.alias, message=a.message)
        if not a.allow:
            raise UsageProblem(f"name who may move it: {a.ref} --protect {a.alias} --allow alice,bob")
        return protect(a.ref, a.alias, a.allow, message=a.message)
    if a.allow:
        raise UsageProblem("--allow goes with --protect: iris --protect production --allow alice,bob")
    if a.delete:
        return delete_alias(a.ref, a.alias, message=a.message, expected=expected)
    return set_alias(a.ref, a.alias, message=a.message, force=a.force, expected=expected)


def _rollback(a: argparse.Namespace) -> Any:
    from .aliases import ANY, rollback

    expected = ANY if a.expect is None else a.expect
    return rollback(a.name, alias=a.alias, to=a.to, message=a.message, expected=expected,
                    force=getattr(a, "force", False))


def _retire(a: argparse.Namespace) -> str:
    from .versions import retire, unretire

    if a.undo:
        return f"{unretire(a.ref).ref} is no longer retired"
    return f"{retire(a.ref, message=a.message, force=a.force).ref} retired"


def _deployments(a: argparse.Namespace) -> Any:
    from .serving import deployments

    return deployments(a.name)


def _monitor(a: argparse.Namespace) -> Any:
    from .monitoring import monitor

    if getattr(a, "model", None) is not None or getattr(a, "retention", None) is not None:
        from .monitoring import compact

        if a.name != "compact" or a.model is None:
            raise UsageProblem("compact a model's records with: monitor compact NAME [--retention 30d]")
        return compact(a.model, retention=a.retention)
    if a.clear_alerts and a.alert:
        raise UsageProblem("give --alert or --clear-alerts, not both")
    alerts = [] if a.clear_alerts else a.alert
    # A terminal shows the report's text, so the CLI has no --no-plots and never draws figures.
    plots = not getattr(a, "no_plots", True)
    return monitor(a.name, window=a.window, since=a.since, until=a.until, alerts=alerts, plots=plots,
                   groups=getattr(a, "groups", None))


def _serve(a: argparse.Namespace) -> None:
    from .serving import serve

    code = serve(a.ref, port=a.port, host=a.host, token=a.token, max_body=a.max_body,
                 workers=a.workers, chain=a.chain)
    if code:
        raise SystemExit(code)


def _branch(a: argparse.Namespace) -> Any:
    from .branches import branch

    return branch(a.name, a.branch, start=a.start, delete=a.delete, message=a.message)


def _canary(a: argparse.Namespace) -> Any:
    from .serving import canary

    if a.stop and (a.steps or a.interval or a.check):
        raise UsageProblem("--stop takes only the candidate and --alias")
    return canary(a.ref, alias=a.alias, steps=a.steps, interval=a.interval, checks=a.check, stop=a.stop)


def _shadow(a: argparse.Namespace) -> Any:
    from .serving import shadow

    if a.stop and a.promote:
        raise UsageProblem("give --promote or --stop, not both")
    return shadow(a.ref, alias=a.alias, promote=a.promote, stop=a.stop)


def _test(a: argparse.Namespace) -> Any:
    from .modeltests import list_tests, remove_test, run_tests

    if a.list and a.remove:
        raise UsageProblem("give --list or --remove, not both")
    if a.remove:
        return remove_test(a.ref, a.remove)
    if a.list:
        return list_tests(a.ref)
    report = run_tests(a.ref)
    if not report.ok:
        print(report)
        raise SystemExit(1)  # a CI step that runs the tests fails with them
    return report


def _sanitize_file(a: argparse.Namespace) -> Any:
    from .testing import sanitize_file

    return sanitize_file()


# ---- the declarations -------------------------------------------------------------------------

_MAGIC_ONLY = frozenset({MAGIC})
_CLI_ONLY = frozenset({CLI})
_MESSAGE = "why, kept in the audit trail"

#: A pipeline's stages, for ``%model_deploy NAME --chain`` and ``nbmodel serve NAME --chain``.
_CHAIN = arg("--chain", nargs="+", metavar="NAME@ALIAS", default=None,
             help="serve a pipeline named REF: these models called in order, each one's predictions "
             "the next one's input, each following its own alias")

_DECLARED = [
    Command("status", "the store, its models with their newest version and aliases, and what runs",
            magic="model_status", run=_status),
    Command("log", "a model's history, newest first", (
        arg("name", nargs="?", help="the model (may be left out when the store has one)"),
        arg("-n", "--max-count", type=int, default=None, dest="limit", help="show at most N versions"),
        arg("--aliases", action="store_true", help="show the audit trail of alias moves instead"),
        arg("--branch", default=None, help="only the versions on this branch's line"),
        arg("--branches", action="store_true", help="list the branches and their heads instead"),
    ), magic="model_log", run=_log, routes=(
        Route("GET", "models/{name}", {"name": "name", "limit": "limit"}),
    )),
    Command("show", "one version's card", (
        arg("ref", help="iris, iris/3, iris@production or models:/iris/3"),
    ), magic="model_show", run=_show, routes=(
        Route("GET", "models/{name}/versions/{version}", {"name": "ref", "version": "ref"}),
    )),
    Command("diff", "what changed between two versions", (
        arg("a", help="the older version (e.g. iris/2)"),
        arg("b", help="the newer version (e.g. iris/3)"),
    ), magic="model_diff", run=_diff),
    Command("commit", "register a model as a new version", (
        arg("var", help="the variable holding the fitted model"),
        arg("-n", "--name", help="the registered model's name (default: the model the object "
            "was checked out from, else the variable's name)"),
        arg("-m", "--message", default="", help="what changed, like a commit message"),
        arg("--eval", nargs=2, metavar=("X", "y"), help="variables of the eval data to score on"),
        arg("--train", nargs=2, metavar=("X", "y"),
            help="variables of the training data: fingerprint and drift reference"),
        arg("--tag", action="append", metavar="KEY=VALUE", help="a tag (repeatable)"),
    ), magic="model_commit", cli=False),
    Command("checkout", "load a version's model into a variable", (
        arg("ref", help="the version to load"),
        arg("--as", dest="var", help="the variable to load it into (default: the model's name)"),
    ), magic="model_checkout", cli=False),
    Command("tag", "set tags on a version", (
        arg("ref", help="the version"),
        arg("tags", nargs="+", metavar="KEY=VALUE", help="the tags to set"),
    ), magic="model_tag", run=_tag),
    Command("alias", "point an alias at a version, or protect it", (
        arg("ref", help="the version the alias should point to (iris/3)"),
        arg("alias", help="the alias (production)"),
        arg("-m", "--message", default="", help=_MESSAGE),
        arg("--force", action="store_true",
            help="allow a retired version, or onto a protected alias one whose tests fail"),
        arg("--delete", action="store_true", help="remove the alias instead (REF is the model)"),
        arg("--expect", type=int, default=None, metavar="VERSION",
            help="refuse if the alias no longer points to VERSION (another kernel moved it)"),
        arg("--protect", action="store_true",
            help="only the --allow users may move or roll back ALIAS (REF is the model)"),
        arg("--allow", default=None, metavar="USERS",
            help="with --protect: who may move it, as NBMODEL_USER or login names (alice,bob)"),
        arg("--unprotect", action="store_true", help="let anyone move the alias again"),
    ), magic="model_alias", run=_alias, routes=(
        Route("POST", "models/{name}/aliases", {"name": "ref", "version": "ref", "alias": "alias",
                                                "message": "message", "force": "force"}),
    )),
    Command("rollback", "move an alias back to its previous holder, or to --to VERSION", (
        arg("name", help="the model (iris), or the alias to move (iris@staging)"),
        arg("--to", metavar="VERSION",
            help="the version to move to: 2, iris/2 or models:/iris/2 (default: the previous holder)"),
        arg("--alias", default=None, help="the alias to move back (default: production)"),
        arg("-m", "--message", default="", help=_MESSAGE),
        arg("--expect", type=int, default=None, metavar="VERSION",
            help="the version to undo: refuse if another kernel moved the alias away from it"),
        arg("--force", action="store_true",
            help="onto a protected alias, move to a version whose tests fail (kept in the trail)"),
    ), magic="model_rollback", run=_rollback, routes=(
        Route("POST", "models/{name}/rollback", {"name": "name", "alias": "alias", "to": "to",
                                                 "message": "message"}),
    )),
    Command("retire", "archive a version, or bring it back with --undo", (
        arg("ref", help="the version to retire"),
        arg("-m", "--message", default="", help="why"),
        arg("--force", action="store_true", help="retire even if an alias points to it"),
        arg("--undo", action="store_true", help="bring a retired version back"),
    ), magic="model_retire", run=_retire, routes=(
        Route("POST", "models/{name}/versions/{version}/retire",
              {"name": "ref", "version": "ref", "message": "message", "force": "force"}),
    )),
    Command("store", "show or set the store this session uses", (
        arg("uri", nargs="?", help="sqlite:///FILE.db, http://HOST:PORT, or 'default' to go back"),
    ), magic="model_store", cli=False, routes=(
        Route("PUT", "store", {"uri": "uri"}),
    )),
    Command("compare", "versions side by side on the same data", (
        arg("refs", nargs="+", metavar="REF",
            help="2 to 8 versions: iris/2, iris@production, iris (the newest)"),
        arg("--eval", nargs=2, metavar=("X", "y"), help="variables of the eval data"),
        arg("--all", action="store_true", dest="all_versions",
            help="plot the stored metrics of every version of one model (no eval data needed)"),
        arg("--log", action="store_true", help="save the comparison (table and figures) as an MLflow run"),
        arg("--no-plots", action="store_false", dest="plots", help="the table only, faster"),
        arg("--groups", metavar="COL", default=None,
            help="a column of X, or a variable with one group per row: metrics per group"),
    ), magic="model_compare", cli=False),
    Command("deploy", "serve a version from a kernel, following NAME@ALIAS", (
        arg("ref", help="iris/3 (moves the alias to it), iris@production (serves the alias as it "
            "stands); with --stop: a model, NAME@ALIAS, a port, or all"),
        arg("--alias", default=None, help="the alias to move and follow (default: production)"),
        arg("--port", type=int, default=None,
            help="the port (default: the one already serving NAME@ALIAS, else a free one); a port "
            "that serves other models gets this one added at /models/NAME/invocations"),
        arg("--host", default="127.0.0.1", help="the address to bind; anything but loopback needs a token"),
        arg("--token", default=None,
            help="require 'Authorization: Bearer TOKEN' (made for you off loopback)"),
        arg("--detach", action="store_true", help="keep serving after this kernel ends"),
        arg("--if-better", action="store_true",
            help="move the alias only if the version scores at least as well as its holder on --eval"),
        arg("--eval", nargs=2, metavar=("X", "y"), help="the data --if-better scores on"),
        arg("--force", action="store_true",
            help="deploy a retired version, or one --if-better or its tests refused"),
        arg("-m", "--message", default="", help="why, kept in the alias's audit trail"),
        arg("--max-body", type=int, default=None, help="the largest request body in bytes (default 10 MB)"),
        arg("--workers", type=int, default=None,
            help="worker processes sharing the port (default 1; each holds the models)"),
        arg("--dockerfile", metavar="DIR", default=None,
            help="write DIR with a Dockerfile that serves the version (mlflow models "
            "generate-dockerfile); serves nothing here"),
        arg("--kserve", metavar="DIR", default=None,
            help="write DIR with KServe InferenceService manifests serving the version on a "
            "cluster (MLflow format, MLServer runtime); serves nothing here"),
        arg("--steps", default=None,
            help="with --kserve: a canary's traffic shares such as 10,50,100, one manifest each"),
        _CHAIN,
        arg("--stop", action="store_true", help="stop serving REF"),
    ), magic="model_deploy", cli=False, routes=(
        Route("POST", "deployments", {"ref": "ref", "alias": "alias", "port": "port"}),
        Route("DELETE", "deployments/{target}", {"target": "ref"}),
    )),
    Command("deployments", "what runs: ref, version, URL, uptime, requests, errors, health", (
        arg("name", nargs="?", help="only this model's deployments"),
    ), magic="model_deployments", run=_deployments, routes=(
        Route("GET", "deployments"),
    )),
    Command("serve", "serve a model over MLflow's scoring protocol (foreground)", (
        arg("ref", help="iris@production (follows the alias) or iris/3 (that version)"),
        arg("--port", type=int, default=None, help="the port (default: a free one)"),
        arg("--host", default="127.0.0.1", help="the address (anything but loopback needs a token)"),
        arg("--token", default=None, help="require 'Authorization: Bearer TOKEN'"),
        arg("--max-body", type=int, default=None, help="the largest request body in bytes"),
        arg("--workers", type=int, default=1, help="worker processes sharing the port"),
        _CHAIN,
    ), run=_serve),
    Command("monitor", "metrics, drift and alerts of recorded predictions", (
        arg("name", help="iris (the production alias's holder, else the newest), iris/3 or iris@staging"),
        arg("--window", help="15m, 1h, 1d, 1w, or a number of rows such as 500 (default: auto)"),
        arg("--since", help="only traffic from then: 2026-03-01, '2026-03-01 12:00', or 7d (ago)"),
        arg("--until", help="only traffic before then"),
        arg("--alert", action="append", metavar="RULE",
            help='a rule such as "accuracy<0.9", "psi>0.2", "psi[age]>0.2", "rmse>=50", '
                 '"volume<100" (repeatable; saved for the model and checked again later)'),
        arg("--clear-alerts", action="store_true", help="remove the model's saved alert rules"),
        arg("--live", action="store_true", where=_MAGIC_ONLY,
            help="a view that refreshes as new records arrive"),
        arg("--every", type=float, default=5.0, metavar="SECONDS", where=_MAGIC_ONLY,
            help="refresh period of --live"),
        arg("--no-plots", action="store_true", where=_MAGIC_ONLY, help="tables only"),
        arg("--groups", metavar="COL", default=None,
            help="a column of the recorded X, or a group recorded with record(..., groups=...): "
                 "metrics per group, and the column of group rules "
                 'such as "accuracy_gap>0.05"'),
        arg("model", nargs="?", default=None,
            help="with NAME 'compact': the model whose records to fold into window summaries "
                 "(nbmodel monitor compact iris)"),
        arg("--retention", default=None,
            help="with compact: how long raw rows are kept (30d, 7d, 52w; saved for the model)"),
    ), magic="model_monitor", run=_monitor),
    Command("panel", "a panel of widgets for one model", (
        arg("name", help="the model (iris)"),
    ), magic="model_panel", cli=False),
    Command("sanitize-file", "print the path of nbmodel's nbval sanitize file", run=_sanitize_file),
    Command("branch", "list a model's branches, make one, or delete one", (
        arg("name", help="the model (iris)"),
        arg("branch", nargs="?", default=None,
            help="the branch to make or delete (lists them when left out)"),
        arg("--from", dest="start", default=None, metavar="REF",
            help="the version the new branch starts at (default: main's head)"),
        arg("--delete", action="store_true", help="delete the branch's name (its versions stay)"),
        arg("-m", "--message", default="", help=_MESSAGE),
    ), magic="model_branch", run=_branch),
    Command("merge", "merge one branch of a model into another: pick the better head, or ensemble them", (
        arg("name", help="the model (iris)"),
        arg("source", help="the branch to merge (experiment)"),
        arg("--into", default="main", help="the branch that takes the merge (default: main)"),
        arg("--eval", nargs=2, metavar=("X", "y"), help="variables of the data both heads are scored on"),
        arg("--strategy", default=None, choices=["pick", "vote", "average", "stack"],
            help="pick (move to the source head), vote, average or stack (a new version from "
            "both); default: pick when the source is at least as good on every key metric"),
        arg("--train", nargs=2, metavar=("X", "y"), help="variables of the data a stack is fitted on"),
        arg("--force", action="store_true", help="commit an ensemble even if worse than the better parent"),
        arg("-m", "--message", default="", help="the merge version's message"),
    ), magic="model_merge", cli=False),
    Command("explain", "what drives a version's predictions, and how it does per group", (
        arg("ref", help="the version: iris/3, iris@production, iris (the newest)"),
        arg("--eval", nargs=2, metavar=("X", "y"),
            help="variables of the eval data (default: the importance recorded at commit)"),
        arg("--groups", metavar="COL", default=None,
            help="a column of X, or a variable with one group per row: metrics per group"),
        arg("--row", type=int, default=None, metavar="N",
            help="the position of a row of X whose top features by SHAP value are listed"),
        arg("--no-shap", action="store_false", dest="shap",
            help="skip SHAP values even if shap is installed"),
        arg("--no-plots", action="store_false", dest="plots", help="tables only"),
    ), magic="model_explain", cli=False),
    Command("canary", "send a growing share of a running deployment's requests to a candidate", (
        arg("ref", help="the candidate version (iris/4)"),
        arg("--alias", default=None, help="the deployment's alias (default: production)"),
        arg("--steps", default=None,
            help="the candidate's shares in percent (default 10,25,50,100); at 100 the alias moves"),
        arg("--interval", default=None, help="how long each step lasts before its checks (default 60s)"),
        arg("--check", action="append", metavar="RULE",
            help='a rule on the candidate\'s live figures, such as "error_rate<0.01", "p99_ms<20", '
                 '"accuracy>=0.95" (repeatable; default error_rate<0.01)'),
        arg("--stop", action="store_true", help="end the canary: no more traffic to the candidate"),
    ), magic="model_canary", run=_canary),
    Command("shadow", "mirror a running deployment's requests to a candidate and compare", (
        arg("ref", help="the candidate version (iris/4); again while it runs: its report"),
        arg("--alias", default=None, help="the deployment's alias (default: production)"),
        arg("--promote", action="store_true", help="end the shadow and start a canary of the candidate"),
        arg("--stop", action="store_true", help="end the shadow"),
    ), magic="model_shadow", run=_shadow),
    Command("test", "run a version's test cases (exit 1 when one fails), list or remove them", (
        arg("ref", help="the version: iris/4, iris@candidate, iris (the newest)"),
        arg("--eval", nargs=2, metavar=("X", "y"), where=_MAGIC_ONLY,
            help="variables of the data the new cases run on (and for cases stored by fingerprint)"),
        arg("--add", action="append", metavar="RULE", where=_MAGIC_ONLY,
            help='a metric rule such as "accuracy >= 0.9", or a function registered with '
                 "nbmodel.test_case (repeatable)"),
        arg("--group", metavar="COL", where=_MAGIC_ONLY,
            help="with --add: the rule must hold in every group of COL, a column of X or a "
                 "variable with one group value per row"),
        arg("--add-rows", nargs=2, metavar=("X", "y"), where=_MAGIC_ONLY,
            help="these rows must get exactly these predictions"),
        arg("--invariant", action="append", metavar="COL", where=_MAGIC_ONLY,
            help="no prediction may change when COL changes (repeatable)"),
        arg("--increasing", action="append", metavar="COL", where=_MAGIC_ONLY,
            help="no prediction (or probability) may fall when COL rises (repeatable)"),
        arg("--robust", action="append", metavar="KIND", where=_MAGIC_ONLY,
            help="abnormal input: missing-column, wrong-type, nan, empty, out-of-range, each "
                 "optionally =refused or =answered (repeatable)"),
        arg("--list", action="store_true", help="list the cases instead of running them"),
        arg("--remove", metavar="NAME", default=None, help="remove the case NAME"),
    ), magic="model_test", run=_test),
]

#: Every command by name.
COMMANDS: dict[str, Command] = {c.name: c for c in _DECLARED}

#: The commands that have a magic, by the magic's name.
MAGICS: dict[str, Command] = {c.magic: c for c in _DECLARED if c.magic}


def run(name: str, args: argparse.Namespace) -> Any:
    """Run a command on parsed arguments, as the CLI and the kernel-free magics do.

    Args:
        name: the command (``"rollback"``).
        args: the parsed arguments.

    Returns:
        What the core returned (a result that shows as text and HTML, or a message).

    Raises:
        KeyError: an unknown command. ValueError: a command that needs a kernel.
        NbmodelError: whatever the core raises; :class:`UsageProblem` for options that do not
            go together.

    Example:
        >>> args = argparse.Namespace(name="iris", to="iris/2", alias=None, message="")
        >>> run("rollback", args)  # doctest: +SKIP
        iris@production rolled back from iris/3 to iris/2
    """
    command = COMMANDS[name]
    if command.run is None:
        raise ValueError(f"{name} needs a kernel: use %{command.magic}")
    return command.run(args)
