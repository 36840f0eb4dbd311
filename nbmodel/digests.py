"""Artifact digests: what a version's model files were when it was committed.

At commit, the serialization format of the model and a SHA-256 of every file of its logged
model are kept in one version tag (:data:`TAG`). Every load (``nbmodel.load``/``checkout``,
``%model_deploy`` and the model server) checks the files against it first and refuses a
version whose files changed, and loads a pickle-based format (cloudpickle, pickle) only if the
version was committed in it: editing a version's ``MLmodel`` from skops to cloudpickle and
adding a pickle no longer runs that pickle.

Versions committed before digests were kept have no tag: they load as before, unchecked.
The tag lives in the registry's tables, not beside the files, so rewriting the files alone
cannot make a tampered version pass.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

from .errors import ArtifactMismatch

__all__ = ["PICKLED", "TAG", "ArtifactMismatch", "fingerprint", "recorded_tags", "serialization", "tag_value",
           "verify"]

#: The version tag holding ``{"format": ..., "sha256": {file: digest}}``.
TAG = "nbmodel.artifacts"
#: Formats whose loading runs code stored in the files.
PICKLED = frozenset({"cloudpickle", "pickle"})
#: Above this, the tag keeps one digest of the whole folder instead of one per file.
MAX_TAG = 4000
_CHUNK = 1 << 20
#: Written by MLflow into every download of a model (which version of which name it is).
_SKIP = frozenset({"registered_model_meta"})



def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _files(folder: str) -> dict[str, str]:
    out = {}
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for n in sorted(names):
            if n in _SKIP and root == folder:
                continue
            full = os.path.join(root, n)
            out[os.path.relpath(full, folder).replace(os.sep, "/")] = _sha256(full)
    return out


def _tree(files: Mapping[str, str]) -> str:
    return hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in sorted(files.items())).encode()).hexdigest()


def serialization(folder: str) -> str:
    """How the model in ``folder`` is stored, as its ``MLmodel`` file says.

    Returns:
        The scikit-learn flavor's ``serialization_format`` (``skops``, ``cloudpickle``,
        ``pickle``), ``cloudpickle`` for a Python-class pyfunc model (MLflow pickles it),
        else the flavors' names.

    Example:
        >>> serialization("mlruns/1/models/m-1/artifacts")  # doctest: +SKIP
        'skops'
    """
    import yaml

    with open(os.path.join(folder, "MLmodel"), encoding="utf-8") as f:
        meta = yaml.safe_load(f) or {}
    flavors = meta.get("flavors") or {}
    sk = flavors.get("sklearn")
    if isinstance(sk, dict):
        return str(sk.get("serialization_format", "cloudpickle"))
    pyfunc = flavors.get("python_function")
    if isinstance(pyfunc, dict) and (pyfunc.get("cloudpickle_version") or pyfunc.get("python_model")):
        return "cloudpickle"
    return "+".join(sorted(flavors)) or "unknown"


def fingerprint(folder: str) -> dict[str, Any]:
    """The format and the SHA-256 of every file of the model folder.

    Example:
        >>> fingerprint(path)["format"]  # doctest: +SKIP
        'skops'
    """
    return {"format": serialization(folder), "sha256": _files(folder)}


def tag_value(folder: str) -> str:
    """The :data:`TAG` value for the model folder (per-file digests, or the whole folder's when
    there are too many files for one tag).

    Example:
        >>> tags[TAG] = tag_value(path)  # doctest: +SKIP
    """
    fp = fingerprint(folder)
    text = json.dumps(fp, sort_keys=True, separators=(",", ":"))
    if len(text) > MAX_TAG:
        text = json.dumps({"format": fp["format"], "tree": _tree(fp["sha256"])},
                          sort_keys=True, separators=(",", ":"))
    return text


def verify(folder: str, tags: Mapping[str, str] | None, *, what: str) -> bool:
    """Check the model folder against the digests recorded when the version was committed.

    Args:
        folder: the version's local model folder.
        tags: the version's tags, as stored or unpacked (the recorded digests are :data:`TAG`).
        what: the version, for messages (``iris/3``).

    Returns:
        True when checked; False for a version committed before digests were kept, which
        loads as before.

    Raises:
        ArtifactMismatch: a file changed, appeared or went missing, or the format changed
            (above all, to a pickle-based one the version was not committed in).

    Example:
        >>> verify(path, version.tags, what="iris/3")  # doctest: +SKIP
        True
    """
    from .tagpack import unpack

    text = unpack(tags or {}).get(TAG)
    if not text:
        return False
    fix = "it will not be loaded; commit the model again, or load an earlier version"
    try:
        recorded = json.loads(text)
        want_format = str(recorded["format"])
    except (ValueError, KeyError, TypeError):
        raise ArtifactMismatch(f"{what}: its recorded artifact digests are unreadable; {fix}") from None
    try:
        now_format = serialization(folder)
        files = _files(folder)
    except (OSError, ValueError) as exc:
        raise ArtifactMismatch(f"{what}: its model files cannot be read ({exc}); {fix}") from None
    except Exception as exc:  # noqa: BLE001 - a damaged MLmodel (YAML errors)
        raise ArtifactMismatch(
            f"{what}: its MLmodel file cannot be read ({type(exc).__name__}); {fix}") from None
    if now_format != want_format:
        extra = (" (a pickle-based format, which runs code when loaded)" if now_format in PICKLED
                 else "")
        raise ArtifactMismatch(f"{what} was committed as {want_format} but its files now say "
                               f"{now_format}{extra}; {fix}")
    want = recorded.get("sha256")
    if isinstance(want, dict):
        changed = sorted(k for k in want if k in files and files[k] != want[k])
        missing = sorted(k for k in want if k not in files)
        added = sorted(k for k in files if k not in want)
        parts = []
        for label, names in (("changed", changed), ("missing", missing), ("added", added)):
            if names:
                parts.append(f"{label}: {', '.join(names[:5])}" + (" ..." if len(names) > 5 else ""))
        if parts:
            raise ArtifactMismatch(f"{what}: its model files are not the ones it was committed with "
                                   f"(SHA-256 {'; '.join(parts)}); {fix}")
    elif recorded.get("tree") != _tree(files):
        raise ArtifactMismatch(f"{what}: its model files are not the ones it was committed with "
                               f"(SHA-256 of the folder differs); {fix}")
    return True


def recorded_tags(model_uri: str, location: str | None = None) -> dict[str, str]:
    """``{TAG: ...}`` for a logged model (``models:/m-...``).

    Args:
        model_uri: the logged model's URI.
        location: its artifact location, when known (``ModelInfo.artifact_path``). A local one
            (a ``file:`` URI or a path, as on a sqlite store) is read where it lies; anything
            else, or nothing, is read from a copy downloaded from the store.

    Example:
        >>> version_tags.update(recorded_tags(info.model_uri, info.artifact_path))  # doctest: +SKIP
    """
    folder = _local_folder(location)
    if folder is not None:
        return {TAG: tag_value(folder)}
    import tempfile

    import mlflow.artifacts

    with tempfile.TemporaryDirectory() as tmp:
        folder = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)
        return {TAG: tag_value(folder)}


def _local_folder(location: str | None) -> str | None:
    """The local folder an artifact location names, or None (remote, or not a folder here)."""
    if not location:
        return None
    from urllib.parse import unquote, urlparse

    parsed = urlparse(location)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        path = unquote(parsed.path)
    elif parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):  # a path; C:\\...
        path = location
    else:
        return None
    return path if os.path.isfile(os.path.join(path, "MLmodel")) else None
