"""The model panel: ``nbmodel.panel("iris")`` and ``%model_panel iris``.

A plain ipywidgets 8 ``Tab`` (no front-end code of its own, so it works in JupyterLab,
Notebook 7 and VS Code) whose tabs are small separate classes built by factories:

* History: the versions as a table; one selected shows its card, two their diff; Checkout,
  Set alias, Rollback and Retire do what the magics do, alias moves and retirement after a
  confirmation step.
* Compare: versions and eval variables from the user's namespace, Run, and the same result
  as ``%model_compare``, with a progress bar.
* Monitor and Deployments: contributed by ``nbmodel.monitoring`` and ``nbmodel.serving``
  when those modules define ``panel_tab(name) -> ipywidgets.Widget``.

Adding a tab is one call: ``register_tab("Notes", factory)`` where ``factory(context)``
returns a :class:`PanelTab` (or any widget). Where widgets cannot render, the panel shows as
text: the model's history and the magics that do the same.
"""

from __future__ import annotations

import html
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import NbmodelError

#: Modules that contribute a tab through ``panel_tab(name)``, in tab order after the built-ins.
EXTERNAL_TABS: list[tuple[str, str]] = [("Monitor", "nbmodel.monitoring"),
                                        ("Deployments", "nbmodel.serving")]
#: Variable names preselected in the Compare tab when they exist.
EVAL_X_NAMES = ("X_test", "X_eval", "X_val", "X_valid", "X")
EVAL_Y_NAMES = ("y_test", "y_eval", "y_val", "y_valid", "y")

_HIDDEN = {"display": "none"}


def _error_html(exc: BaseException) -> str:
    return ("<span style='color:var(--jp-error-color1,#b22)'>"
            f"{html.escape(str(exc))}</span>")


def _ok_html(text: str) -> str:
    return f"<span style='color:var(--jp-success-color1,#2a7a2a)'>{html.escape(text)}</span>"


@dataclass
class PanelContext:
    """What a tab factory gets: the model's name, the user's namespace and the panel."""

    name: str
    namespace: dict[str, Any]
    panel: ModelPanel | None = None

    def changed(self, source: PanelTab | None = None) -> None:
        """Tell every other tab that the store changed (an alias moved, a version retired)."""
        if self.panel is not None:
            self.panel.refresh(exclude=source)


class PanelTab:
    """One tab: a title, a widget, and ``refresh()`` for when the store changed."""

    title = "Tab"

    def __init__(self, ctx: PanelContext) -> None:
        self.ctx = ctx
        self.widget: Any = None

    def refresh(self) -> None:
        """Re-read the store; the default does nothing."""

    def text(self) -> str:
        """A short plain-text form for front ends that cannot show widgets."""
        return ""

    def close(self) -> None:
        if self.widget is not None:
            self.widget.close()


class WidgetTab(PanelTab):
    """Wraps a widget made elsewhere (``panel_tab(name)`` of monitoring and serving)."""

    def __init__(self, ctx: PanelContext, title: str, widget: Any) -> None:
        super().__init__(ctx)
        self.title = title
        self.inner = widget
        self.widget = getattr(widget, "widget", widget)

    def refresh(self) -> None:
        fn = getattr(self.inner, "refresh", None)
        if callable(fn):
            fn()


