"""Where recorded predictions live: one monitoring run per model, in the model's experiment.

Layout of the run (ordinary MLflow data, visible in ``mlflow ui``)::

    run "iris monitor"  (tag nbmodel.monitor = true)
      artifacts/monitor/batches/v3/<time>-<id>.npz   one file per record() call
      artifacts/monitor/labels/<time>-<id>.npz       one file per record_labels() call
      metrics  v3/1d/volume, v3/1d/accuracy, v3/1d/psi/<feature>...  per closed window

A batch file is written whole under a temporary name and renamed into place, so a reader never
sees half a batch; record() costs one artifact write and no database round trip once the run
is known. Files are immutable, so a process caches what it has read and a later summary reads
only the files that are new (that is what keeps a summary of a million rows under a second).
Labels are kept per model, not per version: labels that arrive after the alias moved still
join the traffic of the version that answered.
"""

from __future__ import annotations

import io
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..store import Store, get_store

if TYPE_CHECKING:
    import numpy as np

MONITOR_TAG = "nbmodel.monitor"
BATCHES = "monitor/batches"
LABELS = "monitor/labels"

_runs: dict[tuple[str, str], MonitorRun] = {}
_runs_lock = threading.Lock()


@dataclass
class MonitorRun:
    """The monitoring run of one model and a way to read and write its files."""

    store_uri: str
    name: str
    run_id: str
    artifact_uri: str
    local_dir: str | None = None
    _repo: Any = field(default=None, repr=False)
    _download_dir: str | None = field(default=None, repr=False)

    @property
    def repo(self) -> Any:
        if self._repo is None:
            from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

            self._repo = get_artifact_repository(self.artifact_uri)
        return self._repo

    # -- writing --------------------------------------------------------------------------------
    def write(self, folder: str, arrays: dict[str, np.ndarray]) -> str:
        """Write one ``.npz`` file under ``folder``, whole or not at all.

        Args:
            folder: ``monitor/batches/v<N>`` or ``monitor/labels``.
            arrays: the named arrays.

        Returns:
            The file's artifact path.
        """
        import numpy as np

        fname = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
        buf = io.BytesIO()
        named: dict[str, Any] = dict(arrays)
        np.savez(buf, **named)
        data = buf.getvalue()
        if self.local_dir is not None:
            target_dir = os.path.join(self.local_dir, folder)
            os.makedirs(target_dir, exist_ok=True)
            tmp = os.path.join(target_dir, f".{fname}.tmp")
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, os.path.join(target_dir, fname))
        else:
            import tempfile

            with tempfile.TemporaryDirectory() as tmpdir:
                path = os.path.join(tmpdir, fname)
                with open(path, "wb") as fh:
                    fh.write(data)
                get_store().retry(self.repo.log_artifact, path, folder)
        return f"{folder}/{fname}"

    # -- reading --------------------------------------------------------------------------------
    def list(self, folder: str) -> list[str]:
        """Artifact paths of the finished ``.npz`` files under ``folder``, oldest first.

        Args:
            folder: as for :meth:`write`.

        Returns:
            The paths (``[]`` for a folder not written yet).
        """
        if self.local_dir is not None:
            target_dir = os.path.join(self.local_dir, folder)
            try:
                names = [e.name for e in os.scandir(target_dir)
                         if e.name.endswith(".npz") and not e.name.startswith(".")]
            except FileNotFoundError:
                return []
            return [f"{folder}/{n}" for n in sorted(names)]
        try:
            found = get_store().retry(self.repo.list_artifacts, folder)
        except Exception:  # noqa: BLE001 - a folder that does not exist yet
            return []
        return sorted(f.path for f in found if not f.is_dir and f.path.endswith(".npz"))

    def read(self, path: str) -> dict[str, np.ndarray]:
        """The arrays of one file.

        Args:
            path: an artifact path from :meth:`list`.

        Returns:
            The named arrays.
        """
        import numpy as np

        if self.local_dir is not None:
            full = os.path.join(self.local_dir, path)
        else:
            import tempfile

            if self._download_dir is None:
                self._download_dir = tempfile.mkdtemp(prefix="nbmodel-monitor-")
            full = get_store().retry(self.repo.download_artifacts, path, self._download_dir)
        with np.load(full, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}


def _local_dir(artifact_uri: str) -> str | None:
    from urllib.parse import unquote, urlparse

    if artifact_uri.startswith("file:"):
        return unquote(urlparse(artifact_uri).path)
    if artifact_uri.startswith("/"):
        return artifact_uri
    return None


def monitor_run(name: str, *, store: Store | None = None) -> MonitorRun:
    """The monitoring run of model ``name``, created on first use.

    Args:
        name: the registered model.
        store: the store (default: the current one).

    Returns:
        The :class:`MonitorRun`, cached per store and model for the life of the process.

    Example:
        >>> monitor_run("iris").list("monitor/batches/v1")  # doctest: +SKIP
        ['monitor/batches/v1/01772358000000000000-1a2b3c4d.npz']
    """
    store = store or get_store()
    key = (store.uri, name)
    with _runs_lock:
        found = _runs.get(key)
    if found is not None:
        return found
    exp_id = store.experiment_id(name)
    run = _find(store, exp_id)
    if run is None:
        with store.write_lock():
            run = _find(store, exp_id)
            if run is None:
                run = store.gateway.create_run(
                    exp_id, run_name=f"{name} monitor",
                    tags={MONITOR_TAG: "true",
                          "mlflow.note.content": "Predictions recorded by nbmodel.record and the "
                          "served traffic of every version, with per-window metrics and drift."})
    info = run.info
    found = MonitorRun(store.uri, name, info.run_id, info.artifact_uri, _local_dir(info.artifact_uri))
    with _runs_lock:
        _runs.setdefault(key, found)
        return _runs[key]


def _find(store: Store, exp_id: str) -> Any:
    runs = store.gateway.search_runs([exp_id], f"tags.`{MONITOR_TAG}` = 'true'",
                                     max_results=1, order_by=["attributes.start_time ASC"])
    return runs[0] if runs else None


def clear_caches() -> None:
    """Forget every run and file this process has read (as after a kernel restart)."""
    with _runs_lock:
        _runs.clear()

