"""Where recorded predictions live: one monitoring run per model, in the model's experiment.

Layout of the run (ordinary MLflow data, visible in ``mlflow ui``)::

    run "iris monitor"  (tag nbmodel.monitor = true)
      artifacts/monitor/batches/v3/<time>-<id>.arrow one file per record() call
      artifacts/monitor/labels/<time>-<id>.arrow     one file per record_labels() call

A batch is an Arrow IPC file, one column per recorded array (``x.<feature>``, ``g.<group>``,
``ts``, ``pred``...): read memory-mapped, every column is contiguous and needs no decoding, so
reading a thousand of them costs little more than their bytes. Stores written by earlier
versions hold ``.npz`` files (a 2-D array of the numeric features and one of the categorical
ones); they are read as before.
      metrics  v3/1d/volume, v3/1d/accuracy, v3/1d/psi/<feature>...  per closed window

A batch file is written whole under a temporary name and renamed into place, so a reader never
sees half a batch; record() costs one artifact write and no database round trip once the run
is known. Files are immutable, so a process caches what it has read and a later summary reads
only the files that are new (that is what keeps a summary of a million rows under a second).
Labels are kept per model, not per version: labels that arrive after the alias moved still
join the traffic of the version that answered.

Many writers (kernels, server workers, on several machines) agree on one run: the oldest run
tagged ``nbmodel.monitor``. Its creation is under the store's write lock, and a writer that
creates one reads the tag back and takes the oldest, so two writers racing on a store whose
lock cannot span machines (an ``http://`` server) end up writing to the same run. Should a race
still leave two runs, readers read the files of every monitoring run of the model (file names
are unique, so nothing is counted twice): no recorded row is ever lost.
"""

from __future__ import annotations

import builtins
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
    import pyarrow as pa

MONITOR_TAG = "nbmodel.monitor"
BATCHES = "monitor/batches"
LABELS = "monitor/labels"
#: Column name prefixes in a batch file: a feature of X, and a group given apart from X.
FEATURE = "x."
GROUP = "g."
#: Extensions of raw batch and label files: Arrow IPC, and ``.npz`` of earlier versions.
RAW = (".arrow", ".npz")

