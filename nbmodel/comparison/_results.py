"""What a comparison returns: the result record, its figures and how it shows.

In a notebook a :class:`Comparison` shows as an HTML table followed by the figures as ordinary
PNG outputs; ``str(result)`` is a plain, deterministic text form (timings are printed with
their unit, which nbmodel's nbval sanitize file masks).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..display import STYLE, Shown, badge, html_table, text_table
from ..metrics import CLASSIFIER, LOWER_IS_BETTER, PRIMARY
from ..versions import Version, _fmt


def label(x: Any) -> str:
    """A class label or a value as a table shows it (numbers to four significant digits)."""
    if hasattr(x, "item"):
        x = x.item()
    return _fmt(x) if isinstance(x, float) else str(x)


def _ms(value: float) -> str:
    # Always "N.NN ms": one format, so nbmodel's sanitize file masks every timing.
    return f"{value:.2f} ms"


@dataclass(repr=False)
class Figure(Shown):
    """One rendered figure; shows as a PNG in a notebook and as ``<figure: title>`` in text."""

    name: str
    title: str
    png: bytes

    def __str__(self) -> str:
        return f"<figure: {self.title}>"

    def _repr_png_(self) -> bytes:
        return self.png

    def to_html(self) -> str:
        """The figure as an ``<img>`` with the PNG inline.

        Returns:
            An HTML fragment.

        Example:
            >>> Figure("f", "a title", b"png").to_html()[:29]
            "<div class='nbm-figure'><img "
        """
        data = base64.b64encode(self.png).decode("ascii")
        alt = html.escape(self.title)
        return (f"<div class='nbm-figure'><img alt='{alt}' title='{alt}' "
                f"src='data:image/png;base64,{data}'/></div>")

    def save(self, path: str) -> None:
        """Write the PNG to ``path``.

        Args:
            path: the file to write.

        Example:
            >>> c.figures[0].save("confusion.png")  # doctest: +SKIP
        """
        with open(path, "wb") as fh:
            fh.write(self.png)


@dataclass
class Significance:
    """Whether ``a`` (the best version) is really better than ``b`` on this data."""

    a: str
    b: str
    method: str
    significant: bool
    sentence: str
    p: float | None = None
    ci: tuple[float, float] | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form.

        Returns:
            The fields as plain values.

        Example:
            >>> c.tests[0].to_dict()["method"]  # doctest: +SKIP
            'mcnemar'
        """
        return {"a": self.a, "b": self.b, "method": self.method, "significant": self.significant,
                "p": self.p, "ci": list(self.ci) if self.ci else None, "sentence": self.sentence,
                **self.detail}


