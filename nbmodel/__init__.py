"""nbmodel: the whole model lifecycle inside Jupyter notebooks, over MLflow's registry.

In a notebook::

    %load_ext nbmodel
    %model_commit clf -n iris -m "more trees" --eval X_test y_test

From Python::

    import nbmodel
    v = nbmodel.commit(clf, "iris", message="more trees", eval=(X_test, y_test))

Every function is imported on first use, so ``import nbmodel`` and ``%load_ext nbmodel`` load
no MLflow, pandas, scikit-learn or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute)
_API = {
    "set_store": ("store", "set_store"),
    "get_store": ("store", "get_store"),
    "commit": ("commits", "commit"),
    "resolve": ("versions", "resolve"),
    "show": ("versions", "show"),
    "load": ("versions", "load"),
    "checkout": ("versions", "checkout"),
    "tag": ("versions", "tag"),
    "retire": ("versions", "retire"),
    "unretire": ("versions", "unretire"),
    "log": ("history", "log"),
    "models": ("history", "models"),
    "status": ("overview", "status"),
    "diff": ("diffs", "diff"),
    "alias": ("aliases", "set_alias"),
    "set_alias": ("aliases", "set_alias"),
    "delete_alias": ("aliases", "delete_alias"),
    "rollback": ("aliases", "rollback"),
    "protect": ("aliases", "protect"),
    "unprotect": ("aliases", "unprotect"),
    "alias_history": ("aliases", "alias_history"),
    "parse_ref": ("refs", "parse_ref"),
    "sanitize_file": ("testing", "sanitize_file"),
    "record": ("monitoring", "record"),
    "record_labels": ("monitoring", "record_labels"),
    "monitor": ("monitoring", "monitor"),
    "on_alert": ("monitoring", "on_alert"),
    "deploy": ("serving", "deploy"),
    "deployments": ("serving", "deployments"),
    "undeploy": ("serving", "stop"),
    "compare": ("comparison", "compare"),
    "metric_history": ("comparison", "metric_history"),
    "Comparison": ("comparison", "Comparison"),
    "panel": ("widgets", "panel"),
    "register_tab": ("widgets", "register_tab"),
    "Version": ("versions", "Version"),
    "NbmodelError": ("errors", "NbmodelError"),
    "branch": ("branches", "branch"),
    "merge": ("merges", "merge"),
    "explain": ("explain", "explain"),
    "group_metrics": ("explain", "group_metrics"),
    "canary": ("serving", "canary"),
    "shadow": ("serving", "shadow"),
    "test_case": ("modeltests", "test_case"),
    "add_tests": ("modeltests", "add_tests"),
    "list_tests": ("modeltests", "list_tests"),
    "remove_test": ("modeltests", "remove_test"),
    "run_tests": ("modeltests", "run_tests"),
}

#: Subpackages reached as attributes (``nbmodel.monitoring``), imported on first use.
_PACKAGES = frozenset({"comparison", "modeltests", "monitoring", "serving", "widgets"})

__all__ = sorted(_API) + ["load_ipython_extension", "unload_ipython_extension", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _PACKAGES:  # nbmodel.monitoring.compact(...) works before anything imported it
        return importlib.import_module(f".{name}", __name__)
    try:
        module, attr = _API[name]
    except KeyError:
        raise AttributeError(f"module 'nbmodel' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbmodel``: register the magics (instant: nothing heavy is imported, and no
    process is started; the first deploy starts the user's shared warm starter, see
    :mod:`nbmodel.serving._warm`).

    Args:
        ipython: the running IPython shell.

    Example:
        >>> %load_ext nbmodel  # doctest: +SKIP
    """
    import os

    from .magics import register

    # MLflow draws a progress bar (an ipywidget in a notebook) for every artifact download, also
    # those nbmodel makes to check or compare versions; a notebook's outputs keep only nbmodel's
    # answers. MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=true set before loading keeps the bars.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    register(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext nbmodel``: remove the magics and the cell-source recorder.

    Args:
        ipython: the running IPython shell.

    Example:
        >>> %unload_ext nbmodel  # doctest: +SKIP
    """
    from .magics import unregister

    unregister(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "nbmodel"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Where jupyter-server finds the Models sidebar's routes: :mod:`nbmodel.handlers`.

    Returns:
        The extension points.

    Example:
        >>> _jupyter_server_extension_points()
        [{'module': 'nbmodel.handlers'}]
    """
    return [{"module": "nbmodel.handlers"}]
