"""Deploying from a kernel: point the alias, start (or reuse) a server process, list and stop
what runs.

Each running server has a record (:class:`~._records.DeploymentRecord`) in the store's
deployments folder (beside a sqlite store's file, or a per-user folder for an ``http://``
store), so a new kernel lists what runs and brings back a server that died on the same port.
The record is also how a kernel adds a model to a running server: the server re-reads it when
it changes. How a server process is started and checked is in ``_process``.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..display import Shown
from ..errors import AliasNotFound, DeployError, NotBetter, RetiredVersion
from ..refs import parse_ref
from . import _process, _warm
from . import _records as R
from ._process import Forked, free_port, server_args, server_command, server_env
from ._records import DEFAULT_MAX_BODY, DeploymentRecord, ModelSpec

__all__ = ["DEFAULT_MAX_BODY", "LOOPBACK", "MAX_WORKERS", "Deployment", "Deployments", "Forked",
           "check_better", "deploy", "deploy_pipeline", "deployments", "dockerfile", "free_port",
           "server_args", "server_command", "server_env", "state_dir", "stop"]

LOOPBACK = R.LOOPBACK
START_TIMEOUT = 90.0
SWITCH_TIMEOUT = 30.0
MAX_WORKERS = 64


# -- where records live ----------------------------------------------------------------------
def state_dir(store: Any = None, *, create: bool = True) -> Path:
    """The deployments folder of a store (made if missing, unless ``create`` is False).

    Args:
        store: the store (default: the one in use).
        create: make the folder; readers pass False, so that listing what runs never writes
            beside a store (which may be read-only).

    Returns:
        ``.nbmodel/deployments`` beside a sqlite store's file, else a per-user cache folder
        named after the store's URI.

    Example:
        >>> nbmodel.serving.state_dir()  # doctest: +SKIP
        PosixPath('/home/me/project/.nbmodel/deployments')
    """
    from ..store import get_store

    store = store or get_store()
    db = store.db_path
    if db is not None:
        folder = db.parent / ".nbmodel" / "deployments"
    else:
        digest = hashlib.sha1(store.uri.encode()).hexdigest()[:12]
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        folder = base / "nbmodel" / "deployments" / digest
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


# -- probing a server ------------------------------------------------------------------------
def _probe_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _base(host: str, port: int) -> str:
    h = _probe_host(host)
    return f"http://[{h}]:{port}" if ":" in h else f"http://{h}:{port}"


def _health(record: DeploymentRecord, timeout: float = 3.0) -> dict[str, Any] | None:
    """The server's /health answer if the record's own process answers, else None."""
    req = urllib.request.Request(_base(record.host, record.port) + "/health")
    if record.token:
        req.add_header("Authorization", f"Bearer {record.token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None
    if not isinstance(body, dict) or body.get("pid") != record.pid:
        return None  # another program (or another server) on that port
    return body


# -- what deploy returns ---------------------------------------------------------------------
@dataclass
class Deployment(Shown):
    """One model served by one server process (``iris@production`` on a port).

    Example:
        >>> nbmodel.deploy("iris/3").url  # doctest: +SKIP
        'http://127.0.0.1:5001/invocations'
    """

    name: str
    alias: str | None
    host: str
    port: int
    pid: int | None
    primary: bool = True
    token: str | None = None
    detached: bool = False
    started: float | None = None
    version: int | None = None
    health: str = "unknown"
    requests: int | None = None
    errors: int | None = None
    uptime_s: float | None = None
    error: str | None = None
    #: who started it and on which machine, for a deployment published by another machine
    user: str | None = None
    machine: str | None = None
    example: str | None = field(default=None, repr=False)
    record: str | None = field(default=None, repr=False)
    #: a canary or shadow on this deployment: kind, candidate ("iris/4"), share, state, reason
    rollout: dict[str, Any] | None = None
    #: a pipeline's stages, in order: ref, name, alias, version (and live figures)
    stages: list[dict[str, Any]] | None = None

    @property
    def ref(self) -> str:
        """``name@alias``, or the bare name for a version served without an alias."""
        return f"{self.name}@{self.alias}" if self.alias else self.name

    @property
    def base_url(self) -> str:
        """The server's address, without a route."""
        if self.host not in LOOPBACK:
            return _base(self.host, self.port)
        host = "127.0.0.1" if self.host == "localhost" else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """Where to POST predictions."""
        from urllib.parse import quote

        if self.primary:
            return f"{self.base_url}/invocations"
        return f"{self.base_url}/models/{quote(self.name, safe='')}/invocations"

    @property
    def curl(self) -> str:
        """A ``curl`` command line that asks for a prediction (with the token if needed)."""
        auth = f" -H 'Authorization: Bearer {self.token}'" if self.token else ""
        data = self.example or '{"dataframe_split": {"columns": [...], "data": [[...]]}}'
        return (f"curl -s {self.url} -H 'Content-Type: application/json'{auth} "
                f"-d '{data}'")

    def to_dict(self) -> dict[str, Any]:
        """The deployment as JSON-ready values (the REST routes answer with it; the token
        itself is left out)."""
        return {
            "ref": self.ref, "name": self.name, "alias": self.alias, "version": self.version,
            "url": self.url, "host": self.host, "port": self.port, "pid": self.pid,
            "health": self.health, "requests": self.requests, "errors": self.errors,
            "uptime_s": self.uptime_s, "error": self.error, "detached": self.detached,
            "token_required": bool(self.token), "started": self.started, "user": self.user,
            "machine": self.machine, "rollout": self.rollout, "stages": self.stages,
        }

    @property
    def serving(self) -> str:
        """What answers: ``iris/3``, or the split while a canary or shadow runs
        (``iris/3 75%, iris/4 25% (canary)``)."""
        return self._version_text()

    def _version_text(self) -> str:
        if self.stages is not None:  # a pipeline: each stage's version, in order
            return " -> ".join(f"{s['name']}/{s['version'] if s.get('version') is not None else '-'}"
                               for s in self.stages)
        serving = f"{self.name}/{self.version}" if self.version is not None else "-"
        ro = self.rollout
        if ro is None or ro.get("state") != "running":
            return serving
        if ro.get("kind") == "shadow":
            return f"{serving}, shadow {ro.get('candidate')}"
        share = int(ro.get("share") or 0)
        return f"{serving} {100 - share}%, {ro.get('candidate')} {share}% (canary)"

    def __str__(self) -> str:
        lines = [f"{self.ref} ({self._version_text()}) serving at {self.url}"]
        if self.token:
            lines.append(f"  token: {self.token}")
        if self.error:
            lines.append(f"  note: {self.error}")
        lines.append(f"  {self.curl}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Deployment {self.ref} at {self.url}>"

    def _repr_html_(self) -> str:
        from ..display import badge, card

        rows = [("serving", html.escape(self._version_text())),
                ("url", f"<code>{html.escape(self.url)}</code>"),
                ("health", html.escape(self.health))]
        if self.token:
            rows.append(("token", f"<code>{html.escape(self.token)}</code>"))
        if self.error:
            rows.append(("note", html.escape(self.error)))
        rows.append(("try", f"<code>{html.escape(self.curl)}</code>"))
        return card(html.escape(self.ref) + badge("deployed"), rows)


class Deployments(Shown, list):
    """What runs, as a table (``%model_deployments``).

    Example:
        >>> print(nbmodel.deployments())  # doctest: +SKIP
        ref              serving  url  ...
    """

    # uptime last: the text table pads every column but the last, and an uptime's width
    # changes from run to run (notebooks compare this text under nbval)
    head = ["ref", "serving", "url", "requests", "errors", "health", "uptime"]

    def rows(self) -> list[list[str]]:
        """The table's rows, as text cells under :attr:`head`."""
        out = []
        for d in self:
            out.append([d.ref, d._version_text(), d.url,
                        "-" if d.requests is None else str(d.requests),
                        "-" if d.errors is None else str(d.errors),
                        d.health + (f": {d.error}" if d.error else ""), _age(d.uptime_s)])
        return out

    def __str__(self) -> str:
        from ..display import text_table

        if not self:
            return "no deployments; start one with %model_deploy NAME/VERSION"
        return text_table(self.head, self.rows())

    def _repr_html_(self) -> str:
        from ..display import html_table

        if not self:
            return "<div class='nbm-line'>no deployments; start one with %model_deploy NAME/VERSION</div>"
        return html_table(self.head, self.rows(), caption="deployments")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _deployments_of(record: DeploymentRecord, health: dict[str, Any] | None) -> list[Deployment]:
    """The record's models as deployments, with the server's ``/health`` answer (None: it is
    not answering)."""
    live = {m["name"]: m for m in (health or {}).get("models", [])}
    out = []
    for i, spec in enumerate(record.models):
        d = Deployment(name=spec.name, alias=spec.alias, host=record.host, port=record.port,
                       pid=record.pid, primary=i == 0, token=record.token, detached=record.detached,
                       started=record.started, example=spec.example,
                       record=str(record.path) if record.path is not None else None)
        m = live.get(d.name)
        if spec.chain:
            d.stages = [{"ref": s.ref, "name": s.name, "alias": s.alias, "version": s.version}
                        for s in spec.chain]
        if health is None:
            d.health = "down" if not record.stopped else f"stopped ({record.stopped})"
            d.version = spec.version
        elif m is None:
            d.health = "starting"
        else:
            d.version = m.get("version")
            d.requests, d.errors = m.get("requests"), m.get("errors")
            d.uptime_s = health.get("uptime_s")
            d.error = m.get("error")
            serving = m.get("serving", m.get("version") is not None)
            d.health = "ok" if serving and not m.get("error") else (
                "degraded" if serving else "down")
            if spec.chain and m.get("stages") is not None:
                d.stages = m["stages"]
        if spec.rollout is not None:
            from ._rollout import RolloutReport

            d.rollout = RolloutReport.of(spec, health).to_dict()
        out.append(d)
    return out


def deployments(name: str | None = None) -> Deployments:
    """Every deployment of the store in use, with its live state (``down`` when its process
    is gone): those this machine runs, from their records, then those other machines
    published on the store (``stale`` when they have not said they are alive for a while).

    Args:
        name: only this model's deployments (``iris`` or ``iris@production``: by name).

    Returns:
        The :class:`Deployments` table.

    Example:
        >>> nbmodel.deployments()  # doctest: +SKIP
    """
    folder = state_dir(create=False)
    only = parse_ref(name).name if name is not None else None
    out = Deployments()
    ports = set()
    for record in R.read_all(folder):
        ports.add(record.port)
        health = _health(record) if _process.pid_alive(record.pid) else None
        for d in _deployments_of(record, health):
            if only is None or d.name == only:
                out.append(d)
    out.extend(_published(only, ports))
    return out


def _published(name: str | None, local_ports: set[int]) -> list[Deployment]:
    """The deployments other machines (or other users of this one) published on the store;
    this machine's own that ended without saying so are withdrawn on the way."""
    from ..store import get_store

    store = get_store()
    if not store.exists:
        return []  # listing never creates a store
    try:
        entries = R.published(store.gateway, name)
    except Exception:  # noqa: BLE001 - what this machine runs is still listed
        return []
    here, now = R.machine(), time.time()
    out = []
    for entry in entries:
        if entry.machine == here:
            if entry.port in local_ports:
                continue  # the local record says more (and holds the process)
            if not _process.pid_alive(entry.pid):
                with contextlib.suppress(Exception):
                    entry.stopped = now
                    R.publish(store.gateway, entry)
                continue
        for i, spec in enumerate(entry.models):
            if name is not None and spec.name != name:
                continue
            stale = entry.stale(now)
            out.append(Deployment(
                name=spec.name, alias=spec.alias, host=entry.host, port=entry.port, pid=None,
                primary=i == 0, started=entry.started, version=spec.version,
                health=f"stale (last heard {_age(now - entry.seen)} ago)" if stale else "ok",
                uptime_s=None if stale or entry.started is None else now - entry.started,
                error=f"runs on {entry.machine}, started by {entry.user or 'unknown'}",
                user=entry.user, machine=entry.machine))
    return out


# -- deploy ----------------------------------------------------------------------------------
def _serving_example(path: str | None, uri: str | None = None) -> str | None:
    """A one-row request body from the version's serving example, for the curl line: read from
    the model's local folder, else (a store with no local files) downloaded from ``uri``."""
    try:
        if path:
            from ._models import _example, read_mlmodel

            ex = _example(path, read_mlmodel(path))
        elif uri:
            ex = _remote_example(uri)
        else:
            return None
    except Exception:  # noqa: BLE001 - the curl line then shows the body's shape only
        return None
    if not ex:
        return None
    split = ex.get("dataframe_split")
    if isinstance(split, dict) and isinstance(split.get("data"), list) and split["data"]:
        ex = {"dataframe_split": {"columns": split.get("columns"), "data": split["data"][:1]}}
    text = json.dumps(ex)
    return text if len(text) <= 2000 and "'" not in text else None


def _remote_example(uri: str) -> dict[str, Any] | None:
    """The serving example of the model at ``uri`` (``models:/NAME/VERSION``): its ``MLmodel``
    and the example's file, downloaded into a folder removed at once."""
    import tempfile

    import mlflow.artifacts

    from ..store import mlflow_calls
    from ..versions import model_info

    name = (model_info(uri).saved_input_example_info or {}).get("serving_input_path")
    if not name:
        return None
    with tempfile.TemporaryDirectory(prefix="nbmodel-example-") as tmp, mlflow_calls():
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"{uri.rstrip('/')}/{name}", dst_path=tmp)
        with open(local, encoding="utf-8") as f:
            data = json.load(f)
    return data if isinstance(data, dict) else None


