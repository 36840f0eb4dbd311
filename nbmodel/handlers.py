"""The jupyter-server extension behind JupyterLab's "Models" sidebar.

Routes live under ``{base_url}nbmodel/api/`` and go through jupyter_server's authentication
(token or cookie, XSRF for writes). Every handler only parses the request, calls the same core
function a magic calls, and turns the result into JSON; :class:`NbmodelHandler` maps
:class:`nbmodel.errors.NbmodelError` to a 4xx JSON body ``{"error": {"kind", "message"}}`` in one
place. The routes are described in ``nbmodel/openapi.yaml``.

MLflow calls block, so handlers run them in a thread and the server stays responsive while a
remote store is slow. Nothing here imports MLflow until a route is called: enabling the
extension must not slow down ``jupyter lab``'s start.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import threading
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from .commands import COMMANDS
from .errors import NbmodelError, first_line

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

#: Versions per page of ``GET /models/{name}``; the sidebar pages past this many.
PAGE = 50
MAX_PAGE = 500


class BadRequest(NbmodelError):
    """A request the routes cannot read (malformed JSON, missing or wrong-typed fields)."""

    kind = "bad-request"


def features() -> dict[str, bool]:
    """Which optional sections the sidebar can show: every nbmodel ships them all.

    Returns:
        ``{"deployments": True, "alerts": True}``.

    Example:
        >>> features()
        {'deployments': True, 'alerts': True}
    """
    return {"deployments": True, "alerts": True}


def jsonable(obj: Any) -> Any:
    """Turn core results (dataclasses with ``to_dict``, datetimes, lists) into JSON values.

    Args:
        obj: a core result.

    Returns:
        Plain JSON values (anything else becomes its ``str``).

    Example:
        >>> jsonable({"at": _dt.date(2026, 3, 1), "versions": (1, 2)})
        {'at': '2026-03-01', 'versions': [1, 2]}
    """
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return jsonable(obj.to_dict())
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    if is_dataclass(obj) and not isinstance(obj, type):
        return jsonable({k: v for k, v in asdict(obj).items() if not k.startswith("_")})
    return str(obj)


class NbmodelHandler(APIHandler):
    """Base of every route: JSON in, JSON out, nbmodel's errors as 4xx JSON.

    In the routes' examples, ``api`` is the server's ``{base_url}nbmodel/api`` URL and ``auth`` the
    ``Authorization: token ...`` header of a client of that server.
    """

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking core function in a thread, so the server keeps answering.

        Args:
            fn: the core function.
            *args: its positional arguments.
            **kwargs: its keyword arguments.

        Returns:
            What ``fn`` returned.

        Example:
            >>> await self.call(show, "iris/2")  # doctest: +SKIP
        """
        return await asyncio.to_thread(in_folder, self.folder(), fn, *args, **kwargs)

    def folder(self) -> Path | None:
        """The folder named by the ``dir`` query parameter (a path under the server's root, as
        JupyterLab names a notebook's folder), or None when the request names none.

        Returns:
            The absolute folder.

        Raises:
            BadRequest: the folder is outside the server's root or is no folder.

        Example:
            >>> self.folder()  # doctest: +SKIP
            PosixPath('/home/ann/course/example_notebooks')
        """
        text = self.get_query_argument("dir", None)
        if text is None:
            return None
        root = Path(self.settings.get("server_root_dir") or Path.cwd()).expanduser().resolve()
        folder = (root / text.strip("/")).resolve()
        if folder != root and root not in folder.parents:
            raise BadRequest(f"the folder {text!r} is outside the Jupyter server's root")
        if not folder.is_dir():
            raise BadRequest(f"{text!r} is not a folder under the Jupyter server's root")
        return folder

    def body(self, command: str | None = None) -> dict[str, Any]:
        """The request's JSON object ({} for an empty body).

        With ``command``, a field that the command's route does not declare is refused: a
        misspelt ``{"version": 1}`` to rollback must not roll back to the previous holder.

        Args:
            command: the command in :data:`nbmodel.commands.COMMANDS` whose routes declare the
                fields this request may carry.

        Returns:
            The body's fields.

        Raises:
            BadRequest: the body is not a JSON object, or has a field the route does not take.

        Example:
            >>> data = self.body("rollback")  # doctest: +SKIP
        """
        data = self._json()
        if command is not None:
            known = {f for route in COMMANDS[command].routes for f in route.body_fields}
            unknown = sorted(set(data) - known)
            if unknown:
                raise BadRequest(f"unknown field(s) {', '.join(map(repr, unknown))}; "
                                 f"this route takes {', '.join(sorted(known)) or 'none'}")
        return data

    def _json(self) -> dict[str, Any]:
        raw = self.request.body
        if not raw or not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise BadRequest(f"the request body is not JSON ({exc.args[0]})") from None
        if not isinstance(data, dict):
            raise BadRequest("the request body must be a JSON object")
        return data

    def field(self, data: dict[str, Any], key: str, kind: type | tuple[type, ...],
              default: Any = ..., *, required: bool = False) -> Any:
        """Read ``data[key]``, checking its JSON type; a missing optional key gives ``default``.

        Args:
            data: the request's body.
            key: the field.
            kind: the Python type(s) the JSON value must have (``true`` is no ``int``).
            default: the value of a missing or null field.
            required: refuse a missing field instead.

        Returns:
            The value.

        Raises:
            BadRequest: the field is missing but required, or of another type.

        Example:
            >>> force = self.field(data, "force", bool, False)  # doctest: +SKIP
        """
        if key not in data or data[key] is None:
            if required:
                raise BadRequest(f"the request needs the field {key!r}")
            return None if default is ... else default
        value = data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python, but JSON's true is no version number.
        wrong_bool = isinstance(value, bool) and bool not in kinds
        if wrong_bool or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise BadRequest(f"the field {key!r} must be a {names}, not {data[key]!r}")
        return value

    def int_arg(self, key: str, default: int, *, low: int = 0, high: int | None = None) -> int:
        """A whole-number query parameter within ``[low, high]``.

        Args:
            key: the parameter.
            default: its value when absent or empty.
            low: the smallest value taken.
            high: the largest value taken (None: no limit).

        Returns:
            The value.

        Raises:
            BadRequest: not a whole number, or out of range.

        Example:
            >>> limit = self.int_arg("limit", 50, low=1, high=500)  # doctest: +SKIP
        """
        text = self.get_query_argument(key, None)
        if text is None or text == "":
            return default
        try:
            value = int(text)
        except ValueError:
            raise BadRequest(f"the query parameter {key} must be a whole number, not {text!r}") from None
        if value < low or (high is not None and value > high):
            span = f"from {low}" + (f" to {high}" if high is not None else "")
            raise BadRequest(f"the query parameter {key} must be {span}, not {value}")
        return value

    def reply(self, data: Any, status: int = 200) -> None:
        """Answer with ``data`` as JSON (see :func:`jsonable`).

        Args:
            data: a core result.
            status: the HTTP status.

        Example:
            >>> self.reply({"deployment": d}, status=201)  # doctest: +SKIP
        """
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(jsonable(data)))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every route's errors as ``{"error": {"kind", "message"}}``: nbmodel's with their
        status, jupyter_server's (403...) as they are, anything else as a 500 of one line.

        Tornado calls it when a route raises; the 500's message names the exception's type and its
        first line, and points to the server log instead of showing a traceback.

        Args:
            status_code: the status tornado chose (kept for an HTTP error and a 500).
            **kwargs: tornado's ``exc_info``, the exception being answered.

        Example:
            >>> requests.get(f"{api}/models/iris@production", headers=auth).json()  # doctest: +SKIP
            {'error': {'kind': 'bad-request', 'message': "'iris@production' is not a model name"}}
        """
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, NbmodelError):
            self.set_status(exc.status)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"error": {"kind": exc.kind, "message": str(exc)}}))
            return
        if isinstance(exc, tornado.web.HTTPError):
            message = exc.log_message or self._reason
            kind = "forbidden" if exc.status_code == 403 else "http"
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"error": {"kind": kind, "message": message}}))
            return
        # An nbmodel bug or an MLflow failure: say so without a traceback in the sidebar; the
        # server log has it.
        text = first_line(exc) if exc is not None and str(exc).strip() else ""
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": {
            "kind": "internal",
            "message": f"{type(exc).__name__ if exc else 'error'}: {text}".rstrip(": ")
            + " (the Jupyter server log has the details)",
        }}))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Log a route's exception: nbmodel's errors as one info line, anything else as tornado does.

        An :class:`~nbmodel.errors.NbmodelError` is the user's mistake or the store's state, not a
        server fault, so it is logged without a traceback.

        Args:
            typ: the exception's type.
            value: the exception.
            tb: its traceback.

        Example:
            >>> handler.log_exception(*sys.exc_info())  # doctest: +SKIP
        """
        if isinstance(value, NbmodelError):
            self.log.info("nbmodel: %s %s -> %s %s", self.request.method, self.request.path,
                          value.status, value)
            return
        super().log_exception(typ, value, tb)


