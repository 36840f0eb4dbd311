"""The versioning magics, through a real InteractiveShell, checked against plain MLflow."""

from __future__ import annotations

import subprocess
import sys

import mlflow
import pytest
from IPython.core.error import UsageError
from mlflow import MlflowClient

MAGICS = ["model_commit", "model_log", "model_show", "model_diff", "model_checkout", "model_tag",
          "model_alias", "model_rollback", "model_retire", "model_status", "model_store"]


def test_load_ext_imports_nothing_heavy():
    code = ("import sys\nfrom IPython.core.interactiveshell import InteractiveShell\n"
            "sh = InteractiveShell.instance()\nsh.run_line_magic('load_ext', 'nbmodel')\n"
            "print(sorted(m for m in ('mlflow', 'sklearn', 'pandas', 'matplotlib', 'numpy')"
            " if m in sys.modules))\n"
            "print(sorted(sh.magics_manager.magics['line']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy, names = out.stdout.splitlines()[:2]
    assert heavy == "[]"
    for magic in MAGICS:
        assert f"'{magic}'" in names


def test_subpackages_are_attributes_and_explain_stays_callable():
    # in a fresh process: nbmodel.monitoring.X before anything imported it, and nbmodel.explain
    # still a function after the explain package was imported (a commit with --eval does that)
    code = ("import nbmodel\nprint(callable(nbmodel.monitoring.compact))\n"
            "import nbmodel.explain._importance\nprint(callable(nbmodel.explain))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:2] == ["True", "True"]


def _all_magics() -> list[str]:
    from nbmodel.commands import MAGICS as DECLARED

    return sorted(DECLARED)


@pytest.mark.parametrize("magic", _all_magics())
def test_every_magic_has_help(shell, magic):
    """--help and %magic? show the arguments declared in nbmodel.commands."""
    from nbmodel.commands import MAGIC
    from nbmodel.commands import MAGICS as DECLARED

    assert shell.run(f"%{magic} --help") is None
    assert f"%{magic}" in shell.stdout
    doc = shell.ip.find_line_magic(magic).__doc__
    for a in DECLARED[magic].args_for(MAGIC):
        flag = a.flags[-1]
        assert (flag if flag.startswith("-") else a.options.get("metavar", flag)) in shell.stdout
        assert a.help.split()[0] in doc


def test_commit_log_show_diff_checkout(shell, isolated_store):
    shell.run("from sklearn.linear_model import LogisticRegression")
    shell.run("clf = LogisticRegression(max_iter=500).fit(X_train, y_train)")
    v1 = shell.run('%model_commit clf -n iris -m "first model" --eval X_test y_test '
                   '--train X_train y_train --tag owner=ana')
    assert shell.stdout.startswith("iris/1 committed, first version, accuracy ")
    assert v1.ref == "iris/1" and v1.tags == {"owner": "ana"} and v1.message == "first model"
    shell.run("clf = LogisticRegression(C=0.05, max_iter=500).fit(X_train, y_train)")
    v2 = shell.run('%model_commit clf -n iris -m "stronger regularisation" --eval X_test y_test '
                   '--train X_train y_train')
    assert shell.stdout.startswith("iris/2 committed, parent iris/1, accuracy ")
    assert v2.parent == "iris/1"

    # The source of the cells that built it: the C=0.05 fit, not the replaced first model.
    src = mlflow.artifacts.load_text(f"runs:/{v2.run_id}/nbmodel/source.py")
    assert "C=0.05" in src and "import LogisticRegression" in src
    assert "first model" not in src and "%model_commit" not in src

    log = shell.run("%model_log iris")
    text = str(log)
    assert text.splitlines()[0] == "iris: 2 versions, newest first"
    assert "stronger regularisation" in text and "accuracy" in text
    assert "<table" in log._repr_html_()
    assert len(shell.run("%model_log iris -n 1")) == 1

    card = shell.run("%model_show iris/1")
    assert "owner=ana" in str(card) and 'load_model("models:/iris/1")' in str(card)

    d = shell.run("%model_diff iris/1 iris/2")
    text = str(d)
    assert "C" in dict((k, (a, b)) for k, a, b in d.params)
    assert "same training data" in text
    assert any(ln.startswith("+") and "C=0.05" in ln for ln in d.source)

    shell.run("%model_checkout iris/1 --as old")
    assert "iris/1 checked out as old" in shell.stdout
    assert shell.ns["old"].get_params()["C"] == 1.0
    shell.run("old.set_params(C=2.0).fit(X_train, y_train)")
    v3 = shell.run("%model_commit old -m 'branch from 1' --eval X_test y_test")
    assert v3.ref == "iris/3" and v3.parent == "iris/1"
    log = shell.run("%model_log iris")
    assert "|/" in str(log)  # iris/3 and iris/2 both branch from iris/1


def test_tag_alias_rollback_retire_status(shell, commit_iris, isolated_store):
    for c in (1.0, 0.5, 0.1):
        commit_iris(C=c)
    shell.run("%model_tag iris/2 stage=candidate")
    assert "iris/2 tagged stage=candidate" in shell.stdout
    client = MlflowClient(isolated_store.uri, registry_uri=isolated_store.uri)
    assert client.get_model_version("iris", "2").tags["stage"] == "candidate"

    shell.run("%model_alias iris/1 production")
    shell.run('%model_alias iris/2 production -m "better recall"')
    move = shell.run("%model_alias iris/3 production")
    assert str(move) == "iris@production moved from iris/2 to iris/3"
    assert int(client.get_model_version_by_alias("iris", "production").version) == 3

    back = shell.run("%model_rollback iris")
    assert str(back) == "iris@production rolled back from iris/3 to iris/2"
    assert int(client.get_model_version_by_alias("iris", "production").version) == 2
    shell.run("%model_rollback iris --to 3 -m 'fixed'")
    assert int(client.get_model_version_by_alias("iris", "production").version) == 3

    trail = shell.run("%model_log iris --aliases")
    rows = [(m.from_version, m.to_version, m.kind) for m in trail]
    assert rows == [(2, 3, "rollback"), (3, 2, "rollback"), (2, 3, "set"), (1, 2, "set"),
                    (None, 1, "set")]
    assert trail.moves[-2].why == "better recall" and trail.moves[0].by

    shell.run("%model_retire iris/1")
    assert shell.stdout.strip() == "iris/1 retired"
    assert "retired" in str(shell.run("%model_log iris"))
    err = shell.fails("%model_alias iris/1 production")
    assert isinstance(err, UsageError) and err.kind == "retired"
    assert int(client.get_model_version_by_alias("iris", "production").version) == 3
    shell.run("%model_alias iris/1 staging --force")

    status = shell.run("%model_status")
    text = str(status)
    assert isolated_store.uri in text and "iris/3" in text and "production -> 3" in text


@pytest.mark.parametrize("line, kind, words", [
    ("%model_commit nothere", "unknown-variable", "no variable named 'nothere'"),
    ("%model_commit X_train", "not-a-model", "not a model"),
    ("%model_commit", "usage", "--help"),
    ("%model_show iris/9", "version-not-found", "versions are 1-2"),
    ("%model_show nosuch", "model-not-found", "models are: iris"),
    ("%model_show iris/x", "bad-reference", "NAME/VERSION"),
    ("%model_show iris@gold", "alias-not-found", "no aliases yet"),
    ("%model_rollback iris", "alias-not-found", "no alias 'production'"),
    ("%model_rollback iris --to two", "bad-reference", "--to takes a version"),
    ("%model_rollback iris --to wine/1", "bad-reference", "a version of 'wine', not of 'iris'"),
    ("%model_log iris -n 0", "usage", "-n takes a number of versions from 1"),
    ("%model_tag iris/1 novalue", "usage", "key=value"),
    ("%model_diff iris/1", "usage", "--help"),
    ("%model_store /tmp/not-a-store", "store", "not a store URI"),
])
def test_mistakes_are_one_line_usage_errors_and_change_nothing(shell, commit_iris, line, kind, words,
                                                                isolated_store):
    commit_iris(C=1.0)
    commit_iris(C=0.5)
    before = isolated_store.db_path.read_bytes()
    err = shell.fails(line)
    assert type(err) is UsageError  # exactly UsageError: IPython prints it without a traceback
    assert err.kind == kind and words in str(err)
    assert "Traceback" not in shell.stderr
    assert isolated_store.db_path.read_bytes() == before


def test_rollback_errors_change_nothing(shell, commit_iris, isolated_store):
    commit_iris(C=1.0)
    commit_iris(C=0.5)
    shell.run("%model_alias iris/2 production")
    assert shell.fails("%model_rollback iris").kind == "rollback"  # no earlier holder
    shell.run("%model_alias iris/1 production")
    shell.run("%model_alias iris/2 production")
    shell.run("%model_retire iris/1")
    err = shell.fails("%model_rollback iris")
    assert err.kind == "retired" and "iris/1" in str(err)
    assert shell.fails("%model_rollback iris --to 7").kind == "version-not-found"
    assert nbmodel_alias_holder(isolated_store) == "2"


def nbmodel_alias_holder(store) -> str:
    client = MlflowClient(store.uri, registry_uri=store.uri)
    return str(client.get_model_version_by_alias("iris", "production").version)


def test_model_store_switches_the_session(shell, tmp_path):
    shell.run(f"%model_store sqlite:///{tmp_path}/other.db")
    assert shell.stdout.strip() == f"store: sqlite:///{tmp_path}/other.db"
    shell.run("%model_store")
    assert "(set_store)" in shell.stdout
    shell.run("%model_store default")
    shell.run("%model_store")
    assert "(MLFLOW_TRACKING_URI)" in shell.stdout
