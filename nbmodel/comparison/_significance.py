"""Whether the best version is really better: McNemar's exact test for classifiers, a paired
bootstrap of the RMSE difference for regressors, adjusted for several comparisons."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..metrics import CLASSIFIER
from ..versions import _fmt
from ._results import Significance

if TYPE_CHECKING:
    import numpy as np

    from ._scoring import _Scored

ALPHA = 0.05
BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 0


def _p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


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


def _holm(raw: list[Significance]) -> list[Significance]:
    """Holm's step-down adjustment: the k-th smallest p times (m - k), kept monotone."""
    m = len(raw)
    order = sorted(range(m), key=lambda i: (raw[i].p or 0.0, i))
    out: list[Significance] = list(raw)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (raw[i].p or 0.0) * (m - rank)))
        t = raw[i]
        out[i] = _mcnemar_result(t.a, t.b, t.detail["only_a_right"], t.detail["only_b_right"],
                                 running, m)
    return out


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


def significance_tests(task: str, scored: list[_Scored], best: int, y: np.ndarray) -> list[Significance]:
    """The best version (index ``best``) tested against each other one, in their order."""
    others = [s for i, s in enumerate(scored) if i != best]
    m = len(others)
    if task != CLASSIFIER:
        samples = _bootstrap_rmse(y, [scored[best].pred, *[s.pred for s in others]])
        return [_bootstrap(scored[best], s, y, m, samples[:, [0, j + 1]])
                for j, s in enumerate(others)]
    raw = [_mcnemar(scored[best], s, y) for s in others]
    return raw if m == 1 else _holm(raw)