def _local_dir(store: Any, name: str, version: int) -> str | None:
    try:
        uri = store.gateway.version_download_uri(name, version)
    except Exception:  # noqa: BLE001 - the server resolves it itself
        return None
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    return uri if uri.startswith("/") and Path(uri, "MLmodel").is_file() else None


def check_better(candidate: Any, alias: str, X: Any, y: Any) -> tuple[bool, str]:
    """Score the candidate and the alias's holder on ``(X, y)`` by the task's key metric.

    Args:
        candidate: the version that would take the alias.
        alias: the alias whose current holder it must match or beat.
        X: the evaluation features.
        y: the evaluation labels or targets.

    Returns:
        ``(at least as good, a one-line summary)``; True when the alias is not set yet.

    Raises:
        NotBetter: the two versions share no metric to compare on.

    Example:
        >>> check_better(nbmodel.resolve("iris/4"), "production", X_test, y_test)  # doctest: +SKIP
        (True, 'iris/4 accuracy 0.9667 >= iris/3 (iris@production) 0.9333 on the eval data')
    """
    from ..evaluate import KEY_METRICS, LOWER_IS_BETTER, score
    from ..versions import load, resolve

    try:
        current = resolve(f"{candidate.name}@{alias}")
    except AliasNotFound:
        return True, f"{candidate.name}@{alias} is not set yet: nothing to beat"
    if current.version == candidate.version:
        return True, f"{candidate.ref} already holds {alias}"
    new = score(load(candidate), X, y)
    old = score(load(current), X, y)
    task = candidate.task or current.task
    order = KEY_METRICS.get(task or "", ()) or tuple(new)
    metric = next((m for m in order if m in new and m in old), None)
    if metric is None:
        raise NotBetter(f"{candidate.ref} and {current.ref} share no metric to compare on")
    a, b = new[metric], old[metric]
    lower = metric in LOWER_IS_BETTER
    ok = a <= b if lower else a >= b
    sign = ("<=" if lower else ">=") if ok else (">" if lower else "<")
    text = (f"{candidate.ref} {metric} {a:.4f} {sign} {current.ref} ({candidate.name}@{alias}) "
            f"{b:.4f} on the eval data")
    return ok, text


