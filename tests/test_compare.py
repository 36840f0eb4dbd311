"""Side-by-side evaluation: ``nbmodel.compare`` and ``%model_compare`` through a real shell."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from nbmodel.comparison import (  # noqa: E402  # noqa: E402
    Comparison,
    MetricHistory,
    _progress,
    _scoring,
    _significance,
    compare,
    metric_history,
)

SANITIZE = Path(__file__).resolve().parents[1] / "nbmodel" / "nbval_sanitize.cfg"


def sanitize(text: str) -> str:
    """Apply nbmodel's nbval sanitize rules, as ``pytest --nbval`` does."""
    rules = re.findall(r"^regex: (.*)$\n^replace: (.*)$", SANITIZE.read_text(), flags=re.MULTILINE)
    for regex, replace in rules:
        text = re.sub(regex, replace, text)
    return text


@pytest.fixture(scope="module")
def template(build_store, iris, diabetes):
    """A store built once for this module: iris/1 (C=0.01), iris/2 (C=1.0, production),
    diab/1 (Ridge alpha=0.01), diab/2 (alpha=10). Tests that use it get a copy."""
    from sklearn.linear_model import LogisticRegression, Ridge

    import nbmodel

    def fill():
        for C in (0.01, 1.0):
            clf = LogisticRegression(C=C, max_iter=500).fit(iris["X_train"], iris["y_train"])
            nbmodel.commit(clf, "iris", message=f"C={C}", eval=(iris["X_test"], iris["y_test"]),
                           train=(iris["X_train"], iris["y_train"]), source="fit")
        nbmodel.set_alias("iris/2", "production")
        for alpha in (0.01, 10.0):
            reg = Ridge(alpha=alpha).fit(diabetes["X_train"], diabetes["y_train"])
            nbmodel.commit(reg, "diab", message=f"alpha={alpha}", source="fit",
                           eval=(diabetes["X_test"], diabetes["y_test"]))

    return build_store("compare-template", fill)


@pytest.fixture
def two(template, use_store_copy):
    """A copy of the template store for this test alone (see ``template``)."""
    return use_store_copy(template)


regressors = two


# -- the API --------------------------------------------------------------------------------
def test_classifiers_table_best_and_test(two, iris):
    c = compare(["iris/1", "iris@production"], iris["X_test"], iris["y_test"])
    assert isinstance(c, Comparison)
    assert c.task == "classifier" and c.refs == ["iris/1", "iris/2"] and c.rows == 38
    assert list(c.metrics) == ["accuracy", "balanced_accuracy", "precision_macro", "recall_macro",
                               "f1_macro", "roc_auc", "log_loss"]
    assert c.best == "iris/2" and c.best_of("accuracy") == [1] and c.best_of("log_loss") == [1]
    t = c.tests[0]
    assert (t.a, t.b, t.method) == ("iris/2", "iris/1", "mcnemar")
    assert t.significant and c.winner == "iris/2"
    assert c.summary.startswith("iris/2 is better than iris/1 on this data, p = 0.031")
    assert [f.name for f in c.figures] == ["confusion_matrices", "roc_curves"]
    assert all(f.png.startswith(b"\x89PNG") for f in c.figures)
    text = str(c)
    assert "accuracy                    0.8421  1 *" in text
    assert "aliases                             production" in text
    assert "where they disagree: 6 of 38 rows" in text
    assert all(ms > 0 for ms in c.predict_ms)


def test_metrics_agree_with_sklearn_and_commit(two, iris):
    from sklearn import metrics as skm

    import nbmodel

    c = compare(["iris/1", "iris/2"], iris["X_test"], iris["y_test"], plots=False)
    model = nbmodel.load("iris/1")
    y = iris["y_test"]
    pred = model.predict(iris["X_test"])
    proba = model.predict_proba(iris["X_test"])
    assert c.metrics["accuracy"][0] == pytest.approx(skm.accuracy_score(y, pred))
    assert c.metrics["precision_macro"][0] == pytest.approx(
        skm.precision_score(y, pred, average="macro", zero_division=0))
    assert c.metrics["recall_macro"][0] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert c.metrics["log_loss"][0] == pytest.approx(skm.log_loss(y, proba))
    assert c.metrics["f1_macro"][0] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert c.metrics["balanced_accuracy"][0] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    stored = nbmodel.resolve("iris/1").metrics
    for k in ("accuracy", "f1_macro", "roc_auc"):
        assert c.metrics[k][0] == pytest.approx(stored[k], abs=1e-6)
    assert c.figures == []


