"""Deployment magics: ``%model_deploy`` and ``%model_deployments``. Each parses its line, calls
:mod:`nbmodel.serving` and returns its result (an HTML card in a notebook, text elsewhere)."""

from __future__ import annotations

from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ._common import NbmodelUsageError, lookup, parse, usage_errors


@magics_class
class DeployMagics(Magics):
    @magic_arguments()
    @argument("ref", help="iris/3 (moves the alias to it), iris@production (serves the alias as it "
              "stands); with --stop: a model, NAME@ALIAS, a port, or all")
    @argument("--alias", default=None, help="the alias to move and follow (default: production)")
    @argument("--port", type=int, default=None,
              help="the port (default: the one already serving NAME@ALIAS, else a free one); a port "
              "that serves other models gets this one added at /models/NAME/invocations")
    @argument("--host", default="127.0.0.1", help="the address to bind; anything but loopback needs a token")
    @argument("--token", default=None, help="require 'Authorization: Bearer TOKEN' (made for you off loopback)")
    @argument("--detach", action="store_true", help="keep serving after this kernel ends")
    @argument("--if-better", action="store_true",
              help="move the alias only if the version scores at least as well as its holder on --eval")
    @argument("--eval", nargs=2, metavar=("X", "y"), help="the data --if-better scores on")
    @argument("--force", action="store_true", help="deploy a retired version, or one --if-better refused")
    @argument("-m", "--message", default="", help="why, kept in the alias's audit trail")
    @argument("--max-body", type=int, default=None, help="the largest request body in bytes (default 10 MB)")
    @argument("--workers", type=int, default=None,
              help="worker processes sharing the port (default 1; each holds the models)")
    @argument("--dockerfile", metavar="DIR", default=None,
              help="write DIR with a Dockerfile that serves the version (mlflow models "
              "generate-dockerfile); serves nothing here")
    @argument("--stop", action="store_true", help="stop serving REF")
    @line_magic
    @usage_errors
    def model_deploy(self, line: str = "") -> Any:
        """Serve a version over MLflow's scoring protocol, following NAME@ALIAS.

        Points the alias at the version (kept in the audit trail), starts a server process (or
        reuses the one already serving the alias, which switches to the new version without
        dropping a request) and returns the deployment: URL and a ready curl line.

        Example: %model_deploy iris/3      %model_deploy iris/4 --if-better --eval X_test y_test
                 %model_deploy wine@production --port 5001      %model_deploy --stop iris
        """
        from .. import serving

        args = parse(self.model_deploy, line)
        if args.stop:
            stopped = serving.stop(args.ref)
            print("stopped " + (", ".join(stopped) if stopped else "nothing (no deployments)"))
            return None
        if args.dockerfile:
            folder = serving.dockerfile(args.ref, args.dockerfile)
            print(f"wrote {folder}/Dockerfile: build it with docker build -t {_image(args.ref)} {folder}")
            return None
        if args.if_better and not args.eval:
            raise NbmodelUsageError("--if-better needs the data to score on: --eval X_test y_test", "usage")
        if args.eval and not args.if_better:
            raise NbmodelUsageError("--eval is for --if-better; add --if-better", "usage")
        if_better = None
        if args.if_better:
            if_better = (lookup(self.shell, args.eval[0]), lookup(self.shell, args.eval[1]))
        return serving.deploy(args.ref, alias=args.alias, port=args.port, host=args.host,
                              token=args.token, detach=args.detach, if_better=if_better,
                              force=args.force, message=args.message, max_body=args.max_body,
                              workers=args.workers)

    @magic_arguments()
    @argument("name", nargs="?", help="only this model's deployments")
    @line_magic
    @usage_errors
    def model_deployments(self, line: str = "") -> Any:
        """What runs: ref, version now served, URL, uptime, requests, errors, health (also the
        servers started by other kernels, and those that died). Example: %model_deployments"""
        from ..serving import deployments

        args = parse(self.model_deployments, line)
        return deployments(args.name)


def _image(ref: str) -> str:
    import re

    return re.sub(r"[^a-z0-9_.-]+", "-", ref.lower()).strip("-") or "model"
