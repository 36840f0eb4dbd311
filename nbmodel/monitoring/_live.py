"""Widgets: ``%model_monitor --live`` and the panel's Monitor tab."""

from __future__ import annotations

import html
import re
import threading
import time
from typing import Any

from ..errors import NbmodelError


def _bundle(report: Any) -> dict[str, Any]:
    return {"output_type": "display_data", "metadata": {},
            "data": {"text/plain": str(report), "text/html": report._repr_html_()}}


def _error_html(exc: BaseException) -> str:
    return f"<div class='nbm-line' style='color:var(--jp-error-color1,#b22)'>{html.escape(str(exc))}</div>"


class LiveView:
    """A view of %model_monitor that refreshes while new records arrive, until stopped.

    The refresh runs in a daemon thread that checks for new batch files every ``every``
    seconds (a directory listing for a local store) and recomputes only then.
    """

    def __init__(self, ref: str, *, every: float = 5.0, max_hours: float = 8.0, **options: Any) -> None:
        import ipywidgets as w

        self.ref = ref
        self.every = max(0.5, float(every))
        self.options = options
        self.refreshes = 0
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_hours * 3600
        self.status = w.HTML(value=f"<b>live</b>: {html.escape(ref)}, refreshing every {self.every:g} s")
        self.button = w.Button(description="Stop", icon="stop", button_style="warning")
        self.button.on_click(lambda _b: self.stop())
        self.output = w.Output()
        self.widget = w.VBox([w.HBox([self.status, self.button]), self.output])
        self._seen: tuple[int, int] | None = None
        self.refresh()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"nbmodel-live-{ref}")
        self._thread.start()

    def _stamp(self) -> tuple[int, int]:
        from ._schema import target
        from ._storage import BATCHES, LABELS, monitor_run

        name, version = target(self.ref)
        run = monitor_run(name)
        return len(run.list(f"{BATCHES}/v{version}")), len(run.list(LABELS))

    def refresh(self) -> None:
        from ._monitor import monitor

        try:
            self._seen = self._stamp()
            report = monitor(self.ref, **self.options)
            self.output.outputs = (_bundle(report),)
        except NbmodelError as exc:
            self.output.outputs = ({"output_type": "display_data", "metadata": {},
                                    "data": {"text/plain": str(exc), "text/html": _error_html(exc)}},)
        self.refreshes += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            if time.monotonic() > self._deadline:
                break
            try:
                if self._stamp() != self._seen:
                    self.refresh()
            except Exception:  # noqa: BLE001 - a store hiccup: try again next tick
                continue
        self._stopped()

    def _stopped(self) -> None:
        self.status.value = f"<b>stopped</b>: {html.escape(self.ref)} ({self.refreshes} refreshes)"
        self.button.disabled = True

    def stop(self) -> None:
        """Stop refreshing (the last view stays)."""
        self._stop.set()
        self._stopped()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"live monitor of {self.ref}: refreshing every {self.every:g} s; stop it with .stop()"


def split_rules(text: str) -> list[str]:
    """Alert rules typed in one field, split at commas or semicolons (not inside ``[...]``).

    Args:
        text: the field's text.

    Returns:
        The rule texts.

    Example:
        >>> split_rules("accuracy<0.9, psi[a,b]>0.2")
        ['accuracy<0.9', 'psi[a,b]>0.2']
    """
    return [p.strip() for p in re.split(r",(?![^\[]*\])|;", text or "") if p.strip()]


def panel_tab(name: str) -> Any:
    """The Monitor tab of ``%model_panel``: window and alert fields, Refresh and Live buttons,
    and the same view as %model_monitor.

    Returns:
        An ``ipywidgets.VBox``.
    """
    import ipywidgets as w

    window = w.Text(value="", placeholder="auto, 1h, 1d or rows", description="window",
                    layout=w.Layout(width="16em"))
    rules = w.Text(value="", placeholder="accuracy<0.9, psi>0.2 (saved rules if empty)",
                   description="alerts", layout=w.Layout(width="30em"))
    refresh = w.Button(description="Refresh", icon="refresh")
    live = w.ToggleButton(value=False, description="Live", icon="play",
                          tooltip="refresh while new records arrive")
    view = w.HTML(value="")
    state: dict[str, Any] = {"thread": None, "stop": threading.Event(), "stamp": None}

    def options() -> dict[str, Any]:
        opts: dict[str, Any] = {"window": window.value.strip() or None}
        if rules.value.strip():
            opts["alerts"] = split_rules(rules.value)
        return opts

    def render(_b: Any = None) -> None:
        from ._monitor import monitor

        try:
            view.value = monitor(name, **options())._repr_html_()
        except NbmodelError as exc:
            view.value = _error_html(exc)

    def loop(stop: threading.Event) -> None:
        from ._record import target
        from ._storage import BATCHES, LABELS, monitor_run

        while not stop.wait(5.0):
            try:
                n, v = target(name)
                run = monitor_run(n)
                stamp = (v, len(run.list(f"{BATCHES}/v{v}")), len(run.list(LABELS)))
                if stamp != state["stamp"]:
                    state["stamp"] = stamp
                    render()
            except Exception:  # noqa: BLE001
                continue

    def toggle(change: dict[str, Any]) -> None:
        if change["new"]:
            state["stop"] = threading.Event()
            state["thread"] = threading.Thread(target=loop, args=(state["stop"],), daemon=True)
            state["thread"].start()
            live.icon = "pause"
        else:
            state["stop"].set()
            live.icon = "play"

    refresh.on_click(render)
    live.observe(toggle, names="value")
    render()
    box = w.VBox([w.HBox([window, rules, refresh, live]), view])
    box.refresh = render  # type: ignore[attr-defined]
    return box
