"""The Deployments tab: the running deployments of the model (URL, version served, health,
requests, errors), and buttons to deploy a version or alias, stop a deployment and roll its
alias back, each after a confirmation step, as ``%model_deploy`` and ``%model_rollback`` do."""

from __future__ import annotations

import html
from typing import Any

from ..errors import NbmodelError
from ._base import ActionTab, PanelContext, error_html

#: The table's columns.
HEAD = ["ref", "serving", "url", "pid", "health", "requests", "errors"]


def parse_port(text: str) -> int | None:
    """The port field: empty for the default (the port already serving the alias, else a free one).

    Args:
        text: what the user typed.

    Returns:
        The port, or None for an empty field.

    Raises:
        NbmodelError: not a TCP port.

    Example:
        >>> parse_port(" 5001 "), parse_port("")
        (5001, None)
    """
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise NbmodelError(f"the port is a number from 1 to 65535 (or empty for a free one), not {text!r}")
    return int(text)


def _row(d: Any) -> list[str]:
    def count(n: int | None) -> str:
        return "-" if n is None else str(n)

    serving = d.serving  # the split too, while a canary or shadow runs
    health = d.health + (f": {d.error}" if d.error else "")
    return [d.ref, serving, d.url, count(d.pid), health, count(d.requests), count(d.errors)]


def _served(d: Any) -> str:
    serving = f" ({d.serving})" if d.version is not None else ""
    note = f"; {d.error}" if d.error else ""
    return f"{d.ref}{serving} serving at {d.url}{note}"