class NoStoreYet(NbmodelError):
    """The folder's store has no file yet: nothing to read, and looking must not create one."""

    kind = "no-store"
    status = 404


#: Serialises switching the server's own store (``PUT /store``).
_STORE_SCOPE = threading.RLock()
#: Where the store of the call in progress came from (the folder's resolution, not set_store).
_scope = threading.local()


def folder_uri(folder: Path) -> tuple[str, str]:
    """The store a kernel started in ``folder`` uses, by nbmodel's resolution order.

    JupyterLab starts a notebook's kernel in the notebook's folder, with the server's
    environment, so that kernel resolves ``MLFLOW_TRACKING_URI``, then the nearest
    ``pyproject.toml``, then ``mlflow.db`` in the folder. A store chosen with
    ``PUT /nbmodel/api/store`` wins, as ``%model_store`` does in a kernel.

    Args:
        folder: the notebook's folder, absolute.

    Returns:
        ``(uri, origin)``, as :func:`nbmodel.store.resolve_uri` gives them.

    Example:
        >>> folder_uri(Path("/home/ann/course"))  # doctest: +SKIP
        ('sqlite:////home/ann/course/mlflow.db', 'default')
    """
    from .store import resolve_uri

    return resolve_uri(folder)


def in_folder(folder: Path | None, fn: Callable[..., Any], *args: Any,
              read_only: bool = False, **kwargs: Any) -> Any:
    """Run a core function against the store of ``folder`` (None: the server's own).

    Args:
        folder: the notebook's folder whose store the call is about.
        fn: the core function.
        *args: its positional arguments.
        read_only: a missing sqlite store is fine (the function checks ``exists`` itself);
            otherwise it is refused with :class:`NoStoreYet` before anything opens it.
        **kwargs: its keyword arguments.

    Returns:
        What ``fn`` returned.

    Raises:
        NoStoreYet: the store is a sqlite file that does not exist and the call needs one.

    Example:
        >>> in_folder(Path("/home/ann/course"), log, "iris")  # doctest: +SKIP
    """
    from .store import resolve_uri, scoped

    # The folder's store for this call only (a context variable, not the session's setting):
    # the server answers for several folders at once.
    uri, origin = resolve_uri() if folder is None else folder_uri(folder)
    with scoped(uri, origin) as store:
        _scope.origin = origin
        try:
            if not read_only and not store.exists:
                raise NoStoreYet(f"no store yet at {store.uri}: commit a model from a notebook "
                                 "in that folder first (%model_commit VAR)")
            return fn(*args, **kwargs)
        finally:
            _scope.origin = None