def deploy(ref: str, *, alias: str | None = None, port: int | None = None,
           host: str | None = None, token: str | None = None, detach: bool = False,
           if_better: tuple[Any, Any] | None = None, force: bool = False, message: str = "",
           max_body: int | None = None, workers: int | None = None,
           chain: list[str] | None = None) -> Deployment:
    """Point ``alias`` at a version and serve ``NAME@alias`` over MLflow's scoring protocol.

    The alias moves only once the version answers: a deploy that fails (the port is taken,
    the server does not start, the version does not load) leaves the alias and every running
    server as they were, and says why.

    Args:
        ref: ``iris/3`` (moves the alias to it), ``iris`` (the newest version) or
            ``iris@production`` (serves the alias as it stands).
        alias: the alias to move and follow (default ``production``).
        port: the port; a port that already serves nbmodel models gets this one added
            (``/models/NAME/invocations``). Default: the port already serving ``NAME@alias``,
            else a free one.
        host: the address to bind (default loopback, or the running server's own);
            anything but loopback needs a token (made if not given).
        token: require ``Authorization: Bearer TOKEN`` on every request.
        detach: keep the server running after this kernel ends.
        if_better: ``(X, y)``: move the alias only if the candidate scores at least as well as
            the current holder on it.
        force: deploy a retired version, or one that ``if_better`` refused.
        message: why, kept in the alias's audit trail.
        max_body: the largest request body in bytes (413 above it).
        workers: worker processes sharing the port (default 1; a server already running
            keeps its own count).
        chain: serve a pipeline named ``ref`` instead: these models (``NAME@ALIAS`` each)
            called in order, see :func:`deploy_pipeline`.

    Returns:
        The :class:`Deployment` (URL, version served, a ready ``curl`` line).

    Raises:
        NotBetter, RetiredVersion, DeployError, and the reference errors.

    Example:
        >>> nbmodel.deploy("iris/3")  # doctest: +SKIP
        iris@production (iris/3) serving at http://127.0.0.1:5001/invocations
    """
    from ..aliases import tests_gate
    from ..refs import check_alias
    from ..store import get_store
    from ..versions import model_aliases, resolve

    if chain is not None:
        if alias or if_better is not None or force or message:
            raise DeployError("a pipeline moves no alias: --alias, --if-better, --force and "
                              "--message do not go with --chain")
        return deploy_pipeline(ref, chain, port=port, host=host, token=token, detach=detach,
                               max_body=max_body, workers=workers)
    if workers is not None and not 1 <= int(workers) <= MAX_WORKERS:
        raise DeployError(f"--workers takes a count from 1 to {MAX_WORKERS}, not {workers}")
    check_max_body(max_body)
    r = parse_ref(ref)
    if r.alias and alias and alias != r.alias:
        raise DeployError(f"{ref} names the alias {r.alias!r} but --alias says {alias!r}; give one")
    alias = check_alias(r.alias or alias or "production")
    store = get_store()
    v = resolve(r)
    if port is not None and not 0 < int(port) < 65536:
        raise DeployError(f"--port takes a TCP port from 1 to 65535, not {port}")
    folder = state_dir(store)
    # what would refuse the deployment is checked before anything changes
    target = _target(R.read_all(folder), v.name, alias, port)
    live = False
    if target is not None:
        live = _check_target(target, token, workers)
        _check_same_server(target, v.name, alias, host)
        host = target.host
    host = host or "127.0.0.1"
    note = None
    move = False
    previous: int | None = None
    if r.alias is None:
        if if_better is not None and not force:
            ok, note = check_better(v, alias, *if_better)
            if not ok:
                raise NotBetter(f"not deployed: {note}; pass --force to deploy anyway")
        if v.retired and not force:
            raise RetiredVersion(f"{v.ref} is retired; choose another version, or pass --force "
                                 f"to point {alias} at it anyway")
        previous = model_aliases(store, v.name).get(alias)
        move = previous != v.version
        if move:
            message = tests_gate(v, alias, force=force, message=message)
    else:
        if if_better is not None:
            raise DeployError(f"--if-better compares a new version with {ref}: name it, "
                              f"as in %model_deploy {r.name}/VERSION --alias {alias} --if-better ...")
        if v.retired and not force:
            raise RetiredVersion(f"{ref} points to {v.ref}, which is retired; move the alias "
                                 "first, or pass --force to serve it anyway")
    if host not in LOOPBACK and not token and not (target is not None and target.token):
        token = secrets.token_urlsafe(24)  # a running server's own token is kept
    path = _local_dir(store, v.name, v.version)
    if path is not None:
        _check_artifacts(v, path)
    # A server already following NAME@alias switches when the alias moves; any other serves the
    # version itself first and follows the alias only once that version answers (at once when
    # the alias is not set yet: there is nothing else it could follow).
    follows = live and target is not None and v.name in target.names
    unset = r.alias is None and previous is None
    spec = ModelSpec(name=v.name, alias=alias if follows or not move or unset else None,
                     version=v.version, path=path, example=_serving_example(path, v.uri))
    if not move:
        with R.locked(folder):
            dep = _place(folder, store, spec, port=port, host=host, token=token, detach=detach,
                         max_body=max_body, workers=workers)
        dep = _wait_for_version(dep, v.version)
    elif follows:
        moved = _move_alias(v, alias, message)
        try:
            with R.locked(folder):
                dep = _place(folder, store, spec, port=port, host=host, token=token,
                             detach=detach, max_body=max_body, workers=workers)
            dep = _wait_for_version(dep, v.version, strict=True)
        except BaseException as exc:
            _restore_alias(v, alias, previous, moved, exc)
            raise
    else:
        with R.locked(folder):
            dep = _place(folder, store, spec, port=port, host=host, token=token, detach=detach,
                         max_body=max_body, workers=workers)
        try:
            dep = _wait_for_version(dep, v.version, strict=True)
        except BaseException:
            _forget(dep, v.name)
            raise
        _move_alias(v, alias, message)
        dep = _follow(dep, alias)
    if note:
        print(note)
    return dep


