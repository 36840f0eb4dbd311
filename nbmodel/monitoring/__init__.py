"""Monitoring: recorded predictions, metrics per time window, drift against the training
reference, and alerts, all kept in the MLflow store.

    nbmodel.record("iris", X_batch, y_pred, ids=ids)       # from a notebook or a job
    nbmodel.record_labels("iris", ids, y_true)             # labels that arrive later
    nbmodel.monitor("iris", window="1d", alerts=["accuracy<0.9", "psi>0.2"])
    nbmodel.record("loans", X, y_pred, y_true=y, groups=applicants["sex"])   # a group beside X
    nbmodel.monitor("loans", groups="sex", alerts=["accuracy_gap>0.05"])

Records live in one monitoring run per model (artifacts ``monitor/batches/v<N>/*.arrow``, one
Arrow column per feature; ``.npz`` files of earlier versions are still read), so
they work alike on a sqlite store and an ``mlflow server``, survive restarts, and show in
``mlflow ui`` together with the per-window metrics. Compaction folds them into window summaries
(``monitor/summaries/v<N>/*.parquet``) that reads use, and drops raw rows past their retention
period. Alert rules and open alerts are tags of the registered model.

The package, by what each module does: ``_storage`` (the monitoring run and its files),
``_schema`` (the version a reference names and its training reference), ``_record`` (the write
path), ``_traffic`` (the read path), ``_windows`` (``--window``/``--since`` and cutting windows),
``_stats`` (metrics and drift per window), ``_counts`` (window summaries), ``_compact``
(compaction and retention), ``_cbpe`` (accuracy estimated before labels), ``_alerts`` (rules,
open alerts, callbacks),
``_monitor`` (:func:`monitor`), ``_report`` (what it shows), ``_live`` and ``_background``.
"""

from __future__ import annotations

from typing import Any

from ._alerts import (
    GRAMMAR,
    Alert,
    BadAlert,
    Rule,
    alert_state,
    on_alert,
    open_alerts,
    parse_rule,
    remove_on_alert,
)
from ._background import BackgroundRecorder
from ._cbpe import Calibration, calibrate
from ._compact import Compacted, compact
from ._live import LiveView
from ._monitor import monitor
from ._record import Recorded, record, record_labels
from ._report import MonitorReport
from ._stats import Summary
from ._traffic import recorded

__all__ = [
    "GRAMMAR", "Alert", "BackgroundRecorder", "BadAlert", "Calibration", "Compacted", "LiveView",
    "MonitorReport", "Recorded", "Rule", "Summary", "alert_state", "calibrate", "clear_caches", "compact",
    "live", "monitor", "on_alert", "open_alerts", "parse_rule", "record", "record_labels", "recorded",
    "remove_on_alert",
]


def live(ref: str, *, every: float = 5.0, **options: Any) -> LiveView:
    """A widget view of :func:`monitor` that refreshes as new records arrive, until stopped.

    Args:
        ref: the model or version, as for :func:`monitor`.
        every: seconds between checks for new records (at least 0.5).
        **options: what :func:`monitor` takes (``window``, ``since``, ``alerts``...).

    Returns:
        A :class:`LiveView`; ``.stop()`` stops it, the last view stays.

    Example:
        >>> view = nbmodel.monitoring.live("iris", window="1h", every=10)  # doctest: +SKIP
    """
    return LiveView(ref, every=every, **options)


def clear_caches() -> None:
    """Forget what this process read (as after a kernel restart); the store keeps everything.

    Example:
        >>> nbmodel.monitoring.clear_caches()  # doctest: +SKIP
    """
    from . import _cbpe, _compact, _schema, _storage, _traffic

    _cbpe.clear_caches()
    _compact.clear_caches()
    _schema.clear_caches()
    _traffic.clear_caches()
    _storage.clear_caches()