class DeploymentsTab(ActionTab):
    """What serves the model now, and Deploy, Stop and Rollback buttons."""

    title = "Deployments"
    #: Errors shown in the status line: nbmodel's, and a server or port that cannot be reached.
    shown_errors = (NbmodelError, OSError)

    def __init__(self, ctx: PanelContext) -> None:
        import ipywidgets as w

        super().__init__(ctx)
        self.deployments: list[Any] = []
        self.versions: list[Any] = []
        self._text = ""
        self.header = w.HTML()
        self.table = w.Select(options=[], rows=4, layout=w.Layout(width="100%"))
        self.table.add_class("nbm-mono")
        self.refresh_btn = w.Button(description="", icon="refresh", layout=w.Layout(width="3em"),
                                    tooltip="read the deployments and their health again")
        self.target = w.Dropdown(options=[], description="deploy",
                                 tooltip="a version (moves the alias to it) or an alias as it stands")
        self.alias = w.Text(value="production", description="alias", layout=w.Layout(width="14em"))
        self.port = w.Text(value="", placeholder="free", description="port", layout=w.Layout(width="10em"))
        self.message = w.Text(value="", placeholder="why (kept in the audit trail)",
                              layout=w.Layout(width="24em"))
        self.deploy_btn = w.Button(description="Deploy", icon="rocket",
                                   tooltip="serve the chosen version or alias")
        self.stop_btn = w.Button(description="Stop", icon="stop",
                                 tooltip="stop serving the selected deployment")
        self.rollback_btn = w.Button(description="Rollback", icon="undo",
                                     tooltip="move the selected deployment's alias back; the server follows")
        self.refresh_btn.on_click(lambda _b: self._run(self._refresh_clicked))
        self.deploy_btn.on_click(lambda _b: self._run(self.ask_deploy))
        self.stop_btn.on_click(lambda _b: self._run(self.ask_stop))
        self.rollback_btn.on_click(lambda _b: self._run(self.ask_rollback))
        self.widget = w.VBox([
            w.HBox([self.header, self.refresh_btn]),
            self.table,
            w.HBox([self.stop_btn, self.rollback_btn]),
            w.HBox([self.deploy_btn, self.target, self.alias, self.port]),
            self.message,
            self.confirm_box,
            self.status,
        ])
        self.refresh()

    # -- reading ---------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the model's deployments (each server's ``/health``) and its versions again.

        An error reading them shows in the tab's header instead of raising.

        Example:
            >>> nbmodel.panel("iris").tab("Deployments").refresh()  # doctest: +SKIP
        """
        from ..display import text_table
        from ..serving import deployments

        try:
            self.deployments = list(deployments(self.ctx.name))
        except (NbmodelError, OSError) as exc:
            self.deployments = []
            self.table.options = []
            self.header.value = error_html(exc)
            self._text = str(exc)
            return
        if not self.deployments:
            self._text = (f"no deployments of {self.ctx.name}; deploy one below "
                          f"(or %model_deploy {self.ctx.name}/VERSION)")
            self.header.value = f"<b>{html.escape(self._text)}</b>"
            self.table.options = []
        else:
            n = len(self.deployments)
            self._text = f"{self.ctx.name}: {n} deployment{'s' if n != 1 else ''}"
            lines = text_table(HEAD, [_row(d) for d in self.deployments]).splitlines()
            keep = self.table.value
            self.table.options = [(line, i) for i, line in enumerate(lines[1:])]
            self.table.value = keep if keep is not None and keep < n else None
            self.table.rows = max(2, min(8, n))
            self.header.value = (f"<b>{html.escape(self._text)}</b><pre style='margin:0'>"
                                 f"{html.escape(lines[0])}</pre>")
            self._text += "\n" + "\n".join(lines)
        self._refresh_targets()

    def _refresh_targets(self) -> None:
        from ..history import log

        try:
            hist = log(self.ctx.name)
        except NbmodelError as exc:
            self.versions = []
            self.target.options = []
            self.status.value = error_html(exc)
            return
        self.versions = list(hist.versions)
        aliases = sorted({a for v in self.versions for a in v.aliases})
        options = [(f"{self.ctx.name}@{a}", f"{self.ctx.name}@{a}") for a in aliases]
        for v in hist.versions:
            if not v.retired:
                options.append((v.ref + (f"  [{', '.join(v.aliases)}]" if v.aliases else ""), v.ref))
        values = [value for _, value in options]
        current = self.target.value
        self.target.options = options
        # the alias as it stands first (a redeploy), else the newest version
        self.target.value = current if current in values else (values[0] if values else None)

    def text(self) -> str:
        """The deployments as a table, or "no deployments of NAME".

        Returns:
            The text.

        Example:
            >>> print(nbmodel.panel("iris").tab("Deployments").text())  # doctest: +SKIP
            no deployments of iris; deploy one below (or %model_deploy iris/VERSION)
        """
        return self._text

    def selected(self) -> Any:
        """The selected deployment; the only one when there is one.

        Returns:
            A :class:`nbmodel.serving.Deployment`.

        Raises:
            NbmodelError: none runs, or several and none is selected.

        Example:
            >>> nbmodel.panel("iris").tab("Deployments").selected().url  # doctest: +SKIP
            'http://127.0.0.1:5001'
        """
        if not self.deployments:
            raise NbmodelError(f"no deployments of {self.ctx.name}")
        if self.table.value is not None:
            return self.deployments[self.table.value]
        if len(self.deployments) == 1:
            return self.deployments[0]
        raise NbmodelError("select a deployment in the table")

    # -- actions ---------------------------------------------------------------------------
    def _refresh_clicked(self) -> str:
        self.refresh()
        n = len(self.deployments)
        return f"{n} deployment{'s' if n != 1 else ''}"

    def ask_deploy(self) -> None:
        """Ask, then serve the chosen version (moving the alias to it) or alias.

        Nothing changes until Confirm is clicked.

        Raises:
            NbmodelError: the model has no version to deploy, or the port field is no TCP port.
            BadReference: the alias field is no alias name.

        Example:
            >>> nbmodel.panel("iris").tab("Deployments").ask_deploy()  # doctest: +SKIP
        """
        from ..refs import check_alias, parse_ref
        from ..serving import deploy
        from ..versions import resolve

        ref = self.target.value
        if not ref:
            raise NbmodelError(f"{self.ctx.name} has no version to deploy")
        port = parse_port(self.port.value)
        where = f"on port {port}" if port is not None else "on a free port (or the one serving it)"
        message = self.message.value.strip()
        if parse_ref(ref).alias is not None:
            v = resolve(ref)
            question = f"Serve {ref} ({v.ref}) {where}?"

            def do() -> str:
                return _served(deploy(ref, port=port, message=message))
        else:
            alias = check_alias(self.alias.value.strip())
            now = next((v.ref for v in self.versions if alias in v.aliases), None)
            if now == ref:
                moves = f"{self.ctx.name}@{alias} already points to {ref}"
            else:
                moves = f"point {self.ctx.name}@{alias} at {ref} ({f'now {now}' if now else 'not set yet'})"
            question = f"Deploy {ref}: {moves}, and serve it {where}?"

            def do() -> str:
                return _served(deploy(ref, alias=alias, port=port, message=message))
        self._ask(question, do)

    def ask_stop(self) -> None:
        """Ask, then stop serving the selected deployment (its server keeps other models).

        Raises:
            NbmodelError: none runs, or several and none is selected.

        Example:
            >>> nbmodel.panel("iris").tab("Deployments").ask_stop()  # doctest: +SKIP
        """
        from ..serving import stop

        d = self.selected()
        self._ask(f"Stop serving {d.ref} at {d.url}?",
                  lambda: "stopped " + ", ".join(stop(d.ref)))

    def ask_rollback(self) -> None:
        """Ask, then move the selected deployment's alias back; its server follows the alias.

        Raises:
            NbmodelError: no deployment is selected, or the selected one serves a fixed version.

        Example:
            >>> nbmodel.panel("iris").tab("Deployments").ask_rollback()  # doctest: +SKIP
        """
        from ..aliases import rollback

        d = self.selected()
        if d.alias is None:
            raise NbmodelError(f"{d.ref} serves a fixed version, not an alias: deploy another "
                               "version instead")
        serving = f"{d.name}/{d.version}" if d.version is not None else "its version"
        message = self.message.value.strip()
        self._ask(f"Roll {d.ref} back from {serving} to the version that held it before? "
                  "The server follows the alias.",
                  lambda: str(rollback(d.name, alias=d.alias, message=message)))