def deploy_pipeline(name: str, chain: list[str], *, port: int | None = None,
                    host: str | None = None, token: str | None = None, detach: bool = False,
                    max_body: int | None = None, workers: int | None = None) -> Deployment:
    """Serve a pipeline: one endpoint, named ``name``, that calls the models of ``chain`` in
    order in one process, each stage's predictions being the next stage's input, and answers
    with the last stage's. Each stage follows its own alias, as a deployed model does; no
    alias moves.

    Args:
        name: the pipeline's name (its endpoint: ``/models/NAME/invocations``, or
            ``/invocations`` on a server of its own).
        chain: two or more stages, each ``NAME@ALIAS`` (``features@production``).
        port, host, token, detach, max_body, workers: as for :func:`deploy`.

    Returns:
        The :class:`Deployment`, with ``stages``.

    Raises:
        DeployError: fewer than two stages, a stage without an alias, a name already serving
            a model; the reference errors for an unknown model or alias. Nothing is started
            then.

    Example:
        >>> nbmodel.deploy("pipeline",  # doctest: +SKIP
        ...                chain=["features@production", "classifier@production"])
        pipeline (features/2 -> classifier/1) serving at http://127.0.0.1:5001/invocations
    """
    from ..store import get_store

    if workers is not None and not 1 <= int(workers) <= MAX_WORKERS:
        raise DeployError(f"--workers takes a count from 1 to {MAX_WORKERS}, not {workers}")
    check_max_body(max_body)
    if port is not None and not 0 < int(port) < 65536:
        raise DeployError(f"--port takes a TCP port from 1 to 65535, not {port}")
    store = get_store()
    r = parse_ref(name)
    stages = pipeline_stages(name, chain, store)
    folder = state_dir(store)
    target = _target(R.read_all(folder), r.name, None, port)
    previous = target.model(r.name) if target is not None else None
    if target is not None:
        _check_target(target, token, workers)
        if previous is not None and not previous.chain:
            raise DeployError(f"port {target.port} already serves the model {r.name}; "
                              "name the pipeline otherwise, or use another --port")
        host = target.host
    host = host or "127.0.0.1"
    if host not in LOOPBACK and not token and not (target is not None and target.token):
        token = secrets.token_urlsafe(24)
    spec = ModelSpec(name=r.name, chain=stages,
                     example=_serving_example(stages[0].path))
    with R.locked(folder):
        dep = _place(folder, store, spec, port=port, host=host, token=token, detach=detach,
                     max_body=max_body, workers=workers)
    try:
        return _wait_for_stages(dep, [s.ref for s in stages])
    except BaseException:
        if previous is not None:
            _put_back(dep, previous)
        else:
            _forget(dep, r.name)
        raise


