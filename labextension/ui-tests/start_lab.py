"""Start JupyterLab for the Galata tests on a fresh temporary store (iris, churn, fraud and wine).

As in the README's quick start, no ``MLFLOW_TRACKING_URI`` is set: each notebook's kernel uses
``mlflow.db`` in its own folder. The fixture store is the root folder's; lesson 1 is copied to
``example_notebooks/``, which has no store until the lesson commits.

Playwright's webServer runs this and stops it after the tests. Everything lives under
ui-tests/.tmp (the store, the notebooks' folder, Jupyter's runtime files), which is emptied
first so every run starts from the same state; the user's own store is never touched.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TMP = HERE / ".tmp"
PORT = os.environ.get("NBMODEL_UI_PORT", "8899")


def make_store(folder: Path) -> str:
    """iris/1 and iris/2, with production moved from 1 to 2 (so a rollback has somewhere to go);
    churn with model tests and a branch; fraud for a canary; wine with more versions than a page."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import nbmodel

    X, y = load_iris(return_X_y=True, as_frame=True)
    nbmodel.commit(LogisticRegression(max_iter=300).fit(X, y), "iris",
                   message="baseline logistic regression", eval=(X, y), source="fit(X, y)")
    nbmodel.alias("iris/1", "production", message="first release")
    nbmodel.commit(LogisticRegression(C=0.05, max_iter=300).fit(X, y), "iris",
                   message="stronger regularisation", eval=(X, y), source="fit(X, y)")
    nbmodel.alias("iris/2", "production", message="second release")
    # churn: model tests on churn/1 (one of two cases fails), and a branch "experiment" whose
    # head churn/2 inherits the cases but never ran them.
    nbmodel.commit(LogisticRegression(C=0.05, max_iter=300).fit(X, y), "churn",
                   message="first churn model", eval=(X, y), source="fit(X, y)")
    nbmodel.add_tests("churn/1", rules=["accuracy >= 0.5", "accuracy >= 0.999"], eval=(X, y))
    nbmodel.run_tests("churn/1")
    nbmodel.branch("churn", "experiment", start="churn/1")
    experiment = nbmodel.checkout("churn@experiment")
    experiment.set_params(C=1.0).fit(X, y)
    nbmodel.commit(experiment, "churn", message="less regularisation", eval=(X, y),
                   source="fit(X, y)")
    # fraud: two versions without test cases, for a canary of fraud/2 on fraud@production.
    for c in (0.05, 1.0):
        nbmodel.commit(LogisticRegression(C=c, max_iter=300).fit(X, y), "fraud",
                       message=f"C={c}", eval=(X, y), source="fit(X, y)")
    # A model with more versions than one page (50) of the sidebar, registered straight through
    # MLflow (no artifacts needed to list them), as a sweep in another tool might leave it.
    store = nbmodel.get_store()
    store.client.create_registered_model("wine")
    for i in range(55):
        store.client.create_model_version("wine", source=str(folder / "none"),
                                          description=f"sweep step {i + 1}")
    return store.uri


def main() -> None:
    shutil.rmtree(TMP, ignore_errors=True)
    root = TMP / "notebooks"
    root.mkdir(parents=True)
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    os.environ["JUPYTER_RUNTIME_DIR"] = str(TMP / "runtime")
    # No user settings, workspaces or config from the machine: the same lab every run.
    os.environ["JUPYTERLAB_SETTINGS_DIR"] = str(TMP / "settings")
    os.environ["JUPYTERLAB_WORKSPACES_DIR"] = str(TMP / "workspaces")
    uri = make_store(TMP)
    print(f"nbmodel ui-tests: store {uri}", flush=True)
    # From here on, as a user's machine: every kernel resolves the store of its folder.
    del os.environ["MLFLOW_TRACKING_URI"]
    course = root / "example_notebooks"
    course.mkdir()
    shutil.copy(HERE.parents[1] / "example_notebooks" / "01_versioning.ipynb", course)
    os.chdir(root)
    args = [
        sys.executable, "-m", "jupyterlab",
        f"--config={HERE / 'jupyter_server_test_config.py'}",
        f"--ServerApp.port={PORT}",
        f"--ServerApp.root_dir={root}",
    ]
    os.execv(sys.executable, args)


if __name__ == "__main__":
    main()
