"""``nbmodel.explain``: what drives a version's predictions, and how it does per group."""

from __future__ import annotations

import html
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..display import STYLE, Shown, html_table, text_table
from ..errors import BadData
from ..metrics import CLASSIFIER
from ._groups import GroupReport, group_metrics
from ._importance import Importance, feature_names, named, permutation, stored
from ._shap import INSTALL, ShapValues, available, shap_values

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

    from ..comparison import Figure
    from ..refs import Ref
    from ..versions import Version

#: Features a row's SHAP explanation lists, largest first.
ROW_TOP = 5


def _figure(name: str, title: str, fig: MplFigure) -> Figure:
    """The comparison's :class:`~nbmodel.comparison.Figure` of a drawn figure, trimmed to its
    drawing (labels of any length fit)."""
    from ..comparison._plots import FIGURE_DPI
    from ..comparison._results import Figure

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI, metadata={"Software": None}, bbox_inches="tight")
    return Figure(name, title, buf.getvalue())


def importance_figure(imp: Importance, title: str) -> Figure:
    """A ranked horizontal bar chart of importance with the spread over repeats as error bars."""
    from matplotlib.figure import Figure as MplFigure

    n = len(imp.features)
    fig = MplFigure(figsize=(6, 0.3 * n + 1.0))
    ax = fig.subplots()
    pos = list(range(n))[::-1]
    ax.barh(pos, imp.mean, xerr=imp.std, color="#4878a8", ecolor="#333", capsize=3)
    ax.set_yticks(pos, imp.features, fontsize=9)
    ax.axvline(0, color="#999", linewidth=0.8)
    ax.set_xlabel(f"drop in {imp.metric} when shuffled")
    ax.set_title(title, fontsize=10)
    return _figure("importance", title, fig)


def shap_figure(sv: ShapValues, title: str, top: int = 15) -> Figure:
    """A summary (beeswarm-like) plot: each row's SHAP value per feature, coloured by the
    feature's value, features by mean absolute SHAP value."""
    import numpy as np
    from matplotlib.figure import Figure as MplFigure

    order = [sv.features.index(f) for f, _ in sv.mean_abs()[:top]]
    fig = MplFigure(figsize=(6, 0.35 * len(order) + 1.2))
    ax = fig.subplots()
    rng = np.random.default_rng(0)
    for k, j in enumerate(order):
        y = len(order) - 1 - k + rng.uniform(-0.25, 0.25, len(sv.values))
        col = sv.data[:, j]
        lo, hi = np.nanmin(col), np.nanmax(col)
        shade = (col - lo) / (hi - lo) if hi > lo else np.full(len(col), 0.5)
        ax.scatter(sv.values[:, j], y, c=shade, cmap="coolwarm", s=8, vmin=0, vmax=1)
    ax.set_yticks(range(len(order))[::-1], [sv.features[j] for j in order], fontsize=9)
    ax.axvline(0, color="#999", linewidth=0.8)
    ax.set_xlabel("SHAP value (colour: feature value, blue low, red high)")
    ax.set_title(title, fontsize=10)
    return _figure("shap", title, fig)