def pipeline_stages(name: str, chain: list[str], store: Any) -> list[ModelSpec]:
    """The stages of a pipeline named ``name``, each following its alias, checked before
    anything starts (for ``%model_deploy NAME --chain`` and ``nbmodel serve NAME --chain``).

    Raises:
        DeployError: ``name`` is not a plain name, fewer than two stages, a stage without an
            alias; RetiredVersion and the reference errors for a stage's alias.
    """
    from ..versions import resolve

    r = parse_ref(name)
    if r.version is not None or r.alias is not None:
        raise DeployError(f"a pipeline is named by a plain name, not {name!r}: "
                          "%model_deploy NAME --chain features@production classifier@production")
    chain = list(chain or [])
    if len(chain) < 2:
        raise DeployError(f"a pipeline chains two or more models; --chain has {len(chain)}: "
                          "--chain features@production classifier@production")
    stages = []
    for text in chain:
        sr = parse_ref(text)
        if sr.alias is None:
            raise DeployError(f"each stage follows an alias: write {sr.name}@production, "
                              f"not {text!r}")
        v = resolve(sr, store=store)  # an unknown model or alias is refused here, before anything starts
        if v.retired:
            raise RetiredVersion(f"{text} points to {v.ref}, which is retired; move the alias first")
        path = _local_dir(store, v.name, v.version)
        if path is not None:
            _check_artifacts(v, path)
        stages.append(ModelSpec(name=v.name, alias=sr.alias, version=v.version, path=path))
    return stages


