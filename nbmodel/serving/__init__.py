"""Serving: ``%model_deploy``, ``%model_deployments`` and ``nbmodel serve``.

A deployment is a separate server process that speaks MLflow's scoring protocol
(``POST /invocations`` with ``dataframe_split``, ``dataframe_records``, ``instances`` or
``inputs``, JSON or CSV; ``GET /ping``, ``/health``, ``/version``), adds ``GET /metrics`` in
Prometheus format, serves several models on one port (``/models/NAME/invocations``), and
follows its alias: after a rollback it loads the new version beside the old one and swaps
atomically. See ``_server`` for the process, ``_models`` for the request path, ``_deploy``
for starting, listing and stopping from a kernel, ``_rollout`` for canary and shadow rollouts,
``_records`` for the record a kernel and its server share, ``_process`` for starting and
checking processes, and ``_warm`` for the helper that forks servers with their imports done.

Importing this package imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

from ._deploy import (
    DeployError,
    Deployment,
    Deployments,
    NotBetter,
    check_better,
    deploy,
    deployments,
    dockerfile,
    state_dir,
    stop,
)
from ._rollout import RolloutReport, canary, shadow

__all__ = ["Deployment", "Deployments", "DeployError", "NotBetter", "RolloutReport", "canary",
           "check_better", "deploy", "deployments", "dockerfile", "serve", "shadow", "state_dir",
           "stop"]


def serve(ref: str, *, port: int | None = None, host: str = "127.0.0.1", token: str | None = None,
          alias: str | None = None, max_body: int | None = None, workers: int = 1,
          chain: list[str] | None = None) -> int:
    """Serve ``ref`` until interrupted (``nbmodel serve`` from a terminal).

    ``iris@production`` follows the alias; ``iris/3`` serves that version and moves no alias;
    ``pipeline`` with ``chain`` serves a pipeline of those models (as ``%model_deploy pipeline
    --chain``). The server is listed by ``%model_deployments`` while it runs. This process
    becomes the server (``exec``), so the server starts without the registry client this
    process opened; where the user's warm starter runs, it forks the server (which answers
    within a second) onto this terminal and this process waits for it. With a sqlite store,
    what to serve is read from the store's file without importing MLflow, so the starter is
    asked within a fraction of a second.

    Args:
        ref: ``iris@production`` (follows the alias) or ``iris/3`` (that version); with
            ``chain``, the pipeline's plain name.
        port: the port (default: a free one).
        host: the address; anything but loopback needs a token (made if not given).
        token: require ``Authorization: Bearer TOKEN`` on every request.
        alias: the alias to follow when ``ref`` names neither a version nor an alias.
        max_body: the largest request body in bytes (413 above it).
        workers: worker processes sharing the port.
        chain: the stages of a pipeline, each ``NAME@ALIAS``, called in order.

    Returns:
        0 once a forked server ended; otherwise nothing: this process becomes the server.

    Raises:
        RetiredVersion: ``ref`` names a retired version.
        DeployError: a bad worker count, body limit or chain, or the port is taken.

    Example:
        >>> nbmodel.serving.serve("iris@production", port=5001)  # doctest: +SKIP
        serving iris@production (iris/3) at http://127.0.0.1:5001/invocations
    """
    import secrets
    import time

    from ..refs import parse_ref
    from ..store import get_store
    from . import _deploy, _process, _warm
    from . import _records as R

    if not 1 <= workers <= _deploy.MAX_WORKERS:
        raise DeployError(f"--workers takes a count from 1 to {_deploy.MAX_WORKERS}, not {workers}")
    _deploy.check_max_body(max_body)
    store = get_store()
    if chain:
        stages = _deploy.pipeline_stages(ref, chain, store)
        spec = R.ModelSpec(name=parse_ref(ref).name, chain=stages,
                           example=_deploy._serving_example(stages[0].path))
        served = " -> ".join(f"{s.name}/{s.version}" for s in stages)
    else:
        r = parse_ref(ref)
        if alias and r.version is None and r.alias is None:
            r = parse_ref(f"{r.name}@{alias}")
        name, number, local = _what_to_serve(store, r)
        spec = R.ModelSpec(name=name, alias=r.alias, version=number, path=local,
                           example=_deploy._serving_example(local))
        served = f"{name}/{number}"
    if host not in _deploy.LOOPBACK and not token:
        token = secrets.token_urlsafe(24)
    port = port or _process.free_port(host if ":" not in host else "::1")
    folder = _deploy.state_dir(store)
    path = folder / f"{port}.json"
    with R.locked(folder):
        with contextlib.suppress(OSError, ValueError):
            if _process.pid_alive(R.read(path).pid):
                raise DeployError(f"port {port} already serves nbmodel models; stop them first "
                                  f"(%model_deploy --stop {port}) or choose another --port")
        if not _process.port_free(host, port):
            raise DeployError(f"port {port} on {host} is in use by another program; "
                              "choose another with --port")
        record = R.DeploymentRecord(host=host, port=port, store=store.uri, models=[spec],
                                    pid=os.getpid(), token=token, detached=True,
                                    max_body=max_body or R.DEFAULT_MAX_BODY, workers=workers,
                                    started=time.time(), path=path)
        R.write(record)
    d = _deploy._deployments_of(record, None)[0]
    d.version = spec.version
    print(f"serving {d.ref} ({served}) at {d.url}" + (f"\n  token: {token}" if token else ""), flush=True)
    sys.stderr.flush()
    try:  # forked by the user's warm starter if one runs, else this process becomes the server
        return _warm.run_server(path, _process.server_env(store.uri))
    except OSError:
        path.unlink(missing_ok=True)
        raise


def _what_to_serve(store: Any, r: Any) -> tuple[str, int, str | None]:
    """``(name, version, local model folder or None)`` of a reference to serve. A sqlite
    store's file answers an alias or a version directly (milliseconds); anything else, or
    anything it cannot say, goes through the registry (which imports MLflow: seconds).

    Raises:
        RetiredVersion: a version named by number is retired.
    """
    from ..errors import RetiredVersion
    from ._sqlite import SqliteRegistry

    reg = SqliteRegistry.of(store.uri)
    if reg is not None and (r.alias is not None or r.version is not None):
        number = r.version if r.version is not None else reg.alias_version(r.name, r.alias)
        local = reg.model_dir(r.name, number) if number is not None else None
        retired = reg.retired(r.name, number) if number is not None and local else None
        if number is not None and local is not None and retired is not None:
            if retired and r.alias is None:
                raise RetiredVersion(f"{r.name}/{number} is retired; serve another version")
            return r.name, int(number), local
    from ..versions import resolve
    from . import _deploy

    v = resolve(r, store=store)
    if v.retired and r.alias is None:
        raise RetiredVersion(f"{v.ref} is retired; serve another version")
    return v.name, v.version, _deploy._local_dir(store, v.name, v.version)
