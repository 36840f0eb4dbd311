"""The widget of ``%model_monitor --live``: a view that refreshes while new records arrive."""

from __future__ import annotations

import html
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
        run = monitor_run(name, create=False)
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
