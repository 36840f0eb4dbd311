"""The figures of a comparison and of a metric history, drawn without pyplot.

matplotlib is imported inside the functions: importing nbmodel never loads it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import metrics as M
from ..metrics import CLASSIFIER
from ..versions import _fmt
from ._results import label

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure as MplFigure

    from ._scoring import _Scored

#: Points drawn per scatter plot; more rows are subsampled (with a fixed seed).
SCATTER_POINTS = 2000
FIGURE_DPI = 80
#: Tick labels in points: four panels to a row are shown about 0.7 times their size in a
#: notebook, where 7 points read as 6 pixels.
TICK_SIZE = 9


def grid(n: int, title: str, *, width: float = 3.0, height: float = 2.9) -> tuple[MplFigure, list[Any]]:
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


def render(fig: MplFigure) -> bytes:
    """A figure's PNG bytes; the same figure gives the same bytes."""
    buf = io.BytesIO()
    # No "Software" stamp, which carries the matplotlib version.
    fig.savefig(buf, format="png", dpi=FIGURE_DPI, metadata={"Software": None})
    return buf.getvalue()


def _short(x: Any, width: int = 10) -> str:
    text = label(x)
    return text if len(text) <= width else text[: width - 1] + "~"


def _plot_confusion(scored: list[_Scored], y: np.ndarray) -> MplFigure:
    import numpy as np

    labels, idx = M.class_indices(y, *[s.pred for s in scored])
    k, n_versions = len(labels), len(scored)
    cms = M.confusion(np.tile(idx[0], n_versions), np.concatenate(idx[1:]), k,
                      batch=np.repeat(np.arange(n_versions), len(y)), n_batches=n_versions)
    fig, axes = grid(n_versions, "confusion matrices (rows: truth, columns: predicted)")
    for n, (ax, s, cm) in enumerate(zip(axes, scored, cms)):
        ax.imshow(cm, cmap="Blues", vmin=0)
        if k <= 12:
            top = cm.max() or 1
            for i in range(k):
                for j in range(k):
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if cm[i, j] > top / 2 else "black")
        if k <= 20:
            names = [_short(c) for c in labels]
            ax.set_xticks(range(k), names, fontsize=TICK_SIZE, rotation=45 if k > 4 else 0)
            ax.set_yticks(range(k), names, fontsize=TICK_SIZE)
        ax.set_xlabel("predicted", fontsize=8)
        if n % 4 == 0:
            ax.set_ylabel("true", fontsize=8)
        ax.set_title(f"{s.version.ref}\naccuracy {_fmt(s.metrics.get('accuracy') or 0.0)}", fontsize=9)
    return fig


def _plot_roc(scored: list[_Scored], y: np.ndarray) -> MplFigure:
    from sklearn.metrics import roc_curve

    several = any(s.proba is not None and s.proba.shape[1] > 2 for s in scored)
    fig, axes = grid(len(scored), "ROC curves" + (" (one-vs-rest)" if several else ""))
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
        ax.tick_params(labelsize=TICK_SIZE)
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
    fig, axes = grid(len(scored), f"predicted against true{shown}")
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
        ax.tick_params(labelsize=TICK_SIZE)
        ax.set_title(f"{s.version.ref}\nRMSE {_fmt(s.metrics.get('rmse') or float(np.nan))}", fontsize=9)
    return fig


def _plot_residuals(scored: list[_Scored], y: np.ndarray) -> MplFigure:
    import numpy as np

    pick = _sample(len(y))
    shown = "" if len(pick) == len(y) else f", {len(pick)} of {len(y)} rows drawn"
    fig, axes = grid(len(scored), f"residuals (true - predicted) against predicted{shown}")
    res = [y - s.pred for s in scored]
    bound = float(max(np.abs(r).max() for r in res)) or 1.0
    for n, (ax, s, r) in enumerate(zip(axes, scored, res)):
        ax.plot(s.pred[pick], r[pick], ls="none", marker=".", ms=3, alpha=0.5, mew=0)
        ax.axhline(0, ls="--", lw=0.8, color="grey")
        ax.set_ylim(-bound * 1.05, bound * 1.05)
        ax.set_xlabel("predicted", fontsize=8)
        if n % 4 == 0:
            ax.set_ylabel("residual", fontsize=8)
        ax.tick_params(labelsize=TICK_SIZE)
        ax.set_title(f"{s.version.ref}\nMAE {_fmt(s.metrics.get('mae') or float(np.nan))}", fontsize=9)
    return fig


def figure_kinds(task: str, scored: list[_Scored]) -> list[tuple[str, str, Callable[..., MplFigure]]]:
    """``(name, title, draw)`` of each figure a comparison of ``task`` shows."""
    if task == CLASSIFIER:
        kinds = [("confusion_matrices", "confusion matrices", _plot_confusion)]
        if any(s.metrics.get("roc_auc") is not None for s in scored):
            kinds.append(("roc_curves", "ROC curves", _plot_roc))
        return kinds
    return [("predicted_vs_true", "predicted against true", _plot_predicted),
            ("residuals", "residuals", _plot_residuals)]
