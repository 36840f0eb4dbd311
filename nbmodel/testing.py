"""Helpers for people who test notebooks that use nbmodel."""

from __future__ import annotations

from pathlib import Path


def sanitize_file() -> str:
    """The path of nbmodel's nbval sanitize file (times, ids, ports and paths masked).

    Example:
        pytest --nbval --nbval-sanitize-with="$(nbmodel sanitize-file)" report.ipynb
    """
    return str(Path(__file__).with_name("nbval_sanitize.cfg"))
