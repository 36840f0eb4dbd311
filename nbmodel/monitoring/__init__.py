"""Monitoring: recorded predictions, metrics per time window, drift against the training
reference, and alerts, all kept in the MLflow store.

    nbmodel.record("iris", X_batch, y_pred, ids=ids)       # from a notebook or a job
    nbmodel.record_labels("iris", ids, y_true)             # labels that arrive later
    nbmodel.monitor("iris", window="1d", alerts=["accuracy<0.9", "psi>0.2"])

Records live in one monitoring run per model (artifacts ``monitor/batches/v<N>/*.npz``), so
they work alike on a sqlite store and an ``mlflow server``, survive restarts, and show in
``mlflow ui`` together with the per-window metrics. Alert rules and open alerts are tags of
the registered model. See the submodules' docstrings for the statistics.
"""

from __future__ import annotations

from typing import Any

from ._alerts import GRAMMAR, Alert, BadAlert, Rule, on_alert, open_alerts, parse_rule, remove_on_alert
from ._background import BackgroundRecorder
from ._live import LiveView, panel_tab
from ._monitor import monitor
from ._record import Recorded, record, record_labels, recorded
from ._report import MonitorReport
from ._stats import Summary

__all__ = [
    "GRAMMAR", "Alert", "BackgroundRecorder", "BadAlert", "LiveView", "MonitorReport", "Recorded",
    "Rule", "Summary", "add_cli", "clear_caches", "live", "monitor", "on_alert", "open_alerts",
    "panel_tab", "parse_rule", "record", "record_labels", "recorded", "remove_on_alert",
    "status_section",
]


def live(ref: str, *, every: float = 5.0, **options: Any) -> LiveView:
    """A widget view of :func:`monitor` that refreshes as new records arrive, until stopped.

    Example:
        >>> view = nbmodel.monitoring.live("iris", window="1h", every=10)  # doctest: +SKIP
    """
    return LiveView(ref, every=every, **options)


def status_section() -> tuple[str, list[str], list[list[str]]] | None:
    """Open alerts for ``%model_status`` (None when no model uses alerts)."""
    from ..store import get_store
    from ._alerts import T_OPEN, T_RULES, _from_tags, _num

    store = get_store()
    rows: list[list[str]] = []
    used = False
    token = None
    while True:
        page = store.retry(store.client.search_registered_models, max_results=1000, page_token=token)
        for rm in page:
            tags = dict(rm.tags or {})
            if T_RULES in tags or T_OPEN in tags:
                used = True
                for a in _from_tags(tags)[1]:
                    where = f" ({a.feature})" if a.feature and "[" not in a.rule else ""
                    rows.append([a.ref, a.rule, f"{_num(a.value)}{where}", a.window, a.since])
        token = page.token
        if not token:
            break
    if not used:
        return None
    return ("open alerts", ["version", "rule", "value", "window", "failing since"], rows)


def clear_caches() -> None:
    """Forget what this process read (as after a kernel restart); the store keeps everything."""
    from . import _record

    _record.clear_caches()


def _cli(args: Any) -> MonitorReport:
    return monitor(args.name, window=args.window, since=args.since, until=args.until,
                   alerts=args.alert, plots=False)