def test_confusion_matrix_metrics_equal_sklearns_on_awkward_labels():
    """Counted from one bincount, the metrics must still be scikit-learn's: string labels,
    classes only predicted, classes never predicted."""
    import warnings

    from sklearn import metrics as skm

    from nbmodel.versions import Version

    rng = np.random.default_rng(1)
    for trial in range(60):
        k, n = int(rng.integers(2, 6)), int(rng.integers(5, 60))
        y, pred = rng.integers(0, k, n), rng.integers(0, k + 1, n)
        if trial % 2:
            y, pred = np.array([f"c{v}" for v in y]), np.array([f"c{v}" for v in pred])
        got = _scoring._classifier_metrics(y, _scoring._Scored(Version("m", 1), None, pred))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn warns about classes missing from y
            want = {"accuracy": skm.accuracy_score(y, pred),
                    "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
                    "precision_macro": skm.precision_score(y, pred, average="macro", zero_division=0),
                    "recall_macro": skm.recall_score(y, pred, average="macro", zero_division=0),
                    "f1_macro": skm.f1_score(y, pred, average="macro", zero_division=0)}
        for key, value in want.items():
            assert got[key] == pytest.approx(value, abs=1e-12), (trial, key)


def test_mcnemar_is_exact_binomial_on_discordant_rows(two, iris):
    from scipy.stats import binomtest

    c = compare(["iris/1", "iris/2"], iris["X_test"], iris["y_test"], plots=False)
    t = c.tests[0]
    b, n = t.detail["only_b_right"], t.detail["only_a_right"] + t.detail["only_b_right"]
    assert (t.detail["only_a_right"], b) == (6, 0)
    assert t.p == pytest.approx(binomtest(b, n, 0.5).pvalue)


def test_three_versions_are_tested_best_against_each_with_holm(two, commit_iris, iris):
    commit_iris(C=0.02)
    c = compare(["iris/1", "iris/2", "iris/3"], iris["X_test"], iris["y_test"], plots=False)
    assert [(t.a, t.b) for t in c.tests] == [("iris/2", "iris/1"), ("iris/2", "iris/3")]
    assert all("Holm-adjusted for 2 comparisons" in t.sentence for t in c.tests)
    ps = sorted(t.p for t in c.tests)
    assert ps == sorted(ps) and all(0 <= p <= 1 for p in ps)


def test_identical_versions_say_no_evidence(commit_iris, iris):
    commit_iris(C=1.0)
    commit_iris(C=1.0)
    c = compare(["iris/1", "iris/2"], iris["X_test"], iris["y_test"], plots=False)
    assert c.winner is None
    assert "get exactly the same rows wrong" in c.summary
    assert "where they disagree: 0 of 38 rows" in str(c)


def test_regressors_paired_bootstrap_is_deterministic(regressors, diabetes):
    X, y = diabetes["X_test"], diabetes["y_test"]
    c = compare(["diab/1", "diab/2"], X, y)
    assert c.task == "regressor"
    assert list(c.metrics) == ["rmse", "mae", "r2", "max_error"]
    assert c.best == "diab/1" and c.winner == "diab/1"
    t = c.tests[0]
    assert t.method == "paired-bootstrap" and t.ci[0] > 0
    assert t.detail["rmse_difference"] == pytest.approx(c.metrics["rmse"][1] - c.metrics["rmse"][0])
    assert "95% CI" in t.sentence
    assert [f.name for f in c.figures] == ["predicted_vs_true", "residuals"]
    again = compare(["diab/1", "diab/2"], X, y, plots=False)
    assert again.summary == c.summary
    assert "further apart than 10% of the target's s.d." in str(c)