def _store_info(folder: Path | None = None) -> dict[str, Any]:
    from .store import get_store

    store = get_store()
    origin = getattr(_scope, "origin", None) or store.origin
    info: dict[str, Any] = {"uri": store.uri, "origin": origin, "exists": store.exists}
    if folder is not None:
        info["folder"] = str(folder)
    return info


def _models(folder: Path | None = None) -> dict[str, Any]:
    from .store import get_store

    info = _store_info(folder)
    if not get_store().exists:
        # Listing must not create an empty sqlite file where the user did not ask for one.
        return {"store": info, "models": [], "features": features()}
    from .history import models

    return {"store": info, "models": models(), "features": features()}


def _model(name: str, limit: int, offset: int) -> dict[str, Any]:
    from .branches import branches
    from .history import log
    from .store import get_store
    from .versions import model_aliases

    history = log(name, limit=limit, offset=offset)
    aliases = model_aliases(get_store(), history.name)
    return {
        "name": history.name,
        "versions": history.versions,
        "total": history.total,
        "offset": offset,
        "limit": limit,
        "aliases": aliases,
        "branches": [b.to_dict() for b in branches(history.name)],
    }


def _if_stored(what: str) -> list[Any]:
    """The running deployments or open alerts; none (and no file created) where no store is."""
    from .store import get_store

    if not get_store().exists:
        return []
    if what == "deployments":
        from .serving import deployments

        return deployments()
    from .monitoring import open_alerts

    return open_alerts()