# -- History --------------------------------------------------------------------------------
class HistoryTab(PanelTab):
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
        self.question = w.HTML()
        self.confirm_btn = w.Button(description="Confirm", button_style="warning")
        self.cancel_btn = w.Button(description="Cancel")
        self.confirm_box = w.HBox([self.question, self.confirm_btn, self.cancel_btn],
                                  layout=w.Layout(**_HIDDEN))
        self.status = w.HTML()
        self._pending: Callable[[], str] | None = None

        self.table.observe(self._on_select, names="value")
        self.checkout_btn.on_click(lambda _b: self._run(self.checkout))
        self.alias_btn.on_click(lambda _b: self._run(self.ask_alias))
        self.rollback_btn.on_click(lambda _b: self._run(self.ask_rollback))
        self.retire_btn.on_click(lambda _b: self._run(self.ask_retire))
        self.confirm_btn.on_click(lambda _b: self._run(self.confirm))
        self.cancel_btn.on_click(lambda _b: self.cancel())
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
        from .display import text_table
        from .evaluate import key_metrics
        from .history import log
        from .versions import _fmt

        try:
            hist = log(self.ctx.name)
        except NbmodelError as exc:
            self.versions = []
            self.table.options = []
            self.header.value = _error_html(exc)
            self._text = str(exc)
            return
        self.versions = list(hist.versions)
        metrics = hist.metric_names
        head = ["version", "aliases", "message", *metrics, "parent", "retired"]
        rows = []
        for v in self.versions:
            km = {**key_metrics(v.metrics, v.task, n=10), **v.metrics}
            msg = (v.message or "").strip().splitlines()[0] if (v.message or "").strip() else ""
            rows.append([str(v.version), ", ".join(v.aliases), msg[:40],
                         *[_fmt(km[m]) if m in km else "" for m in metrics],
                         v.parent or "", "retired" if v.retired else ""])
        lines = text_table(head, rows).splitlines() if rows else [" ".join(head)]
        self._text = "\n".join([hist._title(), *lines])
        keep = [n for n in self.table.value if any(v.version == n for v in self.versions)]
        self.table.options = [(line, v.version) for line, v in zip(lines[1:], self.versions)]
        self.table.rows = max(2, min(12, len(self.versions)))
        self.table.value = tuple(keep)
        self.header.value = (f"<b>{html.escape(hist._title())}</b><pre style='margin:0'>"
                             f"{html.escape(lines[0])}</pre>")
        self._on_select()

    def selected(self) -> list[str]:
        """The selected versions' refs, oldest first."""
        return [f"{self.ctx.name}/{n}" for n in sorted(self.table.value)]

    def _on_select(self, _change: Any = None) -> None:
        from .diffs import diff
        from .versions import resolve

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
            self.detail.value = _error_html(exc)

    def text(self) -> str:
        # The table without ages: a notebook's stored text stays the same from run to run.
        return self._text

    # -- actions ---------------------------------------------------------------------------
    def _run(self, action: Callable[[], str | None]) -> None:
        """Run a button's action; nbmodel's errors show in the status line."""
        try:
            result = action()
        except NbmodelError as exc:
            self.status.value = _error_html(exc)
            return
        if result is not None:
            self.status.value = _ok_html(result)

    def _one(self, what: str) -> str:
        refs = self.selected()
        if len(refs) != 1:
            raise NbmodelError(f"select one version to {what}")
        return refs[0]

    def _refresh_clicked(self) -> str:
        self.refresh()
        return f"{len(self.versions)} version{'s' if len(self.versions) != 1 else ''}"

    def checkout(self) -> str:
        from .versions import checkout

        ref = self._one("check out")
        var = self.var.value.strip()
        if not var.isidentifier():
            raise NbmodelError(f"{var!r} is not a valid variable name")
        self.ctx.namespace[var] = checkout(ref)
        return f"{ref} checked out as {var}; commit it with %model_commit {var}"

    def _ask(self, question: str, do: Callable[[], str]) -> None:
        self._pending = do
        self.question.value = f"<b>{html.escape(question)}</b>"
        self.confirm_box.layout.display = "flex"
        self.status.value = ""

    def cancel(self) -> None:
        self._pending = None
        self.confirm_box.layout.display = "none"
        self.status.value = "cancelled"

    def confirm(self) -> str | None:
        do, self._pending = self._pending, None
        self.confirm_box.layout.display = "none"
        if do is None:
            return None
        result = do()
        self.refresh()
        self.ctx.changed(self)
        return result

    def ask_alias(self) -> None:
        from .aliases import set_alias
        from .refs import check_alias
        from .versions import resolve

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
        from .aliases import rollback
        from .refs import check_alias

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
        from .versions import retire

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


# -- Compare --------------------------------------------------------------------------------
def _looks_like_table(value: Any) -> bool:
    shape = getattr(value, "shape", None)
    return isinstance(shape, tuple) and len(shape) == 2 and not isinstance(value, type)


def _looks_like_target(value: Any) -> bool:
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and not isinstance(value, type):
        return len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)
    return isinstance(value, list) and bool(value) and not isinstance(value[0], (list, tuple, dict))