#: How long a reader trusts its list of the model's monitoring runs before searching again.
SIBLINGS_SECONDS = 2.0

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
    #: the model's experiment, where the other monitoring runs (left by a race) are searched
    experiment_id: str | None = None
    _repo: Any = field(default=None, repr=False)
    _download_dir: str | None = field(default=None, repr=False)
    _siblings: dict[str, MonitorRun] = field(default_factory=dict, repr=False)
    _siblings_at: float = field(default=float("-inf"), repr=False)
    _where: dict[str, MonitorRun] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def repo(self) -> Any:
        if self._repo is None:
            from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

            self._repo = get_artifact_repository(self.artifact_uri)
        return self._repo

    # -- writing --------------------------------------------------------------------------------
    def write(self, folder: str, arrays: dict[str, np.ndarray]) -> str:
        """Write one file under ``folder``, whole or not at all: an Arrow IPC table when every
        array is one column of as many rows, else an ``.npz``.

        Args:
            folder: ``monitor/batches/v<N>`` or ``monitor/labels``.
            arrays: the named arrays.

        Returns:
            The file's artifact path.
        """
        stem = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        lengths = {len(a) if getattr(a, "ndim", 1) == 1 else -1 for a in arrays.values()}
        if len(lengths) == 1 and -1 not in lengths:
            return self.write_bytes(folder, f"{stem}.arrow", _ipc(arrays))
        import numpy as np

        buf = io.BytesIO()
        named: dict[str, Any] = dict(arrays)
        np.savez(buf, **named)
        return self.write_bytes(folder, f"{stem}.npz", buf.getvalue())

    def write_bytes(self, folder: str, fname: str, data: bytes) -> str:
        """Write one file under ``folder``, whole or not at all (a reader never sees half).

        Args:
            folder: the artifact folder.
            fname: the file's name.
            data: its content.

        Returns:
            The file's artifact path.
        """
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

    def delete(self, path: str) -> None:
        """Remove one file (gone already: nothing happens).

        Args:
            path: an artifact path from :meth:`list`.
        """
        with self._lock:
            owner = self._where.get(path)
        if owner is not None:
            owner.delete(path)
            return
        if self.local_dir is not None:
            try:
                os.remove(os.path.join(self.local_dir, path))
            except FileNotFoundError:
                pass
            return
        try:
            get_store().retry(self.repo.delete_artifacts, path)
        except Exception:  # noqa: BLE001 - removed by another compaction already
            pass

    # -- reading --------------------------------------------------------------------------------
    def list(self, folder: str, ext: str | tuple[str, ...] = RAW) -> list[str]:
        """Artifact paths of the finished files under ``folder`` (raw batches or labels unless
        ``ext`` says), oldest first, in this run and in any other monitoring run of the model.

        Args:
            folder: as for :meth:`write`.
            ext: the files' extension(s) (``.parquet`` for compacted summaries).

        Returns:
            The paths (``[]`` for a folder not written yet).
        """
        paths = self._list_own(folder, ext)
        siblings = self.siblings()
        if not siblings:
            return paths
        for other in siblings:
            for path in other._list_own(folder, ext):
                with self._lock:
                    self._where[path] = other
                paths.append(path)
        return sorted(set(paths))

    def siblings(self) -> builtins.list[MonitorRun]:
        """The model's other monitoring runs (normally none), searched again every
        :data:`SIBLINGS_SECONDS`."""
        if self.experiment_id is None:
            return []
        now = time.monotonic()
        with self._lock:
            fresh = now - self._siblings_at < SIBLINGS_SECONDS
            known = list(self._siblings.values())
        if fresh:
            return known
        store = get_store()
        if store.uri != self.store_uri:
            return known  # a run of a store no longer in use: what was found stays
        before = {r.run_id: r for r in known}
        found = {}
        for run in _all(store, self.experiment_id):
            info = run.info
            if info.run_id == self.run_id:
                continue
            found[info.run_id] = before.get(info.run_id) or MonitorRun(
                self.store_uri, self.name, info.run_id, info.artifact_uri, _local_dir(info.artifact_uri))
        with self._lock:
            self._siblings = found
            self._siblings_at = now
        return list(found.values())

    def _list_own(self, folder: str, ext: str | tuple[str, ...] = RAW) -> builtins.list[str]:
        if not self.run_id:
            return []  # no monitoring run yet (see monitor_run's create=False)
        if self.local_dir is not None:
            target_dir = os.path.join(self.local_dir, folder)
            try:
                names = [e.name for e in os.scandir(target_dir)
                         if e.name.endswith(ext) and not e.name.startswith(".")]
            except FileNotFoundError:
                return []
            return [f"{folder}/{n}" for n in sorted(names)]
        try:
            found = get_store().retry(self.repo.list_artifacts, folder)
        except Exception:  # noqa: BLE001 - a folder that does not exist yet
            return []
        return sorted(f.path for f in found if not f.is_dir and f.path.endswith(ext)
                      and not f.path.rsplit("/", 1)[-1].startswith("."))

    def folders(self, folder: str) -> builtins.list[str]:
        """The names of the folders directly under ``folder`` in this run (``v1``, ``v2``...).

        Args:
            folder: an artifact folder.

        Returns:
            Their names, sorted.
        """
        if not self.run_id:
            return []
        if self.local_dir is not None:
            try:
                return sorted(e.name for e in os.scandir(os.path.join(self.local_dir, folder)) if e.is_dir())
            except FileNotFoundError:
                return []
        try:
            found = get_store().retry(self.repo.list_artifacts, folder)
        except Exception:  # noqa: BLE001 - nothing recorded yet
            return []
        return sorted(f.path.rsplit("/", 1)[-1] for f in found if f.is_dir)

    def read(self, path: str) -> dict[str, np.ndarray]:
        """The arrays of one file (Arrow or ``.npz``).

        Args:
            path: an artifact path from :meth:`list`.

        Returns:
            The named arrays.
        """
        import numpy as np

        if path.endswith(".arrow"):
            table = self.read_table(path)
            return {k: table.column(k).to_numpy() for k in table.column_names}
        with np.load(io.BytesIO(self.read_bytes(path)), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}

    def read_table(self, path: str) -> pa.Table:
        """One Arrow file as a table: memory-mapped from a local store (no copy, no decoding),
        else read from the bytes.

        Args:
            path: an ``.arrow`` artifact path from :meth:`list`.

        Returns:
            The pyarrow table.
        """
        import pyarrow as pa

        with self._lock:
            owner = self._where.get(path)
        if owner is not None:
            return owner.read_table(path)
        if self.local_dir is not None:
            source: Any = pa.memory_map(os.path.join(self.local_dir, path))
        else:
            source = pa.py_buffer(self.read_bytes(path))
        return pa.ipc.open_file(source).read_all()

    def read_bytes(self, path: str) -> bytes:
        """The content of one file; a remote store's file passes through a temporary folder
        that is removed at once (a reader keeps no copy of the store).

        Args:
            path: an artifact path from :meth:`list`.

        Returns:
            The bytes.
        """
        with self._lock:
            owner = self._where.get(path)
        if owner is not None:
            return owner.read_bytes(path)
        if self.local_dir is not None:
            with open(os.path.join(self.local_dir, path), "rb") as fh:
                return fh.read()
        if self._download_dir is None:
            import atexit
            import shutil
            import tempfile

            self._download_dir = tempfile.mkdtemp(prefix="nbmodel-monitor-")
            # the folder goes with the process (or clear_caches); each file as soon as it is read
            atexit.register(shutil.rmtree, self._download_dir, True)
        import shutil
        import tempfile

        one = tempfile.mkdtemp(dir=self._download_dir)
        try:
            full = get_store().retry(self.repo.download_artifacts, path, one)
            with open(full, "rb") as fh:
                return fh.read()
        finally:
            shutil.rmtree(one, ignore_errors=True)