def test_text_is_deterministic_under_the_sanitize_file(two, iris):
    a = compare(["iris/1", "iris/2"], iris["X_test"], iris["y_test"], plots=False)
    b = compare(["iris/1", "iris/2"], iris["X_test"], iris["y_test"], plots=False)
    assert sanitize(str(a)) == sanitize(str(b))
    assert sanitize(a._head_html()) == sanitize(b._head_html())
    assert "prediction time per 1000 rows: iris/1 DURATION, iris/2 DURATION" in sanitize(str(a))


def test_figures_are_the_same_bytes_each_time(two, iris):
    a = compare(["iris/1", "iris/2"], iris["X_test"], iris["y_test"])
    b = compare(["iris/1", "iris/2"], iris["X_test"], iris["y_test"])
    assert [f.png for f in a.figures] == [f.png for f in b.figures]


def test_numpy_eval_data_and_models_are_loaded_once(two, iris, monkeypatch):
    import nbmodel.versions as versions

    calls = []
    real = versions._load_uncached
    monkeypatch.setattr(versions, "_load_uncached", lambda v: calls.append(v.ref) or real(v))
    X = iris["X_test"].to_numpy()
    y = iris["y_test"].to_numpy()
    # Fitted on a DataFrame, given an array: sklearn warns about the missing names, not nbmodel.
    with pytest.warns(UserWarning, match="feature names"):
        for _ in range(2):
            c = compare(["iris/1", "iris/2"], X, y, plots=False)
    assert sorted(calls) == ["iris/1", "iris/2"]
    assert c.disagreements.table[0][0].isdigit()


# -- errors ---------------------------------------------------------------------------------
def test_errors_from_the_api(two, iris):
    from nbmodel.errors import BadData, BadReference, VersionNotFound

    X, y = iris["X_test"], iris["y_test"]
    with pytest.raises(BadReference, match="at least two versions"):
        compare(["iris/1"], X, y)
    with pytest.raises(BadReference, match="at most 8"):
        compare([f"iris/{i}" for i in range(1, 10)], X, y)
    with pytest.raises(BadReference, match="same version"):
        compare(["iris", "iris/2"], X, y)
    with pytest.raises(VersionNotFound, match="no version 7 of 'iris'; versions are 1-2"):
        compare(["iris/1", "iris/7"], X, y)
    with pytest.raises(BadData, match="give the eval data"):
        compare(["iris/1", "iris/2"])


def test_errors_through_the_magic(two, shell, diabetes):
    from sklearn.linear_model import LinearRegression

    import nbmodel

    cases = {
        "%model_compare iris/1 --eval X_test y_test": ("bad-reference", "at least two versions"),
        "%model_compare iris/1 nope/1 --eval X_test y_test": ("model-not-found", "no model named 'nope'"),
        "%model_compare iris/1 iris@staging --eval X_test y_test": ("alias-not-found", "production"),
        "%model_compare iris/1 iris/2": ("usage", "--eval X_test y_test"),
        "%model_compare iris/1 iris/2 --eval X_nope y_test": ("unknown-variable", "X_nope"),
        "%model_compare iris/1 iris/2 --eval X_test y_train": ("bad-data", "38 rows"),
        "%model_compare iris/1 iris/2 --eval X_few y_test": (
            "bad-data", "iris/1: the eval data does not have the model's columns (missing petal width (cm))"),
        "%model_compare iris/1 iris/2 --eval X_more y_test": ("bad-data", "unknown extra"),
        "%model_compare iris/1 iris/2 --all": ("usage", "one model name"),
        "%model_compare iris/2 --all": ("bad-reference", "name the model (iris)"),
        "%model_compare iris/1 iris/2 --eval X_test y_test --bogus": ("usage", "--help"),
    }
    shell.run("X_few = X_test.drop(columns=['petal width (cm)'])\n"
              "X_more = X_test.assign(extra=1.0)")
    for line, (kind, words) in cases.items():
        err = shell.fails(line)
        assert type(err).__name__ == "UsageError", line
        assert err.kind == kind, (line, str(err))
        assert words in str(err), (line, str(err))
    # A regressor fitted on the same columns: refused, and both kinds are named.
    reg = LinearRegression().fit(shell.ns["X_train"], shell.ns["y_train"].astype(float))
    nbmodel.commit(reg, "reg")
    err = shell.fails("%model_compare iris/1 reg/1 --eval X_test y_test")
    assert err.kind == "bad-data"
    assert "cannot compare a classifier with a regressor" in str(err)
    assert "iris/1 is a classifier" in str(err) and "reg/1 is a regressor" in str(err)


