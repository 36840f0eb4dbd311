"""Recording served traffic off the request path.

``submit`` only appends to a deque (a few hundred nanoseconds, no lock, no I/O); a daemon
thread turns what piled up into one ``record()`` call every ``max_rows`` rows or
``max_seconds`` seconds, so a server pays almost nothing per request.
"""

from __future__ import annotations

import atexit
import collections
import threading
import time
import weakref
from typing import Any

from ..errors import NbmodelError

#: Requests turned into arrays at a time by a flush of served traffic (see ``_served``).
SERVED_STEP = 256
#: Served requests waiting that wake the recorder to turn them into arrays, a step at a time.
STAGE_AT = 4 * SERVED_STEP


class BackgroundRecorder:
    """Batch predictions in a background thread and record them like :func:`nbmodel.record`.

    Args:
        name: the model.
        version: the version that answers (None: whatever ``name`` resolves to at each flush).
        max_rows: flush once this many rows are waiting.
        max_seconds: flush at least this often while rows are waiting.
        check_alerts_every: seconds between checks of the model's saved alert rules after a
            flush (so on_alert callbacks fire for served traffic); 0 turns it off.
        columns: the column names of inputs submitted as plain rows (a list of lists, as the
            server's fast path has them), so the request path builds nothing per request.
        model: the served estimator: when it has ``predict_proba`` (a classifier), each flush
            asks it for the probabilities of the whole batch at once (off the request path), so
            monitoring shows the estimated accuracy of served traffic (see ``calibrate``).
        use_array: the estimator takes a bare array, not a DataFrame with column names.

    Example:
        >>> rec = BackgroundRecorder("iris", 3)  # doctest: +SKIP
        >>> rec.submit(frame, predictions, latency_ms=4.2)  # doctest: +SKIP
        >>> rec.close()  # doctest: +SKIP
    """

    def __init__(self, name: str, version: int | str | None = None, *, max_rows: int = 1000,
                 max_seconds: float = 5.0, check_alerts_every: float = 60.0,
                 columns: list[str] | None = None, model: Any = None, use_array: bool = False) -> None:
        self.ref = f"{name}/{int(version)}" if version is not None else str(name)
        self.proba = _proba_of(model, use_array)
        self.columns = list(columns) if columns is not None else None
        self.max_rows = max(1, int(max_rows))
        self.max_seconds = float(max_seconds)
        self.check_alerts_every = float(check_alerts_every)
        self.recorded = 0
        self.dropped = 0
        self.last_error: str | None = None
        self._queue: collections.deque[tuple[Any, Any, float, float]] = collections.deque()
        self._pending = 0
        # Served requests already turned into arrays, a step at a time as they came (see
        # _stage), and requests of other shapes, kept as they are for the general path.
        self._staged: list[tuple[Any, ...]] = []
        self._raw: list[tuple[Any, Any, float, float]] = []
        self._wake = threading.Event()
        self._closed = False
        self._flush_lock = threading.Lock()
        self._last_check = time.monotonic()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        ref = weakref.ref(self)
        atexit.register(_close_at_exit, ref)

    def submit(self, input_frame: Any, predictions: Any, latency_ms: float = float("nan"),
               timestamp: float | None = None) -> None:
        """Queue one request's rows; never blocks and never raises for the caller.

        Args:
            input_frame: the request's rows (a DataFrame, an array, or a list of rows).
            predictions: one prediction per row.
            latency_ms: the time taken to answer.
            timestamp: seconds since the epoch (default: now).
        """
        if self._closed:
            return
        self._queue.append((input_frame, predictions, latency_ms,
                            time.time() if timestamp is None else timestamp))
        try:
            self._pending += len(input_frame)
        except TypeError:
            self._pending += 1
        if self._thread is None:
            self._start()
        if self._pending >= self.max_rows or (
                self.columns is not None and len(self._queue) >= STAGE_AT):
            self._wake.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True,
                                                name=f"nbmodel-recorder-{self.ref}")
                self._thread.start()

    def _loop(self) -> None:
        due = time.monotonic() + self.max_seconds
        while not self._closed:
            self._wake.wait(max(0.0, due - time.monotonic()))
            self._wake.clear()
            if self._pending < self.max_rows and time.monotonic() < due and not self._closed:
                self._stage()
                continue
            self.flush()
            due = time.monotonic() + self.max_seconds
            self._maybe_check()

    def _stage(self) -> None:
        """Turn the served requests queued so far into arrays, a step at a time, between
        flushes: a flush is then left with little to do, and the requests' own lists are freed
        at once. Each step holds the GIL for a fraction of a millisecond, and the server's
        event loop runs between them; one flush turning ten thousand requests at once made
        every request of those milliseconds wait. The recorder is woken to stage only when it
        knows the model's columns."""
        with self._flush_lock:
            while len(self._queue) >= SERVED_STEP:
                self._take([self._queue.popleft() for _ in range(SERVED_STEP)])

    def _take(self, items: list[tuple[Any, Any, float, float]]) -> None:
        """Keep one step of requests: as arrays when they are the server's plain rows, else
        as they are, for the general path."""
        part = self._served_step(items) if self.columns is not None else None
        if part is None:
            self._raw.extend(items)
        else:
            self._staged.append(part)

    def flush(self) -> int:
        """Record everything queued now.

        Returns:
            The number of rows recorded (failures are counted in ``dropped``, with ``last_error``).
        """
        with self._flush_lock:
            items = []
            while self._queue:
                items.append(self._queue.popleft())
            self._pending = 0
            for start in range(0, len(items), SERVED_STEP):
                self._take(items[start:start + SERVED_STEP])
            staged, self._staged = self._staged, []
            raw, self._raw = self._raw, []
            batches = [self._served(staged) if staged else None, self._general(raw) if raw else None]
            return sum(self._record(batch) for batch in batches if batch is not None)

    def _record(self, batch: tuple[Any, ...]) -> int:
        X, preds, stamps, lats = batch
        from ._record import record

        try:
            record(self.ref, X, preds, timestamp=stamps, latency_ms=lats, y_proba=self._probabilities(X))
        except NbmodelError as exc:
            self.dropped += len(X)
            self.last_error = str(exc)
            return 0
        except Exception as exc:  # noqa: BLE001 - a monitoring failure must never reach serving
            self.dropped += len(X)
            self.last_error = f"{type(exc).__name__}: {exc}"
            return 0
        self.recorded += len(X)
        return len(X)

    def _probabilities(self, X: Any) -> Any:
        """The model's probabilities for the batch, or None (no predict_proba, or it failed:
        the rows are recorded without them)."""
        if self.proba is None:
            return None
        try:
            return self.proba(X)
        except Exception as exc:  # noqa: BLE001 - probabilities are a bonus, the rows matter
            self.last_error = f"predict_proba: {type(exc).__name__}: {exc}"
            return None

    def _served(self, parts: list[tuple[Any, ...]]) -> tuple[Any, ...]:
        """The server's requests, turned into arrays step by step (see ``_served_step``), as
        one batch."""
        import numpy as np
        import pandas as pd

        X, preds, stamps, lats = (np.concatenate(column) if len(parts) > 1 else column[0]
                                  for column in zip(*parts))
        return pd.DataFrame(X, columns=self.columns, copy=False), preds, stamps, lats

    def _served_step(self, items: list[tuple[Any, Any, float, float]]) -> tuple[Any, ...] | None:
        import numpy as np

        frames, preds, lats, stamps = zip(*items)
        if not all(type(f) is list for f in frames) or not all(
                type(p) is np.ndarray and p.ndim == 1 for p in preds):
            return None
        counts = [len(f) for f in frames]
        if counts != [len(p) for p in preds]:
            return None
        rows = [r for f in frames for r in f]
        try:
            X = np.array(rows, dtype=np.float64)
        except (TypeError, ValueError):  # strings, ragged rows: the general path
            return None
        if X.ndim != 2 or X.shape[1] != len(self.columns):  # type: ignore[arg-type]
            return None
        return (X, np.concatenate(preds), np.repeat(np.array(stamps, dtype=np.float64), counts),
                np.repeat(np.array(lats, dtype=np.float32), counts))

    def _general(self, items: list[tuple[Any, Any, float, float]]) -> tuple[Any, ...] | None:
        """Any mix of DataFrames, arrays and row lists, with predictions of any shape; a
        request whose predictions do not match its rows is dropped (and counted)."""
        import numpy as np
        import pandas as pd

        frames: list[Any] = []
        records: list[Any] = []  # consecutive list inputs, made one DataFrame
        preds: list[Any] = []
        lats: list[float] = []
        stamps: list[float] = []
        for frame, pred, lat, ts in items:
            p = pred if isinstance(pred, np.ndarray) else np.asarray(pred)
            if p.ndim == 0:
                p = p.reshape(1)
            elif p.ndim > 1 and p.shape[1] == 1:
                p = p[:, 0]
            rows = len(frame)
            if len(p) != rows:
                self.dropped += rows
                self.last_error = f"{len(p)} predictions for {rows} rows"
                continue
            preds.append(p)
            lats.extend([lat] * rows)
            stamps.extend([ts] * rows)
            # requests given as rows (lists of lists with self.columns, or lists of dicts)
            # become one DataFrame with their neighbours, not one each
            if isinstance(frame, list):
                records.extend(frame)
                continue
            if records:
                frames.append(self._frame(records))
                records = []
            frames.append(frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(frame))
        if records:
            frames.append(self._frame(records))
        if not frames:
            return None
        X = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        return (X, np.concatenate(preds), np.asarray(stamps, dtype=np.float64),
                np.asarray(lats, dtype=np.float32))

    def _frame(self, rows: list[Any]) -> Any:
        import pandas as pd

        if self.columns is not None and rows and isinstance(rows[0], list):
            return pd.DataFrame(rows, columns=self.columns)
        return pd.DataFrame.from_records(rows)

    def _maybe_check(self) -> None:
        if not self.check_alerts_every or time.monotonic() - self._last_check < self.check_alerts_every:
            return
        self._last_check = time.monotonic()
        try:
            from ..refs import parse_ref
            from ._alerts import stored

            if stored(parse_ref(self.ref).name)[0]:
                from ._monitor import monitor

                monitor(self.ref, plots=False)
        except Exception as exc:  # noqa: BLE001
            self.last_error = f"alert check: {exc}"

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued and stop the thread.

        Args:
            timeout: seconds to wait for the thread.
        """
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self.flush()

    def __enter__(self) -> BackgroundRecorder:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        queued = len(self._queue) + len(self._raw) + sum(len(part[1]) for part in self._staged)
        return (f"<BackgroundRecorder {self.ref}: {self.recorded} recorded, {queued} queued, "
                f"{self.dropped} dropped>")


def _proba_of(model: Any, use_array: bool) -> Any:
    """A function of a batch's DataFrame giving ``model.predict_proba`` on it, or None for a
    model without one (a regressor, a pyfunc)."""
    fn = getattr(model, "predict_proba", None)
    if model is None or not callable(fn):
        return None
    if use_array:
        return lambda X: fn(X.to_numpy())
    return fn


def _close_at_exit(ref: weakref.ref[BackgroundRecorder]) -> None:
    """Flush what is queued when the interpreter ends; never a traceback at exit (an import
    can fail by then)."""
    rec = ref()
    if rec is None:
        return
    try:
        rec.close(timeout=5)
    except Exception:  # noqa: BLE001
        pass