def _check_name(name: str) -> str:
    from .refs import parse_ref

    ref = parse_ref(name)
    if ref.version is not None or ref.alias is not None or ref.name != name:
        raise BadRequest(f"{name!r} is not a model name")
    return name


def _version_ref(name: str, version: str) -> str:
    _check_name(name)
    if not (version.isascii() and version.isdigit()) or int(version) < 1:
        raise BadRequest(f"the version must be a whole number from 1, not {version!r}")
    return f"{name}/{int(version)}"


def _set_store(set_store: Callable[[str | None], Any], uri: str | None) -> None:
    with _STORE_SCOPE:
        set_store(uri)


class StoreHandler(NbmodelHandler):
    """``GET`` the store the server resolves; ``PUT {"uri"}`` switches it (``null`` resets)."""

    @tornado.web.authenticated
    async def get(self) -> None:
        """Answer the store of the ``dir`` folder (or the server's): ``uri``, ``origin``, ``exists``.

        Opening nothing: a missing sqlite store answers ``"exists": false``.

        Example:
            >>> requests.get(f"{api}/store?dir=course", headers=auth).json()["origin"]  # doctest: +SKIP
            'default'
        """
        folder = self.folder()
        self.reply(await self.call(_store_info, folder, read_only=True))

    @tornado.web.authenticated
    async def put(self) -> None:
        """Switch the server's store to the body's ``uri`` (``null`` goes back to the resolution order).

        Raises:
            BadRequest: the body has no ``uri`` field, or it is not a string or null.
            StoreError: the store cannot be opened or reached; the previous one stays in use.

        Example:
            >>> requests.put(f"{api}/store", json={"uri": "sqlite:///course.db"},
            ...              headers=auth)  # doctest: +SKIP
        """
        from .store import set_store

        data = self.body("store")
        if "uri" not in data:
            raise BadRequest("the request needs the field 'uri' (a store URI, or null to reset)")
        uri = self.field(data, "uri", str)
        await asyncio.to_thread(_set_store, set_store, uri)
        self.reply(await self.call(_store_info, self.folder(), read_only=True))


