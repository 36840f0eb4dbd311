"""Side-by-side evaluation of versions: ``nbmodel.compare(["iris/2", "iris/3"], X, y)``.

Every version is scored on the same data: a metrics table with the best value of each row
marked, one figure per kind of plot with the versions side by side, the rows where the versions
disagree, and a plain sentence saying whether the difference is real (McNemar's exact test for
classifiers, a paired bootstrap of the RMSE difference for regressors). ``metric_history``
plots the metrics stored at commit time against the version number, aliases marked.

In a notebook the result shows as an HTML table followed by the figures as ordinary PNG
outputs; ``str(result)`` is a plain, deterministic text form (timings are printed with their
unit, which nbmodel's nbval sanitize file masks). Heavy libraries are imported inside the
functions that need them.
"""

from __future__ import annotations

import base64
import html
import io
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .display import STYLE, badge, html_table, text_table
from .errors import BadData, BadReference
from .evaluate import (
    CLASSIFIER,
    LOWER_IS_BETTER,
    REGRESSOR,
    as_frame_or_array,
    as_target,
    check_fits,
    detect_task,
    predict,
)
from .refs import Ref
from .versions import Version, _fmt

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure as MplFigure

MIN_VERSIONS = 2
MAX_VERSIONS = 8
#: Metrics of the table, in order; a metric a version cannot have (ROC AUC without
#: probabilities) is left empty for it.
CLASSIFIER_METRICS = ("accuracy", "balanced_accuracy", "precision_macro", "recall_macro",
                      "f1_macro", "roc_auc", "log_loss")
REGRESSOR_METRICS = ("rmse", "mae", "r2", "max_error")
#: The metric that names the best version and drives the significance test.
PRIMARY = {CLASSIFIER: "accuracy", REGRESSOR: "rmse"}
ALPHA = 0.05
BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 0
#: Rows shown in the disagreement table.
DISAGREEMENT_ROWS = 10
#: Points drawn per scatter plot; more rows are subsampled (with a fixed seed).
SCATTER_POINTS = 2000
#: Seconds of work after which a progress bar appears.
PROGRESS_DELAY = 1.0
FIGURE_DPI = 80


# -- results --------------------------------------------------------------------------------
@dataclass
class Figure:
    """One rendered figure; shows as a PNG in a notebook and as its title in text."""

    name: str
    title: str
    png: bytes = field(repr=False)

    def _repr_png_(self) -> bytes:
        return self.png

    def __repr__(self) -> str:
        return f"<figure: {self.title}>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def to_html(self) -> str:
        data = base64.b64encode(self.png).decode("ascii")
        alt = html.escape(self.title)
        return f"<div class='nbm-figure'><img alt='{alt}' title='{alt}' src='data:image/png;base64,{data}'/></div>"

    def save(self, path: str) -> None:
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
        return {"count": self.count, "rows": self.rows, "rule": self.rule, "head": self.head,
                "table": self.table}


def _p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def _ms(value: float) -> str:
    # Always "N.NN ms": one format, so nbmodel's sanitize file masks every timing.
    return f"{value:.2f} ms"


@dataclass
class Comparison:
    """Versions scored side by side on the same data. See :func:`compare`."""

    task: str
    versions: list[Version]
    rows: int
    metrics: dict[str, list[float | None]]
    predict_ms: list[float]
    tests: list[Significance]
    disagreements: Disagreements
    figures: list[Figure] = field(default_factory=list)
    run_id: str | None = None
    timings: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def refs(self) -> list[str]:
        return [v.ref for v in self.versions]

    @property
    def primary(self) -> str:
        return PRIMARY[self.task]

    def best_of(self, metric: str) -> list[int]:
        """Indexes of the versions with the best shown value of ``metric`` (ties all count)."""
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
        for metric, values in self.metrics.items():
            best = set(self.best_of(metric))
            label = metric + (" (lower is better)" if metric in LOWER_IS_BETTER else "")
            cells = []
            for i, x in enumerate(values):
                if x is None or x != x:
                    cells.append("-")
                else:
                    cells.append(mark(_fmt(x)) if i in best else _fmt(x))
            rows.append([label, *cells])
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
        if self.figures:
            parts += ["", self._figures_line()]
        if self.run_id:
            parts += ["", f"saved as run {self.run_id}"]
        return "\n".join(parts)

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

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
        return self._head_html() + figs + self._disagreement_html() + saved

    def _ipython_display_(self) -> None:
        # Figures go out as their own image/png outputs: every front end shows them natively,
        # and nbval (which compares HTML but never PNG) stays deterministic.
        from IPython.display import display

        display({"text/plain": self._head_text(), "text/html": self._head_html()}, raw=True)
        for f in self.figures:
            display(f)
        tail = self._disagreement_text()
        tail_html = self._disagreement_html()
        if self.run_id:
            tail += f"\n\nsaved as run {self.run_id}"
            tail_html += (f"<div class='nbm-line'>saved as run <code>{html.escape(self.run_id)}"
                          "</code></div>")
        display({"text/plain": tail, "text/html": tail_html}, raw=True)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (REST routes, reports, the ``--log`` artifact)."""
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
        }


# -- progress -------------------------------------------------------------------------------
class Progress:
    """A progress bar that appears only once the work has run for ``PROGRESS_DELAY`` seconds.

    In a Jupyter kernel it is an ipywidgets bar sent without a text/plain form (so it leaves
    nothing that nbval compares) and closed when the work ends; in a terminal it is a line on
    stderr; elsewhere (scripts writing to files, plain test shells) it is silent. A callable
    ``callback(done, total, label)`` receives every step instead, as the panel's own bar does.
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


