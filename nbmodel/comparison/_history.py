"""The metrics stored at commit time for every version of a model, by version number."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..display import STYLE, Shown, badge, html_table, text_table
from ..errors import BadReference
from ..metrics import CLASSIFIER, KEY_METRICS, LOWER_IS_BETTER, REGRESSOR
from ..refs import Ref
from ..versions import Version, _fmt
from ._plots import TICK_SIZE, grid, render
from ._results import Figure
from ._saving import log_run
from ._scoring import TABLE_METRICS

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

#: Columns of the table at most.
HISTORY_METRICS = 6


@dataclass(repr=False)
class MetricHistory(Shown):
    """The metrics stored at commit time for every version of a model, by version number."""

    name: str
    versions: list[Version]
    metric_names: list[str]
    figure: Figure | None = None
    run_id: str | None = None

    @property
    def figures(self) -> list[Figure]:
        """The chart, if one was drawn."""
        return [self.figure] if self.figure else []

    def best_of(self, metric: str) -> list[int]:
        """Indexes of the versions with the best shown value of ``metric`` (ties all count).

        Args:
            metric: a column of the table.

        Returns:
            The indexes into :attr:`versions`; empty when no version stored ``metric``.

        Example:
            >>> h.best_of("accuracy")  # doctest: +SKIP
            [2]
        """
        values = [(i, float(_fmt(v.metrics[metric]))) for i, v in enumerate(self.versions)
                  if metric in v.metrics]
        if not values:
            return []
        pick = min if metric in LOWER_IS_BETTER else max
        top = pick(x for _, x in values)
        return [i for i, x in values if x == top]

    def _table(self, mark: Callable[[str], str]) -> tuple[list[str], list[list[str]]]:
        head = ["version", "aliases", *self.metric_names]
        best = {m: set(self.best_of(m)) for m in self.metric_names}
        rows = []
        for i, v in enumerate(self.versions):
            cells = [str(v.version), ", ".join(v.aliases + (["(retired)"] if v.retired else []))]
            for m in self.metric_names:
                if m in v.metrics:
                    s = _fmt(v.metrics[m])
                    cells.append(mark(s) if i in best[m] and len(self.versions) > 1 else s)
                else:
                    cells.append("-")
            rows.append(cells)
        return head, rows

    def _title(self) -> str:
        n = len(self.versions)
        return f"{self.name}: stored metrics of {n} version{'s' if n != 1 else ''}, by version"

    def _text(self) -> str:
        if not self.metric_names:
            return (f"{self._title()}\nno stored metrics: commit with --eval X_test y_test to "
                    "record them")
        head, rows = self._table(lambda s: s + " *")
        return "\n".join([self._title(), text_table(head, rows), "* best in its column"])

    def __str__(self) -> str:
        out = self._text()
        if self.figure:
            out += f"\n\nfigures: {self.figure.title}"
        if self.run_id:
            out += f"\n\nsaved as run {self.run_id}"
        return out

    def _table_html(self) -> str:
        if not self.metric_names:
            return f"{STYLE}<div class='nbm-line'>{html.escape(self._text())}</div>"
        head, rows = self._table(lambda s: f"<span class='nbm-best'>{s} &#9733;</span>")
        cells = []
        for v, row in zip(self.versions, rows):
            tags = "".join(badge(a) for a in v.aliases)
            if v.retired:
                tags += badge("retired", kind="retired")
            cells.append([html.escape(row[0]), tags, *row[2:]])
        return html_table(head, cells, caption=self._title(), raw=True)

    def _repr_html_(self) -> str:
        return self._table_html() + (self.figure.to_html() if self.figure else "")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display({"text/plain": self._text(), "text/html": self._table_html()}, raw=True)
        if self.figure:
            display(self.figure)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (REST routes, the ``--log`` artifact).

        Returns:
            The model's name, the metric columns and every version's number, aliases,
            retired flag and stored metrics.

        Example:
            >>> h.to_dict()["metrics"]  # doctest: +SKIP
            ['accuracy', 'f1_macro', 'roc_auc']
        """
        return {"name": self.name, "metrics": self.metric_names,
                "versions": [{"version": v.version, "aliases": v.aliases, "retired": v.retired,
                              "metrics": v.metrics} for v in self.versions],
                "run_id": self.run_id}