@dataclass
class Disagreements:
    """The rows where the versions' predictions differ."""

    count: int
    rows: int
    head: list[str]
    table: list[list[str]]
    rule: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form.

        Returns:
            The fields as plain values.

        Example:
            >>> c.disagreements.to_dict()["count"]  # doctest: +SKIP
            3
        """
        return {"count": self.count, "rows": self.rows, "rule": self.rule, "head": self.head,
                "table": self.table}


@dataclass(repr=False)
class Comparison(Shown):
    """Versions scored side by side on the same data. See :func:`nbmodel.compare`."""

    task: str
    versions: list[Version]
    rows: int
    metrics: dict[str, list[float | None]]
    predict_ms: list[float]
    tests: list[Significance]
    disagreements: Disagreements
    figures: list[Figure] = field(default_factory=list)
    run_id: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    #: nbmodel.explain's importance side by side and metrics per group (``groups=``), if any.
    importance: Any = None
    groups: Any = None

    @property
    def _explained(self) -> list[Any]:
        return [x for x in (self.importance, self.groups) if x is not None]

    @property
    def refs(self) -> list[str]:
        """The versions' references, in the order given."""
        return [v.ref for v in self.versions]

    @property
    def primary(self) -> str:
        """The metric that names the best version (accuracy, or RMSE)."""
        return PRIMARY[self.task]

    def best_of(self, metric: str) -> list[int]:
        """Indexes of the versions with the best shown value of ``metric`` (ties all count).

        Args:
            metric: a row of the metrics table.

        Returns:
            The indexes into :attr:`versions`; empty when fewer than two versions have a value.

        Example:
            >>> c.best_of("accuracy")  # doctest: +SKIP
            [1]
        """
        values = self.metrics.get(metric, [])
        shown = [(i, float(_fmt(v))) for i, v in enumerate(values) if v is not None and v == v]
        if len(shown) < 2:
            return []
        pick = min if metric in LOWER_IS_BETTER else max
        top = pick(x for _, x in shown)
        return [i for i, x in shown if x == top]

    @property
    def best(self) -> str:
        """The version that is best on the primary metric (accuracy, or RMSE)."""
        idx = self.best_of(self.primary)
        return self.versions[idx[0] if idx else 0].ref

    @property
    def winner(self) -> str | None:
        """The best version if it is significantly better than every other one, else None."""
        if self.tests and all(t.significant for t in self.tests):
            return self.tests[0].a
        return None

    @property
    def summary(self) -> str:
        """The significance sentences, one per line."""
        return "\n".join(t.sentence for t in self.tests)

    # -- text ------------------------------------------------------------------------------
    def _title(self) -> str:
        kinds = "classifiers" if self.task == CLASSIFIER else "regressors"
        return f"compare {', '.join(self.refs)}: {kinds} on {self.rows} rows"

    def _metric_table(self, mark: Callable[[str], str]) -> tuple[list[str], list[list[str]]]:
        head = ["metric", *self.refs]
        rows: list[list[str]] = []
        if any(v.aliases for v in self.versions):
            rows.append(["aliases", *[", ".join(v.aliases) for v in self.versions]])
        if any(v.tests for v in self.versions):
            from ..modeltests import summary_text  # each version's own test results

            rows.append(["model tests", *[summary_text(v.tests) or "-" for v in self.versions]])
        for metric, values in self.metrics.items():
            best = set(self.best_of(metric))
            name = metric + (" (lower is better)" if metric in LOWER_IS_BETTER else "")
            cells = []
            for i, x in enumerate(values):
                if x is None or x != x:
                    cells.append("-")
                else:
                    cells.append(mark(_fmt(x)) if i in best else _fmt(x))
            rows.append([name, *cells])
        return head, rows

    def _timing_line(self) -> str:
        parts = ", ".join(f"{r} {_ms(t)}" for r, t in zip(self.refs, self.predict_ms))
        return f"prediction time per 1000 rows: {parts}"

    def _figures_line(self) -> str:
        return "figures: " + ", ".join(f.title for f in self.figures) if self.figures else ""

    def _disagreement_text(self) -> str:
        d = self.disagreements
        lines = [f"where they disagree: {d.count} of {d.rows} rows ({d.rule})"]
        if d.table:
            if d.count > len(d.table):
                lines[0] += f"; the first {len(d.table)}"
            lines.append(text_table(d.head, d.table))
        return "\n".join(lines)

    def _head_text(self) -> str:
        head, rows = self._metric_table(lambda s: s + " *")
        parts = [self._title(), text_table(head, rows), "* best in its row",
                 self._timing_line(), "", self.summary]
        return "\n".join(parts)

    def __str__(self) -> str:
        parts = [self._head_text(), "", self._disagreement_text()]
        for x in self._explained:
            parts += ["", str(x)]
        if self.figures:
            parts += ["", self._figures_line()]
        if self.run_id:
            parts += ["", f"saved as run {self.run_id}"]
        return "\n".join(parts)

    # -- html ------------------------------------------------------------------------------
    def _head_html(self) -> str:
        head, rows = self._metric_table(lambda s: f"<span class='nbm-best'>{s} &#9733;</span>")
        cells = [[html.escape(r[0]), *r[1:]] for r in rows]
        if any(v.aliases for v in self.versions):
            cells[0] = ["aliases", *["".join(badge(a) for a in v.aliases) for v in self.versions]]
        times = ["prediction time per 1000 rows", *[_ms(t) for t in self.predict_ms]]
        cells.append([html.escape(c) for c in times])
        table = html_table(head, cells, caption=self._title(), raw=True)
        sentences = "".join(f"<div class='nbm-line'><b>{html.escape(t.sentence)}</b></div>"
                            for t in self.tests)
        return (table + "<div class='nbm-line'>&#9733; best in its row</div>" + sentences)

    def _disagreement_html(self) -> str:
        d = self.disagreements
        caption = f"where they disagree: {d.count} of {d.rows} rows ({d.rule})"
        if d.count > len(d.table) and d.table:
            caption += f"; the first {len(d.table)}"
        if not d.table:
            return f"{STYLE}<div class='nbm-line'>{html.escape(caption)}</div>"
        return html_table(d.head, d.table, caption=caption)

    def _repr_html_(self) -> str:
        """The whole comparison as one HTML page, figures embedded (as saved by ``--log``)."""
        figs = "".join(f.to_html() for f in self.figures)
        saved = (f"<div class='nbm-line'>saved as run <code>{html.escape(self.run_id)}</code></div>"
                 if self.run_id else "")
        explained = "".join(x._repr_html_() for x in self._explained)
        return self._head_html() + figs + self._disagreement_html() + explained + saved

    def _ipython_display_(self) -> None:
        # Figures go out as their own image/png outputs: every front end shows them natively,
        # and nbval (which compares HTML but never PNG) stays deterministic.
        from IPython.display import display

        display({"text/plain": self._head_text(), "text/html": self._head_html()}, raw=True)
        for f in self.figures:
            display(f)
        tail = "\n\n".join([self._disagreement_text(), *(str(x) for x in self._explained)])
        tail_html = self._disagreement_html() + "".join(x._repr_html_() for x in self._explained)
        if self.run_id:
            tail += f"\n\nsaved as run {self.run_id}"
            tail_html += (f"<div class='nbm-line'>saved as run <code>{html.escape(self.run_id)}"
                          "</code></div>")
        display({"text/plain": tail, "text/html": tail_html}, raw=True)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (REST routes, reports, the ``--log`` artifact).

        Returns:
            The table, the best version of each row, timings, tests, disagreements, figure
            names and the run id.

        Example:
            >>> c.to_dict()["winner"]  # doctest: +SKIP
            'iris/2'
        """
        return {
            "task": self.task,
            "refs": self.refs,
            "rows": self.rows,
            "metrics": {k: list(v) for k, v in self.metrics.items()},
            "best": {k: [self.refs[i] for i in self.best_of(k)] for k in self.metrics},
            "predict_ms_per_1000": dict(zip(self.refs, self.predict_ms)),
            "tests": [t.to_dict() for t in self.tests],
            "winner": self.winner,
            "disagreements": self.disagreements.to_dict(),
            "figures": [f.name for f in self.figures],
            "run_id": self.run_id,
            "importance": None if self.importance is None else self.importance.to_dict(),
            "groups": None if self.groups is None else self.groups.to_dict(),
            "model_tests": {v.ref: v.to_dict()["tests"] for v in self.versions},
        }