def test_errors_leave_the_store_as_it_was(two, iris):
    from nbmodel.errors import BadData

    isolated_store = two

    before = isolated_store.client.search_runs([isolated_store.experiment_id("iris")])
    with pytest.raises(BadData):
        compare(["iris/1", "iris/2"], iris["X_test"].iloc[:, :2], iris["y_test"], log=True)
    after = isolated_store.client.search_runs([isolated_store.experiment_id("iris")])
    assert len(after) == len(before)


# -- the magic and what a notebook shows ----------------------------------------------------
def test_magic_returns_the_comparison_and_displays_figures_as_png(two, shell):
    from IPython.utils.capture import capture_output

    c = shell.run("%model_compare iris/1 iris@production --eval X_test y_test")
    assert isinstance(c, Comparison) and c.refs == ["iris/1", "iris/2"]
    with capture_output() as cap:
        c._ipython_display_()
    bundles = [o.data for o in cap.outputs]
    assert [sorted(b) for b in bundles] == [["text/html", "text/plain"], ["image/png", "text/plain"],
                                            ["image/png", "text/plain"], ["text/html", "text/plain"]]
    assert bundles[1]["text/plain"] == "<figure: confusion matrices>"
    assert "data:image/png" not in bundles[0]["text/html"]  # nbval compares HTML, never PNG
    assert "nbm-best" in bundles[0]["text/html"]
    assert "where they disagree" in bundles[3]["text/plain"]
    assert "data:image/png;base64," in c._repr_html_()  # the one-page form embeds them


def test_no_plots_flag(two, shell):
    c = shell.run("%model_compare iris/1 iris/2 --eval X_test y_test --no-plots")
    assert c.figures == [] and "figures:" not in str(c)