# -- the work -------------------------------------------------------------------------------
@dataclass
class _Scored:
    version: Version
    model: Any
    pred: Any
    proba: Any = None
    classes: list[Any] | None = None
    predict_ms: float = 0.0
    metrics: dict[str, float | None] = field(default_factory=dict)


def _check_refs(refs: Sequence[str | Ref | Version] | str) -> list[str | Ref | Version]:
    if isinstance(refs, (str, Ref, Version)):
        refs = [refs]
    refs = list(refs)
    if len(refs) < MIN_VERSIONS:
        only = f" (got only {refs[0]})" if refs else ""
        raise BadReference(
            f"compare needs at least two versions{only}: for example %model_compare iris/1 iris/2 "
            "--eval X_test y_test, or %model_compare iris --all for the stored metrics of every version")
    if len(refs) > MAX_VERSIONS:
        raise BadReference(f"compare takes at most {MAX_VERSIONS} versions, got {len(refs)}; "
                           "pick the ones that matter, or use --all for stored metrics")
    return refs


def _resolve_all(refs: list[Any]) -> list[Version]:
    from .versions import resolve

    out: list[Version] = []
    seen: dict[str, Any] = {}
    for r in refs:
        v = r if isinstance(r, Version) else resolve(r)
        if v.ref in seen:
            raise BadReference(f"{seen[v.ref]} and {r} are the same version ({v.ref}); "
                               "compare different versions")
        seen[v.ref] = r
        out.append(v)
    return out


def _classifier_metrics(y: np.ndarray, s: _Scored, cm: np.ndarray | None = None) -> dict[str, float | None]:
    """Accuracy, balanced accuracy and macro precision/recall/F1 from one confusion matrix
    (as scikit-learn defines them, with zero_division=0), AUC and log loss from probabilities.

    ``cm`` is the confusion matrix over every class seen in the truth or any prediction; the
    counts come from one bincount, several times faster than scikit-learn's checked metrics.
    """
    import numpy as np
    from sklearn import metrics as skm

    if cm is None:
        _, (yi, pi) = _class_index(y, [s.pred])
        k = int(max(yi.max(), pi.max())) + 1
        cm = np.bincount(yi * k + pi, minlength=k * k).reshape(k, k)
    # Macro averages run over the classes present in the truth or in these predictions.
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    c = cm[np.ix_(present, present)].astype(float)
    tp = np.diag(c)
    true_n, pred_n = c.sum(axis=1), c.sum(axis=0)

    def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.divide(a, b, out=np.zeros_like(a), where=b > 0)

    seen = true_n > 0  # balanced accuracy ignores classes absent from the truth
    out: dict[str, float | None] = {
        "accuracy": float(tp.sum() / c.sum()),
        "balanced_accuracy": float(np.mean(tp[seen] / true_n[seen])),
        "precision_macro": float(np.mean(ratio(tp, pred_n))),
        "recall_macro": float(np.mean(ratio(tp, true_n))),
        "f1_macro": float(np.mean(ratio(2 * tp, true_n + pred_n))),
    }
    out["roc_auc"] = out["log_loss"] = None
    if s.proba is not None and s.classes is not None:
        present_y = set(np.unique(y).tolist())
        if present_y <= set(s.classes) and len(present_y) >= 2:
            try:
                if s.proba.shape[1] == 2:
                    out["roc_auc"] = float(skm.roc_auc_score(y == s.classes[1], s.proba[:, 1]))
                else:
                    out["roc_auc"] = float(skm.roc_auc_score(y, s.proba, multi_class="ovr",
                                                             average="macro", labels=s.classes))
                out["log_loss"] = float(skm.log_loss(y, s.proba, labels=s.classes))
            except ValueError:
                pass
    return out


