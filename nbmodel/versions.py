"""Versions: resolve, show, load, checkout, tag and retire.

Everything nbmodel knows about a version is ordinary MLflow data: the registered model version
(its description is the commit message, its ``nbmodel.*`` tags hold parent, key metrics, task
and data fingerprint, so a history needs one query), the run that produced it (parameters,
metrics, the source cells and the data profile as artifacts) and the logged model (the sklearn
or pyfunc flavor, signature, input example and pinned requirements).
"""

from __future__ import annotations

import datetime as _dt
import getpass
import html
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import flavors, lineage
from .display import Shown
from .errors import (
    AliasNotFound,
    BadData,
    ModelNotFound,
    NbmodelError,
    RetiredVersion,
    VersionNotFound,
    first_line,
)
from .evaluate import key_metrics
from .refs import Ref, branch_alias, branch_of_alias, check_tag_key, parse_ref
from .store import Store, get_store
from .tagpack import unpack

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion as MlflowModelVersion

TAG = "nbmodel."
T_PARENT = "nbmodel.parent"
#: A merge version's second parent (the merged branch's head); ``nbmodel.parent`` is the first.
T_MERGE_PARENT = "nbmodel.merge_parent"
T_METRICS = "nbmodel.metrics"
T_TASK = "nbmodel.task"
T_ESTIMATOR = "nbmodel.estimator"
T_FLAVOR = "nbmodel.flavor"
T_DATA = "nbmodel.data"
T_USER = "nbmodel.user"
T_RETIRED = "nbmodel.retired"
T_RETIRED_AT = "nbmodel.retired_at"
SOURCE_ARTIFACT = "nbmodel/source.py"
PROFILE_ARTIFACT = "nbmodel/data_profile.json"
MODEL_ARTIFACT = "model"


def _user() -> str:
    """Who commits and moves aliases.

    On a server that authenticates its users (``mlflow server --app-name basic-auth``), the
    user it authenticates, ``MLFLOW_TRACKING_USERNAME``: the server checks it on every request,
    so ``NBMODEL_USER`` cannot stand in for someone else there. Otherwise ``NBMODEL_USER`` (like
    ``GIT_AUTHOR_NAME``), else the login.
    """
    authenticated = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if authenticated and _remote_store():
        return authenticated
    if os.environ.get("NBMODEL_USER"):
        return os.environ["NBMODEL_USER"]
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database in some containers
        return "unknown"


def _remote_store() -> bool:
    try:
        return get_store().uri.startswith(("http://", "https://"))
    except Exception:  # noqa: BLE001 - no store yet: no server to have authenticated anyone
        return False


def _fmt(value: float) -> str:
    if value != value:  # NaN
        return "nan"
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"


def age(ts: _dt.datetime, now: _dt.datetime | None = None) -> str:
    """``5 minutes ago``: coarse, like git's relative dates.

    Args:
        ts: the moment (timezone-aware).
        now: the moment to count from; now when None.

    Returns:
        The age in the largest whole unit, from seconds to years.

    Example:
        >>> import datetime as dt
        >>> t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        >>> age(t, t + dt.timedelta(hours=2, minutes=5))
        '2 hours ago'
    """
    now = now or _dt.datetime.now(_dt.UTC)
    s = max(0, int((now - ts).total_seconds()))
    for unit, size in (("year", 31536000), ("month", 2592000), ("week", 604800), ("day", 86400),
                       ("hour", 3600), ("minute", 60)):
        if s >= size:
            n = s // size
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return f"{s} second{'s' if s != 1 else ''} ago"


