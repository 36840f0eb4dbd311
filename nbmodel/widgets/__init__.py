"""The model panel: ``nbmodel.panel("iris")`` and ``%model_panel iris``.

A plain ipywidgets 8 ``Tab`` (no front-end code of its own, so it works in JupyterLab,
Notebook 7 and VS Code) whose tabs are small separate classes, one module each:

* History (:mod:`.history`): the versions; card or diff of the selection; Checkout, Set alias,
  Rollback and Retire, alias moves and retirement after a confirmation step.
* Compare (:mod:`.compare`): versions and eval variables from the user's namespace, Run, and
  the same result as ``%model_compare``, with a progress bar.
* Monitor (:mod:`.monitor`): what ``%model_monitor`` shows, refreshed on demand or live.
* Deployments (:mod:`.deployments`): what serves the model, with Deploy, Stop and Rollback.

Adding a tab is one call: ``register_tab("Notes", factory)`` where ``factory(context)``
returns a :class:`PanelTab` (or any widget). Where widgets cannot render, the panel shows as
text: the model's history and the magics that do the same. ipywidgets is imported only when a
panel is made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..display import Shown
from ..errors import first_line
from ._base import ActionTab, PanelContext, PanelTab, WidgetTab, error_html, ok_html
from .compare import EVAL_X_NAMES, EVAL_Y_NAMES, CompareTab
from .deployments import DeploymentsTab
from .history import HistoryTab
from .monitor import MonitorTab

__all__ = [
    "EVAL_X_NAMES", "EVAL_Y_NAMES", "ActionTab", "CompareTab", "DeploymentsTab", "HistoryTab",
    "ModelPanel", "MonitorTab", "PanelContext", "PanelTab", "TabFactory", "WidgetTab", "error_html",
    "ok_html", "panel", "register_tab", "tab_factories", "unregister_tab",
]

TabFactory = Callable[[PanelContext], Any]

#: The tabs a new panel gets, in order: the built-in ones, then those added by register_tab.
_TABS: list[tuple[str, TabFactory]] = [("History", HistoryTab), ("Compare", CompareTab),
                                       ("Monitor", MonitorTab), ("Deployments", DeploymentsTab)]


def register_tab(title: str, factory: TabFactory, *, position: int | None = None) -> None:
    """Add a tab to every panel made from now on.

    Args:
        title: the tab's title; a tab of the same title is replaced.
        factory: ``factory(context)`` returning a :class:`PanelTab` or any ipywidget.
        position: where it goes (default: after the others).

    Example:
        >>> import ipywidgets as w
        >>> register_tab("Notes", lambda ctx: w.HTML(f"notes on {ctx.name}"))  # doctest: +SKIP
    """
    unregister_tab(title)
    if position is None:
        _TABS.append((title, factory))
    else:
        _TABS.insert(position, (title, factory))


def unregister_tab(title: str) -> None:
    """Remove a tab from the panels made from now on (a built-in one too); no such tab is no error.

    Args:
        title: the tab's title.

    Example:
        >>> unregister_tab("Notes")  # doctest: +SKIP
    """
    _TABS[:] = [(t, f) for t, f in _TABS if t != title]


def tab_factories() -> list[tuple[str, TabFactory]]:
    """The tabs a new panel gets, in order: History, Compare, Monitor, Deployments, then the
    registered ones.

    Returns:
        ``(title, factory)`` pairs.

    Example:
        >>> [title for title, _ in tab_factories()][:4]
        ['History', 'Compare', 'Monitor', 'Deployments']
    """
    return list(_TABS)


@dataclass(repr=False)  # Shown's repr: the text form
class ModelPanel(Shown):
    """The panel of one model; shows as widgets, or as text where widgets cannot render."""

    name: str
    namespace: dict[str, Any]
    tabs: list[PanelTab] = field(default_factory=list)
    widget: Any = None

    def tab(self, title: str) -> PanelTab:
        """The tab of that title.

        Args:
            title: ``History``, ``Compare``, ``Monitor``, ``Deployments`` or a registered one.

        Returns:
            The :class:`PanelTab`.

        Raises:
            KeyError: no such tab (the message lists them).

        Example:
            >>> nbmodel.panel("iris").tab("Deployments")  # doctest: +SKIP
        """
        for t in self.tabs:
            if t.title == title:
                return t
        raise KeyError(f"no tab {title!r}; tabs are {', '.join(t.title for t in self.tabs)}")

    def refresh(self, exclude: PanelTab | None = None) -> None:
        """Re-read the store in every tab.

        Args:
            exclude: a tab that is up to date already (the one that made the change).

        Example:
            >>> nbmodel.panel("iris").refresh()  # doctest: +SKIP
        """
        for t in self.tabs:
            if t is not exclude:
                t.refresh()

    def close(self) -> None:
        """Close every tab (a live monitor stops) and the panel's widget.

        Example:
            >>> p = nbmodel.panel("iris")  # doctest: +SKIP
            >>> p.close()  # doctest: +SKIP
        """
        for t in self.tabs:
            t.close()
        if self.widget is not None:
            self.widget.close()

    def __str__(self) -> str:
        # The history only: a notebook's stored text must not change with what is deployed or
        # recorded, nor when a tab is registered.
        history = self.tabs[0].text() if self.tabs else ""
        return (f"{history}\n\n(the model panel of {self.name}: it needs a front end that shows "
                "ipywidgets, such as JupyterLab, Notebook 7 or VS Code; the same actions are "
                "%model_checkout, %model_alias, %model_rollback, %model_retire and %model_compare)")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        data = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        data["text/plain"] = str(self)
        return data


def panel(name: str, *, namespace: dict[str, Any] | None = None) -> ModelPanel:
    """An ipywidgets panel of a model: History, Compare, Monitor and Deployments tabs.

    Args:
        name: the model (``iris``).
        namespace: where Checkout puts models and Compare finds eval data; defaults to the
            IPython user namespace, if any.

    Returns:
        The :class:`ModelPanel`: widgets in a notebook, its history as text elsewhere.

    Raises:
        ModelNotFound: no such model (with the names that exist).

    Example:
        >>> nbmodel.panel("iris")  # doctest: +SKIP
    """
    import ipywidgets as w

    from ..history import log
    from ..refs import parse_ref

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
            made = w.HTML(error_html(f"the {title} tab failed: {first_line(exc)}"))
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
