"""Names of versions: ``iris``, ``iris/3``, ``iris@production``, ``models:/iris/3``.

Parsing is pure string work so that it is cheap and usable before any store is opened.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from dataclasses import dataclass

from .errors import BadReference

# MLflow allows almost anything in a registered model name; nbmodel's short forms use "/" and
# "@" as separators, so those two cannot be part of a name written in the short form.
_NAME = r"[^/@\s][^/@]*?"
_REF = re.compile(
    rf"^(?:models:/)?(?P<name>{_NAME})"
    r"(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))?$"
)
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

#: A branch's head is the registered-model alias ``branch-<name>``, so plain MLflow sees it.
BRANCH_ALIAS_PREFIX = "branch-"
#: The longest model name nbmodel creates: MLflow keeps a model's runs under names such as
#: "NAME commit" in a column of 250 characters.
MAX_NAME = 200
#: MLflow's limits on an alias and on a tag's key.
MAX_ALIAS = 255
MAX_TAG_KEY = 250

_FORMS = "use NAME, NAME/VERSION, NAME@ALIAS, models:/NAME/VERSION or models:/NAME@ALIAS"


@dataclass(frozen=True)
class Ref:
    """A parsed reference; at most one of ``version`` and ``alias`` is set."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}/{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name

    @property
    def uri(self) -> str:
        """The MLflow URI (``models:/iris/3``); a bare name means its newest version.

        Example:
            >>> parse_ref("iris@production").uri
            'models:/iris@production'
        """
        return f"models:/{self}"


def parse_ref(text: str | Ref) -> Ref:
    """Parse any of the reference forms.

    Args:
        text: ``iris``, ``iris/3``, ``iris@production``, ``models:/iris/3`` or
            ``models:/iris@production``; a :class:`Ref` is returned as it is.

    Returns:
        The parsed :class:`Ref`.

    Raises:
        BadReference: if ``text`` is not one of those forms.

    Example:
        >>> parse_ref("models:/iris@production")
        Ref(name='iris', version=None, alias='production')
    """
    if isinstance(text, Ref):
        return text
    if not isinstance(text, str):
        raise BadReference(f"a model reference is a string, not {type(text).__name__}; {_FORMS}")
    _check_printable(text.strip(), "a model reference")
    m = _REF.fullmatch(text.strip())
    if not m:
        raise BadReference(f"cannot read {text!r} as a model reference; {_FORMS}")
    name, version, alias = m.group("name").strip(), m.group("version"), m.group("alias")
    if version is not None:
        if version == "latest":
            return Ref(name)
        if not (version.isascii() and version.isdigit()) or int(version) < 1:
            raise BadReference(
                f"{text!r}: the version after '/' must be a whole number from 1 "
                f"(for example {name}/3); {_FORMS}"
            )
        return Ref(name, version=int(version))
    if alias is not None:
        check_alias(alias)
    return Ref(name, alias=alias)


def check_alias(alias: str) -> str:
    """Return ``alias`` if MLflow accepts it as an alias name.

    Args:
        alias: the alias name.

    Returns:
        ``alias`` itself.

    Raises:
        BadReference: not letters, digits, ``_`` and ``-`` starting with a letter, or reserved by
            MLflow (``v3``, ``latest``).

    Example:
        >>> check_alias("production")
        'production'
    """
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise BadReference(
            f"{alias!r} is not a valid alias: use letters, digits, '_' and '-', "
            "starting with a letter (for example production)"
        )
    if re.fullmatch(r"[vV]\d+", alias) or alias.lower() == "latest":
        # MLflow reserves these: "v3" would be read as a version, "latest" as the newest.
        raise BadReference(f"{alias!r} is reserved by MLflow for versions; choose another alias")
    if len(alias) > MAX_ALIAS:
        raise BadReference(f"the alias is {len(alias)} characters long; MLflow takes at most "
                           f"{MAX_ALIAS}: choose a shorter one")
    return alias


def branch_alias(branch: str) -> str:
    """The alias that holds the head of ``branch`` (``branch-experiment``).

    Args:
        branch: the branch's name.

    Returns:
        The alias name.

    Example:
        >>> branch_alias("experiment")
        'branch-experiment'
    """
    return BRANCH_ALIAS_PREFIX + branch


def branch_of_alias(alias: str) -> str | None:
    """The branch whose head ``alias`` holds, or None for an ordinary alias.

    Args:
        alias: an alias name.

    Returns:
        ``experiment`` for ``branch-experiment``; None otherwise.

    Example:
        >>> branch_of_alias("branch-experiment"), branch_of_alias("production")
        ('experiment', None)
    """
    if alias.startswith(BRANCH_ALIAS_PREFIX) and len(alias) > len(BRANCH_ALIAS_PREFIX):
        return alias[len(BRANCH_ALIAS_PREFIX):]
    return None
def check_name(name: str) -> str:
    """Return ``name`` if a new model may be created under it.

    Args:
        name: the registered model's name.

    Returns:
        ``name`` itself.

    Raises:
        BadReference: empty, longer than :data:`MAX_NAME`, with control characters (a newline,
            a tab), ``/``, ``@`` or ``:``, or a name a file path would read as another (``..``).

    Example:
        >>> check_name("iris")
        'iris'
    """
    if not isinstance(name, str) or not name.strip():
        raise BadReference("give the model a name, such as iris")
    _check_printable(name, "a model name")
    if name != name.strip():
        raise BadReference(f"the model name {name!r} starts or ends with spaces; remove them")
    if len(name) > MAX_NAME:
        raise BadReference(f"the model name is {len(name)} characters long; use at most {MAX_NAME}")
    bad = [c for c in "/@:" if c in name]
    if bad:
        raise BadReference(f"the model name {name!r} contains {bad[0]!r}; use letters, digits, "
                           "'_', '-', '.' or spaces")
    norm = posixpath.normpath(name)
    if norm != name or norm == "." or norm.startswith(".."):
        raise BadReference(f"{name!r} cannot be a model name: MLflow stores names as paths and "
                           "it reads as another path; choose a name such as iris")
    return name


def check_tag_key(key: str) -> str:
    """Return ``key`` if MLflow accepts it as a tag's key (checked before anything is written).

    Args:
        key: the tag's key.

    Returns:
        ``key`` itself.

    Raises:
        BadReference: empty, longer than :data:`MAX_TAG_KEY`, or with characters MLflow refuses.

    Example:
        >>> check_tag_key("owner")
        'owner'
    """
    if not key:
        raise BadReference("a tag needs a key: KEY=VALUE")
    if len(key) > MAX_TAG_KEY:
        raise BadReference(f"the tag key is {len(key)} characters long; MLflow takes at most "
                           f"{MAX_TAG_KEY}")
    if not re.fullmatch(r"[/\w.\- :]+", key):
        raise BadReference(f"tag key {key!r} is not allowed: use letters, digits, '_', '-', '.', "
                           "' ', ':' and '/'")
    norm = posixpath.normpath(key)
    if norm != key or norm == "." or norm.startswith(("..", "/")):
        raise BadReference(f"tag key {key!r} is not allowed: it reads as another path")
    return key


def _check_printable(text: str, what: str) -> None:
    """Refuse control characters (a newline, a tab): they cannot be typed back as a name."""
    for c in text:
        if unicodedata.category(c).startswith("C"):
            raise BadReference(f"{what} cannot contain control characters such as "
                               f"{c.encode('unicode_escape').decode()!r}: {text!r}")
