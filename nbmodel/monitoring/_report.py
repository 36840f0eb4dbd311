"""What %model_monitor shows: windows, drift, alerts and plots, as text and as HTML."""

from __future__ import annotations

import base64
import functools
import html
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..display import STYLE, Shown, html_table, text_table
from ..metrics import CLASSIFIER
from ._alerts import Alert, Firing, Rule, _num
from ._stats import QUALITY, Summary, severity

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_FEATURES_SHOWN = 20
MAX_WINDOWS_SHOWN = 60

_CSS = """<style>
.nbm-heat td{padding:1px 4px;text-align:center;font-size:.85em}
.nbm-alert{color:var(--jp-error-color1,#b22);font-weight:bold}
.nbm-ok{color:var(--jp-success-color1,#2a7a2a)}
.nbm-note{color:var(--jp-ui-font-color2,#666)}
</style>"""


def _f(value: Any, digits: int = 3) -> str:
    x = float(value)
    if x != x:
        return ""
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}" if abs(x) < 1 else f"{x:.{digits + 1}g}"


def _p(x: float) -> str:
    if x != x:
        return ""
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def _class_key(c: str) -> tuple[int, float, str]:
    """Classes in their natural order: numbers by value, then names."""
    try:
        return (0, float(c), "")
    except ValueError:
        return (1, 0.0, c)