def _regressor_metrics(y: np.ndarray, s: _Scored) -> dict[str, float | None]:
    import numpy as np

    err = y - s.pred
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {
        "rmse": float(np.sqrt(np.mean(err ** 2))),
        "mae": float(np.mean(np.abs(err))),
        "r2": 1.0 - float(np.sum(err ** 2)) / ss_tot if ss_tot > 0 else float("nan"),
        "max_error": float(np.max(np.abs(err))),
    }


def _probabilities(model: Any, X: Any, rows: int) -> tuple[Any, list[Any] | None]:
    import numpy as np

    fn = getattr(model, "predict_proba", None)
    if not callable(fn):
        return None, None
    try:
        proba = np.asarray(fn(X), dtype=float)
    except Exception:  # noqa: BLE001 - probabilities are a bonus (some SVMs refuse)
        return None, None
    if proba.ndim != 2 or proba.shape[0] != rows:
        return None, None
    classes = list(getattr(model, "classes_", range(proba.shape[1])))
    if len(classes) != proba.shape[1]:
        return None, None
    return proba, classes


def _mcnemar(a: _Scored, b: _Scored, y: np.ndarray) -> Significance:
    """McNemar's exact test: a two-sided binomial test on the rows only one version gets right."""
    import numpy as np
    from scipy.stats import binomtest

    ok_a, ok_b = a.pred == y, b.pred == y
    only_a = int(np.sum(ok_a & ~ok_b))
    only_b = int(np.sum(~ok_a & ok_b))
    n = only_a + only_b
    p = 1.0 if n == 0 else float(binomtest(min(only_a, only_b), n, 0.5).pvalue)
    return _mcnemar_result(a.version.ref, b.version.ref, only_a, only_b, p, 1)


def _mcnemar_result(ra: str, rb: str, only_a: int, only_b: int, p: float, m: int) -> Significance:
    detail = {"only_a_right": only_a, "only_b_right": only_b}
    if only_a + only_b == 0:
        return Significance(ra, rb, "mcnemar", False,
                            f"{ra} and {rb} get exactly the same rows wrong on this data: "
                            "no evidence that either is better", p=1.0, detail=detail)
    adj = f", Holm-adjusted for {m} comparisons" if m > 1 else ""
    how = (f"McNemar's exact test{adj}: {only_a} row{'s' if only_a != 1 else ''} only {ra} "
           f"gets right, {only_b} only {rb}")
    if p < ALPHA and only_a > only_b:
        return Significance(ra, rb, "mcnemar", True,
                            f"{ra} is better than {rb} on this data, {_p_text(p)} ({how})",
                            p=p, detail=detail)
    return Significance(ra, rb, "mcnemar", False,
                        f"{ra} and {rb} are not significantly different on this data "
                        f"({_p_text(p)}, {how}); more eval data could tell them apart",
                        p=p, detail=detail)


