"""One argument surface: every magic and its CLI twin take the options nbmodel.commands
declares, parse a line the same way, and give the same result on a store."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from nbmodel import cli
from nbmodel.commands import CLI, COMMANDS, MAGIC, MAGICS
from nbmodel.magics import magic_classes

TWINS = [c for c in COMMANDS.values() if c.magic and c.cli]


def _magic_parser(magic: str) -> argparse.ArgumentParser:
    for cls in magic_classes():
        method = cls.magics["line"].get(magic)  # type: ignore[attr-defined]
        if method:
            return getattr(cls, method).parser
    raise AssertionError(f"no magic {magic}")


def _cli_parser(name: str) -> argparse.ArgumentParser:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _options(parser: argparse.ArgumentParser) -> dict[str, tuple]:
    """dest -> (flags, nargs, default, type) of every argument but --help."""
    return {a.dest: (tuple(a.option_strings), a.nargs, a.default, a.type)
            for a in parser._actions if not isinstance(a, argparse._HelpAction)}


def test_every_magic_and_subcommand_is_declared():
    magics = {name for cls in magic_classes() for name in cls.magics["line"]}  # type: ignore[attr-defined]
    assert magics == set(MAGICS)
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {c.name for c in COMMANDS.values() if c.cli}


@pytest.mark.parametrize("command", [c for c in COMMANDS.values() if c.magic], ids=lambda c: c.name)
def test_magic_takes_the_declared_arguments(command):
    declared = [a.dest for a in command.args_for(MAGIC)]
    assert list(_options(_magic_parser(command.magic))) == declared


@pytest.mark.parametrize("command", [c for c in COMMANDS.values() if c.cli], ids=lambda c: c.name)
def test_subcommand_takes_the_declared_arguments(command):
    declared = [a.dest for a in command.args_for(CLI)]
    assert list(_options(_cli_parser(command.name))) == declared


@pytest.mark.parametrize("command", TWINS, ids=lambda c: c.name)
def test_magic_and_cli_accept_the_same_options(command):
    """What both surfaces take is taken alike: same flags, arity, default and type."""
    magic = _options(_magic_parser(command.magic))
    terminal = _options(_cli_parser(command.name))
    shared = {a.dest for a in command.args if a.where >= {MAGIC, CLI}}
    assert {d: magic[d] for d in shared} == {d: terminal[d] for d in shared}
    only_magic = {a.dest for a in command.args if a.where == {MAGIC}}
    assert set(magic) - set(terminal) == only_magic


# A line each twin must read the same way, using every option both take.
LINES = {
    "status": "",
    "log": "iris -n 10 --aliases",
    "show": "models:/iris/3",
    "diff": "iris/2 iris/3",
    "tag": "iris/3 stage=candidate owner=ana",
    "alias": "iris/3 production -m 'best on holdout' --force",
    "rollback": "iris --to iris/2 --alias staging -m why",
    "retire": "iris/1 -m old --force --undo",
    "deployments": "iris",
    "monitor": "iris --window 1d --since 7d --until 2026-03-01 --alert 'accuracy<0.9' "
               "--alert psi>0.2 --clear-alerts",
    "test": "iris/4 --list --remove 'nan answered'",
    "branch": "iris experiment --from iris/3 --delete -m why",
    "canary": "iris/4 --alias production --steps 10,50 --interval 30s --check 'p99_ms<20' --stop",
    "shadow": "iris/4 --alias production --promote",
}


def test_every_twin_has_a_line():
    assert set(LINES) == {c.name for c in TWINS}


@pytest.mark.parametrize("name", sorted(LINES))
def test_magic_and_cli_read_a_line_alike(name):
    command = COMMANDS[name]
    words = shlex.split(LINES[name])
    from_magic = vars(_magic_parser(command.magic).parse_args(words))
    from_cli = vars(cli.build_parser().parse_args([name, *words]))
    from_cli.pop("command")
    from_cli.pop("store")
    for a in command.args:
        if a.where == {MAGIC}:
            from_magic.pop(a.dest)
    assert from_magic == from_cli


# -- the same result on a store ----------------------------------------------------------------


@pytest.fixture
def three_versions(commit_iris):
    for c in (1.0, 0.5, 0.1):
        commit_iris(C=c)


def _cli(capsys, *argv: str) -> str:
    capsys.readouterr()
    assert cli.main(list(argv)) == 0
    return capsys.readouterr().out.strip()


@pytest.mark.parametrize("line", ["log iris -n 2", "show iris/2", "diff iris/1 iris/3", "status"])
def test_reading_commands_give_the_magics_result(shell, three_versions, capsys, line):
    magic, _, rest = line.partition(" ")
    result = shell.run(f"%model_{magic} {rest}")
    assert _without_ages(_cli(capsys, *shlex.split(line))) == _without_ages(str(result).strip())


def _without_ages(text: str) -> str:
    """The output with its ages ("3 seconds ago") masked and column padding collapsed: the
    terminal runs a moment after the magic, and a slow machine crosses a second in between."""
    import re

    text = re.sub(r"\b\d+ (second|minute|hour)s?\b", "AGE", text)
    text = re.sub(r"-{3,}", "---", text)  # a table's rule is as wide as its columns
    return re.sub(r"[ \t]+", " ", text)


def test_alias_and_rollback_give_the_magics_result(shell, three_versions, capsys):
    import nbmodel

    magic = shell.run("%model_alias iris/1 staging -m first")
    assert _cli(capsys, "alias", "iris/1", "canary", "-m", "first") == str(magic).replace("staging", "canary")
    shell.run("%model_alias iris/2 staging")
    nbmodel.alias("iris/2", "canary")

    magic = shell.run("%model_rollback iris --alias staging --to iris/1")
    terminal = _cli(capsys, "rollback", "iris", "--alias", "canary", "--to", "iris/1")
    assert str(magic) == "iris@staging rolled back from iris/2 to iris/1"
    assert terminal == str(magic).replace("staging", "canary")

    magic = shell.run("%model_alias iris --delete staging")
    assert _cli(capsys, "alias", "iris", "--delete", "canary") == str(magic).replace("staging", "canary")


def test_cli_rollback_takes_the_forms_the_magic_takes(three_versions, capsys):
    """`nbmodel rollback iris --to iris/2` used to look for version 'iris/iris/2'."""
    import nbmodel

    nbmodel.alias("iris/3", "production")
    for to, version in [("iris/2", 2), ("models:/iris/1", 1), ("3", 3)]:
        out = _cli(capsys, "rollback", "iris", "--to", to)
        assert out.endswith(f"to iris/{version}"), out


@pytest.mark.parametrize("to", [2, "2", " 2 ", "iris/2", "models:/iris/2"])
def test_rollback_reads_every_form_of_to(three_versions, to):
    import nbmodel

    nbmodel.alias("iris/3", "production")
    assert nbmodel.rollback("iris", to=to).to_version == 2


@pytest.mark.parametrize("to, words", [
    ("wine/2", "a version of 'wine', not of 'iris'"),
    ("models:/wine/2", "a version of 'wine', not of 'iris'"),
    ("two", "--to takes a version"),
    ("iris@staging", "--to takes a version"),
    ("iris", "--to takes a version"),
    (True, "--to takes a version"),
    ("", "--to takes a version"),
])
def test_rollback_refuses_what_is_not_a_version_of_the_model(three_versions, to, words):
    import nbmodel
    from nbmodel.errors import BadReference

    nbmodel.alias("iris/3", "production")
    with pytest.raises(BadReference, match=re.escape(words)):
        nbmodel.rollback("iris", to=to)
    assert nbmodel.resolve("iris@production").version == 3


def test_cli_errors_are_one_line_and_exit_2(capsys):
    assert cli.main(["log", "iris", "-n", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "nbmodel: -n takes a number of versions from 1\n"
    assert cli.main(["show", "nosuch"]) == 2
    assert capsys.readouterr().err.startswith("nbmodel: ")


@pytest.mark.parametrize("argv", [
    ["status"], ["log", "iris", "-n", "10"], ["diff", "iris/2", "iris/3"],
    ["rollback", "iris", "--alias", "production"], ["sanitize-file"],
    ["serve", "iris@production", "--port", "5001", "--workers", "2"],
    ["monitor", "iris", "--window", "1d", "--since", "7d", "--alert", "accuracy<0.9"],
])
def test_readme_examples_parse(argv):
    args = cli.build_parser().parse_args(argv)
    assert args.command == argv[0] and COMMANDS[argv[0]].run is not None


def test_the_command_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "nbmodel.cli", "sanitize-file"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert Path(out).is_file()


@pytest.mark.parametrize("module", ["magics/__init__.py", "cli.py", "handlers.py", "commands.py"])
def test_nbmodel_imports_its_own_modules_plainly(module):
    import nbmodel

    text = (Path(nbmodel.__file__).parent / module).read_text()
    assert "find_spec" not in text and "import_module" not in text