@dataclass(repr=False)  # Shown's repr: the text form
class MonitorReport(Shown):
    """The result of :func:`nbmodel.monitor`: a summary per window, drift, and alerts.

    Attributes:
        summary: the numbers (:class:`~nbmodel.monitoring.Summary`); ``summary.frame()`` is a
            DataFrame with one row per window.
        rules: the alert rules checked.
        fired: every (rule, window) that failed.
        open: the alerts open now.
        new: alerts that opened with this check (the ones on_alert callbacks were called for).
    """

    summary: Summary
    rules: list[Rule] = field(default_factory=list)
    fired: list[Firing] = field(default_factory=list)
    open: list[Alert] = field(default_factory=list)
    new: list[Alert] = field(default_factory=list)
    plots: bool = True
    #: metrics per group of the labelled rows (``groups=``): a nbmodel.explain.GroupReport
    groups: Any = None

    # -- pieces ---------------------------------------------------------------------------------
    @property
    def ref(self) -> str:
        return self.summary.ref

    def frame(self) -> Any:
        return self.summary.frame()

    def _title(self) -> str:
        s = self.summary
        if not s.total:
            name = s.ref.split("/")[0]
            return (f"{s.ref}: no predictions recorded yet; "
                    f"record some with nbmodel.record({name!r}, X, y_pred)")
        labels = s.labels()
        span = labels[0] if len(labels) == 1 else f"{labels[0]} to {labels[-1]}"
        width = f"{s.window.rows} rows" if s.window.rows else s.window.text
        lab = f", {s.labelled:,} with labels" if s.labelled else ", no labels yet"
        return (f"{s.ref}: {s.total:,} predictions in {s.n_windows} window{'s' if s.n_windows != 1 else ''} "
                f"of {width}, {span}{lab}")

    def _window_rows(self) -> tuple[list[str], list[list[str]], list[list[bool]]]:
        import numpy as np

        s = self.summary
        m = s.metrics
        quality = list(QUALITY.get(s.task, ()))
        head = ["window", "volume"]
        cols: list[tuple[str, Any]] = [("volume", lambda w: f"{int(m['volume'][w]):,}")]
        if "latency_p50" in m:
            head += ["p50 ms", "p95 ms"]
            cols += [("latency_p50", lambda w: _f(m["latency_p50"][w])),
                     ("latency_p95", lambda w: _f(m["latency_p95"][w]))]
        if s.labelled:
            head += ["labelled", *quality]
            cols += [("labelled", lambda w: f"{int(m['labelled'][w]):,}")]
            cols += [(q, functools.partial(lambda q, w: _f(m[q][w]), q)) for q in quality]
        if "est_accuracy" in m and not np.all(np.isnan(m["est_accuracy"])):
            head += ["est accuracy", "est f1_macro"]
            cols += [("est_accuracy", lambda w: _f(m["est_accuracy"][w])),
                     ("est_f1_macro", lambda w: _f(m["est_f1_macro"][w]))]
        if s.has_reference:
            head += ["psi (worst feature)", "prediction psi"]
            psi = s.metric("psi")

            def worst(w: int) -> str:
                f = s.worst_feature("psi", w)
                return f"{_f(psi[w])} ({f})" if f else ""

            cols += [("psi", worst), ("prediction_psi", lambda w: _f(m["prediction_psi"][w]))]
        if s.task == CLASSIFIER and s.pred_dist is not None and 0 < len(s.classes) <= 6:
            order = sorted(range(len(s.classes)), key=lambda i: _class_key(s.classes[i]))
            head.append("predicted " + "/".join(s.classes[i] for i in order))
            cols.append(("", lambda w: "/".join(f"{s.pred_dist[w, i]:.2f}" for i in order)))
        elif "prediction_mean" in m:
            head.append("mean prediction")
            cols.append(("prediction_mean", lambda w: _f(m["prediction_mean"][w])))
        bad = {(f.rule.metric, f.window) for f in self.fired}
        rows, flags = [], []
        labels = s.labels()
        start = max(0, s.n_windows - MAX_WINDOWS_SHOWN)
        for w in range(start, s.n_windows):
            rows.append([labels[w]] + [fn(w) for _, fn in cols])
            flags.append([False] + [(key, w) in bad for key, _ in cols])
        return head, rows, flags

    def _drift_rows(self) -> tuple[list[str], list[list[str]]]:
        import numpy as np

        s = self.summary
        w = s.n_windows - 1
        order = np.argsort(-np.nan_to_num(s.psi[w], nan=-1.0), kind="stable")[:MAX_FEATURES_SHOWN]
        rows = []
        for j in order:
            rows.append([s.features[j], s.kinds[j], _f(s.psi[w, j]),
                         _f(s.ks[w, j]) if s.kinds[j] != "categorical" else "",
                         _p(s.pvalue[w, j]), "KS" if s.kinds[j] != "categorical" else "chi-square",
                         severity(s.psi[w, j])])
        return ["feature", "kind", "psi", "ks", "p-value", "test", ""], rows

    def most_drifted(self, n: int = 3) -> str:
        """The most drifted features of the newest window, in plain words."""
        import numpy as np

        s = self.summary
        if not s.has_reference or not s.n_windows:
            return ""
        w = s.n_windows - 1
        psi = s.psi[w]
        order = [j for j in np.argsort(-np.nan_to_num(psi, nan=-1.0), kind="stable")
                 if psi[j] == psi[j] and psi[j] >= 0.1][:n]
        if not order:
            return "no feature has drifted from the training reference (every PSI < 0.1)"
        parts = [f"{s.features[j]} (PSI {_f(psi[j])}, {severity(psi[j])})" for j in order]
        pp = s.metrics["prediction_psi"][w]
        tail = f"; the predictions moved too (PSI {_f(pp)})" if pp == pp and pp >= 0.1 else ""
        return "most drifted: " + ", ".join(parts) + tail

    def _alert_lines(self) -> list[tuple[str, bool]]:
        out = []
        open_by_rule = {a.rule: a for a in self.open}
        for r in self.rules:
            fired = [f for f in self.fired if f.rule == r]
            a = open_by_rule.get(r.text)
            labels = self.summary.labels()
            if a is not None:
                out.append((f"{r.text}: OPEN, {_num(a.value)}{a.where} in {a.window}; failed in "
                            f"{len(fired)} window{'s' if len(fired) != 1 else ''} since {a.since}", True))
            elif fired:
                out.append((f"{r.text}: ok now; failed in {len(fired)} earlier window"
                            f"{'s' if len(fired) != 1 else ''} ({labels[fired[0].window]} to "
                            f"{labels[fired[-1].window]})", False))
            else:
                out.append((f"{r.text}: ok", False))
        return out

    # -- text -----------------------------------------------------------------------------------
    def __str__(self) -> str:
        s = self.summary
        lines = [self._title()]
        if s.total:
            head, rows, _ = self._window_rows()
            lines.append(text_table(head, rows))
            if s.has_reference:
                lines.append(f"drift in {s.labels()[-1]} against the training reference:")
                lines.append(text_table(*self._drift_rows()))
                lines.append(self.most_drifted())
        lines += s.notes
        if self.groups is not None:
            lines.append(str(self.groups))
        if self.rules:
            n_open = len(self.open)
            lines.append(f"alerts: {n_open} open" if n_open else "alerts: none open")
            lines += ["  " + t for t, _ in self._alert_lines()]
        return "\n".join(line for line in lines if line)

    # -- HTML -----------------------------------------------------------------------------------
    def _repr_html_(self) -> str:
        s = self.summary
        parts = [STYLE, _CSS, f"<div class='nbm-card'><h4>{html.escape(self._title())}</h4>"]
        if s.total:
            head, rows, flags = self._window_rows()
            cells = [[f"<span class='nbm-alert'>{html.escape(c)}</span>" if bad else html.escape(c)
                      for c, bad in zip(row, fl)] for row, fl in zip(rows, flags)]
            parts.append(html_table(head, cells, caption="per window", raw=True))
            if s.has_reference:
                parts.append(self._heatmap_html())
                d_head, d_rows = self._drift_rows()
                parts.append(html_table(d_head, d_rows, caption=f"drift in {s.labels()[-1]}"))
                parts.append(f"<p>{html.escape(self.most_drifted())}</p>")
        for note in s.notes:
            parts.append(f"<p class='nbm-note'>{html.escape(note)}</p>")
        if self.groups is not None:
            parts.append(self.groups._repr_html_())
        if self.rules:
            items = "".join(f"<li class='{'nbm-alert' if bad else 'nbm-ok'}'>{html.escape(t)}</li>"
                            for t, bad in self._alert_lines())
            parts.append(f"<p><b>alerts</b>: {len(self.open)} open</p><ul>{items}</ul>")
        if self.plots and s.total:
            parts.append(self._png_html())
        parts.append("</div>")
        return "".join(parts)

    def _heatmap_html(self) -> str:
        import numpy as np

        s = self.summary
        start = max(0, s.n_windows - 30)
        labels = s.labels()[start:]
        order = np.argsort(-np.nan_to_num(s.psi_all, nan=-1.0), kind="stable")[:MAX_FEATURES_SHOWN]
        head = "<tr><th>PSI</th>" + "".join(f"<th>{html.escape(t[5:] if len(t) >= 10 else t)}</th>"
                                          for t in labels) + "</tr>"
        body = []
        for j in order:
            tds = []
            for w in range(start, s.n_windows):
                v = s.psi[w, j]
                a = 0.0 if v != v else min(v / 0.5, 1.0)
                tds.append(f"<td style='background:rgba(220,50,47,{a:.2f})' title='{_f(v)}'>{_f(v, 2)}</td>")
            body.append(f"<tr><td>{html.escape(s.features[j])}</td>{''.join(tds)}</tr>")
        return (f"<table class='nbm-table nbm-heat'><caption>drift by feature and window "
                f"(PSI; red is > 0.25)</caption>{head}{''.join(body)}</table>")

    def _png_html(self) -> str:
        try:
            fig = self.plot()
        except Exception:  # noqa: BLE001 - plots are a bonus; the tables say it all
            return ""
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=72)
        data = base64.b64encode(buf.getvalue()).decode()
        return f"<img src='data:image/png;base64,{data}' alt='monitor plots'/>"

    # -- plots ----------------------------------------------------------------------------------
    def plot(self) -> Figure:
        """Metrics over time with the rules' thresholds and the failing windows marked, and a
        heatmap of drift by feature and window (a matplotlib Figure)."""
        import numpy as np
        from matplotlib.figure import Figure

        s = self.summary
        x = np.arange(s.n_windows)
        labels = s.labels()
        quality = QUALITY[s.task][0]
        panels = ["volume"]
        if s.labelled:
            panels.append(quality)
        if s.has_reference:
            panels += ["psi", "heatmap"]
        heatmap_rows = min(len(s.features), 20) if s.has_reference else 0
        fig = Figure(figsize=(9, 2.2 * len(panels) + 0.15 * heatmap_rows))
        heights: list[float] = [1.0] * len(panels)
        if s.has_reference:
            heights[-1] = max(1.0, min(len(s.features), 20) / 6)
        axes = fig.subplots(len(panels), 1, sharex=False, gridspec_kw={"height_ratios": heights})
        axes = np.atleast_1d(axes)
        step = max(1, s.n_windows // 12)
        for ax, panel in zip(axes, panels):
            if panel == "volume":
                ax.bar(x, s.metrics["volume"], color="#7a9cc6")
                ax.set_ylabel("volume")
                self._mark(ax, x, s.metrics["volume"], "volume")
            elif panel == "psi":
                ax.plot(x, s.metric("psi"), marker="o", label="worst feature")
                ax.plot(x, s.metrics["prediction_psi"], marker=".", linestyle="--", label="predictions")
                ax.axhspan(0.1, 0.25, color="#f5d8b0", alpha=0.3)
                ax.set_ylabel("PSI")
                ax.legend(loc="upper left", fontsize=8)
                self._mark(ax, x, s.metric("psi"), "psi")
            elif panel == "heatmap":
                order = np.argsort(-np.nan_to_num(s.psi_all, nan=-1.0), kind="stable")[:20]
                im = ax.imshow(s.psi[:, order].T, aspect="auto", cmap="Reds", vmin=0, vmax=0.5,
                               interpolation="nearest")
                ax.set_yticks(range(len(order)))
                ax.set_yticklabels([s.features[j] for j in order], fontsize=8)
                fig.colorbar(im, ax=ax, label="PSI")
            else:
                values = s.metrics[panel]
                ax.plot(x, values, marker="o")
                ax.set_ylabel(panel)
                self._mark(ax, x, values, panel)
            ax.set_xticks(x[::step])
            ax.set_xticklabels([labels[i] for i in x[::step]], rotation=30, ha="right", fontsize=8)
        fig.suptitle(f"{s.ref} monitor")
        # fixed margins: tight_layout and bbox_inches="tight" each cost a full extra draw
        fig.subplots_adjust(left=0.24, right=0.98, top=0.94, bottom=0.08, hspace=0.75)
        return fig

    def _mark(self, ax: Any, x: Any, values: Any, metric: str) -> None:
        for r in self.rules:
            if r.metric == metric and r.feature is None:
                ax.axhline(r.threshold, color="#b22", linestyle=":", linewidth=1)
                bad = r.fails(values)
                ax.scatter(x[bad], values[bad], color="#b22", zorder=3, s=40, label=f"{r.text}")


__all__ = ["MonitorReport"]
