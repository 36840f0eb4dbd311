"""Deployment magics: ``%model_deploy`` and ``%model_deployments``. Each parses its line, calls
:mod:`nbmodel.serving` and returns its result (an HTML card in a notebook, text elsewhere)."""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class

from ..commands import run
from ._common import NbmodelUsageError, declared, lookup, shell_of


@magics_class
class DeployMagics(Magics):
    @line_magic
    @declared
    def model_deploy(self, args: argparse.Namespace) -> Any:
        """Serve a version over MLflow's scoring protocol, following NAME@ALIAS.

        Points the alias at the version (kept in the audit trail), starts a server process (or
        reuses the one already serving the alias, which switches to the new version without
        dropping a request) and returns the deployment: URL and a ready curl line.

        With --chain it serves a pipeline named REF instead: the models in order, each one's
        predictions the next one's input, each following its own alias; no alias moves.

        Example: %model_deploy iris/3      %model_deploy iris/4 --if-better --eval X_test y_test
                 %model_deploy wine@production --port 5001      %model_deploy --stop iris
                 %model_deploy pipeline --chain features@production classifier@production
        """
        from .. import serving

        if args.stop:
            stopped = serving.stop(args.ref)
            print("stopped " + (", ".join(stopped) if stopped else "nothing (no deployments)"))
            return None
        if args.chain:
            return _deploy_chain(args)
        if args.dockerfile:
            folder = serving.dockerfile(args.ref, args.dockerfile)
            print(f"wrote {folder}/Dockerfile: build it with docker build -t {_image(args.ref)} {folder}")
            return None
        if args.kserve:
            return _write_kserve(args)
        if args.steps:
            raise NbmodelUsageError("--steps is for --kserve; on this machine use %model_canary", "usage")
        if args.if_better and not args.eval:
            raise NbmodelUsageError("--if-better needs the data to score on: --eval X_test y_test", "usage")
        if args.eval and not args.if_better:
            raise NbmodelUsageError("--eval is for --if-better; add --if-better", "usage")
        if_better = None
        if args.if_better:
            if_better = (lookup(shell_of(self), args.eval[0]), lookup(shell_of(self), args.eval[1]))
        return serving.deploy(args.ref, alias=args.alias, port=args.port, host=args.host,
                              token=args.token, detach=args.detach, if_better=if_better,
                              force=args.force, message=args.message, max_body=args.max_body,
                              workers=args.workers)

    @line_magic
    @declared
    def model_deployments(self, args: argparse.Namespace) -> Any:
        """What runs: ref, version now served, URL, uptime, requests, errors, health (also the
        servers started by other kernels, and those that died). Example: %model_deployments"""
        return run("deployments", args)


def _deploy_chain(args: argparse.Namespace) -> Any:
    from .. import serving

    others = [flag for flag, given in (("--alias", args.alias), ("--if-better", args.if_better),
                                       ("--eval", args.eval), ("--force", args.force),
                                       ("--message", args.message), ("--dockerfile", args.dockerfile),
                                       ("--kserve", args.kserve), ("--steps", args.steps)) if given]
    if others:
        raise NbmodelUsageError(f"{', '.join(others)} do{'es' if len(others) == 1 else ''} not go "
                                "with --chain: a pipeline serves its stages' aliases as they stand",
                                "usage")
    return serving.deploy(args.ref, chain=args.chain, port=args.port, host=args.host,
                          token=args.token, detach=args.detach, max_body=args.max_body,
                          workers=args.workers)


def _image(ref: str) -> str:
    import re

    return re.sub(r"[^a-z0-9_.-]+", "-", ref.lower()).strip("-") or "model"


def _write_kserve(args: argparse.Namespace) -> Any:
    from ..serving import _kserve

    return _kserve.kserve(args.ref, args.kserve, steps=args.steps)