def _bootstrap_rmse(y: np.ndarray, preds: list[np.ndarray]) -> np.ndarray:
    """RMSE of every version on each of ``BOOTSTRAP_SAMPLES`` resamples of the rows.

    Paired: each resample uses the same rows for every version. Each resample's row counts
    times the squared errors is one matrix product, so all versions cost about one.
    """
    import numpy as np

    n = len(y)
    se = np.column_stack([(y - p) ** 2 for p in preds])
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    out = np.empty((BOOTSTRAP_SAMPLES, len(preds)))
    chunk = max(1, min(BOOTSTRAP_SAMPLES, 2_000_000 // max(n, 1)))
    for start in range(0, BOOTSTRAP_SAMPLES, chunk):
        k = min(chunk, BOOTSTRAP_SAMPLES - start)
        idx = rng.integers(0, n, size=(k, n)) + (np.arange(k) * n)[:, None]
        counts = np.bincount(idx.ravel(), minlength=k * n).reshape(k, n)
        out[start:start + k] = np.sqrt(counts @ se / n)
    return out


def _bootstrap(a: _Scored, b: _Scored, y: np.ndarray, m: int, samples: np.ndarray) -> Significance:
    """Paired bootstrap CI of RMSE(b) - RMSE(a); ``samples`` holds both versions' RMSEs."""
    import numpy as np

    diffs = samples[:, 1] - samples[:, 0]
    level = 1 - ALPHA / m
    lo, hi = (float(x) for x in np.quantile(diffs, [(1 - level) / 2, 1 - (1 - level) / 2]))
    observed = float(np.sqrt(np.mean((y - b.pred) ** 2)) - np.sqrt(np.mean((y - a.pred) ** 2)))
    ra, rb = a.version.ref, b.version.ref
    pct = f"{level * 100:.3g}%"
    ci_text = f"{pct} CI {_fmt(lo)} to {_fmt(hi)}, paired bootstrap of {BOOTSTRAP_SAMPLES} resamples"
    if m > 1:
        ci_text += f", Bonferroni-widened for {m} comparisons"
    if lo > 0:
        sentence = (f"{ra} is better than {rb} on this data: its RMSE is lower by {_fmt(observed)} "
                    f"({ci_text})")
        significant = True
    else:
        sentence = (f"{ra} and {rb} are not clearly different on this data: RMSE difference "
                    f"{_fmt(observed)} ({ci_text}, includes 0); more eval data could tell them apart")
        significant = False
    return Significance(ra, rb, "paired-bootstrap", significant, sentence, ci=(lo, hi),
                        detail={"rmse_difference": observed, "level": level})


def _tests(task: str, scored: list[_Scored], best: int, y: np.ndarray) -> list[Significance]:
    """The best version against each other one."""
    others = [s for i, s in enumerate(scored) if i != best]
    m = len(others)
    if task != CLASSIFIER:
        samples = _bootstrap_rmse(y, [scored[best].pred, *[s.pred for s in others]])
        return [_bootstrap(scored[best], s, y, m, samples[:, [0, j + 1]])
                for j, s in enumerate(others)]
    raw = [_mcnemar(scored[best], s, y) for s in others]
    if m == 1:
        return raw
    # Holm's step-down adjustment: the k-th smallest p times (m - k), kept monotone.
    order = sorted(range(m), key=lambda i: (raw[i].p or 0.0, i))
    out: list[Significance] = list(raw)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (raw[i].p or 0.0) * (m - rank)))
        t = raw[i]
        out[i] = _mcnemar_result(t.a, t.b, t.detail["only_a_right"], t.detail["only_b_right"],
                                 running, m)
    return out


def _label(x: Any) -> str:
    if hasattr(x, "item"):
        x = x.item()
    return _fmt(x) if isinstance(x, float) else str(x)


def _disagreements(task: str, scored: list[_Scored], y: np.ndarray, index: Sequence[Any]) -> Disagreements:
    import numpy as np

    preds = [s.pred for s in scored]
    refs = [s.version.ref for s in scored]
    head = ["row", *refs, "truth"]
    n = len(y)
    if task == CLASSIFIER:
        differ = np.zeros(n, dtype=bool)
        for p in preds[1:]:
            differ |= p != preds[0]
        picked = np.flatnonzero(differ)[:DISAGREEMENT_ROWS]
        rule = "different predicted classes"
        count = int(differ.sum())
    else:
        stacked = np.vstack(preds).astype(float)
        spread = stacked.max(axis=0) - stacked.min(axis=0)
        sd = float(np.std(y.astype(float)))
        tol = 0.1 * sd if sd > 0 else 0.0
        differ = spread > tol
        count = int(differ.sum())
        order = np.argsort(-spread, kind="stable")
        picked = [i for i in order[:DISAGREEMENT_ROWS] if differ[i]]
        rule = f"predictions further apart than 10% of the target's s.d., {_fmt(tol)}"
    table = [[str(index[i]), *[_label(p[i]) for p in preds], _label(y[i])] for i in picked]
    return Disagreements(count, n, head, table, rule)


