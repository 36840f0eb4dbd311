"""The Monitor tab: window and alert fields, Refresh, and Live (the view refreshes while new
records arrive), showing what ``%model_monitor`` shows."""

from __future__ import annotations

import re
from typing import Any

from ..errors import NbmodelError
from ._base import PanelContext, PanelTab, error_html


def split_rules(text: str) -> list[str]:
    """Alert rules typed in one field, split at commas and semicolons (not inside ``[...]``).

    Args:
        text: what the user typed.

    Returns:
        The rules, stripped; empty for a blank field.

    Example:
        >>> split_rules("accuracy<0.9, psi[a,b]>0.2")
        ['accuracy<0.9', 'psi[a,b]>0.2']
    """
    return [p.strip() for p in re.split(r",(?![^\[]*\])|;", text or "") if p.strip()]


class MonitorTab(PanelTab):
    """Metrics, drift and alerts of the model's recorded predictions, as ``%model_monitor``."""

    title = "Monitor"
    #: Seconds between the live view's looks for new records.
    every = 5.0

    def __init__(self, ctx: PanelContext) -> None:
        import ipywidgets as w

        super().__init__(ctx)
        self.window = w.Text(value="", placeholder="auto, 1h, 1d or rows", description="window",
                             layout=w.Layout(width="22em"), style={"description_width": "initial"})
        self.rules = w.Text(value="", placeholder="accuracy<0.9, psi>0.2 (saved rules if empty)",
                            description="alerts", layout=w.Layout(width="42em"),
                            style={"description_width": "initial"})
        self.refresh_btn = w.Button(description="Refresh", icon="refresh")
        self.live_btn = w.ToggleButton(value=False, description="Live", icon="play",
                                       tooltip="refresh while new records arrive")
        self.view = w.HTML(value="")
        self.body = w.VBox([self.view])
        self.live: Any = None  # the monitoring's LiveView while Live is on
        self.refresh_btn.on_click(lambda _b: self.refresh())
        self.live_btn.observe(self._on_live, names="value")
        self.widget = w.VBox([w.HBox([self.window, self.rules, self.refresh_btn, self.live_btn]),
                              self.body])
        self.refresh()

    def options(self) -> dict[str, Any]:
        """The fields as keyword arguments of :func:`nbmodel.monitor`.

        Returns:
            ``window`` and, when rules were typed, ``alerts``.

        Example:
            >>> nbmodel.panel("iris").tab("Monitor").options()  # doctest: +SKIP
            {'window': '1h', 'alerts': ['accuracy<0.9']}
        """
        opts: dict[str, Any] = {"window": self.window.value.strip() or None}
        if self.rules.value.strip():
            opts["alerts"] = split_rules(self.rules.value)
        return opts

    def refresh(self) -> None:
        """Show the monitoring view again with the fields as they are (Live restarts with them).

        An error of the monitoring shows in the view instead of raising.

        Example:
            >>> nbmodel.panel("iris").tab("Monitor").refresh()  # doctest: +SKIP
        """
        if self.live is not None:
            self._start_live()
            return
        from ..monitoring import monitor

        try:
            self.view.value = monitor(self.ctx.name, **self.options())._repr_html_()
        except NbmodelError as exc:
            self.view.value = error_html(exc)

    def _start_live(self) -> None:
        from ..monitoring import live

        self._stop_live()
        self.live = live(self.ctx.name, every=self.every, **self.options())
        self.body.children = (self.live.widget,)

    def _stop_live(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def _on_live(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.live_btn.icon = "pause"
            self._start_live()
        else:
            self.live_btn.icon = "play"
            self._stop_live()
            self.body.children = (self.view,)
            self.refresh()

    def close(self) -> None:
        """Stop the live view, if on, and close the tab's widgets.

        Example:
            >>> nbmodel.panel("iris").tab("Monitor").close()  # doctest: +SKIP
        """
        self._stop_live()
        super().close()