def _wait_for_stages(dep: Deployment, refs: list[str]) -> Deployment:
    """Return once the server serves the pipeline with these stages, every one loaded.

    Raises:
        DeployError: a stage failed to load, or the pipeline is not served in time.
    """
    def ready(d: Deployment) -> bool:
        live = [s.get("ref") for s in d.stages or []]
        if live == refs and d.health in ("ok", "degraded") and d.version is None:
            return True
        if d.error and "failed" in d.error:
            raise DeployError(f"the pipeline {dep.name} was not deployed: {d.error}")
        return False

    live = _wait_until(dep, ready)
    if live is None:
        raise DeployError(f"the pipeline {dep.name} was not deployed: the server did not "
                          f"serve it within {SWITCH_TIMEOUT:.0f} s")
    return live


def _wait_until(dep: Deployment, ready: Callable[[Deployment], bool]) -> Deployment | None:
    """Poll the server of ``dep`` until ``ready`` holds for its live entry of ``dep``'s name
    (``ready`` raises to give up): that entry, or None after :data:`SWITCH_TIMEOUT`."""
    deadline = time.monotonic() + SWITCH_TIMEOUT
    assert dep.record is not None
    record = R.read(dep.record)
    while True:
        health = _health(record)
        if health is not None:
            for d in _deployments_of(record, health):
                if d.name == dep.name and ready(d):
                    return d
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


def _put_back(dep: Deployment, spec: ModelSpec) -> None:
    """Write back the pipeline a failed redeployment replaced in the record."""
    if dep.record is None:
        return
    with R.locked(Path(dep.record).parent), contextlib.suppress(OSError, ValueError):
        record = R.read(dep.record)
        record.models = [spec if m.name == spec.name else m for m in record.models]
        R.write(record)


def check_max_body(max_body: int | None) -> None:
    """Refuse a body limit no request could meet.

    Raises:
        DeployError: ``max_body`` is below 1.
    """
    if max_body is not None and int(max_body) < 1:
        raise DeployError(f"--max-body takes the largest request size in bytes (1 or more), "
                          f"not {max_body}; leave it out for {DEFAULT_MAX_BODY} bytes")


def _check_same_server(record: DeploymentRecord, name: str, alias: str, host: str | None) -> None:
    """Refuse what the server on the port cannot do without losing what it serves.

    Raises:
        DeployError: it follows another alias of the model, or listens on another address.
    """
    held = next((m for m in record.models if m.name == name), None)
    if held is not None and held.alias is not None and held.alias != alias:
        raise DeployError(
            f"port {record.port} already serves {held.ref}; one server follows one alias of a "
            f"model: deploy {name}@{alias} on another port (leave --port out for a free one), or "
            f"stop {held.ref} first (%model_deploy --stop {held.ref})")
    if host is not None and _same_host(host) != _same_host(record.host):
        raise DeployError(
            f"port {record.port} listens on {record.host}, not {host}; pass --host {record.host} "
            "to add to it, or choose another --port")


def _same_host(host: str) -> str:
    return "127.0.0.1" if host == "localhost" else host


def _check_artifacts(v: Any, path: str) -> None:
    """Refuse a version whose files no longer match the digests recorded when it was
    committed, before the alias moves."""
    from ..digests import verify
    from ..versions import all_tags

    verify(path, all_tags(v), what=v.ref)


def _move_alias(v: Any, alias: str, message: str) -> Any:
    from ..aliases import set_alias

    return set_alias(v.ref, alias, message=message or "deployed", force=True, kind="deploy")


def _restore_alias(v: Any, alias: str, previous: int | None, moved: Any,
                   exc: BaseException) -> None:
    """Put the alias back where it was after a deploy that failed once it had moved."""
    from ..aliases import delete_alias, set_alias
    from ..errors import first_line

    if not getattr(moved, "changed", True):
        return
    why = f"deploy of {v.ref} failed: {first_line(exc)}"
    with contextlib.suppress(Exception):  # the deploy's own error matters more
        if previous is None:
            delete_alias(v.name, alias, message=why)
        else:
            set_alias(f"{v.name}/{previous}", alias, message=why, force=True, kind="deploy")


def _forget(dep: Deployment, name: str) -> None:
    """Take a model whose version never answered out of its server's record (and stop a
    server that served nothing else)."""
    if dep.record is None:
        return
    folder = Path(dep.record).parent
    with R.locked(folder), contextlib.suppress(OSError, ValueError):
        record = R.read(dep.record)
        keep = [m for m in record.models if m.name != name]
        if keep:
            record.models = keep
            R.write(record)
            return
        _process.terminate(record.pid)
        Path(dep.record).unlink(missing_ok=True)
        record.path.with_suffix(".log").unlink(missing_ok=True)  # type: ignore[union-attr]


