"""One hierarchy for every mistake nbmodel reports.

Each error carries a ``kind`` so that tests (and the REST layer) can tell them apart without
matching on wording. Magics turn every :class:`NbmodelError` into IPython's ``UsageError``,
which prints one line and no traceback; the REST layer maps them to 4xx JSON.
"""

from __future__ import annotations


class NbmodelError(Exception):
    """A problem the user can fix; the message says how."""

    kind = "error"
    #: HTTP status used by the REST layers.
    status = 400


class BadReference(NbmodelError):
    """A model reference that cannot be parsed (``iris/x``, ``@prod``...)."""

    kind = "bad-reference"


class ModelNotFound(NbmodelError):
    kind = "model-not-found"
    status = 404


class VersionNotFound(NbmodelError):
    kind = "version-not-found"
    status = 404


class AliasNotFound(NbmodelError):
    kind = "alias-not-found"
    status = 404


class NotAModel(NbmodelError):
    """The object given to commit cannot predict."""

    kind = "not-a-model"


class BadData(NbmodelError):
    """Eval or training data that does not fit the model."""

    kind = "bad-data"


class RetiredVersion(NbmodelError):
    """A retired version was asked to take an alias or to serve."""

    kind = "retired"
    status = 409


class RollbackError(NbmodelError):
    """No earlier holder to roll back to."""

    kind = "rollback"
    status = 409


class StoreError(NbmodelError):
    """The store cannot be opened or reached."""

    kind = "store"
    status = 503


class BadStoreURI(StoreError):
    """A store URI that names no usable store: not a URI, a folder, an empty file, a folder that
    does not exist or cannot be written. The caller's mistake, so a 4xx (its kind stays
    ``store``)."""

    status = 400


class DeployError(NbmodelError):
    """A server that cannot start, a port in use, a target that runs nowhere."""

    kind = "deploy"
    status = 409


class NotBetter(NbmodelError):
    """``--if-better``: the candidate scored below the alias's current holder."""

    kind = "not-better"
    status = 409


class BadAlert(NbmodelError):
    """An alert rule that does not follow the grammar or does not apply to the model."""

    kind = "bad-alert"


class AliasMoved(NbmodelError):
    """The alias no longer points where the move expected: another kernel moved it first."""

    kind = "alias-moved"
    status = 409

class ProtectedAlias(NbmodelError):
    """The alias is protected and this user is not among those allowed to move it."""

    kind = "protected-alias"
    status = 403

class LeaseBusy(NbmodelError):
    """Another kernel holds the lease on what this one wants to change, for too long."""

    kind = "lease-busy"
    status = 409

class ArtifactMismatch(NbmodelError):
    """A version's files are not the ones it was committed with."""

    kind = "tampered"
    status = 409


class BranchNotFound(AliasNotFound):
    """No branch of that name (the message lists the branches that exist)."""

    kind = "branch-not-found"


class BranchExists(NbmodelError):
    """A branch (or an alias) of that name exists already."""

    kind = "branch-exists"
    status = 409


class MergeRefused(NbmodelError):
    """A merge that would make things worse, or that cannot be made (nothing was written)."""

    kind = "merge-refused"
    status = 409


class NbmodelWarning(UserWarning):
    """Warnings nbmodel raises itself (errors in nbmodel's own test run)."""


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, else its type's name: what a
    one-line error shows of a failure underneath (MLflow's messages run to pages).

    Example:
        >>> first_line(ValueError("bad value\\n  at line 3"))
        'bad value'
    """
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__