# -- figures --------------------------------------------------------------------------------
def _grid(n: int, title: str, *, width: float = 3.0, height: float = 2.9) -> tuple[MplFigure, list[Any]]:
    """A figure with ``n`` panels side by side (four to a row). No pyplot: nothing global.

    Margins are fixed in inches rather than computed by a layout engine, which would double
    the drawing time (the measured half of a comparison's time on 10,000 rows).
    """
    from matplotlib.figure import Figure as MplFigure

    cols = min(n, 4)
    rows = -(-n // cols)
    top, bottom, left, right, gap_w, gap_h = 0.75, 0.5, 0.65, 0.15, 0.6, 0.85
    fig_w = width * cols
    fig_h = height * rows + 0.3
    fig = MplFigure(figsize=(fig_w, fig_h))
    ax_w = (fig_w - left - right - gap_w * (cols - 1)) / cols
    ax_h = (fig_h - top - bottom - gap_h * (rows - 1)) / rows
    fig.subplots_adjust(left=left / fig_w, right=1 - right / fig_w, bottom=bottom / fig_h,
                        top=1 - top / fig_h, wspace=gap_w / ax_w, hspace=gap_h / ax_h)
    axes = list(fig.subplots(rows, cols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.remove()
    fig.suptitle(title, fontsize=11, y=1 - 0.08 / fig_h, va="top")
    return fig, axes[:n]


def _render(fig: MplFigure) -> bytes:
    buf = io.BytesIO()
    # No "Software" stamp: the same figure gives the same bytes.
    fig.savefig(buf, format="png", dpi=FIGURE_DPI, metadata={"Software": None})
    return buf.getvalue()


def _short(label: Any, width: int = 10) -> str:
    text = _label(label)
    return text if len(text) <= width else text[: width - 1] + "~"


def _class_index(y: np.ndarray, preds: list[np.ndarray]) -> tuple[list[Any], list[np.ndarray]]:
    """The classes seen in the truth and every prediction, and each array as indexes of them."""
    import numpy as np

    arrays = [y, *preds]
    try:
        labels = np.unique(np.concatenate(arrays))
        return list(labels), [np.searchsorted(labels, a) for a in arrays]
    except TypeError:  # mixed types: compare their text
        arrays = [np.asarray([str(x) for x in a]) for a in arrays]
        labels = np.unique(np.concatenate(arrays))
        return list(labels), [np.searchsorted(labels, a) for a in arrays]


def _plot_confusion(scored: list[_Scored], y: np.ndarray) -> MplFigure:
    import numpy as np

    labels, idx = _class_index(y, [s.pred for s in scored])
    k = len(labels)
    fig, axes = _grid(len(scored), "confusion matrices (rows: truth, columns: predicted)")
    for n, (ax, s, pi) in enumerate(zip(axes, scored, idx[1:])):
        cm = np.bincount(idx[0] * k + pi, minlength=k * k).reshape(k, k)
        ax.imshow(cm, cmap="Blues", vmin=0)
        if k <= 12:
            top = cm.max() or 1
            for i in range(k):
                for j in range(k):
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if cm[i, j] > top / 2 else "black")
        if k <= 20:
            names = [_short(c) for c in labels]
            ax.set_xticks(range(k), names, fontsize=7, rotation=45 if k > 4 else 0)
            ax.set_yticks(range(k), names, fontsize=7)
        ax.set_xlabel("predicted", fontsize=8)
        if n % 4 == 0:
            ax.set_ylabel("true", fontsize=8)
        ax.set_title(f"{s.version.ref}\naccuracy {_fmt(s.metrics.get('accuracy') or 0.0)}", fontsize=9)
    return fig


def _plot_roc(scored: list[_Scored], y: np.ndarray) -> MplFigure:
    from sklearn.metrics import roc_curve

    several = any(s.proba is not None and s.proba.shape[1] > 2 for s in scored)
    fig, axes = _grid(len(scored), "ROC curves" + (" (one-vs-rest)" if several else ""))
    for n, (ax, s) in enumerate(zip(axes, scored)):
        ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey")
        auc = s.metrics.get("roc_auc")
        if s.proba is None or s.classes is None or auc is None:
            ax.text(0.5, 0.5, "no probabilities", ha="center", va="center", fontsize=9)
        elif s.proba.shape[1] == 2:
            fpr, tpr, _ = roc_curve(y == s.classes[1], s.proba[:, 1])
            ax.plot(fpr, tpr, lw=1.4, label=f"{_short(s.classes[1])} vs rest")
        else:
            for j, c in enumerate(s.classes[:10]):
                positive = y == c
                if positive.all() or not positive.any():
                    continue
                fpr, tpr, _ = roc_curve(positive, s.proba[:, j])
                ax.plot(fpr, tpr, lw=1.2, label=_short(c))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower right")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("false positive rate", fontsize=8)
        if n % 4 == 0:
            ax.set_ylabel("true positive rate", fontsize=8)
        ax.tick_params(labelsize=7)
        title = s.version.ref + (f"\nROC AUC {_fmt(auc)}" if auc is not None else "")
        ax.set_title(title, fontsize=9)
    return fig


def _sample(n: int) -> np.ndarray:
    import numpy as np

    if n <= SCATTER_POINTS:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, SCATTER_POINTS, replace=False))


