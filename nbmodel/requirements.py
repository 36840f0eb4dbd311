"""Pinned requirements of a model, from what is installed, in milliseconds.

MLflow infers requirements by loading the model in a subprocess and watching imports, which
costs seconds per commit. The modules a model needs are already known in the kernel: the
modules of the classes (and functions) inside the model object. nbmodel maps them to their
distributions and pins the installed versions.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import sys
from typing import Any

_ALWAYS = ("mlflow", "numpy", "pandas", "cloudpickle")
_SKLEARN = ("scikit-learn", "scipy")


@functools.lru_cache(maxsize=1)
def _module_to_dists() -> dict[str, list[str]]:
    return dict(md.packages_distributions())


@functools.lru_cache(maxsize=256)
def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _modules_in(obj: Any, depth: int = 0, seen: set[int] | None = None) -> set[str]:
    """Top-level modules of the classes and functions reachable from ``obj``."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 4:
        return set()
    seen.add(id(obj))
    found: set[str] = set()
    kind = type(obj)
    if kind.__module__ not in ("builtins",):
        found.add(kind.__module__.split(".")[0])
    if callable(obj) and hasattr(obj, "__module__") and isinstance(obj.__module__, str):
        found.add(obj.__module__.split(".")[0])
    children: list[Any] = []
    get_params = getattr(obj, "get_params", None)
    if callable(get_params) and not isinstance(obj, type):
        try:
            children.extend(get_params(deep=False).values())
        except Exception:  # noqa: BLE001 - a half-built estimator; its class is enough
            pass
    elif isinstance(obj, (list, tuple, set)):
        children.extend(obj)
    elif isinstance(obj, dict):
        children.extend(obj.values())
    elif hasattr(obj, "__dict__") and not isinstance(obj, type) and kind.__module__ != "builtins":
        children.extend(v for v in vars(obj).values() if not isinstance(v, (str, bytes, int, float)))
    for child in children:
        if child is None or isinstance(child, (str, bytes, int, float, bool)):
            continue
        found |= _modules_in(child, depth + 1, seen)
    return found


def pinned_requirements(model: Any, *, serializer: str | None = None) -> list[str]:
    """``name==version`` lines for the packages ``model`` needs, as installed now.

    Args:
        model: the model object; the modules of its parts decide the packages.
        serializer: ``skops`` or ``cloudpickle`` when the sklearn flavor saves it that way (its
            package is added).

    Returns:
        Requirement lines, MLflow's and the model's own packages.

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> any(r.startswith("scikit-learn==") for r in pinned_requirements(LogisticRegression()))
        True
    """
    modules = _modules_in(model)
    dists: list[str] = list(_ALWAYS)
    if "sklearn" in modules:
        dists.extend(_SKLEARN)
    if serializer:
        dists.append(serializer)
    stdlib = sys.stdlib_module_names
    mapping = _module_to_dists()
    for mod in sorted(modules):
        if mod in stdlib or mod in ("__main__", "nbmodel"):
            continue
        dists.extend(mapping.get(mod, []))
    out: dict[str, str] = {}
    for dist in dists:
        key = dist.lower().replace("_", "-")
        if key in out or key in ("mlflow-skinny", "mlflow-tracing"):
            continue
        version = _version(dist)
        if version:
            out[key] = f"{dist}=={version}"
    return list(out.values())
