"""The Compare tab: pick versions and eval variables of the notebook, run, and see what
``%model_compare`` shows, with a progress bar."""

from __future__ import annotations

import html
from typing import Any

from ..errors import NbmodelError
from ._base import HIDDEN, PanelContext, PanelTab, error_html

#: Variable names preselected in the Compare tab when they exist.
EVAL_X_NAMES = ("X_test", "X_eval", "X_val", "X_valid", "X")
EVAL_Y_NAMES = ("y_test", "y_eval", "y_val", "y_valid", "y")


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
        self.progress = w.IntProgress(value=0, min=0, max=1, layout=w.Layout(**HIDDEN))
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
        """Re-read the model's versions into the list, keeping the selection that still exists,
        then the notebook's variables; a store error shows in the status line.

        Example:
            >>> nbmodel.panel("iris").tab("Compare").refresh()  # doctest: +SKIP
        """
        from ..history import log

        try:
            hist = log(self.ctx.name)
        except NbmodelError as exc:
            self.versions.options = []
            self.status.value = error_html(exc)
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
        """Re-read the notebook's variables into the X and y choices.

        X offers the two-dimensional tables, y the one-column targets; a choice that still exists
        is kept, else the first of :data:`EVAL_X_NAMES` (:data:`EVAL_Y_NAMES`) that exists, else the
        first found.

        Example:
            >>> nbmodel.panel("iris").tab("Compare").refresh_variables()  # doctest: +SKIP
        """
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
        """The ``%model_compare`` line that does what the tab's choices do.

        Example:
            >>> nbmodel.panel("iris").tab("Compare").magic_line  # doctest: +SKIP
            '%model_compare iris/2 iris/3 --eval X_test y_test'
        """
        refs = " ".join(self.versions.value)
        line = f"%model_compare {refs} --eval {self.X.value} {self.y.value}"
        return line + (" --log" if self.log.value else "")

    def _step(self, done: int, total: int, label: str) -> None:
        self.progress.max = total
        self.progress.value = done
        self.progress.description = f"{done}/{total}"
        self.status.value = html.escape(label)

    def run(self) -> None:
        """Compare the selected versions on the chosen X and y, with a progress bar.

        The result shows below, with the magic line that does the same; with ``--log`` checked
        the comparison is saved to the store and the other tabs refresh. A missing choice or
        a failed comparison shows in the status line instead of raising.

        Example:
            >>> nbmodel.panel("iris").tab("Compare").run()  # doctest: +SKIP
        """
        from ..comparison import compare

        try:
            refs = list(self.versions.value)
            if len(refs) < 2:
                picked = f"only {refs[0]} is selected" if refs else "none is selected"
                raise NbmodelError(f"compare needs at least two versions of {self.ctx.name}; "
                                   f"{picked}: select them in the list above "
                                   "(ctrl-click or shift-click adds one)")
            if self.X.value is None or self.y.value is None:
                raise NbmodelError("choose the eval data: X and y variables of this notebook "
                                   "(refresh the list after defining them)")
            X = self.ctx.namespace.get(self.X.value)
            y = self.ctx.namespace.get(self.y.value)
            self.progress.value = 0
            self.progress.layout.display = "flex"
            self.result = compare(refs, X, y, log=self.log.value, progress=self._step)
        except NbmodelError as exc:
            self.status.value = error_html(exc)
            return
        finally:
            self.progress.layout.display = "none"
        self.result_html.value = self.result._repr_html_()
        self.status.value = (f"same as <code>{html.escape(self.magic_line)}</code>")
        if self.result.run_id:
            self.ctx.changed(self)
