"""What monitoring knows about a version: which version a reference names now, its columns,
its task and the training reference (the profile saved at commit) that drift is measured against.

Both the write path (:mod:`._record`) and the read path (:mod:`._traffic`) start here; a
version's schema is read once per process.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from ..metrics import CLASSIFIER
from ..refs import Ref, parse_ref
from ..store import get_store

DEFAULT_ALIAS = "production"
#: The bin that pools categories never seen in training.
OTHER = "__other__"


@dataclass
class Schema:
    """What monitoring needs to know about one version, read once per process."""

    name: str
    version: int
    task: str | None
    columns: list[str] | None
    profile: dict[str, Any] | None
    kinds: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    @property
    def has_reference(self) -> bool:
        return bool(self.profile and self.profile.get("features"))

    def kind(self, column: str, series: Any = None) -> str:
        if column in self.kinds:
            return self.kinds[column]
        import pandas as pd

        types = pd.api.types
        if series is not None and types.is_numeric_dtype(series) and not types.is_bool_dtype(series):
            return "numeric"
        return "categorical"


_schemas: dict[tuple[str, str, int], Schema] = {}
_schemas_lock = threading.Lock()


def target(ref: str | Ref) -> tuple[str, int]:
    """The version ``ref`` names now.

    Args:
        ref: ``iris/3``, ``iris@staging``, or ``iris``: the ``production`` alias's holder,
            else the newest version.

    Returns:
        ``(name, version)``.

    Raises:
        ModelNotFound, VersionNotFound, AliasNotFound: naming what does exist.

    Example:
        >>> target("iris")  # doctest: +SKIP
        ('iris', 3)
    """
    from ..errors import AliasNotFound
    from ..versions import resolve

    r = ref if isinstance(ref, Ref) else parse_ref(ref)
    if r.version is not None:
        return r.name, int(r.version)
    registry = getattr(get_store(), "registry", None)
    if r.alias is None and registry is not None and hasattr(registry, "aliases"):
        aliases = registry.aliases(r.name)  # one query; None: no such model
        if aliases and DEFAULT_ALIAS in aliases:
            return r.name, int(aliases[DEFAULT_ALIAS])
        if aliases is not None:
            v = resolve(r)
            return v.name, v.version
    elif r.alias is None:
        try:
            v = resolve(Ref(r.name, alias=DEFAULT_ALIAS))
            return v.name, v.version
        except AliasNotFound:
            pass
    v = resolve(r)  # raises the error that names what exists
    return v.name, v.version


def schema(name: str, version: int) -> Schema:
    """What monitoring needs to know about ``name/version``, read once per process and store.

    Args:
        name: the model.
        version: the version number.

    Returns:
        The :class:`Schema`.

    Raises:
        VersionNotFound: no such version.

    Example:
        >>> schema("iris", 1).columns  # doctest: +SKIP
        ['sepal length (cm)', 'sepal width (cm)', 'petal length (cm)', 'petal width (cm)']
    """
    store = get_store()
    key = (store.uri, name, int(version))
    with _schemas_lock:
        found = _schemas.get(key)
    if found is not None:
        return found
    from ..versions import resolve

    v = resolve(f"{name}/{version}")
    profile = _load_profile(v.run_id) if v.data else None
    columns = list(v.data["columns"]) if v.data and v.data.get("columns") else _signature_columns(v.uri)
    kinds = {c: f.get("kind", "numeric") for c, f in (profile or {}).get("features", {}).items()}
    found = Schema(v.name, v.version, v.task, columns, profile, kinds)
    with _schemas_lock:
        _schemas[key] = found
    return found


def _load_profile(run_id: str | None) -> dict[str, Any] | None:
    if not run_id:
        return None
    import tempfile

    from ..versions import PROFILE_ARTIFACT

    store = get_store()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = store.gateway.download_artifacts(run_id, PROFILE_ARTIFACT, tmp)
            with open(path, encoding="utf-8") as fh:
                return json.load(fh)
    except Exception:  # noqa: BLE001 - a version without a profile has no drift reference
        return None


def _signature_columns(model_uri: str) -> list[str] | None:
    try:
        from ..versions import model_info

        sig = model_info(model_uri).signature
        names = sig.inputs.input_names() if sig is not None and sig.inputs is not None else None
        return [str(n) for n in names] if names and all(isinstance(n, str) for n in names) else None
    except Exception:  # noqa: BLE001 - no signature: any columns are accepted
        return None



def class_name(value: Any) -> str:
    """A class label as text, the same however it travelled: a whole number written as a float
    (labels with a missing value among them become floats) reads as the integer, so the label
    ``2.0`` is the class ``2`` that a classifier predicts.

    Args:
        value: a label or a prediction of a classifier.

    Returns:
        Its text.

    Example:
        >>> class_name(2.0), class_name("2.0"), class_name("setosa"), class_name(0.5)
        ('2', '2', 'setosa', '0.5')
    """
    text = str(value)
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def prediction_reference(profile: dict[str, Any], task: str | None) -> dict[str, Any]:
    """What predictions are compared with: the training predictions' statistics when the profile
    has them, else (classifiers only) the training target's class frequencies. A regressor's
    predictions spread less than its target, so the target would show drift that is not there.

    Args:
        profile: the version's training profile.
        task: ``classifier`` or ``regressor``.

    Returns:
        Feature statistics (class names as :func:`class_name` spells them), or ``{}`` for none.

    Example:
        >>> prediction_reference({"target_stats": {"kind": "categorical", "freq": {"1.0": 1.0}}},
        ...                      "classifier")["freq"]
        {'1': 1.0}
    """
    stats = profile.get("prediction_stats") or (profile.get("target_stats") if task == CLASSIFIER else None)
    if not stats:
        return {}
    if stats.get("kind") == "categorical":  # class names as the traffic's classes spell them
        stats = {**stats, "freq": {class_name(k): v for k, v in stats["freq"].items()}}
    return stats


def clear_caches() -> None:
    """Forget the schemas read so far."""
    with _schemas_lock:
        _schemas.clear()
