"""nbmodel's fields of a version, kept in one registry tag.

A history is one ``model-versions/search`` request, and a tracking server's cost for it grows
with the number of tags per version (it builds an object for each), not with their size: 200
versions with no tags answer in about 26 ms, with nine small tags each in about 145 ms. So
everything nbmodel writes when it registers a version (task, estimator, flavor, metrics, user,
data fingerprint, source digest, parents, merge, importance, inherited test cases...) goes into
one tag, :data:`PACK`, holding a JSON object of those tags with their exact string values.

Readers call :func:`unpack`, which gives back the very dict of separate tags: versions
committed before (one tag per field) read as they always did, and a separate tag set later
(``nbmodel.retired``, test results, importance computed afterwards) wins over the packed value.
The user's own tags are never packed: ``mlflow ui`` shows them as tags.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

__all__ = ["MAX_VALUE", "PACK", "pack", "unpack", "without"]

#: The version tag holding nbmodel's fields as one JSON object.
PACK = "nbmodel.commit"
#: MLflow's longest model-version tag value.
MAX_VALUE = 100_000
_OWN = "nbmodel."


def _dumps(fields: Mapping[str, str]) -> str:
    return json.dumps(dict(fields), separators=(",", ":"), ensure_ascii=False)


def pack(tags: Mapping[str, str]) -> dict[str, str]:
    """The tags a new version is registered with: nbmodel's fields in :data:`PACK`, the user's
    tags as they are.

    When the pack would be longer than MLflow allows (:data:`MAX_VALUE`), the largest fields
    stay tags of their own until it fits; :func:`unpack` reads both.

    Args:
        tags: the version's tags, one per field, as nbmodel has always written them.

    Returns:
        The tags to register the version with.

    Example:
        >>> pack({"nbmodel.task": "classification", "team": "vision"})
        {'team': 'vision', 'nbmodel.commit': '{"nbmodel.task":"classification"}'}
    """
    out: dict[str, str] = {}
    fields: dict[str, str] = {}
    for k, v in tags.items():
        if k.startswith(_OWN) and k != PACK:
            fields[k] = str(v)
        else:
            out[k] = v
    if not fields:
        return out
    text = _dumps(fields)
    # The largest fields leave the pack first: the fewest tags that make it fit.
    for key in sorted(fields, key=lambda k: -len(fields[k])):
        if len(text) <= MAX_VALUE:
            break
        out[key] = fields.pop(key)
        text = _dumps(fields)
    if fields:
        out[PACK] = text
    return out


def unpack(tags: Mapping[str, str]) -> dict[str, str]:
    """A version's tags one per field, whichever way they are stored: the fields of
    :data:`PACK` expanded, a separate tag of the same key winning over the packed one.

    Args:
        tags: the version's tags as MLflow stores them.

    Returns:
        The tags as separate keys (without :data:`PACK`); the same dict for a version
        committed before fields were packed.

    Example:
        >>> unpack({"nbmodel.commit": '{"nbmodel.task":"regression","nbmodel.retired":"false"}',
        ...         "nbmodel.retired": "true"})
        {'nbmodel.task': 'regression', 'nbmodel.retired': 'true'}
    """
    text = tags.get(PACK)
    if text is None:
        return dict(tags)
    fields = _fields(text)  # a new dict: filled in place (a long history unpacks every version)
    fields.update(tags)
    del fields[PACK]
    return fields


def without(tags: Mapping[str, str], key: str) -> str | None:
    """The new value of :data:`PACK` once field ``key`` is removed, or None when the version's
    pack does not hold that field (nothing to rewrite).

    Args:
        tags: the version's tags as MLflow stores them.
        key: the field being removed.

    Returns:
        The pack without ``key``, or None.

    Example:
        >>> without({"nbmodel.commit": '{"nbmodel.test_cases":"{}","nbmodel.task":"x"}'},
        ...         "nbmodel.test_cases")
        '{"nbmodel.task":"x"}'
    """
    text = tags.get(PACK)
    if text is None:
        return None
    fields = _fields(text)
    if key not in fields:
        return None
    fields.pop(key)
    return _dumps(fields)


def _fields(text: str) -> dict[str, str]:
    """The packed fields, or nothing when the tag is not a JSON object (edited by hand)."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    if all(type(v) is str for v in value.values()):  # as nbmodel writes it
        return value
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}
