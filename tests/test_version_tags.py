"""A version keeps nbmodel's fields in one tag (``nbmodel.commit``), the user's tags beside it;
versions of older nbmodel (one tag per field) read the same, and later tags win."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _helpers import fit_iris
from mlflow import MlflowClient

import nbmodel
from nbmodel import tagpack
from nbmodel.digests import TAG as DIGESTS
from nbmodel.tagpack import PACK, unpack

#: What every commit with eval and train data writes, besides the parent.
FIELDS = {"nbmodel.task", "nbmodel.estimator", "nbmodel.flavor", "nbmodel.metrics", "nbmodel.user",
          "nbmodel.data", "nbmodel.source_sha", "nbmodel.importance", "nbmodel.parent"}
#: What the pack of such a commit holds.
PACKED = FIELDS | {DIGESTS}
#: The Version fields a history, a card and a diff are made of.
READ = ("message", "parent", "merge_parent", "metrics", "user", "retired", "task", "estimator", "flavor",
        "data", "tags", "tests", "importance", "run_id", "source")


def _raw(store: Any, name: str, version: int) -> dict[str, str]:
    """The version's tags as MLflow stores them, read with MLflow's own client."""
    client = MlflowClient(store.uri, registry_uri=store.uri)
    return dict(client.get_model_version(name, str(version)).tags)


def _fields(v: Any) -> dict[str, Any]:
    return {f: getattr(v, f) for f in READ}


def _commit(iris: dict[str, Any], name: str = "iris", C: float = 1.0, **kw: Any) -> Any:
    return nbmodel.commit(fit_iris(iris, C), name, message=f"C={C}", eval=(iris["X_test"], iris["y_test"]),
                          train=(iris["X_train"], iris["y_train"]), source=f"clf = fit(C={C})\n", **kw)


def test_a_commit_stores_nbmodels_fields_in_one_tag_beside_the_users(iris: Any, isolated_store: Any) -> None:
    _commit(iris, tags={"team": "ml"})
    v2 = _commit(iris, C=0.1)
    raw1, raw2 = _raw(isolated_store, "iris", 1), _raw(isolated_store, "iris", 2)
    # One tag of nbmodel's fields; the artifact digests stay a tag of their own while the model
    # server reads them from a sqlite store's table directly; the user's tag as it was given.
    assert set(raw1) == {PACK, "team"} and raw1["team"] == "ml"
    assert set(raw2) == {PACK}
    packed = json.loads(raw2[PACK])
    assert set(packed) == PACKED and all(isinstance(v, str) for v in packed.values())
    assert packed["nbmodel.parent"] == "iris/1" and json.loads(raw1[PACK])["nbmodel.parent"] == ""
    assert json.loads(packed["nbmodel.metrics"]) == v2.metrics

    shown = nbmodel.show("iris/2")
    assert _fields(shown) == _fields(v2)  # what the commit returned is what a reader reads
    assert shown.parent == "iris/1" and shown.task == "classifier" and shown.flavor == "sklearn"
    assert shown.estimator == "sklearn.linear_model._logistic.LogisticRegression"
    assert shown.data is not None and shown.data["rows"] == len(iris["X_train"])
    assert shown.user and set(shown.metrics) >= {"accuracy", "f1_macro"}
    from nbmodel.explain import stored

    importance = stored(shown)
    assert importance is not None and len(importance.features) == iris["X_train"].shape[1]
    assert nbmodel.show("iris/1").tags == {"team": "ml"} and shown.tags == {}
    # Every reader of the gateway's rows gets the fields one by one, as before.
    from nbmodel.versions import all_tags

    tags = all_tags(shown)
    assert PACK not in tags and {k: tags[k] for k in PACKED} == packed
    assert nbmodel.load("iris/2").C == 0.1  # the digests are checked on load, as before


def test_log_show_and_diff_read_packed_versions_as_before(shell: Any, isolated_store: Any) -> None:
    shell.run("from sklearn.linear_model import LogisticRegression")
    for c, tag in ((1.0, " --tag owner=ana"), (0.05, "")):
        shell.run(f"clf = LogisticRegression(C={c}, max_iter=500).fit(X_train, y_train)")
        shell.run(f'%model_commit clf -n iris -m "C={c}" --eval X_test y_test --train X_train y_train{tag}')
    assert PACK in _raw(isolated_store, "iris", 2)
    log = shell.run("%model_log iris")
    assert [(v.version, v.parent) for v in log] == [(2, "iris/1"), (1, None)]
    text = str(log)
    assert "iris/1" in text and f"{log.versions[0].metrics['accuracy']:.4g}" in text
    card = str(shell.run("%model_show iris/2"))
    assert "parent   iris/1" in card and "LogisticRegression (sklearn)" in card and "112 rows" in card
    diff = str(shell.run("%model_diff iris/1 iris/2"))
    assert PACK not in diff and "nbmodel." not in diff
    tags = diff.split("tags:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split() for line in tags[1:]] == [["owner", "ana", "-"]]  # the user's tag only, as before
    assert "same training data" in diff
    assert ["parent", "-", "iris/1"] in [line.split() for line in diff.splitlines()]


def test_a_version_of_older_nbmodel_reads_the_same_as_a_packed_one(iris: Any, isolated_store: Any) -> None:
    packed = _commit(iris, tags={"team": "ml"})
    client = MlflowClient(isolated_store.uri, registry_uri=isolated_store.uri)
    mv = client.get_model_version("iris", "1")
    # Registered as older nbmodel did: each field a tag of its own, no pack.
    separate = unpack(mv.tags)
    assert PACK not in separate and FIELDS <= set(separate)
    isolated_store.gateway.create_version("iris", mv.source, run_id=mv.run_id, tags=separate,
                                          description=mv.description, model_id=mv.model_id)
    assert set(_raw(isolated_store, "iris", 2)) == set(separate)
    old = nbmodel.show("iris/2")
    assert _fields(old) == _fields(packed) == _fields(nbmodel.show("iris/1"))
    history = nbmodel.log("iris")
    assert [_fields(v) for v in history] == [_fields(packed)] * 2
    assert str(nbmodel.diff("iris/1", "iris/2")).count("tags:") == 0  # nothing differs but the number


def test_a_separate_tag_set_later_wins_over_the_packed_field(iris: Any, isolated_store: Any) -> None:
    _commit(iris)
    isolated_store.gateway.set_version_tag("iris", 1, "nbmodel.task", "regression")
    assert nbmodel.show("iris/1").task == "regression"
    assert nbmodel.log("iris").versions[0].task == "regression"
    assert json.loads(_raw(isolated_store, "iris", 1)[PACK])["nbmodel.task"] == "classifier"


def test_a_retired_version_stays_retired_and_comes_back(iris: Any, isolated_store: Any) -> None:
    _commit(iris)
    _commit(iris, C=0.1)
    before = _raw(isolated_store, "iris", 1)[PACK]
    assert nbmodel.retire("iris/1", message="leaks").retired
    assert nbmodel.show("iris/1").retired and [v.retired for v in nbmodel.log("iris")] == [False, True]
    assert _raw(isolated_store, "iris", 1)[PACK] == before
    assert not nbmodel.unretire("iris/1").retired
    assert not nbmodel.show("iris/1").retired


def test_a_removed_field_does_not_come_back_from_the_pack(iris: Any, isolated_store: Any) -> None:
    v1 = _commit(iris)
    nbmodel.add_tests(v1.ref, rules=["accuracy >= 0.5"], eval=(iris["X_test"], iris["y_test"]))
    v2 = _commit(iris, C=0.1)  # inherits its parent's cases, in its pack
    raw = _raw(isolated_store, "iris", 2)
    assert "nbmodel.test_cases" in json.loads(raw[PACK]) and "nbmodel.test_cases" not in raw
    cases = nbmodel.list_tests(v2.ref).cases
    assert nbmodel.show(v2.ref).tests is not None and len(cases) == 1
    left = nbmodel.remove_test(v2.ref, cases[0].name)
    assert not left.cases
    assert nbmodel.show(v2.ref).tests is None and not nbmodel.list_tests(v2.ref).cases
    assert "nbmodel.test_cases" not in unpack(_raw(isolated_store, "iris", 2))
    assert nbmodel.show(v1.ref).tests is not None  # the parent keeps its own
    # Every other field is still in the pack.
    assert set(json.loads(_raw(isolated_store, "iris", 2)[PACK])) == PACKED


def test_a_pack_too_long_for_one_tag_keeps_the_largest_fields_apart() -> None:
    tags = {"nbmodel.task": "classification", "nbmodel.big": "x" * 99_990, "nbmodel.mid": "y" * 600,
            "team": "vision", DIGESTS: "{}"}
    stored = tagpack.pack(tags)
    assert set(stored) == {PACK, "nbmodel.big", "team"}
    assert all(len(v) <= tagpack.MAX_VALUE for v in stored.values())
    assert unpack(stored) == tags
    small = {"nbmodel.task": "regression", "nbmodel.parent": "", "team": "vision"}
    assert unpack(tagpack.pack(small)) == small
    assert unpack(small) == small  # the old layout reads as it is


def test_an_unreadable_pack_is_ignored() -> None:
    assert unpack({PACK: "not json", "team": "a"}) == {"team": "a"}
    assert unpack({PACK: "[1, 2]", "nbmodel.task": "x"}) == {"nbmodel.task": "x"}


@pytest.mark.team
@pytest.mark.slow
def test_a_packed_version_reads_back_on_the_team_server(team_store: Any, iris: Any) -> None:
    name = team_store.name("packed")
    v1 = _commit(iris, name, tags={"team": "ml"})
    _commit(iris, name, C=0.1)
    raw = _raw(team_store, name, 2)
    assert {k for k in raw if k.startswith("nbmodel.")} == {PACK}
    gw = team_store.store.gateway
    rows, total = gw.versions(name)
    assert total == 2 and rows[0].tags["nbmodel.parent"] == f"{name}/1" and PACK not in rows[0].tags
    assert gw._versions_json(name, None, 0, None) == gw._versions_client(name, None, 0, None)
    history = nbmodel.log(name)
    assert [(v.version, v.parent) for v in history] == [(2, f"{name}/1"), (1, None)]
    assert history.versions[1].tags == {"team": "ml"} and history.versions[1].metrics == v1.metrics
    nbmodel.add_tests(v1.ref, rules=["accuracy >= 0.5"], eval=(iris["X_test"], iris["y_test"]))
    v3 = _commit(iris, name, C=0.5, parent=v1.ref)
    case = nbmodel.list_tests(v3.ref).cases[0].name
    assert not nbmodel.remove_test(v3.ref, case).cases and nbmodel.show(v3.ref).tests is None
