"""The progress bar of a long comparison: a widget in a kernel, a line in a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

#: Seconds of work after which a progress bar appears.
PROGRESS_DELAY = 1.0


class Progress:
    """A progress bar that appears only once the work has run for ``PROGRESS_DELAY`` seconds.

    In a Jupyter kernel it is an ipywidgets bar sent without a text/plain form (so it leaves
    nothing that nbval compares) and closed when the work ends; in a terminal it is a line on
    stderr; elsewhere (scripts writing to files, plain test shells) it is silent. A callable
    ``callback(done, total, label)`` receives every step instead, as the panel's own bar does.

    Example:
        >>> bar = Progress(2, enabled=False)
        >>> bar.step("loaded iris/1"); bar.done
        1
    """

    def __init__(self, total: int, *, callback: Callable[[int, int, str], None] | None = None,
                 enabled: bool = True, delay: float | None = None) -> None:
        self.total = max(1, total)
        self.done = 0
        self.callback = callback
        self.enabled = enabled and callback is None
        self.delay = PROGRESS_DELAY if delay is None else delay
        self.start = time.perf_counter()
        self.shown: str | None = None
        self._bar: Any = None

    def step(self, label: str, advance: int = 1) -> None:
        """Count ``advance`` steps done, ``label`` saying which; show the bar once it is due."""
        self.done = min(self.total, self.done + advance)
        if self.callback is not None:
            self.callback(self.done, self.total, label)
            return
        if not self.enabled:
            return
        if self.shown is None and time.perf_counter() - self.start >= self.delay:
            self._show()
        self._update(label)

    def _show(self) -> None:
        kind = _front_end()
        if kind == "kernel":
            try:
                import ipywidgets as w
                from IPython.display import display

                bar = w.IntProgress(value=self.done, max=self.total, description="comparing")
                label = w.Label("")
                box = w.HBox([bar, label])
                display({"application/vnd.jupyter.widget-view+json": {
                    "version_major": 2, "version_minor": 0, "model_id": box.model_id}}, raw=True)
                self._bar = (box, bar, label)
                self.shown = "widget"
                return
            except Exception:  # noqa: BLE001 - no widgets: no bar, the work goes on
                self.shown = "none"
                return
        self.shown = "text" if kind == "tty" else "none"

    def _update(self, label: str) -> None:
        if self.shown == "widget":
            _, bar, lab = self._bar
            bar.value = self.done
            lab.value = f"{self.done}/{self.total} {label}"
        elif self.shown == "text":
            width = 24
            filled = int(width * self.done / self.total)
            sys.stderr.write(f"\rcomparing [{'#' * filled}{'.' * (width - filled)}] "
                             f"{self.done}/{self.total} {label[:40]:<40}")
            sys.stderr.flush()

    def close(self) -> None:
        """Take the bar away (the widget is closed, the terminal line cleared)."""
        if self.shown == "widget":
            box, bar, lab = self._bar
            for widget in (lab, bar, box):
                widget.close()
        elif self.shown == "text":
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()
        self.shown = None


def _front_end() -> str:
    try:
        from IPython import get_ipython

        ip = get_ipython()
    except Exception:  # noqa: BLE001
        ip = None
    if ip is not None and type(ip).__name__ == "ZMQInteractiveShell":
        return "kernel"
    try:
        return "tty" if sys.stderr.isatty() else "none"
    except Exception:  # noqa: BLE001
        return "none"