def _follow(dep: Deployment, alias: str) -> Deployment:
    """Have the server follow ``alias`` for the model it serves as a version."""
    assert dep.record is not None
    folder = Path(dep.record).parent
    with R.locked(folder):
        record = R.read(dep.record)
        for m in record.models:
            if m.name == dep.name:
                m.alias = alias
        R.write(record)
    dep.alias = alias
    # so no alias move made after this returns is missed by the server
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        health = _health(record)
        if health is None:
            break
        if any(m.get("name") == dep.name and m.get("alias") == alias
               for m in health.get("models", [])):
            break
        time.sleep(0.02)
    return dep


def _place(folder: Path, store: Any, spec: ModelSpec, *, port: int | None, host: str,
           token: str | None, detach: bool, max_body: int | None,
           workers: int | None) -> Deployment:
    """Add ``spec`` to a running server, restart a dead one, or start a new one."""
    record = _target(R.read_all(folder), spec.name, spec.alias, port)
    if record is None:
        port = int(port) if port is not None else free_port(host if ":" not in host else "::1")
        record = DeploymentRecord(host=host, port=port, store=store.uri, models=[spec], token=token,
                                  detached=detach, max_body=max_body or DEFAULT_MAX_BODY,
                                  workers=int(workers or 1), path=folder / f"{port}.json")
        return _start(record, store)
    alive = _check_target(record, token, workers)
    names = record.names
    if spec.name in names:
        record.models[names.index(spec.name)] = spec
    else:
        record.models.append(spec)
    if alive:
        R.write(record)
        return _find(record, spec.name)
    record.stopped = record.stopped_at = None
    record.detached = detach
    if token:
        record.token = token
    if workers is not None:
        record.workers = int(workers)
    return _start(record, store)


def _target(records: list[DeploymentRecord], name: str, alias: str | None,
            port: int | None) -> DeploymentRecord | None:
    """The server a deployment goes to: the one on ``port``, else the one already serving
    ``name@alias``; None for a new server."""
    if port is not None:
        return next((r for r in records if r.port == int(port)), None)
    return next((r for r in records if any(m.name == name and m.alias == alias for m in r.models)),
                None)


def _check_target(record: DeploymentRecord, token: str | None, workers: int | None) -> bool:
    """Whether the record's server runs; refuses options a running server cannot take.

    Raises:
        DeployError: another token, or another worker count, than the running server's.
    """
    if token and record.token and token != record.token:
        raise DeployError(f"port {record.port} already serves with another token; "
                          "leave --token out to use the server's own")
    alive = _process.pid_alive(record.pid) and _health(record) is not None
    running = record.workers
    if alive and workers is not None and int(workers) != running:
        raise DeployError(
            f"port {record.port} already runs {running} worker{'s' if running > 1 else ''}; "
            f"stop it first (%model_deploy --stop {record.port}) to change --workers")
    return alive


def _find(record: DeploymentRecord, name: str) -> Deployment:
    for d in _deployments_of(record, _health(record)):
        if d.name == name:
            return d
    raise DeployError(f"{name} is not in {record.path}")


def _start(record: DeploymentRecord, store: Any) -> Deployment:
    """Start the record's server and return its first model once the server answers.

    Raises:
        DeployError: the port is taken, or the server died or stayed silent.
    """
    _wait_for_port(record)
    assert record.path is not None
    record.started = time.time()
    record.pid = None
    record.log = str(record.path.with_suffix(".log"))
    record.store = store.uri
    R.write(record)
    proc = _launch(record, server_env(store.uri))
    record.pid = proc.pid
    R.write(record)
    return _await_answer(record, proc)


def _wait_for_port(record: DeploymentRecord) -> None:
    """Return once the record's port is free (a server that just died can hold it a moment).

    Raises:
        DeployError: another program holds it.
    """
    deadline = time.monotonic() + (5.0 if record.pid else 0.0)
    while not _process.port_free(record.host, record.port) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not _process.port_free(record.host, record.port):
        raise DeployError(
            f"port {record.port} on {record.host} is in use by another program; choose another "
            "with --port (or leave --port out for a free one)")


def _launch(record: DeploymentRecord, env: dict[str, str]) -> subprocess.Popen | Forked:
    """The server process: forked by the kernel's warm starter (which skips seconds of
    imports), else a fresh one; it watches this kernel unless detached."""
    assert record.path is not None and record.log is not None
    extra = [] if record.detached else ["--parent", str(os.getpid())]
    warm = _warm.current()
    pid = warm.spawn(server_args(record.path, *extra), env, record.log) if warm is not None else None
    if pid:
        return Forked(pid)
    with open(record.log, "ab") as logf:
        proc = subprocess.Popen(server_command(record.path, *extra), stdin=subprocess.DEVNULL,
                                stdout=logf, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, close_fds=True)
    _process.children[proc.pid] = proc
    return proc