@dataclass(repr=False)
class Explanation(Shown):
    """What drives a version: permutation importance, SHAP values, metrics per group."""

    ref: str
    task: str | None
    importance: Importance
    measured: str                    # "at commit" or "on the data given"
    shap: ShapValues | None = None
    shap_note: str = ""
    row: int | None = None
    groups: GroupReport | None = None
    figures: list[Figure] = field(default_factory=list)

    def _title(self) -> str:
        kind = {"classifier": "classifier", "regressor": "regressor"}.get(self.task or "", "model")
        return f"explain {self.ref} ({kind})"

    def _importance_rows(self) -> tuple[list[str], list[list[str]]]:
        imp = self.importance
        rows = [[str(i + 1), f, f"{m + 0.0:.4g}", f"{s:.2g}"]  # + 0.0: never "-0"
                for i, (f, m, s) in enumerate(zip(imp.features, imp.mean, imp.std))]
        return ["rank", "feature", "importance", "std"], rows

    def _shap_rows(self) -> tuple[list[str], list[list[str]]]:
        assert self.shap is not None
        return (["feature", "mean |SHAP|"], [[f, f"{v:.4g}"] for f, v in self.shap.mean_abs()])

    def _row_lines(self) -> list[str]:
        if self.shap is None or self.row is None:
            return []
        import numpy as np

        i = self.shap.rows.index(self.row_label) if self.row_label in self.shap.rows else None
        if i is None:
            return []
        vals = self.shap.values[i]
        order = np.argsort(-np.abs(vals), kind="stable")[:ROW_TOP]
        parts = [f"{self.shap.features[j]} {vals[j]:+.4g}" for j in order]
        return [f"row {self.row}: top features by SHAP value: " + ", ".join(parts)]

    row_label: Any = None

    def _head_text(self) -> str:
        head, rows = self._importance_rows()
        return "\n".join([f"{self._title()}: {self.importance.note}, {self.measured}",
                          text_table(head, rows)])

    def _tail_parts(self) -> list[tuple[str, str]]:
        """(text, html) of what follows the figures: SHAP and groups."""
        out = []
        if self.shap is not None:
            head, rows = self._shap_rows()
            cap = f"SHAP ({self.shap.explainer} explainer, {len(self.shap.rows)} of {self.shap.of} rows)"
            lines = self._row_lines()
            out.append(("\n".join([cap + ":", text_table(head, rows), *lines]),
                        html_table(head, rows, caption=cap)
                        + "".join(f"<div class='nbm-line'>{html.escape(x)}</div>" for x in lines)))
        elif self.shap_note:
            out.append((self.shap_note, f"{STYLE}<div class='nbm-line'>{html.escape(self.shap_note)}</div>"))
        if self.groups is not None:
            out.append((str(self.groups), self.groups._repr_html_()))
        return out

    def __str__(self) -> str:
        parts = [self._head_text()]
        if self.figures:
            parts.append("figures: " + ", ".join(f.title for f in self.figures))
        parts += [t for t, _ in self._tail_parts()]
        return "\n\n".join(parts)

    def _head_html(self) -> str:
        head, rows = self._importance_rows()
        return html_table(head, rows, caption=f"{self._title()}: {self.importance.note}, {self.measured}")

    def _repr_html_(self) -> str:
        import base64

        figs = "".join(f"<img alt='{html.escape(f.title)}' src='data:image/png;base64,"
                       f"{base64.b64encode(f.png).decode()}'/>" for f in self.figures)
        return self._head_html() + figs + "".join(h for _, h in self._tail_parts())

    def _ipython_display_(self) -> None:
        # Figures as their own image/png outputs: nbval compares their text only.
        from IPython.display import display

        display({"text/plain": self._head_text(), "text/html": self._head_html()}, raw=True)
        for f in self.figures:
            display(f)
        for text, h in self._tail_parts():
            display({"text/plain": text, "text/html": h}, raw=True)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form."""
        return {"ref": self.ref, "task": self.task, "importance": self.importance.to_dict(),
                "measured": self.measured,
                "shap": None if self.shap is None else dict(self.shap.mean_abs()),
                "shap_note": self.shap_note,
                "groups": None if self.groups is None else self.groups.to_dict()}


def split_groups(X: Any, groups: Any, model: Any = None) -> tuple[Any, Any, str]:
    """The group of each row, its name, and ``X`` without the column when the model was not
    fitted on it: ``groups`` is a column of ``X`` or one value per row.

    Raises:
        BadData: a name that is not a column of ``X``.
    """
    import pandas as pd

    if isinstance(groups, str):
        cols = [str(c) for c in getattr(X, "columns", [])]
        if groups not in cols:
            raise BadData(f"no column {groups!r} in the data to group by; give a column of X "
                          f"({', '.join(cols) or 'it has no named columns'}) or one value per row")
        col = X[groups]
        fitted = getattr(model, "feature_names_in_", None)
        if fitted is not None and groups not in [str(f) for f in fitted]:
            X = X.drop(columns=[groups])
        return X, col, groups
    name = str(getattr(groups, "name", None) or "group")
    if isinstance(groups, pd.DataFrame):
        if groups.shape[1] != 1:
            raise BadData("group by one column: pass a Series or one column's name")
        groups = groups.iloc[:, 0]
    return X, groups, name


def explain(ref: str | Ref | Version, X: Any = None, y: Any = None, *, groups: Any = None,
            row: int | None = None, shap: bool | None = None, plots: bool = True) -> Explanation:
    """What drives a version's predictions, and how it does per group.

    Args:
        ref: the version (``iris/3``, ``iris@production``).
        X: eval data; without it the importance recorded at commit is shown.
        y: its targets (needed with ``X``).
        groups: a column of ``X`` (its name) or one group value per row: every metric per
            group, the gaps between groups, the worst group.
        row: a row's position in ``X`` whose top features by SHAP value are listed.
        shap: compute SHAP values (default: when ``shap`` is installed and ``X`` is given).
        plots: draw the figures.

    Returns:
        An :class:`Explanation` (HTML and figures in a notebook, text elsewhere).

    Raises:
        BadData: no importance recorded and no data given, data that does not fit, a row out
            of range, a group column that does not exist.

    Example:
        >>> nbmodel.explain("iris/3", X_test, y_test, groups="sex")  # doctest: +SKIP
    """
    from ..evaluate import as_frame_or_array, as_target, check_fits, detect_task, predict
    from ..flavors import adapt
    from ..versions import Version, load, resolve

    v = ref if isinstance(ref, Version) else resolve(ref)
    if (X is None) != (y is None):
        raise BadData("give both the eval data and its targets: explain(ref, X_test, y_test)")
    if X is None:
        if groups is not None or row is not None:
            raise BadData("groups and row need the eval data: explain(ref, X_test, y_test, groups=...)")
        imp = stored(v)
        if imp is None:
            raise BadData(f"{v.ref} has no importance recorded (committed without --eval); "
                          f"give data: %model_explain {v.ref} --eval X_test y_test")
        out = Explanation(v.ref, v.task, imp, "at commit")
        out.shap_note = INSTALL if not available() else "SHAP values need the data: give --eval X y"
        if plots:
            out.figures.append(importance_figure(imp, f"permutation importance of {v.ref}"))
        return out
    model = adapt(load(v), v.task)  # XGBoost, LightGBM, networks: asked as scikit-learn's
    X = as_frame_or_array(X, "the eval data")
    group_col = None
    if groups is not None:
        X, group_col, group_name = split_groups(X, groups, model)
    check_fits(model, X, "the eval data")
    X = named(model, X)
    y = as_target(y, X.shape[0], "the eval targets")
    task = v.task or detect_task(model, y)
    if row is not None and not 0 <= row < X.shape[0]:
        raise BadData(f"row {row} is not in the data: give a position from 0 to {X.shape[0] - 1}")
    imp = permutation(model, X, y, task)
    out = Explanation(v.ref, task, imp, "on the data given", row=row)
    if plots:
        out.figures.append(importance_figure(imp, f"permutation importance of {v.ref}"))
    want_shap = shap is not False
    if want_shap and available():
        names = feature_names(model, X)
        out.shap = shap_values(model, X, task, names, row=row)
        if row is not None:
            out.row_label = X.index[row] if hasattr(X, "index") else row
        if plots:
            out.figures.append(shap_figure(out.shap, f"SHAP values of {v.ref}"))
    elif want_shap:
        out.shap_note = INSTALL
    if group_col is not None:
        pred = predict(model, X, "the eval data")
        out.groups = group_metrics(y, pred, group_col, task=task or CLASSIFIER, column=group_name)
    return out