class FeaturesHandler(NbmodelHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        """Answer which optional sections the sidebar can show (see :func:`features`).

        Example:
            >>> requests.get(f"{api}/features", headers=auth).json()  # doctest: +SKIP
            {'deployments': True, 'alerts': True}
        """
        self.reply(await self.call(features, read_only=True))


class ModelsHandler(NbmodelHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        """Answer the store, its models and the features; no models where the store has no file yet.

        Example:
            >>> requests.get(f"{api}/models?dir=course", headers=auth).json()["models"]  # doctest: +SKIP
        """
        self.reply(await self.call(_models, self.folder(), read_only=True))


class ModelHandler(NbmodelHandler):
    """A model's versions, newest first: ``?limit=50&offset=0``."""

    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        """Answer a page of the model's versions, its aliases and its total number of versions.

        Args:
            name: the model's name.

        Raises:
            BadRequest: ``name`` is no plain model name, or ``limit``/``offset`` are out of range.
            NoStoreYet: the folder's store has no file yet.

        Example:
            >>> requests.get(f"{api}/models/iris?limit=10", headers=auth).json()["total"]  # doctest: +SKIP
            3
        """
        _check_name(name)
        limit = self.int_arg("limit", PAGE, low=1, high=MAX_PAGE)
        offset = self.int_arg("offset", 0)
        self.reply(await self.call(_model, name, limit, offset))


class VersionHandler(NbmodelHandler):
    @tornado.web.authenticated
    async def get(self, name: str, version: str) -> None:
        """Answer one version, as :func:`nbmodel.show` describes it.

        Args:
            name: the model's name.
            version: the version number, from the path.

        Raises:
            BadRequest: ``name`` is no plain model name or ``version`` no whole number from 1.
            NoStoreYet: the folder's store has no file yet.

        Example:
            >>> requests.get(f"{api}/models/iris/versions/3",
            ...              headers=auth).json()["aliases"]  # doctest: +SKIP
            ['production']
        """
        from .versions import show

        self.reply(await self.call(show, _version_ref(name, version)))


class RetireHandler(NbmodelHandler):
    """``POST {"force": false, "message": ""}`` retires the version."""

    @tornado.web.authenticated
    async def post(self, name: str, version: str) -> None:
        """Retire the version, with the body's ``message`` and ``force``, and answer the result.

        Args:
            name: the model's name.
            version: the version number, from the path.

        Raises:
            BadRequest: a bad name, version or body field.
            NoStoreYet: the folder's store has no file yet.

        Example:
            >>> requests.post(f"{api}/models/iris/versions/1/retire", json={"message": "leaks"},
            ...               headers=auth)  # doctest: +SKIP
        """
        from .versions import retire

        ref = _version_ref(name, version)
        data = self.body("retire")
        force = self.field(data, "force", bool, False)
        message = self.field(data, "message", str, "")
        self.reply(await self.call(retire, ref, message=message, force=force))


class AliasesHandler(NbmodelHandler):
    """``GET`` the alias audit trail; ``POST {"alias", "version", "message", "force"}`` sets one."""

    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        """Answer the model's alias moves, all or (with ``?alias=``) one alias's.

        Args:
            name: the model's name.

        Raises:
            BadRequest: ``name`` is no plain model name.
            NoStoreYet: the folder's store has no file yet.

        Example:
            >>> requests.get(f"{api}/models/iris/aliases?alias=production",
            ...              headers=auth).json()  # doctest: +SKIP
        """
        from .aliases import alias_history

        _check_name(name)
        alias = self.get_query_argument("alias", None) or None
        trail = await self.call(alias_history, name, alias)
        self.reply({"name": trail.name, "moves": trail.moves})

    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        """Point the body's ``alias`` at its ``version`` and answer the move.

        Args:
            name: the model's name.

        Raises:
            BadRequest: a bad name, a missing ``alias`` or ``version``, or a version below 1.
            NoStoreYet: the folder's store has no file yet.

        Example:
            >>> requests.post(f"{api}/models/iris/aliases", json={"alias": "production", "version": 3},
            ...               headers=auth).json()["to"]  # doctest: +SKIP
            3
        """
        from .aliases import set_alias

        _check_name(name)
        data = self.body("alias")
        alias = self.field(data, "alias", str, required=True)
        version = self.field(data, "version", int, required=True)
        if version < 1:
            raise BadRequest(f"the field 'version' must be a whole number from 1, not {version}")
        message = self.field(data, "message", str, "")
        force = self.field(data, "force", bool, False)
        move = await self.call(set_alias, f"{name}/{version}", alias, message=message, force=force)
        self.reply(move)


class RollbackHandler(NbmodelHandler):
    """``POST {"alias": "production", "to": null, "message": ""}`` rolls the alias back."""

    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        """Roll the body's ``alias`` (``production`` by default) back, or to ``to``, and answer the move.

        Args:
            name: the model's name.

        Raises:
            BadRequest: a bad name or body field.
            NoStoreYet: the folder's store has no file yet.

        Example:
            >>> requests.post(f"{api}/models/iris/rollback", json={"alias": "production"},
            ...               headers=auth).json()  # doctest: +SKIP
        """
        from .aliases import rollback

        _check_name(name)
        data = self.body("rollback")
        alias = self.field(data, "alias", str, "production")
        to = self.field(data, "to", (int, str), None)
        message = self.field(data, "message", str, "")
        move = await self.call(rollback, name, alias=alias, to=to, message=message)
        self.reply(move)


class DeploymentsHandler(NbmodelHandler):
    """``GET`` running deployments; ``POST {"ref", "alias", "port"}`` deploys."""

    @tornado.web.authenticated
    async def get(self) -> None:
        """Answer the running deployments; none where the store has no file yet.

        Example:
            >>> requests.get(f"{api}/deployments", headers=auth).json()["deployments"]  # doctest: +SKIP
        """
        self.reply({"deployments": await self.call(_if_stored, "deployments", read_only=True)})

    @tornado.web.authenticated
    async def post(self) -> None:
        """Deploy the body's ``ref`` (with its optional ``alias`` and ``port``) and answer it, as 201.

        Raises:
            BadRequest: a missing ``ref``, a bad field, or a port outside 0 to 65535.
            BadReference: ``ref`` is no model reference.
            NoStoreYet: the folder's store has no file yet.

        Example:
            >>> requests.post(f"{api}/deployments", json={"ref": "iris@production"},
            ...               headers=auth).status_code  # doctest: +SKIP
            201
        """
        from .refs import parse_ref
        from .serving import deploy

        data = self.body("deploy")
        ref = self.field(data, "ref", str, required=True)
        parse_ref(ref)
        kwargs: dict[str, Any] = {}
        alias = self.field(data, "alias", str, None)
        if alias is not None:
            kwargs["alias"] = alias
        port = self.field(data, "port", int, None)
        if port is not None:
            if not 0 <= port <= 65535:
                raise BadRequest(f"the field 'port' must be a TCP port (0 to 65535), not {port}")
            kwargs["port"] = port
        deployment = await self.call(deploy, ref, **kwargs)
        self.reply({"deployment": deployment}, status=201)


class DeploymentHandler(NbmodelHandler):
    """``DELETE /deployments/{name_or_ref}`` stops a deployment."""

    @tornado.web.authenticated
    async def delete(self, target: str) -> None:
        """Stop the deployments ``target`` names and answer what was stopped.

        Args:
            target: a model name or reference, from the path.

        Raises:
            BadReference: ``target`` is no model reference.
            NoStoreYet: the folder's store has no file yet.

        Example:
            >>> requests.delete(f"{api}/deployments/iris@production", headers=auth).json()  # doctest: +SKIP
        """
        from .refs import parse_ref
        from .serving import stop

        parse_ref(target)
        result = await self.call(stop, target)
        self.reply({"stopped": result if result is not None else target})


class AlertsHandler(NbmodelHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        """Answer the open monitoring alerts; none where the store has no file yet.

        Example:
            >>> requests.get(f"{api}/alerts", headers=auth).json()["alerts"]  # doctest: +SKIP
        """
        self.reply({"alerts": await self.call(_if_stored, "alerts", read_only=True)})


class _NoRoute(NbmodelError):
    kind = "no-route"
    status = 404


class NotFoundHandler(NbmodelHandler):
    """Unknown paths under /nbmodel/api answer in the same JSON form as the others."""

    @tornado.web.authenticated
    async def get(self, path: str) -> None:
        """Answer any unknown path (for every method) with a JSON 404.

        Args:
            path: the path after ``nbmodel/api/``.

        Raises:
            _NoRoute: always.

        Example:
            >>> requests.get(f"{api}/modles", headers=auth).status_code  # doctest: +SKIP
            404
        """
        raise _NoRoute(f"no nbmodel route {path!r}; the routes are in nbmodel/openapi.yaml")

    post = put = delete = get


_NAME = r"(?P<name>[^/]+)"
_VERSION = r"(?P<version>[^/]+)"

ROUTES: list[tuple[str, type[NbmodelHandler]]] = [
    (r"store", StoreHandler),
    (r"features", FeaturesHandler),
    (r"models", ModelsHandler),
    (rf"models/{_NAME}", ModelHandler),
    (rf"models/{_NAME}/versions/{_VERSION}", VersionHandler),
    (rf"models/{_NAME}/versions/{_VERSION}/retire", RetireHandler),
    (rf"models/{_NAME}/aliases", AliasesHandler),
    (rf"models/{_NAME}/rollback", RollbackHandler),
    (r"deployments", DeploymentsHandler),
    (r"deployments/(?P<target>[^/]+)", DeploymentHandler),
    (r"alerts", AlertsHandler),
]


def setup_handlers(web_app: Any) -> None:
    """Add the routes under ``{base_url}nbmodel/api/`` (and a JSON 404 for the rest).

    Args:
        web_app: jupyter_server's tornado application.

    Example:
        >>> setup_handlers(serverapp.web_app)  # doctest: +SKIP
    """
    base = url_path_join(web_app.settings["base_url"], "nbmodel", "api")
    handlers: list[tuple[str, Any]] = [
        (url_path_join(base, pattern) + "/?", handler) for pattern, handler in ROUTES
    ]
    handlers.append((url_path_join(base, r"(?P<path>.*)"), NotFoundHandler))
    web_app.add_handlers(".*$", handlers)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nbmodel.handlers"}]


def _load_jupyter_server_extension(serverapp: ServerApp) -> None:
    setup_handlers(serverapp.web_app)
    serverapp.log.info("nbmodel: Models sidebar routes under %snbmodel/api/", serverapp.base_url)