def _plot_predicted(scored: list[_Scored], y: np.ndarray) -> MplFigure:
    import numpy as np

    pick = _sample(len(y))
    shown = "" if len(pick) == len(y) else f", {len(pick)} of {len(y)} rows drawn"
    fig, axes = _grid(len(scored), f"predicted against true{shown}")
    lo = float(min(y.min(), *(s.pred.min() for s in scored)))
    hi = float(max(y.max(), *(s.pred.max() for s in scored)))
    for n, (ax, s) in enumerate(zip(axes, scored)):
        # plot() with markers draws several times faster than scatter() for the same points.
        ax.plot(y[pick], s.pred[pick], ls="none", marker=".", ms=3, alpha=0.5, mew=0)
        ax.plot([lo, hi], [lo, hi], ls="--", lw=0.8, color="grey")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("true", fontsize=8)
        if n % 4 == 0:
            ax.set_ylabel("predicted", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_title(f"{s.version.ref}\nRMSE {_fmt(s.metrics.get('rmse') or float(np.nan))}", fontsize=9)
    return fig


def _plot_residuals(scored: list[_Scored], y: np.ndarray) -> MplFigure:
    import numpy as np

    pick = _sample(len(y))
    shown = "" if len(pick) == len(y) else f", {len(pick)} of {len(y)} rows drawn"
    fig, axes = _grid(len(scored), f"residuals (true - predicted) against predicted{shown}")
    res = [y - s.pred for s in scored]
    bound = float(max(np.abs(r).max() for r in res)) or 1.0
    for n, (ax, s, r) in enumerate(zip(axes, scored, res)):
        ax.plot(s.pred[pick], r[pick], ls="none", marker=".", ms=3, alpha=0.5, mew=0)
        ax.axhline(0, ls="--", lw=0.8, color="grey")
        ax.set_ylim(-bound * 1.05, bound * 1.05)
        ax.set_xlabel("predicted", fontsize=8)
        if n % 4 == 0:
            ax.set_ylabel("residual", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_title(f"{s.version.ref}\nMAE {_fmt(s.metrics.get('mae') or float(np.nan))}", fontsize=9)
    return fig


def _figure_kinds(task: str, scored: list[_Scored]) -> list[tuple[str, str, Callable[..., MplFigure]]]:
    if task == CLASSIFIER:
        kinds = [("confusion_matrices", "confusion matrices", _plot_confusion)]
        if any(s.metrics.get("roc_auc") is not None for s in scored):
            kinds.append(("roc_curves", "ROC curves", _plot_roc))
        return kinds
    return [("predicted_vs_true", "predicted against true", _plot_predicted),
            ("residuals", "residuals", _plot_residuals)]


def _plot_metric_history(h: MetricHistory) -> MplFigure:
    names = h.metric_names
    fig, axes = _grid(len(names), f"stored metrics of {h.name} by version (aliases marked)",
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
        ax.tick_params(labelsize=7)
        if len(xs_all) <= 20:
            ax.set_xticks(xs_all)
        ax.margins(x=0.08, y=0.2)
        if gone:
            ax.legend(fontsize=7)
    return fig


def compare(
    refs: Sequence[str | Ref | Version] | str,
    X: Any = None,
    y: Any = None,
    *,
    log: bool = False,
    plots: bool = True,
    progress: bool | Callable[[int, int, str], None] | None = None,
    all_versions: bool = False,
) -> Comparison | MetricHistory:
    """Score 2 to 8 versions side by side on the same data.

    Args:
        refs: the versions (``["iris/2", "iris@production", "iris"]``); any mix of forms.
        X: the eval data: a DataFrame or 2-D array with the columns the models were fitted on.
        y: its targets, one per row.
        log: save the comparison as an MLflow run (table, figures, JSON) in the first model's
            experiment, so ``mlflow ui`` shows it.
        plots: draw the figures (confusion matrices and ROC curves for classifiers; predicted
            against true and residuals for regressors).
        progress: ``None`` shows a bar once the work has run about a second; ``False`` never;
            a callable ``(done, total, label)`` receives every step.
        all_versions: instead, plot the stored metrics of every version of the model ``refs``
            names (no eval data needed); see :func:`metric_history`.

    Returns:
        A :class:`Comparison` (HTML table and figures in a notebook, text elsewhere).

    Raises:
        BadReference: fewer than two or more than eight versions, or one named twice.
        ModelNotFound, VersionNotFound, AliasNotFound: a reference names nothing.
        BadData: data whose columns or length do not fit a model (the message names the
            version and the columns), or a classifier compared with a regressor.

    Example:
        >>> c = nbmodel.compare(["iris/1", "iris/2"], X_test, y_test)  # doctest: +SKIP
        >>> c.winner  # doctest: +SKIP
        'iris/2'
    """
    if all_versions:
        names = [refs] if isinstance(refs, (str, Ref)) else list(refs)
        if len(names) != 1:
            raise BadReference("all_versions takes one model name: compare('iris', all_versions=True)")
        return metric_history(names[0], log=log)
    ref_list = _check_refs(refs)
    if X is None or y is None:
        raise BadData("give the eval data: compare(refs, X_test, y_test); "
                      "or all_versions=True for the stored metrics of every version")
    import numpy as np

    from .versions import load

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    X = as_frame_or_array(X, "the eval data")
    rows = X.shape[0]
    y_arr = as_target(y, rows, "the eval targets")
    index = list(X.index) if hasattr(X, "index") else list(range(rows))
    n_figures = 2 if plots else 0
    bar = Progress(len(ref_list) * 2 + 1 + n_figures,
                   callback=progress if callable(progress) else None,
                   enabled=progress is not False)
    try:
        versions = _resolve_all(ref_list)
        timings["resolve"] = time.perf_counter() - t0
        scored: list[_Scored] = []
        tasks: dict[str, list[str]] = {}
        t = time.perf_counter()
        models = []
        for v in versions:
            models.append(load(v))
            bar.step(f"loaded {v.ref}")
        timings["load"] = time.perf_counter() - t
        t = time.perf_counter()
        for v, model in zip(versions, models):
            try:
                check_fits(model, X, "the eval data")
            except BadData as exc:
                raise BadData(f"{v.ref}: {exc}") from None
            task = detect_task(model, y_arr)
            tasks.setdefault(task or "unknown", []).append(v.ref)
        if len(tasks) > 1:
            listing = "; ".join(f"{', '.join(r)} {'is a' if len(r) == 1 else 'are'} "
                                f"{k}{'' if len(r) == 1 else 's'}" for k, r in tasks.items())
            raise BadData(f"cannot compare a classifier with a regressor ({listing}); "
                          "compare versions of the same kind")
        task = next(iter(tasks))
        if task not in (CLASSIFIER, REGRESSOR):
            task = detect_task(object(), y_arr) or CLASSIFIER
        if task == REGRESSOR:
            try:
                y_arr = y_arr.astype(float)
            except (TypeError, ValueError):
                raise BadData("the eval targets are not numbers, so regressors cannot be scored "
                              "on them") from None
        for v, model in zip(versions, models):
            start = time.perf_counter()
            try:
                pred = predict(model, X, "the eval data")
            except BadData as exc:
                raise BadData(f"{v.ref}: {exc}") from None
            elapsed = time.perf_counter() - start
            if pred.ndim == 2 and pred.shape[1] == 1:
                pred = pred[:, 0]
            if pred.shape[0] != rows:
                raise BadData(f"{v.ref} returned {pred.shape[0]} predictions for {rows} rows")
            if task == REGRESSOR:
                pred = pred.astype(float)
            s = _Scored(v, model, pred, predict_ms=elapsed / rows * 1e6)
            if task == CLASSIFIER:
                s.proba, s.classes = _probabilities(model, X, rows)
            scored.append(s)
            bar.step(f"scored {v.ref}")
        timings["predict"] = time.perf_counter() - t
        t = time.perf_counter()
        names = CLASSIFIER_METRICS if task == CLASSIFIER else REGRESSOR_METRICS
        if task == CLASSIFIER:
            _, idx = _class_index(y_arr, [s.pred for s in scored])
            k = int(max(i.max() for i in idx)) + 1
            for s, pi in zip(scored, idx[1:]):
                cm = np.bincount(idx[0] * k + pi, minlength=k * k).reshape(k, k)
                s.metrics = _classifier_metrics(y_arr, s, cm)
        else:
            for s in scored:
                s.metrics = _regressor_metrics(y_arr, s)
        metrics = {k: [s.metrics.get(k) for s in scored] for k in names}
        metrics = {k: vals for k, vals in metrics.items() if any(x is not None for x in vals)}
        timings["metrics"] = time.perf_counter() - t
        result = Comparison(task, versions, rows, metrics, [s.predict_ms for s in scored], [],
                            Disagreements(0, rows, [], [], ""), timings=timings)
        t = time.perf_counter()
        best = result.best_of(result.primary)
        result.tests = _tests(task, scored, best[0] if best else 0, y_arr)
        timings["significance"] = time.perf_counter() - t
        bar.step("significance")
        t = time.perf_counter()
        result.disagreements = _disagreements(task, scored, y_arr, index)
        timings["disagreements"] = time.perf_counter() - t
        if plots:
            t = time.perf_counter()
            for name, title, draw in _figure_kinds(task, scored):
                result.figures.append(Figure(name, title, _render(draw(scored, y_arr))))
                bar.step(f"plotted {title}")
            timings["figures"] = time.perf_counter() - t
        if log:
            t = time.perf_counter()
            result.run_id = _log_run(versions[0].name, f"compare {' '.join(result.refs)}",
                                     result, result.to_dict())
            timings["log"] = time.perf_counter() - t
    finally:
        bar.close()
    timings["total"] = time.perf_counter() - t0
    return result


# -- metrics against version ----------------------------------------------------------------
@dataclass
class MetricHistory:
    """The metrics stored at commit time for every version of a model, by version number."""

    name: str
    versions: list[Version]
    metric_names: list[str]
    figure: Figure | None = None
    run_id: str | None = None

    @property
    def figures(self) -> list[Figure]:
        return [self.figure] if self.figure else []

    def best_of(self, metric: str) -> list[int]:
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

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

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
        return {"name": self.name, "metrics": self.metric_names,
                "versions": [{"version": v.version, "aliases": v.aliases, "retired": v.retired,
                              "metrics": v.metrics} for v in self.versions],
                "run_id": self.run_id}


def metric_history(name: str | Ref, *, log: bool = False, plots: bool = True) -> MetricHistory:
    """Plot the metrics every version of ``name`` recorded at commit, against version number.

    Aliases are marked on the chart and in the table; retired versions are drawn hollow.

    Example:
        >>> nbmodel.compare("iris", all_versions=True)  # doctest: +SKIP
    """
    from .evaluate import KEY_METRICS
    from .history import log as history_log
    from .refs import parse_ref

    r = parse_ref(name)
    if r.version is not None or r.alias is not None:
        raise BadReference(f"--all plots every version of a model: name the model ({r.name}), "
                           f"not {r}")
    hist = history_log(r.name)
    versions = sorted(hist.versions, key=lambda v: v.version)
    tasks = [v.task for v in versions if v.task]
    preferred = list(KEY_METRICS.get(tasks[-1] if tasks else "", ()))
    extra = CLASSIFIER_METRICS + REGRESSOR_METRICS
    names: list[str] = []
    for m in preferred + list(extra):
        if m not in names and any(m in v.metrics for v in versions):
            names.append(m)
    for v in versions:
        for m in v.metrics:
            if m not in names:
                names.append(m)
    result = MetricHistory(r.name, versions, names[:6])
    if plots and result.metric_names:
        result.figure = Figure("metrics_by_version", f"stored metrics of {r.name} by version",
                               _render(_plot_metric_history(result)))
    if log:
        result.run_id = _log_run(r.name, f"metrics of {r.name} by version", result, result.to_dict())
    return result


# -- saving ---------------------------------------------------------------------------------
def _log_run(model_name: str, run_name: str, result: Any, data: dict[str, Any]) -> str:
    """Save a result as a finished MLflow run: table (text, HTML, JSON) and figures."""
    import os
    import tempfile

    from .store import get_store

    store = get_store()
    client = store.client
    exp_id = store.experiment_id(model_name)
    refs = data.get("refs") or [model_name]
    tags = {"nbmodel.kind": "compare", "nbmodel.compare": ",".join(refs),
            "mlflow.note.content": getattr(result, "summary", "") or str(result).splitlines()[0]}
    run = store.retry(client.create_run, exp_id, run_name=run_name, tags=tags)
    run_id = run.info.run_id
    try:
        from mlflow.entities import Metric
        from mlflow.utils.time import get_current_time_millis

        now = get_current_time_millis()
        batch = []
        table = data.get("metrics")
        for metric, values in (table.items() if isinstance(table, dict) else []):
            if isinstance(values, list):
                for ref, x in zip(refs, values):
                    if x is not None and x == x:
                        batch.append(Metric(f"{ref}/{metric}", float(x), now, 0))
        if batch:
            store.retry(client.log_batch, run_id, metrics=batch)
        with tempfile.TemporaryDirectory() as tmp:
            files = {"comparison.txt": str(result),
                     "comparison.html": "<!doctype html><meta charset='utf-8'>" + result._repr_html_(),
                     "comparison.json": json.dumps(data, indent=2, default=str)}
            for fname, text in files.items():
                with open(os.path.join(tmp, fname), "w", encoding="utf-8") as fh:
                    fh.write(text)
            figdir = os.path.join(tmp, "figures")
            os.makedirs(figdir)
            for f in result.figures:
                f.save(os.path.join(figdir, f"{f.name}.png"))
            store.retry(client.log_artifacts, run_id, tmp, "nbmodel")
        store.retry(client.set_terminated, run_id, "FINISHED")
    except BaseException:
        try:
            store.retry(client.delete_run, run_id)
        except Exception:  # noqa: BLE001 - the original error matters more
            pass
        raise
    return run_id


__all__ = ["Comparison", "Disagreements", "Figure", "MetricHistory", "Progress", "Significance",
           "compare", "metric_history"]
