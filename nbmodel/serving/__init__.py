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
          alias: str | None = None, max_body: int | None = None, workers: int = 1) -> int:
    """Serve ``ref`` until interrupted (``nbmodel serve`` from a terminal).

    ``iris@production`` follows the alias; ``iris/3`` serves that version and moves no alias.
    The server is listed by ``%model_deployments`` while it runs. This process becomes the
    server (``exec``), so the server starts without the registry client this process opened;
    where the user's warm starter runs, it forks the server (which answers within a second)
    onto this terminal and this process waits for it.

    Args:
        ref: ``iris@production`` (follows the alias) or ``iris/3`` (that version).
        port: the port (default: a free one).
        host: the address; anything but loopback needs a token (made if not given).
        token: require ``Authorization: Bearer TOKEN`` on every request.
        alias: the alias to follow when ``ref`` names neither a version nor an alias.
        max_body: the largest request body in bytes (413 above it).
        workers: worker processes sharing the port.

    Returns:
        0 once a forked server ended; otherwise nothing: this process becomes the server.

    Raises:
        RetiredVersion: ``ref`` names a retired version.
        DeployError: a bad worker count or body limit, or the port is taken.

    Example:
        >>> nbmodel.serving.serve("iris@production", port=5001)  # doctest: +SKIP
        serving iris@production (iris/3) at http://127.0.0.1:5001/invocations
    """
    import secrets
    import time

    from ..refs import parse_ref
    from ..store import get_store
    from ..versions import resolve
    from . import _deploy, _process, _warm
    from . import _records as R

    r = parse_ref(ref)
    if alias and r.version is None and r.alias is None:
        r = parse_ref(f"{r.name}@{alias}")
    v = resolve(r)
    if v.retired and r.alias is None:
        from ..errors import RetiredVersion

        raise RetiredVersion(f"{v.ref} is retired; serve another version")
    if not 1 <= workers <= _deploy.MAX_WORKERS:
        raise DeployError(f"--workers takes a count from 1 to {_deploy.MAX_WORKERS}, not {workers}")
    _deploy.check_max_body(max_body)
    if host not in _deploy.LOOPBACK and not token:
        token = secrets.token_urlsafe(24)
    store = get_store()
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
        local = _deploy._local_dir(store, v.name, v.version)
        spec = R.ModelSpec(name=v.name, alias=r.alias, version=v.version, path=local,
                           example=_deploy._serving_example(local))
        record = R.DeploymentRecord(host=host, port=port, store=store.uri, models=[spec],
                                    pid=os.getpid(), token=token, detached=True,
                                    max_body=max_body or R.DEFAULT_MAX_BODY, workers=workers,
                                    started=time.time(), path=path)
        R.write(record)
    d = _deploy._deployments_of(record, None)[0]
    d.version = v.version
    print(f"serving {d.ref} ({v.ref}) at {d.url}" + (f"\n  token: {token}" if token else ""), flush=True)
    sys.stderr.flush()
    try:  # forked by the user's warm starter if one runs, else this process becomes the server
        return _warm.run_server(path, _process.server_env(store.uri))
    except OSError:
        path.unlink(missing_ok=True)
        raise

