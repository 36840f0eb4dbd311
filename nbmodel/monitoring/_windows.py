"""Time in monitoring: reading ``--window`` and ``--since``, and cutting traffic into windows.

A window is a time width (``1h``, ``1d``: windows start on multiples of the width since the
epoch, and only windows that hold traffic are kept) or a number of rows (``500``: consecutive
rows in time order).
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import BadData

if TYPE_CHECKING:
    import numpy as np

_UNITS = {"s": 1_000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_AUTO = ("1m", "5m", "15m", "1h", "6h", "1d", "1w")
MAX_AUTO_WINDOWS = 30
MAX_WINDOWS = 5000


@dataclass(frozen=True)
class WindowSpec:
    """A time width (``1h``, ``1d``) or a number of rows per window (``500``)."""

    text: str
    width_ms: int | None = None
    rows: int | None = None

    def label(self, start_ms: int) -> str:
        t = _dt.datetime.fromtimestamp(start_ms / 1000, _dt.UTC)
        if self.width_ms is not None and self.width_ms % 86_400_000 == 0:
            return f"{t:%Y-%m-%d}"
        if self.width_ms is not None and self.width_ms % 60_000 == 0:
            return f"{t:%Y-%m-%d %H:%M}"
        return f"{t:%Y-%m-%d %H:%M:%S}"


def parse_window(text: str | int | None) -> WindowSpec | None:
    """Read a ``--window``.

    Args:
        text: ``1h``, ``30m``, ``1d``, ``2w``, a number of rows (``500``), or None/``auto``.

    Returns:
        The :class:`WindowSpec`, or None for the automatic width.

    Raises:
        BadData: neither a width nor a number of rows.

    Example:
        >>> parse_window("6h").width_ms, parse_window("500").rows
        (21600000, 500)
    """
    if text is None or str(text).strip().lower() in ("", "auto"):
        return None
    s = str(text).strip().lower()
    if s.isdigit():
        rows = int(s)
        if rows < 1:
            raise BadData("--window in rows must be at least 1")
        return WindowSpec(s, rows=rows)
    m = re.fullmatch(r"(\d+)\s*(s|m|min|h|d|w)", s)
    if not m or int(m.group(1)) < 1:
        raise BadData(f"--window {text!r} is not a width: use 15m, 1h, 6h, 1d, 1w (time) "
                      "or a number of rows such as 500")
    return WindowSpec(f"{int(m.group(1))}{m.group(2) if m.group(2) != 'min' else 'm'}",
                      width_ms=int(m.group(1)) * _UNITS[m.group(2)])


def parse_since(text: Any, *, now: _dt.datetime | None = None) -> int:
    """Read a ``--since`` or ``--until``.

    Args:
        text: an ISO date or time, a datetime, seconds since the epoch, or ``7d``/``12h`` (ago).
        now: the time ``7d`` counts back from (default: now).

    Returns:
        Milliseconds since the epoch.

    Raises:
        BadData: not a time.

    Example:
        >>> parse_since("2026-03-01")
        1772323200000
    """
    import pandas as pd

    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return int(float(text) * 1000)
    if isinstance(text, str):
        m = re.fullmatch(r"(\d+)\s*(s|m|min|h|d|w)(\s+ago)?", text.strip().lower())
        if m:
            now = now or _dt.datetime.now(_dt.UTC)
            return int(now.timestamp() * 1000) - int(m.group(1)) * _UNITS[m.group(2)]
    try:
        ts = pd.Timestamp(text)
    except Exception as exc:  # noqa: BLE001
        raise BadData(f"--since {text!r} is not a time: give a date (2026-03-01), a time "
                      "(2026-03-01 12:00) or a duration ago (7d, 12h)") from exc
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)




def auto_spec(ts: np.ndarray) -> WindowSpec:
    """The narrowest of 1m, 5m, 15m, 1h, 6h, 1d, 1w that cuts at most 30 windows.

    Args:
        ts: the rows' times (int64 ms), at least one.

    Returns:
        The :class:`WindowSpec`.

    Example:
        >>> auto_spec(np.array([0, 3_600_000])).text  # doctest: +SKIP
        '5m'
    """
    lo, hi = int(ts.min()), int(ts.max())
    for text in _AUTO:
        spec = parse_window(text)
        assert spec is not None and spec.width_ms is not None
        if hi // spec.width_ms - lo // spec.width_ms + 1 <= MAX_AUTO_WINDOWS:
            return spec
    return parse_window(_AUTO[-1])  # type: ignore[return-value]



def assign(ts: np.ndarray, spec: WindowSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The window of every row, and each window's start and end (int64 ms).

    Args:
        ts: the rows' times (int64 ms).
        spec: the width or the number of rows of a window.

    Returns:
        ``(window index per row, starts, ends)``; windows without rows are left out.

    Raises:
        BadData: a width that cuts more than :data:`MAX_WINDOWS` windows.

    Example:
        >>> assign(np.array([0, 10, 90_000]), parse_window("1m"))[0].tolist()  # doctest: +SKIP
        [0, 0, 1]
    """
    import numpy as np

    n = len(ts)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    if spec.rows is not None:
        order = np.argsort(ts, kind="stable")
        win = np.empty(n, dtype=np.int64)
        win[order] = np.arange(n, dtype=np.int64) // spec.rows
        sorted_ts = ts[order]
        starts = sorted_ts[:: spec.rows].astype(np.int64)
        last = np.minimum(np.arange(len(starts)) * spec.rows + spec.rows - 1, n - 1)
        return win, starts, sorted_ts[last].astype(np.int64) + 1
    w = spec.width_ms
    assert w is not None
    k = ts // w
    k0 = int(k.min())
    rel = k - k0
    span = int(rel.max()) + 1
    if span > 50_000_000:
        raise BadData(f"--window {spec.text} cuts {span:,} windows; choose a wider one")
    present = np.bincount(rel, minlength=span) > 0
    slots = np.flatnonzero(present)
    if len(slots) > MAX_WINDOWS:
        raise BadData(f"--window {spec.text} gives {len(slots):,} windows; choose a wider one "
                      f"or --since to look at fewer (at most {MAX_WINDOWS})")
    remap = np.full(span, -1, dtype=np.int64)
    remap[slots] = np.arange(len(slots))
    starts = (slots + k0) * w
    return remap[rel], starts, starts + w