@dataclass
class Version(Shown):
    """One registered version of a model, as nbmodel describes it.

    ``str(v)`` is a plain-text card, which IPython prints; in a notebook it shows as an HTML
    card; ``repr(v)`` is short: ``<Version iris/3>``.
    """

    name: str
    version: int
    message: str = ""
    aliases: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    parent: str | None = None
    created: _dt.datetime = field(default_factory=lambda: _dt.datetime.now(_dt.UTC))
    user: str | None = None
    retired: bool = False
    task: str | None = None
    estimator: str | None = None
    flavor: str | None = None
    data: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None
    source: str | None = None
    #: The branches whose head this version is (their aliases ``branch-*`` are not in ``aliases``).
    branches: list[str] = field(default_factory=list)
    #: A merge version's second parent.
    merge_parent: str | None = None
    tests: dict[str, Any] | None = None
    #: How permutation importance was measured, when on less than asked (a sample, fewer repeats).
    importance: str | None = None
    _params: dict[str, str] | None = field(default=None, repr=False, compare=False)

    @property
    def ref(self) -> str:
        """The reference ``name/version``, as the other functions take it.

        Example:
            >>> Version("iris", 3).ref
            'iris/3'
        """
        return f"{self.name}/{self.version}"

    @property
    def uri(self) -> str:
        """``models:/iris/3``, for ``mlflow.pyfunc.load_model``.

        Example:
            >>> Version("iris", 3).uri
            'models:/iris/3'
        """
        return f"models:/{self.name}/{self.version}"

    @property
    def key_metrics(self) -> dict[str, float]:
        """At most three metrics worth a column, by :func:`nbmodel.evaluate.key_metrics`.

        Example:
            >>> Version("house", 2, metrics={"mae": 2.0, "rmse": 3.0}, task="regressor").key_metrics
            {'rmse': 3.0, 'mae': 2.0}
        """
        return key_metrics(self.metrics, self.task)

    @property
    def params(self) -> dict[str, str]:
        """The hyper-parameters, read from the version's run on first use.

        Sorted by name; empty when the version has no run or its run can no longer be read.

        Example:
            >>> nbmodel.show("iris/3").params  # doctest: +SKIP
            {'max_depth': '4', 'n_estimators': '100'}
        """
        if self._params is None:
            self._params = {}
            if self.run_id:
                store = get_store()
                try:
                    run = store.gateway.get_run(self.run_id)
                    self._params = dict(sorted(run.data.params.items()))
                except Exception:  # noqa: BLE001 - a deleted run leaves the version usable
                    self._params = {}
        return self._params

    @classmethod
    def from_mlflow(cls, mv: MlflowModelVersion, aliases: list[str] | None = None) -> Version:
        """A Version from MLflow's ``ModelVersion``.

        Args:
            mv: MLflow's model version (with its tags).
            aliases: the aliases that point to it; MLflow's own list when None.

        Returns:
            The :class:`Version`.

        Example:
            >>> Version.from_mlflow(client.get_model_version("iris", "3"))  # doctest: +SKIP
            <Version iris/3>
        """
        return cls.from_parts(mv.name, int(mv.version), int(mv.creation_timestamp or 0),
                              mv.description, mv.user_id, mv.run_id, mv.source, unpack(mv.tags or {}),
                              aliases if aliases is not None else list(mv.aliases or []))

    @classmethod
    def from_parts(cls, name: str, version: int, created_ms: int, description: str | None,
                   user_id: str | None, run_id: str | None, source: str | None,
                   tags: dict[str, str], aliases: list[str]) -> Version:
        """A Version from a model version's stored fields, reading nbmodel's tags.

        Args:
            name: the model's name.
            version: the version number.
            created_ms: creation time, in milliseconds since the epoch.
            description: the commit message.
            user_id: MLflow's user, used when nbmodel recorded none.
            run_id: the run that produced it.
            source: the logged model's location.
            tags: all the version's tags, one per field (``nbmodel.*`` ones are read into
                fields; :func:`nbmodel.tagpack.unpack` gives them so from the stored ones).
            aliases: the aliases that point to it.

        Returns:
            The :class:`Version`.

        Example:
            >>> Version.from_parts("iris", 3, 0, "more trees", None, None, None, {}, ["production"])
            <Version iris/3>
        """
        try:
            metrics = json.loads(tags.get(T_METRICS) or "{}")
        except ValueError:
            metrics = {}
        try:
            data = json.loads(tags[T_DATA]) if T_DATA in tags else None
        except ValueError:
            data = None
        heads = sorted(b for b in map(branch_of_alias, aliases) if b)
        from .explain._importance import card_note  # json only, as tests_summary
        from .modeltests._tags import tests_summary  # json only: cheap for long histories

        return cls(
            name=name,
            version=version,
            message=description or "",
            aliases=sorted(a for a in aliases if branch_of_alias(a) is None),
            branches=heads,
            merge_parent=tags.get(T_MERGE_PARENT) or None,
            metrics=metrics,
            parent=tags.get(T_PARENT) or None,
            created=_dt.datetime.fromtimestamp(created_ms / 1000, _dt.UTC),
            user=tags.get(T_USER) or user_id,
            retired=tags.get(T_RETIRED) == "true",
            task=tags.get(T_TASK) or None,
            estimator=tags.get(T_ESTIMATOR),
            flavor=tags.get(T_FLAVOR),
            data=data,
            tags={k: v for k, v in tags.items() if not k.startswith(TAG)},
            run_id=run_id,
            source=source,
            tests=tests_summary(tags),
            importance=card_note(tags),
        )

    @classmethod
    def from_row(cls, row: Any, aliases: dict[str, int]) -> Version:
        """A Version from one of the gateway's rows.

        Args:
            row: a :class:`nbmodel.gateway.Row`.
            aliases: alias -> version of the whole model; those pointing at this row are kept.

        Returns:
            The :class:`Version`.

        Example:
            >>> rows, _ = store.gateway.versions("iris", limit=1)  # doctest: +SKIP
            >>> Version.from_row(rows[0], {"production": 3})  # doctest: +SKIP
            <Version iris/3>
        """
        mine = [a for a, v in aliases.items() if v == row.version]
        return cls.from_parts(row.name, row.version, row.created_ms, row.description, row.user_id,
                              row.run_id, row.source, row.tags, mine)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (for REST routes and reports).

        Returns:
            Every field, with ``created`` as ISO text and the ``ref``, ``uri`` and ``key_metrics``.

        Example:
            >>> Version("iris", 3).to_dict()["ref"]
            'iris/3'
        """
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "uri": self.uri,
            "message": self.message,
            "aliases": list(self.aliases),
            "metrics": dict(self.metrics),
            "key_metrics": self.key_metrics,
            "parent": self.parent,
            "merge_parent": self.merge_parent,
            "branches": list(self.branches),
            "created": self.created.isoformat(),
            "user": self.user,
            "retired": self.retired,
            "task": self.task,
            "estimator": self.estimator,
            "flavor": self.flavor,
            "data": self.data,
            "tags": dict(self.tags),
            "run_id": self.run_id,
            "tests": _tests_fields(self.tests),
        }

    # -- display ------------------------------------------------------------------------------
    def _lines(self) -> list[tuple[str, str]]:
        from .data import summary

        rows = [
            ("message", self.message or "(none)"),
            ("created", f"{self.created:%Y-%m-%d %H:%M:%S} UTC by {self.user or 'unknown'}"),
            ("parent", self.parent + (f" and {self.merge_parent} (merge)" if self.merge_parent else "")
             if self.parent else "(none)"),
            ("model", f"{self.estimator or 'unknown'} ({self.flavor or 'mlflow'})"),
        ]
        if self.aliases:
            rows.insert(1, ("aliases", ", ".join(self.aliases)))
        if self.branches:
            rows.insert(1, ("head of", ", ".join(self.branches)))
        if self.retired:
            rows.insert(1, ("retired", "yes: kept in history, refused by deploy and alias"))
        if self.metrics:
            rows.append(("metrics", ", ".join(f"{k} {_fmt(v)}" for k, v in self.metrics.items())))
        rows.append(("data", summary(self.data)))
        if self.importance:
            rows.append(("importance", self.importance))
        if self.tests:
            from .modeltests._tags import summary_text

            rows.append(("tests", summary_text(self.tests)))
        if self.tags:
            rows.append(("tags", ", ".join(f"{k}={v}" for k, v in sorted(self.tags.items()))))
        rows.append(("load", f'mlflow.pyfunc.load_model("{self.uri}")'))
        return rows

    def __str__(self) -> str:
        head = self.ref + (f"  [{', '.join(self.aliases)}]" if self.aliases else "")
        head += "  (retired)" if self.retired else ""
        width = max(len(k) for k, _ in self._lines())
        return "\n".join([head] + [f"  {k:<{width}}  {v}" for k, v in self._lines()])

    def __repr__(self) -> str:
        return f"<Version {self.ref}>"

    def _repr_html_(self) -> str:
        from .display import badge, card

        title = html.escape(self.ref) + "".join(badge(a) for a in self.aliases)
        if self.retired:
            title += badge("retired", kind="retired")
        body = []
        for k, v in self._lines():
            if k in ("aliases", "retired"):
                continue
            if k == "metrics":
                v_html = " ".join(
                    f"<span class='nbm-metric'>{html.escape(m)} <b>{_fmt(x)}</b></span>"
                    for m, x in self.metrics.items()
                )
            elif k == "load":
                v_html = f"<code>{html.escape(v)}</code>"
            else:
                v_html = html.escape(v)
            body.append((k, v_html))
        return card(title, body)


def _tests_fields(tests: dict[str, Any] | None) -> dict[str, Any] | None:
    """The test summary as the REST routes give it: passed, total, current (None: no cases)."""
    if not tests:
        return None
    return {"passed": tests["passed"], "total": tests["total"], "current": tests["current"]}


# -- reading ---------------------------------------------------------------------------------
def model_aliases(store: Store, name: str) -> dict[str, int]:
    """Alias -> version of model ``name``.

    Args:
        store: the store to read.
        name: the registered model's name.

    Returns:
        A dict, empty when the model has no aliases.

    Raises:
        ModelNotFound: there is no such model; the message lists the models that exist.

    Example:
        >>> model_aliases(get_store(), "iris")  # doctest: +SKIP
        {'production': 3}
    """
    aliases = store.gateway.aliases(name)
    if aliases is None:
        raise model_not_found(store, name)
    return aliases


def model_not_found(store: Store, name: str) -> ModelNotFound:
    """The error for a model ``name`` that ``store`` does not hold, listing those it holds.

    Example:
        >>> raise model_not_found(get_store(), "irsi")  # doctest: +SKIP
    """
    return ModelNotFound(_no_model_message(store, name))


def _no_model_message(store: Store, name: str) -> str:
    names = [m.name for m in store.gateway.list_models(limit=50, order_by=None)]
    if names:
        listing = ", ".join(sorted(names)[:20]) + (" ..." if len(names) > 20 else "")
        return f"no model named {name!r} in {store.uri}; models are: {listing}"
    return f"no model named {name!r}: the store {store.uri} has no models yet; commit one with %model_commit"


def newest_version(store: Store, name: str) -> int | None:
    """The number of the newest version of ``name``.

    Args:
        store: the store to read.
        name: the registered model's name.

    Returns:
        The version number, or None when the model has no versions (or does not exist).

    Example:
        >>> newest_version(get_store(), "iris")  # doctest: +SKIP
        3
    """
    rows, _ = store.gateway.versions(name, limit=1)
    return rows[0].version if rows else None


def _versions_listing(store: Store, name: str) -> str:
    rows, _ = store.gateway.versions(name)
    numbers = sorted(r.version for r in rows)
    if not numbers:
        return "it has no versions"
    runs: list[str] = []
    start = prev = numbers[0]
    following: list[int | None] = [*numbers[1:], None]
    for n in following:
        if n is not None and n == prev + 1:
            prev = n
            continue
        runs.append(f"{start}" if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return "versions are " + ", ".join(runs)


def resolve(ref: str | Ref, *, store: Store | None = None) -> Version:
    """The version a reference names (``iris`` is the newest).

    Args:
        ref: ``iris``, ``iris/3`` or ``iris@production`` (or a parsed :class:`~nbmodel.refs.Ref`).
        store: the store to read; the one in use when None.

    Returns:
        The :class:`Version`.

    Raises:
        BadReference: the reference cannot be parsed.
        ModelNotFound, VersionNotFound, AliasNotFound: with the names that do exist.

    Example:
        >>> nbmodel.resolve("iris@production").version  # doctest: +SKIP
        3
    """
    r = parse_ref(ref)
    store = store or get_store()
    if r.alias is None:
        # The aliases and the version are independent reads: at once on a server.
        aliases, (rows, _) = store.gateway.together(
            lambda: model_aliases(store, r.name),
            lambda: store.gateway.versions(r.name, version=r.version,
                                          limit=None if r.version is not None else 1))
        if not rows and r.version is not None:
            raise VersionNotFound(f"no version {r.version} of {r.name!r}; {_versions_listing(store, r.name)}")
        if not rows:
            raise VersionNotFound(f"{r.name!r} has no versions yet; commit one with %model_commit")
        return Version.from_row(rows[0], aliases)
    aliases = model_aliases(store, r.name)
    number = aliases.get(r.alias)
    if number is None:
        # iris@experiment names the branch's head; iris@main is the newest version until
        # a branch is made (see nbmodel.branches).
        number = aliases.get(branch_alias(r.alias))
        if number is None and r.alias == "main":
            number = newest_version(store, r.name)
    if number is None:
        known = ", ".join(f"{a} (version {v})" for a, v in sorted(aliases.items()))
        raise AliasNotFound(
            f"{r.name} has no alias {r.alias!r}; "
            + (f"its aliases are {known}" if known
               else "it has no aliases yet: set one with %model_alias"))
    rows, _ = store.gateway.versions(r.name, version=number)
    if not rows:
        raise VersionNotFound(f"{r} points to a version that no longer exists")
    return Version.from_row(rows[0], aliases)


def show(ref: str | Ref) -> Version:
    """One version's card.

    Args:
        ref: ``iris``, ``iris/3`` or ``iris@production``.

    Returns:
        The :class:`Version`; it shows as a card in a notebook.

    Raises:
        ModelNotFound, VersionNotFound, AliasNotFound: as :func:`resolve`.

    Example:
        >>> nbmodel.show("iris@production")  # doctest: +SKIP
    """
    return resolve(ref)


# -- loading ---------------------------------------------------------------------------------
_cache: dict[tuple[str, str, int], Any] = {}
_cache_lock = threading.Lock()


def load(ref: str | Ref | Version, *, fresh: bool = False) -> Any:
    """The model object of a version: the scikit-learn estimator, or your own object.

    Loaded models are cached for the session (they are immutable once committed); ``fresh=True``
    returns an independent copy, as checkout does, so that changing it never changes the cache.

    Args:
        ref: the version (a reference or a :class:`Version`).
        fresh: return a copy that is not the cached object.

    Returns:
        The model object.

    Raises:
        ModelNotFound, VersionNotFound, AliasNotFound: as :func:`resolve`.
        NbmodelError: the version's files cannot be loaded.

    Example:
        >>> clf = nbmodel.load("iris@production")  # doctest: +SKIP
    """
    import copy
    import warnings

    v = ref if isinstance(ref, Version) else resolve(ref)
    store = get_store()
    key = (store.uri, v.name, v.version)
    with _cache_lock:
        model = _cache.get(key)
    if model is None:
        model = _load_uncached(v)
        with _cache_lock:
            _cache[key] = model
    if not fresh:
        return model
    with warnings.catch_warnings():
        # torch deprecates parts of itself that copying an exported graph module touches.
        warnings.simplefilter("ignore", FutureWarning)
        return copy.deepcopy(model)


def _verified_copy(v: Version) -> str:
    """A local copy of the version's model files, checked against the digests recorded at
    commit (a version committed before they were kept is loaded unchecked, as before). The
    caller removes it (:func:`release_download`) once loaded.

    Raises:
        ArtifactMismatch: the files are not the ones it was committed with.
    """
    import shutil

    from .digests import verify

    folder = download_model(v.uri)
    try:
        verify(folder, all_tags(v), what=v.ref)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def downloads_dir() -> str:
    """The one folder that holds model files downloaded from a store: ``nbmodel-downloads-UID``
    in the temporary directory, one subfolder per download, named for the process that made it.

    A subfolder lives as long as what needs it: removed as soon as its model is loaded into
    memory, with the object loaded from it (:func:`release_download`), or when its process ends;
    the subfolders of processes that ended without cleaning up (killed) are removed by the next
    download, so the folder never holds more than the live processes' models.

    Example:
        >>> downloads_dir()  # doctest: +SKIP
        '/tmp/nbmodel-downloads-1000'
    """
    import tempfile

    uid = os.getuid() if hasattr(os, "getuid") else 0
    folder = os.path.join(tempfile.gettempdir(), f"nbmodel-downloads-{uid}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return folder


def _sweep_downloads(root: str) -> None:
    """Remove the downloads of processes that are gone."""
    import shutil

    for entry in os.listdir(root):
        pid = entry.split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(root, entry), ignore_errors=True)
        except OSError:  # another user's process: alive
            pass


def download_model(uri: str) -> str:
    """Download a model's files (``models:/NAME/VERSION`` or a run's artifact URI) into a new
    subfolder of :func:`downloads_dir`, quietly.

    The folder is removed when the process ends; remove it sooner with
    :func:`release_download` (at once, or with the object loaded from it).

    Args:
        uri: the model's URI.

    Returns:
        The local folder holding the model's files.

    Example:
        >>> folder = download_model("models:/iris/3")  # doctest: +SKIP
    """
    import atexit
    import shutil
    import tempfile

    import mlflow.artifacts

    from .store import mlflow_calls

    root = downloads_dir()
    _sweep_downloads(root)
    folder = tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root)
    try:
        with mlflow_calls():  # quiet: a download from a server draws progress bars otherwise
            mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    global _downloads_at_exit
    if not _downloads_at_exit:
        _downloads_at_exit = True
        atexit.register(_remove_own_downloads, root)
    return folder


_downloads_at_exit = False


def _remove_own_downloads(root: str) -> None:
    import shutil

    mine = f"{os.getpid()}-"
    for entry in os.listdir(root) if os.path.isdir(root) else ():
        if entry.startswith(mine):
            shutil.rmtree(os.path.join(root, entry), ignore_errors=True)


def release_download(folder: str, *, owner: object | None = None) -> None:
    """Remove a folder made by :func:`download_model`: now, or once ``owner`` (the object
    loaded from it, which may read its files lazily) is garbage.

    Example:
        >>> release_download(folder, owner=pyfunc_model)  # doctest: +SKIP
    """
    import shutil
    import weakref

    if owner is not None:
        try:
            weakref.finalize(owner, shutil.rmtree, folder, True)
            return
        except TypeError:  # not weakly referable: kept until the process ends
            return
    shutil.rmtree(folder, ignore_errors=True)


def model_info(uri: str) -> Any:
    """The ``mlflow.models.Model`` (flavors, signature) of a model URI, read quietly and
    without leaving its downloaded ``MLmodel`` file behind (``mlflow.models.get_model_info``
    leaves a temporary folder per call for a remote store, and draws a progress bar).

    Example:
        >>> model_info(nbmodel.resolve("iris/3").uri).signature  # doctest: +SKIP
    """
    import tempfile

    import mlflow.artifacts
    from mlflow.models import Model

    from .store import mlflow_calls

    with tempfile.TemporaryDirectory(prefix="nbmodel-mlmodel-") as tmp, mlflow_calls():
        path = mlflow.artifacts.download_artifacts(artifact_uri=f"{uri.rstrip('/')}/MLmodel",
                                                   dst_path=tmp)
        return Model.load(path)


def all_tags(v: Version) -> dict[str, str]:
    """Every tag of the version as stored, ``nbmodel.*`` ones included (``Version.tags`` holds
    the user's only).

    Example:
        >>> all_tags(nbmodel.resolve("iris/3"))["nbmodel.task"]  # doctest: +SKIP
        'classification'
    """
    rows, _ = get_store().gateway.versions(v.name, version=v.version)
    return dict(rows[0].tags) if rows else {}


def _load_uncached(v: Version) -> Any:
    try:
        folder = _verified_copy(v)
    except NbmodelError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise NbmodelError(f"cannot load {v.ref}: {first_line(exc)}") from exc
    owner = None
    try:
        model, lazy = _load_folder(v, folder)
        if lazy:
            owner = model
        return model
    except NbmodelError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise NbmodelError(f"cannot load {v.ref}: {first_line(exc)}") from exc
    finally:
        # A pyfunc may read its files after loading: its folder goes with it; the others' at once.
        release_download(folder, owner=owner)


def _load_folder(v: Version, folder: str) -> tuple[Any, bool]:
    """The model in ``folder``, and whether it may still read the folder's files."""
    import mlflow

    kind = flavors.kind_named(v.flavor)
    if kind is not None:  # XGBoost, LightGBM, PyTorch, Keras: the library's own object
        return flavors.load_native(kind, folder), False
    if v.flavor == "sklearn" or (v.flavor is None and _has_flavor(v, "sklearn")):
        return mlflow.sklearn.load_model(folder), False
    loaded = mlflow.pyfunc.load_model(folder)
    try:
        wrapped = loaded.unwrap_python_model()
    except Exception:  # noqa: BLE001 - another flavor: the pyfunc itself predicts
        return loaded, True
    return getattr(wrapped, "model", wrapped), True


def _has_flavor(v: Version, flavor: str) -> bool:
    try:
        return flavor in model_info(v.uri).flavors
    except Exception:  # noqa: BLE001
        return False


def checkout(ref: str | Ref) -> Any:
    """Load a version's model as a new object whose next commit records that version as parent.

    Args:
        ref: the version to start from.

    Returns:
        An independent copy of the version's model.

    Raises:
        ModelNotFound, VersionNotFound, AliasNotFound: as :func:`resolve`.

    Example:
        >>> clf = nbmodel.checkout("iris/2")  # doctest: +SKIP
    """
    r = parse_ref(ref)
    v = resolve(r)
    model = load(v, fresh=True)
    lineage.set_head(model, v.ref)
    # Checked out from a branch (iris@experiment, not an alias of that name): its commits
    # advance that branch; from anything else, no branch (see nbmodel.branches).
    on = r.alias if r.alias is not None and r.alias not in v.aliases else None
    lineage.set_branch(model, v.name, on if on in v.branches or on == "main" else None)
    return model


# -- writing ---------------------------------------------------------------------------------
def tag(ref: str | Ref, tags: Mapping[str, Any] | None = None, **more: Any) -> Version:
    """Set tags on a version.

    Args:
        ref: the version.
        tags: tags as a mapping.
        **more: tags as keyword arguments.

    Returns:
        The version, read again.

    Raises:
        BadData: no tags, or a key starting with ``nbmodel.`` (nbmodel's own).

    Example:
        >>> nbmodel.tag("iris/3", stage="candidate")  # doctest: +SKIP
    """
    all_tags = {**(tags or {}), **more}
    if not all_tags:
        raise BadData("give at least one tag as key=value")
    for k in all_tags:
        if not isinstance(k, str) or not k or k.startswith(TAG):
            raise BadData(f"tag key {k!r} is not allowed; keys starting with 'nbmodel.' are nbmodel's own")
        check_tag_key(k)
    v = resolve(ref)
    store = get_store()
    for k, val in all_tags.items():
        store.gateway.set_version_tag(v.name, v.version, k, str(val))
    return resolve(v.ref)


def retire(ref: str | Ref, *, message: str = "", force: bool = False) -> Version:
    """Archive a version: kept in history, refused by deploy and alias unless forced.

    A version that an alias points to cannot be retired without ``force`` (the alias would point
    at a retired version); move the alias first.

    Args:
        ref: the version.
        message: why, kept with the version.
        force: retire it even though an alias points to it.

    Returns:
        The version, read again (unchanged if it was retired already).

    Raises:
        RetiredVersion: an alias points to it and ``force`` is not given.

    Example:
        >>> nbmodel.retire("iris/1", message="leaks the test set")  # doctest: +SKIP
    """
    store = get_store()
    # Under the model's turn, as alias moves are: an alias another kernel points at this version
    # while we decide is seen, and a move to it waits until it is retired (then is refused).
    with store.exclusive(parse_ref(ref).name, owner=_user()):
        v = resolve(ref)
        if v.retired:
            return v
        if v.aliases and not force:
            raise RetiredVersion(
                f"{v.ref} holds the alias {', '.join(v.aliases)}; move it first "
                f"(%model_rollback {v.name} --alias {v.aliases[0]}) or retire with --force"
            )
        now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        store.gateway.set_version_tag(v.name, v.version, T_RETIRED_AT,
                                      json.dumps({"at": now, "by": _user(), "why": message}))
        store.gateway.set_version_tag(v.name, v.version, T_RETIRED, "true")
    return resolve(v.ref)


def unretire(ref: str | Ref) -> Version:
    """Bring a retired version back.

    Args:
        ref: the version.

    Returns:
        The version, read again.

    Example:
        >>> nbmodel.unretire("iris/1")  # doctest: +SKIP
    """
    v = resolve(ref)
    store = get_store()
    store.gateway.delete_version_tag(v.name, v.version, T_RETIRED)
    return resolve(v.ref)