def _columns(versions: list[Version]) -> list[str]:
    """The metrics worth a column: the newest task's key metrics, then the table's, then the rest."""
    tasks = [v.task for v in versions if v.task]
    preferred = list(KEY_METRICS.get(tasks[-1] if tasks else "", ()))
    names: list[str] = []
    for m in [*preferred, *TABLE_METRICS[CLASSIFIER], *TABLE_METRICS[REGRESSOR]]:
        if m not in names and any(m in v.metrics for v in versions):
            names.append(m)
    for v in versions:
        for m in v.metrics:
            if m not in names:
                names.append(m)
    return names[:HISTORY_METRICS]


def metric_history(name: str | Ref, *, log: bool = False, plots: bool = True) -> MetricHistory:
    """Plot the metrics every version of ``name`` recorded at commit, against version number.

    Aliases are marked on the chart and in the table; retired versions are drawn hollow.

    Args:
        name: the model (``"iris"``), without a version or an alias.
        log: save the table and the chart as an MLflow run in the model's experiment.
        plots: draw the chart.

    Returns:
        A :class:`MetricHistory` (HTML table and chart in a notebook, text elsewhere).

    Raises:
        BadReference: ``name`` names a version or an alias rather than a model.
        ModelNotFound: there is no model of that name.

    Example:
        >>> nbmodel.metric_history("iris")  # doctest: +SKIP
        iris: stored metrics of 3 versions, by version
        ...
    """
    from ..history import log as history_log
    from ..refs import parse_ref

    r = name if isinstance(name, Ref) else parse_ref(name)
    if r.version is not None or r.alias is not None:
        raise BadReference(f"--all plots every version of a model: name the model ({r.name}), "
                           f"not {r}")
    versions = sorted(history_log(r.name).versions, key=lambda v: v.version)
    result = MetricHistory(r.name, versions, _columns(versions))
    if plots and result.metric_names:
        result.figure = Figure("metrics_by_version", f"stored metrics of {r.name} by version",
                               render(plot_metric_history(result)))
    if log:
        result.run_id = log_run(r.name, f"metrics of {r.name} by version", result, result.to_dict())
    return result


def plot_metric_history(h: MetricHistory) -> MplFigure:
    """The stored metrics of every version against the version number, aliases marked."""
    names = h.metric_names
    fig, axes = grid(len(names), f"stored metrics of {h.name} by version (aliases marked)",
                      width=3.4, height=2.6)
    xs_all = [v.version for v in h.versions]
    for ax, m in zip(axes, names):
        pts = [(v.version, v.metrics[m], v) for v in h.versions if m in v.metrics]
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1, color="#4c72b0", zorder=1)
        live = [p for p in pts if not p[2].retired]
        gone = [p for p in pts if p[2].retired]
        ax.scatter([p[0] for p in live], [p[1] for p in live], s=18, color="#4c72b0", zorder=2)
        if gone:
            ax.scatter([p[0] for p in gone], [p[1] for p in gone], s=18, facecolors="white",
                       edgecolors="grey", zorder=2, label="retired")
        for x, val, v in pts:
            if v.aliases:
                ax.scatter([x], [val], s=60, facecolors="none", edgecolors="#dd8452", lw=1.5, zorder=3)
                ax.annotate(", ".join(v.aliases), (x, val), textcoords="offset points", xytext=(0, 7),
                            ha="center", fontsize=7, color="#dd8452")
        ax.set_title(m + (" (lower is better)" if m in LOWER_IS_BETTER else ""), fontsize=9)
        ax.set_xlabel("version", fontsize=8)
        ax.tick_params(labelsize=TICK_SIZE)
        if len(xs_all) <= 20:
            ax.set_xticks(xs_all)
        ax.margins(x=0.08, y=0.2)
        if gone:
            ax.legend(fontsize=7)
    return fig