def _await_answer(record: DeploymentRecord, proc: subprocess.Popen | Forked) -> Deployment:
    """Return once the server answers and follows its alias (at once for a sqlite store; other
    stores wait for MLflow's import in the server), so no alias move is missed.

    Raises:
        DeployError: the server ended, or did not answer within ``START_TIMEOUT``.
    """
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            _process.children.pop(proc.pid, None)
            record.stopped = "failed to start"
            R.write(record)
            raise DeployError(f"the server for {record.models[0].name} did not start: "
                              f"{_last_line(record.log or '')}")
        health = _health(record, timeout=1.0)
        if health is not None and health.get("following", health.get("mlflow_ready")):
            return _deployments_of(record, health)[-1]
        if time.monotonic() > deadline:
            _process.terminate(proc.pid)
            raise DeployError(f"the server did not answer within {START_TIMEOUT:.0f} s; see {record.log}")
        time.sleep(0.02)


def _last_line(log_path: str) -> str:
    try:
        text = Path(log_path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "no log"
    lines = [ln for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("nbmodel serve:"):
            return ln[len("nbmodel serve:"):].strip()
    return lines[-1] if lines else "no output"


def _wait_for_version(dep: Deployment, version: int, *, strict: bool = False) -> Deployment:
    """Return once the server answers with ``version`` (or says why it cannot).

    Raises:
        DeployError: the server could not load the version; with ``strict``, also when it
            does not answer with it within ``SWITCH_TIMEOUT``.
    """
    def ready(d: Deployment) -> bool:
        if d.version == version:
            return True
        failed = d.error and "failed" in d.error
        if failed and (str(version) in d.error or d.version is None):  # type: ignore[operator]
            raise DeployError(f"{dep.name}/{version} was not deployed: {d.error}")
        return False

    live = _wait_until(dep, ready)
    if live is not None:
        return live
    why = f"still switching to version {version} after {SWITCH_TIMEOUT:.0f} s"
    if strict:
        raise DeployError(f"{dep.name}/{version} was not deployed: the server is {why}")
    dep.error = why
    return dep


# -- stop ------------------------------------------------------------------------------------
def stop(target: str | int | None = None) -> list[str]:
    """Stop serving: ``"iris"`` or ``"iris@production"`` (that model, on every server), a port,
    or ``None``/``"all"`` (everything this store runs). A server that still serves other models
    keeps running without this one.

    Args:
        target: a model (``iris``), a model and alias (``iris@production``), a port, or
            ``None``/``"all"``.

    Returns:
        What was stopped (``["iris@production at http://127.0.0.1:5001"]``).

    Raises:
        DeployError: if nothing matches.

    Example:
        >>> nbmodel.undeploy("iris")  # doctest: +SKIP
        ['iris@production at http://127.0.0.1:5001']
    """
    folder = state_dir()
    stopped: list[str] = []
    everything = target is None or str(target) == "all"
    by_port = not everything and str(target).isdigit()
    ref = None if everything or by_port else parse_ref(str(target))
    with R.locked(folder):
        for record in R.read_all(folder):
            if everything or (by_port and record.port == int(target)):  # type: ignore[arg-type]
                drop = record.models
            elif by_port:
                continue  # another port's server
            else:
                drop = [m for m in record.models if m.name == ref.name  # type: ignore[union-attr]
                        and (ref.alias is None or m.alias == ref.alias)]  # type: ignore[union-attr]
            if not drop:
                continue
            stopped += [f"{m.ref} at {_base(record.host, record.port)}" for m in drop]
            keep = [m for m in record.models if m not in drop]
            if keep and _process.pid_alive(record.pid):
                record.models = keep
                R.write(record)
                continue
            _process.terminate(record.pid)
            assert record.path is not None
            with contextlib.suppress(FileNotFoundError):
                record.path.unlink()
            with contextlib.suppress(FileNotFoundError):
                record.path.with_suffix(".log").unlink()
            with contextlib.suppress(FileNotFoundError):
                R.follow_path(record.path).unlink()
            if not record.store.startswith("sqlite:"):
                # The server may have died without saying so: clear what the team sees now.
                R.withdraw(record, time.time())
    if not stopped and not everything:
        running = ", ".join(sorted({d.ref for d in deployments()})) or "nothing"
        raise DeployError(f"nothing serves {target}; what runs: {running}")
    return stopped


def dockerfile(ref: str, directory: str | os.PathLike[str]) -> Path:
    """Write a folder that builds a container image serving the version, with MLflow's own
    ``mlflow models generate-dockerfile`` (nothing is built or run here).

    Args:
        ref: the version to package (``iris/3``, ``iris@production``).
        directory: the folder to write (made if missing).

    Returns:
        The folder, holding ``Dockerfile`` and ``model_dir``.

    Raises:
        DeployError: MLflow could not write it.

    Example:
        >>> nbmodel.serving.dockerfile("iris/3", "image")  # doctest: +SKIP
        PosixPath('/home/me/project/image')
    """
    from ..store import get_store
    from ..versions import resolve

    v = resolve(ref)
    store = get_store()
    out = Path(directory).resolve()
    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = store.uri
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    cmd = [sys.executable, "-m", "mlflow", "models", "generate-dockerfile", "-m", v.uri,
           "-d", str(out), "--env-manager", "local"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0 or not (out / "Dockerfile").is_file():
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        raise DeployError(f"mlflow could not write the Dockerfile for {v.ref}: "
                          f"{lines[-1] if lines else 'no output'}")
    return out
