"""Saving a comparison or a metric history as a finished MLflow run.

Every call to the MLflow client that comparison makes is in :func:`log_run`.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any


def _artifacts(result: Any, data: dict[str, Any], folder: str) -> None:
    """Write the table (text, HTML, JSON) and the figures' PNGs into ``folder``."""
    files = {"comparison.txt": str(result),
             "comparison.html": "<!doctype html><meta charset='utf-8'>" + result._repr_html_(),
             "comparison.json": json.dumps(data, indent=2, default=str)}
    for fname, text in files.items():
        with open(os.path.join(folder, fname), "w", encoding="utf-8") as fh:
            fh.write(text)
    figdir = os.path.join(folder, "figures")
    os.makedirs(figdir)
    for f in result.figures:
        f.save(os.path.join(figdir, f"{f.name}.png"))


def log_run(model_name: str, run_name: str, result: Any, data: dict[str, Any]) -> str:
    """Save a result as a finished MLflow run in ``model_name``'s experiment.

    Each value of the result's table is a metric named ``<ref>/<metric>``; the table and the
    figures are the run's artifacts under ``nbmodel/``. A run that fails half-way is deleted.

    Args:
        model_name: the model whose experiment holds the run.
        run_name: the run's name (``compare iris/1 iris/2``).
        result: a comparison or a metric history (its text, HTML and figures are saved).
        data: its JSON form (``result.to_dict()``).

    Returns:
        The run's id.

    Raises:
        StoreError: the store cannot be reached.

    Example:
        >>> log_run("iris", "compare iris/1 iris/2", c, c.to_dict())  # doctest: +SKIP
        '5f0c...'
    """
    from ..store import get_store

    store = get_store()
    exp_id = store.experiment_id(model_name)
    refs = data.get("refs") or [model_name]
    tags = {"nbmodel.kind": "compare", "nbmodel.compare": ",".join(refs),
            "mlflow.note.content": getattr(result, "summary", "") or str(result).partition("\n")[0]}
    gateway = store.gateway
    run = gateway.create_run(exp_id, run_name=run_name, tags=tags)
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
            gateway.log_batch(run_id, metrics=batch)
        with tempfile.TemporaryDirectory() as tmp:
            _artifacts(result, data, tmp)
            gateway.log_artifacts(run_id, tmp, "nbmodel")
        gateway.finish_run(run_id)
    except BaseException:
        try:
            gateway.delete_run(run_id)
        except Exception:  # noqa: BLE001 - the original error matters more
            pass
        raise
    return run_id
