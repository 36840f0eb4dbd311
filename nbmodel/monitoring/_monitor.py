"""``nbmodel.monitor``: summarise a version's traffic, check the alert rules, keep the results."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import NbmodelError, first_line
from ..refs import Ref
from ..store import get_store
from . import _alerts
from ._report import MonitorReport
from ._schema import schema, target
from ._stats import summarise
from ._storage import monitor_run
from ._traffic import traffic
from ._windows import parse_since, parse_window

if TYPE_CHECKING:
    from ._stats import Summary

MAX_LOGGED_WINDOWS = 200
_logged: set[tuple[str, str, int, float]] = set()
_logged_lock = threading.Lock()


def monitor(ref: str | Ref, *, window: str | int | None = None, since: Any = None,
            until: Any = None, alerts: Sequence[str] | None = None, save_rules: bool = True,
            log_metrics: bool = True, plots: bool = True, groups: str | None = None) -> MonitorReport:
    """Metrics per time window, drift against the training reference, and alerts.

    Args:
        ref: the model or version; a plain name means the ``production`` alias's holder, else
            the newest version.
        window: ``15m``, ``1h``, ``1d``, ``1w``, a number of rows (``500``), or None for a width
            that cuts at most 30 windows.
        since, until: only traffic from / before this time (a date, ``2026-03-01 12:00``, or
            ``7d`` ago).
        alerts: rules such as ``"accuracy<0.9"``, ``"psi>0.2"``, ``"psi[age]>0.2"``; they are
            saved for the model (``save_rules``) and checked again by later calls that give
            none. ``[]`` removes the saved rules.
        log_metrics: also log the closed windows' metrics to the monitoring run (``mlflow ui``).
        plots: include matplotlib plots in the notebook view.
        groups: a column of the recorded X, or a group recorded beside it
            (``record(..., groups=series)``, by the series' name): every metric per group of
            the labelled rows, and the column of group rules that name none
            (``"accuracy_gap>0.05"``).

    Returns:
        A :class:`MonitorReport`; its ``open`` alerts are also kept in the store, and the
        callbacks given to :func:`on_alert` are called for those that just opened.

    Raises:
        BadData: a window or time that cannot be read.
        BadAlert: a rule that does not follow the grammar (the message shows it) or does not
            apply (drift rules on a version without a training reference).

    Example:
        >>> nbmodel.monitor("iris", window="1d", alerts=["accuracy<0.9", "psi>0.2"])  # doctest: +SKIP
    """
    spec = parse_window(window)
    since_ms = parse_since(since) if since is not None else None
    until_ms = parse_since(until) if until is not None else None
    rules = None if alerts is None else [_group_column(_alerts.parse_rule(a), groups) for a in alerts]
    name, version = target(ref)
    sch = schema(name, version)
    before = _alerts.stored(name)
    if rules is None:
        rules = [_alerts.parse_rule(r) for r in before[0]]
        try:
            _alerts.check_rules(rules, sch, sch.task)
        except _alerts.BadAlert:
            # saved for another version (say, one with a reference): check only what applies
            rules = [r for r in rules if _applies(r, sch)]
    else:
        _alerts.check_rules(rules, sch, sch.task)
    summary = _summary(name, version, spec, since_ms, until_ms)
    group_report, group_values = _groups(name, version, sch.task, groups, rules, summary, since_ms, until_ms)
    fired, open_now = _alerts.evaluate(summary, rules, name, version, group_values)
    old_open = {(a.rule, a.version) for a in before[1]}
    new = [a for a in open_now if (a.rule, a.version) not in old_open]
    try:
        _alerts.save(name, rules=[r.text for r in rules] if alerts is not None and save_rules else None,
                     open_alerts=open_now, before=before)
    except _alerts.BadAlert:
        raise
    except Exception as exc:  # noqa: BLE001
        raise NbmodelError(f"could not save the alerts of {name}: {first_line(exc)}") from exc
    _alerts.notify(new)
    if log_metrics and summary.total:
        try:
            _log_windows(name, version, summary)
        except Exception:  # noqa: BLE001 - the report matters more than its copy in mlflow ui
            pass
    return MonitorReport(summary, rules, fired, open_now, new, plots, group_report)


def _group_column(rule: _alerts.Rule, groups: str | None) -> _alerts.Rule:
    """A gap or fairness rule that names no column takes ``groups`` (and is saved with it)."""
    import dataclasses

    from ..explain._groups import is_group_rule

    if rule.feature is not None or not is_group_rule(rule.metric, None):
        return rule
    if groups is None:
        raise _alerts.BadAlert(f"{rule.text} compares groups: name their column, as in "
                               f"{rule.metric}[sex]{rule.op}{rule.threshold:g} or with --groups sex")
    return dataclasses.replace(rule, feature=groups)


def _groups(name: str, version: int, task: str | None, groups: str | None, rules: list[_alerts.Rule],
            summary: Summary, since_ms: int | None, until_ms: int | None) -> tuple[Any, Any]:
    """Metrics per group of the labelled rows, and each group rule's value per window (both
    from nbmodel.explain, over the recorded rows' group column)."""
    from ..explain._groups import group_metrics, rule_column, window_values

    group_rules = [r for r in rules if _alerts.is_group(r)]
    columns = {c for c in [groups, *(rule_column(r.metric, r.feature) for r in group_rules)] if c}
    if not columns:
        return None, None
    import numpy as np

    from ._traffic import recorded

    df = recorded(f"{name}/{version}", labelled=True)
    missing = sorted(c for c in columns if c not in df.columns)
    if missing:
        features = [c for c in df.columns if c not in ("timestamp", "y_pred", "y_true", "id", "latency_ms")]
        raise _alerts.BadAlert(f"no column {missing[0]!r} in what {name}/{version} recorded; group by "
                               f"one of {', '.join(features) or '(none)'}")
    ts = df["timestamp"].dt.tz_convert(None).to_numpy().astype("datetime64[ms]").astype(np.int64)
    keep = np.ones(len(df), dtype=bool)
    if since_ms is not None:
        keep &= ts >= since_ms
    if until_ms is not None:
        keep &= ts < until_ms
    df, ts = df[keep], ts[keep]
    task = task or summary.task
    y_true, y_pred = df["y_true"].to_numpy(), df["y_pred"].to_numpy()
    if task != "classifier":
        y_true = y_true.astype(float)
    window = np.searchsorted(summary.starts, ts, side="right") - 1
    report = (group_metrics(y_true, y_pred, df[groups], task=task, column=groups)
              if groups is not None and len(df) else None)

    def values(rule: _alerts.Rule) -> Any:
        col = rule_column(rule.metric, rule.feature)
        return window_values(rule.metric, rule.feature, y_true, y_pred, df[col].to_numpy(), window,
                             summary.n_windows, task)

    return report, values


def _summary(name: str, version: int, spec: Any, since_ms: int | None, until_ms: int | None) -> Summary:
    """From the window summaries when the window allows (compacting first when many batches
    wait), else from the raw rows kept."""
    from . import _cbpe, _compact, _counts

    _compact.auto_compact(name, version)
    cal = _cbpe.load(name, version)
    found = _compact.view(name, version)
    if found is not None and _counts.fits(found.counts, spec):
        return _counts.summarise_counts(found.counts, schema(name, version), spec, since_ms=since_ms,
                                        until_ms=until_ms, calibration=cal)
    summary = summarise(traffic(name, version), spec, since_ms=since_ms, until_ms=until_ms, calibration=cal)
    if found is not None:
        width = found.counts.width_ms // 60_000
        summary.notes.append(f"windows narrower than {width} min or counted in rows come from the raw "
                             "rows kept (see nbmodel.monitoring.compact); use a wider --window for all "
                             "the history")
    return summary


def _applies(rule: _alerts.Rule, sch: Any) -> bool:
    try:
        _alerts.check_rules([rule], sch, sch.task)
        return True
    except _alerts.BadAlert:
        return False


_KEY = re.compile(r"[^\w.\- /]")


def _key(text: str) -> str:
    return _KEY.sub("_", text)


def _log_windows(name: str, version: int, s: Summary) -> None:
    """Log each closed window's metrics to the monitoring run (step = window number), once."""
    import numpy as np
    from mlflow.entities import Metric

    if not s.n_windows:
        return
    if s.window.rows is not None:
        closed = np.flatnonzero(s.metrics["volume"] >= s.window.rows)
        steps = np.arange(s.n_windows)
    else:
        closed = np.arange(s.n_windows - 1)  # the newest window is still filling
        steps = s.starts // s.window.width_ms
    closed = closed[-MAX_LOGGED_WINDOWS:]
    if not len(closed):
        return
    run = monitor_run(name)
    prefix = f"v{version}/{s.window.text}"
    series: dict[str, Any] = {k: v for k, v in s.metrics.items()}
    for j, f in enumerate(s.features):
        series[f"psi/{_key(f)}"] = s.psi[:, j]
    out = []
    with _logged_lock:
        for key, values in series.items():
            full = f"{prefix}/{key}"
            for w in closed:
                v = float(values[w])
                if v != v:
                    continue
                mark = (run.run_id, full, int(steps[w]), round(v, 9))
                if mark in _logged:
                    continue
                _logged.add(mark)
                out.append(Metric(full, v, int(s.starts[w]), int(steps[w])))
    store = get_store()
    for i in range(0, len(out), 1000):
        store.gateway.log_batch(run.run_id, metrics=out[i:i + 1000])
