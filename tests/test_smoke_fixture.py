def test_fixture_store_is_isolated(isolated_store, tmp_path):
    assert str(tmp_path) in isolated_store.uri


def test_commit_iris(commit_iris):
    v = commit_iris(C=0.5)
    assert v.ref == "iris/1"
