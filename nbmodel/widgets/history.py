"""The History tab: the model's versions as a table; one selected shows its card, two their
diff; Checkout, Set alias, Rollback and Retire do what the magics do, alias moves and
retirement after a confirmation step."""

from __future__ import annotations

import html
from typing import Any

from ..errors import NbmodelError
from ._base import ActionTab, PanelContext, error_html


class HistoryTab(ActionTab):
    """Versions as a table; card or diff of the selection; checkout, alias, rollback, retire."""

    title = "History"

    def __init__(self, ctx: PanelContext) -> None:
        import ipywidgets as w

        super().__init__(ctx)
        self.versions: list[Any] = []
        self._text = ""
        self.header = w.HTML()
        self.table = w.SelectMultiple(options=[], rows=8, layout=w.Layout(width="100%"))
        self.table.add_class("nbm-mono")
        self.detail = w.HTML()
        self.var = w.Text(value=_var_name(ctx.name), description="as", layout=w.Layout(width="14em"))
        self.alias = w.Text(value="production", description="alias", layout=w.Layout(width="14em"))
        self.message = w.Text(value="", placeholder="why (kept in the audit trail)",
                              layout=w.Layout(width="24em"))
        self.checkout_btn = w.Button(description="Checkout", icon="download",
                                     tooltip="load the selected version into a variable")
        self.alias_btn = w.Button(description="Set alias", icon="tag",
                                  tooltip="point the alias at the selected version")
        self.rollback_btn = w.Button(description="Rollback", icon="undo",
                                     tooltip="move the alias back (to the selected version, if one)")
        self.retire_btn = w.Button(description="Retire", icon="archive",
                                   tooltip="archive the selected version")
        self.refresh_btn = w.Button(description="", icon="refresh", tooltip="re-read the store",
                                    layout=w.Layout(width="3em"))

        self.table.observe(self._on_select, names="value")
        self.checkout_btn.on_click(lambda _b: self._run(self.checkout))
        self.alias_btn.on_click(lambda _b: self._run(self.ask_alias))
        self.rollback_btn.on_click(lambda _b: self._run(self.ask_rollback))
        self.retire_btn.on_click(lambda _b: self._run(self.ask_retire))
        self.refresh_btn.on_click(lambda _b: self._run(self._refresh_clicked))
        style = w.HTML("<style>.nbm-mono select{font-family:var(--jp-code-font-family,monospace);"
                       "font-size:var(--jp-code-font-size,12px);white-space:pre}</style>")
        self.widget = w.VBox([
            style,
            w.HBox([self.header, self.refresh_btn]),
            self.table,
            w.HBox([self.checkout_btn, self.var]),
            w.HBox([self.alias_btn, self.rollback_btn, self.alias, self.retire_btn]),
            self.message,
            self.confirm_box,
            self.status,
            self.detail,
        ])
        self.refresh()

    # -- reading ---------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the model's versions into the table, keeping the selection that still exists.

        An error reading them shows in the tab's header instead of raising.

        Example:
            >>> nbmodel.panel("iris").tab("History").refresh()  # doctest: +SKIP
        """
        from ..display import text_table
        from ..evaluate import key_metrics
        from ..history import _marks, _one_line, log
        from ..modeltests import summary_text
        from ..versions import _fmt

        try:
            hist = log(self.ctx.name)
        except NbmodelError as exc:
            self.versions = []
            self.table.options = []
            self.header.value = error_html(exc)
            self._text = str(exc)
            return
        self.versions = list(hist.versions)
        metrics = hist.metric_names
        any_tests = any(v.tests for v in self.versions)
        head = ["version", "aliases", "message", *metrics, *(["tests"] if any_tests else []),
                "parent", "retired"]
        rows = []
        for v in self.versions:
            km = {**key_metrics(v.metrics, v.task, n=10), **v.metrics}
            parent = (v.parent or "") + (f" + {v.merge_parent}" if v.merge_parent else "")
            tests = [summary_text(v.tests)] if any_tests else []
            rows.append([str(v.version), _marks(v), _one_line(v.message or "", 40),
                         *[_fmt(km[m]) if m in km else "" for m in metrics], *tests,
                         parent, "retired" if v.retired else ""])
        lines = text_table(head, rows).splitlines() if rows else [" ".join(head)]
        heads = _branch_line(self.ctx.name)
        self._text = "\n".join([hist._title(), *([heads] if heads else []), *lines])
        keep = [n for n in self.table.value if any(v.version == n for v in self.versions)]
        self.table.options = [(line, v.version) for line, v in zip(lines[1:], self.versions)]
        self.table.rows = max(2, min(12, len(self.versions)))
        self.table.value = tuple(keep)
        shown = f"<div class='nbm-branches'>{html.escape(heads)}</div>" if heads else ""
        self.header.value = (f"<b>{html.escape(hist._title())}</b>{shown}<pre style='margin:0'>"
                             f"{html.escape(lines[0])}</pre>")
        self._on_select()

    def selected(self) -> list[str]:
        """The selected versions' refs, oldest first.

        Returns:
            The refs (``["iris/2", "iris/3"]``); empty when none is selected.

        Example:
            >>> nbmodel.panel("iris").tab("History").selected()  # doctest: +SKIP
            ['iris/2', 'iris/3']
        """
        return [f"{self.ctx.name}/{n}" for n in sorted(self.table.value)]

    def _on_select(self, _change: Any = None) -> None:
        from ..diffs import diff
        from ..versions import resolve

        refs = self.selected()
        try:
            if len(refs) == 1:
                self.detail.value = resolve(refs[0])._repr_html_()
            elif len(refs) == 2:
                self.detail.value = diff(refs[0], refs[1])._repr_html_()
            elif refs:
                self.detail.value = "<i>select one version for its card, two for their diff</i>"
            else:
                self.detail.value = ""
        except NbmodelError as exc:
            self.detail.value = error_html(exc)

    def text(self) -> str:
        """The history's title and table, without ages, or the error that reading it gave.

        Returns:
            The text.

        Example:
            >>> print(nbmodel.panel("iris").tab("History").text())  # doctest: +SKIP
        """
        # The table without ages: a notebook's stored text stays the same from run to run.
        return self._text

    # -- actions ---------------------------------------------------------------------------
    def _one(self, what: str) -> str:
        refs = self.selected()
        if len(refs) != 1:
            raise NbmodelError(f"select one version to {what}")
        return refs[0]

    def _refresh_clicked(self) -> str:
        self.refresh()
        return f"{len(self.versions)} version{'s' if len(self.versions) != 1 else ''}"

    def checkout(self) -> str:
        """Load the selected version into the notebook variable named in the ``as`` field.

        Returns:
            The status line: what was checked out as which variable.

        Raises:
            NbmodelError: not exactly one version is selected, or the name is no valid variable.

        Example:
            >>> nbmodel.panel("iris").tab("History").checkout()  # doctest: +SKIP
            'iris/3 checked out as iris; commit it with %model_commit iris'
        """
        from ..versions import checkout

        ref = self._one("check out")
        var = self.var.value.strip()
        if not var.isidentifier():
            raise NbmodelError(f"{var!r} is not a valid variable name")
        self.ctx.namespace[var] = checkout(ref)
        return f"{ref} checked out as {var}; commit it with %model_commit {var}"

    def ask_alias(self) -> None:
        """Ask, then point the alias of the alias field at the selected version.

        Raises:
            NbmodelError: not exactly one version is selected, or the alias points to it already.
            BadReference: the alias field is no alias name.

        Example:
            >>> nbmodel.panel("iris").tab("History").ask_alias()  # doctest: +SKIP
        """
        from ..aliases import set_alias
        from ..refs import check_alias
        from ..versions import resolve

        ref = self._one("give the alias")
        alias = check_alias(self.alias.value.strip())
        v = resolve(ref)
        now = next((x.ref for x in self.versions if alias in x.aliases), None)
        if now == v.ref:
            raise NbmodelError(f"{v.name}@{alias} already points to {v.ref}")
        where = f" (now {now})" if now else " (not set yet)"
        self._ask(f"Point {v.name}@{alias} at {v.ref}{where}?",
                  lambda: str(set_alias(v.ref, alias, message=self.message.value.strip())))

    def ask_rollback(self) -> None:
        """Ask, then roll the alias back: to the selected version, or with none selected to the
        version that held it before.

        Raises:
            NbmodelError: several versions are selected, or the model has no such alias.
            BadReference: the alias field is no alias name.

        Example:
            >>> nbmodel.panel("iris").tab("History").ask_rollback()  # doctest: +SKIP
        """
        from ..aliases import rollback
        from ..refs import check_alias

        alias = check_alias(self.alias.value.strip())
        refs = self.selected()
        if len(refs) > 1:
            raise NbmodelError("select no version (back to the previous holder) or one (--to)")
        to = int(refs[0].rsplit("/", 1)[1]) if refs else None
        now = next((x.ref for x in self.versions if alias in x.aliases), None)
        if now is None:
            raise NbmodelError(f"{self.ctx.name} has no alias {alias!r} to roll back")
        target = f"to {refs[0]}" if refs else "to the version that held it before"
        self._ask(f"Roll {self.ctx.name}@{alias} back from {now} {target}?",
                  lambda: str(rollback(self.ctx.name, alias=alias, to=to,
                                       message=self.message.value.strip())))

    def ask_retire(self) -> None:
        """Ask, then retire the selected version.

        Raises:
            NbmodelError: not exactly one version is selected, it is retired already, or it holds
                an alias.

        Example:
            >>> nbmodel.panel("iris").tab("History").ask_retire()  # doctest: +SKIP
        """
        from ..versions import retire

        ref = self._one("retire")
        v = next(x for x in self.versions if x.ref == ref)
        if v.retired:
            raise NbmodelError(f"{ref} is already retired")
        if v.aliases:
            raise NbmodelError(f"{ref} holds the alias {', '.join(v.aliases)}; move it first "
                               "(Set alias on another version, or Rollback)")
        self._ask(f"Retire {ref}? It stays in history; deploy and alias will refuse it.",
                  lambda: f"{retire(ref, message=self.message.value.strip()).ref} retired")


def _var_name(name: str) -> str:
    import re

    var = re.sub(r"\W", "_", name)
    return var if var.isidentifier() else f"model_{var}"


def _branch_line(name: str) -> str:
    """``branches: main iris/3, experiment iris/2 (1 ahead)``, once the model has branches
    besides main (until then main is simply the newest version)."""
    from ..branches import branches

    try:
        found = list(branches(name))
    except NbmodelError:
        return ""
    if len(found) < 2:
        return ""
    parts = [f"{b.name} {name}/{b.head}" + (f" ({b.ahead} ahead)" if b.ahead else "") for b in found]
    return "branches: " + ", ".join(parts)