class CompareTab(PanelTab):
    """Pick versions and eval variables, run, and see what ``%model_compare`` shows."""

    title = "Compare"

    def __init__(self, ctx: PanelContext) -> None:
        import ipywidgets as w

        super().__init__(ctx)
        self.versions = w.SelectMultiple(options=[], rows=6, description="versions",
                                         layout=w.Layout(width="28em"))
        self.X = w.Dropdown(options=[], description="X")
        self.y = w.Dropdown(options=[], description="y")
        self.vars_btn = w.Button(description="", icon="refresh", layout=w.Layout(width="3em"),
                                 tooltip="re-read the notebook's variables")
        self.log = w.Checkbox(value=False, description="save to the store (--log)", indent=False)
        self.run_btn = w.Button(description="Compare", button_style="primary", icon="play")
        self.progress = w.IntProgress(value=0, min=0, max=1, layout=w.Layout(**_HIDDEN))
        self.status = w.HTML()
        self.result_html = w.HTML()
        self.result: Any = None
        self.vars_btn.on_click(lambda _b: self.refresh_variables())
        self.run_btn.on_click(lambda _b: self.run())
        self.widget = w.VBox([
            w.HBox([self.versions, w.VBox([w.HBox([self.X, self.vars_btn]), self.y, self.log])]),
            w.HBox([self.run_btn, self.progress]),
            self.status,
            self.result_html,
        ])
        self.refresh()

    def refresh(self) -> None:
        from .history import log

        try:
            hist = log(self.ctx.name)
        except NbmodelError as exc:
            self.versions.options = []
            self.status.value = _error_html(exc)
            return
        keep = [r for r in self.versions.value]
        opts = []
        for v in hist.versions:
            label = v.ref + (f"  [{', '.join(v.aliases)}]" if v.aliases else "")
            label += "  (retired)" if v.retired else ""
            opts.append((label, v.ref))
        self.versions.options = opts
        self.versions.value = tuple(r for r in keep if any(r == o[1] for o in opts))
        self.refresh_variables()

    def refresh_variables(self) -> None:
        ns = self.ctx.namespace
        names = [k for k in ns if not k.startswith("_")]
        xs = sorted(k for k in names if _looks_like_table(ns[k]))
        ys = sorted(k for k in names if _looks_like_target(ns[k]))
        for dd, found, preferred in ((self.X, xs, EVAL_X_NAMES), (self.y, ys, EVAL_Y_NAMES)):
            current = dd.value
            dd.options = found
            if current in found:
                dd.value = current
            else:
                dd.value = next((p for p in preferred if p in found), found[0] if found else None)

    @property
    def magic_line(self) -> str:
        refs = " ".join(self.versions.value)
        line = f"%model_compare {refs} --eval {self.X.value} {self.y.value}"
        return line + (" --log" if self.log.value else "")

    def _step(self, done: int, total: int, label: str) -> None:
        self.progress.max = total
        self.progress.value = done
        self.progress.description = f"{done}/{total}"
        self.status.value = html.escape(label)

    def run(self) -> None:
        from .comparison import compare

        try:
            refs = list(self.versions.value)
            if self.X.value is None or self.y.value is None:
                raise NbmodelError("choose the eval data: X and y variables of this notebook "
                                   "(refresh the list after defining them)")
            X = self.ctx.namespace.get(self.X.value)
            y = self.ctx.namespace.get(self.y.value)
            self.progress.value = 0
            self.progress.layout.display = "flex"
            self.result = compare(refs, X, y, log=self.log.value, progress=self._step)
        except NbmodelError as exc:
            self.status.value = _error_html(exc)
            return
        finally:
            self.progress.layout.display = "none"
        self.result_html.value = self.result._repr_html_()
        self.status.value = (f"same as <code>{html.escape(self.magic_line)}</code>")
        if self.result.run_id:
            self.ctx.changed(self)


# -- the panel ------------------------------------------------------------------------------
TabFactory = Callable[[PanelContext], Any]

_TABS: list[tuple[str, TabFactory]] = [("History", HistoryTab), ("Compare", CompareTab)]