def _ipc(arrays: dict[str, Any]) -> bytes:
    """Columns as an uncompressed Arrow IPC file (read back memory-mapped, without decoding)."""
    import pyarrow as pa

    table = pa.table({k: v if isinstance(v, (pa.Array, pa.ChunkedArray)) else pa.array(v)
                      for k, v in arrays.items()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _local_dir(artifact_uri: str) -> str | None:
    from urllib.parse import unquote, urlparse

    if artifact_uri.startswith("file:"):
        return unquote(urlparse(artifact_uri).path)
    if artifact_uri.startswith("/"):
        return artifact_uri
    return None


def monitor_run(name: str, *, store: Store | None = None, create: bool = True) -> MonitorRun:
    """The monitoring run of model ``name``, created on first use.

    Args:
        name: the registered model.
        store: the store (default: the current one).
        create: False for a reader: where nothing was recorded yet, an empty stand-in that
            lists no files, and nothing (run or experiment) is written to the store.

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
    if not create and not store.gateway.has_experiment(name):
        return _absent(store, name)
    exp_id = store.experiment_id(name)
    run = _find(store, exp_id)
    if run is None and not create:
        return _absent(store, name)
    if run is None:
        with store.write_lock():
            run = _find(store, exp_id)
            if run is None:
                created = store.gateway.create_run(
                    exp_id, run_name=f"{name} monitor",
                    tags={MONITOR_TAG: "true",
                          "mlflow.note.content": "Predictions recorded by nbmodel.record and the "
                          "served traffic of every version, with per-window metrics and drift."})
                # Another machine may have created one at the same time: every writer takes
                # the oldest, so all write to one run (readers read any other one too).
                run = _find(store, exp_id) or created
    info = run.info
    found = MonitorRun(store.uri, name, info.run_id, info.artifact_uri, _local_dir(info.artifact_uri),
                       experiment_id=exp_id)
    with _runs_lock:
        _runs.setdefault(key, found)
        return _runs[key]


def _absent(store: Store, name: str) -> MonitorRun:
    """What a reader sees of a model nothing was recorded for: no run, no files (not cached, so
    the first record creates the real one)."""
    return MonitorRun(store.uri, name, "", "", None, experiment_id=None)


def _all(store: Store, exp_id: str) -> list[Any]:
    """Every monitoring run of the experiment, oldest first (ties broken by run id, so that
    every process orders them alike)."""
    runs = store.gateway.search_runs([exp_id], f"tags.`{MONITOR_TAG}` = 'true'", max_results=100,
                                     order_by=["attributes.start_time ASC"])
    return sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id))


def _find(store: Store, exp_id: str) -> Any:
    """The oldest monitoring run: the one every writer agrees on."""
    runs = _all(store, exp_id)
    return runs[0] if runs else None


def clear_caches() -> None:
    """Forget every run this process has found (as after a kernel restart)."""
    import shutil

    with _runs_lock:
        runs = list(_runs.values())
        _runs.clear()
    for run in [*runs, *(other for mine in runs for other in mine._siblings.values())]:
        if run._download_dir is not None:
            shutil.rmtree(run._download_dir, ignore_errors=True)
            run._download_dir = None
