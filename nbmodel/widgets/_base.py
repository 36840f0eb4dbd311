"""What every tab of the model panel shares: the context a tab factory gets, the tab base
classes, and the status line with its confirmation step for buttons that change the store."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import NbmodelError, first_line

if TYPE_CHECKING:
    from . import ModelPanel

#: Hides a widget (its layout's ``display``), as the confirmation box is until a button asks.
HIDDEN = {"display": "none"}


def error_html(exc: BaseException | str) -> str:
    """One error line in the theme's error colour.

    nbmodel's own errors are written for the user and shown whole; anything else (an OS error,
    a failure underneath) shows its first line only.

    Args:
        exc: the error, or a message.

    Returns:
        An HTML ``<span>``.

    Example:
        >>> error_html(ValueError("bad\\nmore"))
        "<span style='color:var(--jp-error-color1,#b22)'>bad</span>"
    """
    text = exc if isinstance(exc, str) else str(exc) if isinstance(exc, NbmodelError) else first_line(exc)
    return f"<span style='color:var(--jp-error-color1,#b22)'>{html.escape(text)}</span>"


def ok_html(text: str) -> str:
    """One success line in the theme's success colour.

    Args:
        text: the message.

    Returns:
        An HTML ``<span>``.

    Example:
        >>> ok_html("iris/1 retired")
        "<span style='color:var(--jp-success-color1,#2a7a2a)'>iris/1 retired</span>"
    """
    return f"<span style='color:var(--jp-success-color1,#2a7a2a)'>{html.escape(text)}</span>"


@dataclass
class PanelContext:
    """What a tab factory gets: the model's name, the user's namespace and the panel."""

    name: str
    namespace: dict[str, Any]
    panel: ModelPanel | None = None

    def changed(self, source: PanelTab | None = None) -> None:
        """Tell every other tab that the store changed (an alias moved, a version retired).

        Args:
            source: the tab that made the change (it refreshed itself already).

        Example:
            >>> ctx.changed(self)  # doctest: +SKIP
        """
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
        """A short plain-text form for front ends that cannot show widgets.

        Returns:
            The text; empty by default.
        """
        return ""

    def close(self) -> None:
        """Close the tab's widget (and whatever it runs)."""
        if self.widget is not None:
            self.widget.close()


class WidgetTab(PanelTab):
    """Wraps a widget made elsewhere: what a factory given to ``register_tab`` may return."""

    def __init__(self, ctx: PanelContext, title: str, widget: Any) -> None:
        super().__init__(ctx)
        self.title = title
        self.inner = widget
        self.widget = getattr(widget, "widget", widget)

    def refresh(self) -> None:
        """Call the wrapped object's own ``refresh()``, if it has one."""
        fn = getattr(self.inner, "refresh", None)
        if callable(fn):
            fn()


class ActionTab(PanelTab):
    """A tab with buttons: a status line for their results and errors, and a confirmation
    step (question, Confirm, Cancel) for the buttons that change the store or a server."""

    #: Errors a button's action shows in the status line instead of raising.
    shown_errors: tuple[type[BaseException], ...] = (NbmodelError,)

    def __init__(self, ctx: PanelContext) -> None:
        import ipywidgets as w

        super().__init__(ctx)
        self.question = w.HTML()
        self.confirm_btn = w.Button(description="Confirm", button_style="warning")
        self.cancel_btn = w.Button(description="Cancel")
        self.confirm_box = w.HBox([self.question, self.confirm_btn, self.cancel_btn],
                                  layout=w.Layout(**HIDDEN))
        self.status = w.HTML()
        self._pending: Callable[[], str] | None = None
        self.confirm_btn.on_click(lambda _b: self._run(self.confirm))
        self.cancel_btn.on_click(lambda _b: self.cancel())

    def _run(self, action: Callable[[], str | None]) -> None:
        """Run a button's action; its result or error shows in the status line."""
        try:
            result = action()
        except self.shown_errors as exc:
            self.status.value = error_html(exc)
            return
        if result is not None:
            self.status.value = ok_html(result)

    def _ask(self, question: str, do: Callable[[], str]) -> None:
        """Show ``question``; ``do`` runs only when Confirm is clicked."""
        self._pending = do
        self.question.value = f"<b>{html.escape(question)}</b>"
        self.confirm_box.layout.display = "flex"
        self.status.value = ""

    def cancel(self) -> None:
        """Drop the pending action (a later Confirm does nothing)."""
        self._pending = None
        self.confirm_box.layout.display = "none"
        self.status.value = "cancelled"

    def confirm(self) -> str | None:
        """Run the pending action, then refresh this tab and tell the others.

        Returns:
            The action's message, or None when nothing was pending.
        """
        do, self._pending = self._pending, None
        self.confirm_box.layout.display = "none"
        if do is None:
            return None
        try:
            return do()
        finally:
            self.refresh()
            self.ctx.changed(self)