def register_tab(title: str, factory: TabFactory, *, position: int | None = None) -> None:
    """Add a tab to every panel made from now on.

    Args:
        title: the tab's title; a tab of the same title is replaced.
        factory: ``factory(context)`` returning a :class:`PanelTab` or any ipywidget.
        position: where it goes (default: after the others).
    """
    unregister_tab(title)
    if position is None:
        _TABS.append((title, factory))
    else:
        _TABS.insert(position, (title, factory))


def unregister_tab(title: str) -> None:
    _TABS[:] = [(t, f) for t, f in _TABS if t != title]


def _external_factory(title: str, module: str) -> TabFactory | None:
    """A factory for ``module.panel_tab(name)``, if that module is installed and has one."""
    if importlib.util.find_spec(module) is None:
        return None

    def factory(ctx: PanelContext) -> Any:
        fn = getattr(importlib.import_module(module), "panel_tab", None)
        return None if fn is None else fn(ctx.name)

    return factory


def tab_factories() -> list[tuple[str, TabFactory]]:
    """The tabs a new panel gets: the registered ones, then those the feature modules offer."""
    out = list(_TABS)
    titles = {t for t, _ in out}
    for title, module in EXTERNAL_TABS:
        if title in titles:
            continue
        factory = _external_factory(title, module)
        if factory is not None:
            out.append((title, factory))
    return out


@dataclass
class ModelPanel:
    """The panel of one model; shows as widgets, or as text where widgets cannot render."""

    name: str
    namespace: dict[str, Any]
    tabs: list[PanelTab] = field(default_factory=list)
    widget: Any = None

    def tab(self, title: str) -> PanelTab:
        for t in self.tabs:
            if t.title == title:
                return t
        raise KeyError(f"no tab {title!r}; tabs are {', '.join(t.title for t in self.tabs)}")

    def refresh(self, exclude: PanelTab | None = None) -> None:
        for t in self.tabs:
            if t is not exclude:
                t.refresh()

    def close(self) -> None:
        for t in self.tabs:
            t.close()
        if self.widget is not None:
            self.widget.close()

    def __str__(self) -> str:
        # No tab titles here: which tabs exist depends on the installed features, and a
        # notebook's stored text must not change when one arrives.
        history = self.tabs[0].text() if self.tabs else ""
        return (f"{history}\n\n(the model panel of {self.name}: it needs a front end that shows "
                "ipywidgets, such as JupyterLab, Notebook 7 or VS Code; the same actions are "
                "%model_checkout, %model_alias, %model_rollback, %model_retire and %model_compare)")

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        data = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        data["text/plain"] = str(self)
        return data


def panel(name: str, *, namespace: dict[str, Any] | None = None) -> ModelPanel:
    """An ipywidgets panel of a model: History, Compare, and Monitor and Deployments tabs.

    Args:
        name: the model (``iris``).
        namespace: where Checkout puts models and Compare finds eval data; defaults to the
            IPython user namespace, if any.

    Raises:
        ModelNotFound: no such model (with the names that exist).

    Example:
        >>> nbmodel.panel("iris")  # doctest: +SKIP
    """
    import ipywidgets as w

    from .history import log
    from .refs import parse_ref

    model = parse_ref(name).name
    log(model, limit=1)  # a missing model is one clear error, not empty tabs
    if namespace is None:
        namespace = _user_namespace()
    ctx = PanelContext(model, namespace)
    result = ModelPanel(model, namespace)
    ctx.panel = result
    for title, factory in tab_factories():
        try:
            made = factory(ctx)
        except Exception as exc:  # noqa: BLE001 - one broken tab must not take the panel down
            made = w.HTML(_error_html(NbmodelError(f"the {title} tab failed: {exc}")))
        if made is None:
            continue
        result.tabs.append(made if isinstance(made, PanelTab) else WidgetTab(ctx, title, made))
    result.widget = w.Tab(children=[t.widget for t in result.tabs],
                          titles=[t.title for t in result.tabs])
    return result


def _user_namespace() -> dict[str, Any]:
    try:
        from IPython import get_ipython

        ip = get_ipython()
    except Exception:  # noqa: BLE001
        ip = None
    return ip.user_ns if ip is not None else {}