def test_log_saves_a_run_with_table_and_figures(two, shell):
    isolated_store = two
    c = shell.run("%model_compare iris/1 iris/2 --eval X_test y_test --log")
    assert c.run_id and f"saved as run {c.run_id}" in str(c)
    client = isolated_store.client
    run = client.get_run(c.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["nbmodel.kind"] == "compare"
    assert run.data.tags["nbmodel.compare"] == "iris/1,iris/2"
    assert run.data.tags["mlflow.note.content"].startswith("iris/2 is better than iris/1")
    assert run.data.metrics["iris/2/accuracy"] == 1.0
    files = {a.path for a in client.list_artifacts(c.run_id, "nbmodel")}
    assert {"nbmodel/comparison.html", "nbmodel/comparison.txt", "nbmodel/comparison.json",
            "nbmodel/figures"} <= files
    figs = {a.path for a in client.list_artifacts(c.run_id, "nbmodel/figures")}
    assert figs == {"nbmodel/figures/confusion_matrices.png", "nbmodel/figures/roc_curves.png"}
    import mlflow.artifacts

    saved = mlflow.artifacts.load_dict(f"runs:/{c.run_id}/nbmodel/comparison.json")
    assert saved["winner"] == "iris/2" and saved["refs"] == ["iris/1", "iris/2"]


def test_all_plots_stored_metrics_with_aliases(two, commit_iris, shell):
    import nbmodel

    commit_iris(C=0.02)
    nbmodel.set_alias("iris/3", "staging")
    nbmodel.retire("iris/1")
    h = shell.run("%model_compare iris --all")
    assert isinstance(h, MetricHistory)
    assert [v.version for v in h.versions] == [1, 2, 3]
    assert h.metric_names[:3] == ["accuracy", "f1_macro", "roc_auc"]
    text = str(h)
    assert "2        production  1 *" in text
    assert "1        (retired)" in text
    assert h.figure is not None and h.figure.png.startswith(b"\x89PNG")
    assert isinstance(nbmodel.versions.resolve("iris/2"), nbmodel.Version)


def test_all_without_metrics_says_how_to_record_them(iris):
    from sklearn.linear_model import LogisticRegression

    import nbmodel

    nbmodel.commit(LogisticRegression(max_iter=300).fit(iris["X_train"], iris["y_train"]), "bare")
    h = compare("bare", all_versions=True)
    assert "no stored metrics: commit with --eval" in str(h) and h.figure is None


def test_all_can_be_logged(two):
    h = metric_history("iris", log=True)
    files = {a.path for a in two.client.list_artifacts(h.run_id, "nbmodel/figures")}
    assert files == {"nbmodel/figures/metrics_by_version.png"}


# -- progress -------------------------------------------------------------------------------
def test_progress_callback_sees_every_step(two, iris):
    steps = []
    compare(["iris/1", "iris/2"], iris["X_test"], iris["y_test"],
            progress=lambda done, total, label: steps.append((done, total, label)))
    assert steps[0] == (1, 7, "loaded iris/1")
    assert [d for d, _, _ in steps] == list(range(1, 8))
    assert steps[-1][2] == "plotted ROC curves"


def test_progress_bar_appears_only_after_the_delay_and_leaves_no_text(two, iris, monkeypatch):
    from IPython.utils.capture import capture_output

    monkeypatch.setattr(_progress, "_front_end", lambda: "kernel")
    with capture_output() as cap:
        compare(["iris/1", "iris/2"], iris["X_test"], iris["y_test"], plots=False)
    assert cap.outputs == []  # fast: no bar at all
    monkeypatch.setattr(_progress, "PROGRESS_DELAY", 0.0)
    with capture_output() as cap:
        compare(["iris/1", "iris/2"], iris["X_test"], iris["y_test"], plots=False)
    assert len(cap.outputs) == 1
    # Only the widget view: nothing that nbval would compare is left in the notebook.
    assert list(cap.outputs[0].data) == ["application/vnd.jupyter.widget-view+json"]
    with capture_output() as cap:
        compare(["iris/1", "iris/2"], iris["X_test"], iris["y_test"], plots=False, progress=False)
    assert cap.outputs == []


def test_progress_in_a_terminal_is_one_line_that_clears(capsys):
    from nbmodel.comparison._progress import Progress

    bar = Progress(3, delay=0.0)
    bar._show = lambda: setattr(bar, "shown", "text")  # as if stderr were a terminal
    for i in range(3):
        bar.step(f"step {i}")
    bar.close()
    err = capsys.readouterr().err
    assert "3/3 step 2" in err and err.endswith("\r")


# -- import cost ----------------------------------------------------------------------------
def test_magic_modules_import_nothing_heavy():
    code = ("import sys; import nbmodel.magics.compare, nbmodel.magics.panel; "
            "heavy = [m for m in ('mlflow', 'pandas', 'sklearn', 'matplotlib', 'ipywidgets', "
            "'scipy', 'nbmodel.comparison', 'nbmodel.widgets') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


def test_bootstrap_counts_match_index_resampling():
    y = np.arange(50, dtype=float)
    preds = [y + 1.0, y + np.linspace(0, 3, 50)]
    samples = _significance._bootstrap_rmse(y, preds)
    assert samples.shape == (_significance.BOOTSTRAP_SAMPLES, 2)
    assert np.allclose(samples[:, 0], 1.0)
    rng = np.random.default_rng(_significance.BOOTSTRAP_SEED)
    idx = rng.integers(0, 50, size=50)
    assert samples[0, 1] == pytest.approx(np.sqrt(np.mean((y[idx] - preds[1][idx]) ** 2)))
