"""Root pytest configuration: each example notebook run by nbval gets a fresh temporary store.

nbval starts one kernel per notebook, inheriting this process's environment, so the store is
chosen here, before the notebook's first cell is set up. The notebooks never touch a user's
store, and their version numbers start at 1 on every run.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_current: dict[str, str] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if type(item).__name__ != "IPyNbCell":
        return
    notebook = str(item.parent.fspath)
    if _current.get("notebook") == notebook:
        return
    if _current.get("folder"):
        shutil.rmtree(_current["folder"], ignore_errors=True)
    folder = tempfile.mkdtemp(prefix="nbmodel-notebook-")
    _current.update(notebook=notebook, folder=folder)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder}/mlflow.db"
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["NBMODEL_USER"] = "student"


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _current.get("folder"):
        shutil.rmtree(_current["folder"], ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Notebook cells (nbval) run a kernel each: they belong to the slow set."""
    for item in items:
        if type(item).__name__ == "IPyNbCell":
            item.add_marker(pytest.mark.slow)
