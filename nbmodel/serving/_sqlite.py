"""A sqlite store's aliases and versions read straight from MLflow's tables with the standard
library's sqlite3: a server follows its alias from its first second, and ``nbmodel serve``
finds what to serve, without waiting seconds for MLflow's import.
"""

from __future__ import annotations

import os
import threading
from typing import Any


class SqliteRegistry:
    """Alias and version lookups read straight from a sqlite store's MLflow tables, with the
    standard library's sqlite3 (read-only), so the server follows its alias from its first
    second instead of after MLflow's import. Anything unexpected (another schema, several
    workspaces holding the name) answers None and the caller asks MLflow's client."""

    def __init__(self, path: str) -> None:
        self.path = path
        # one connection per thread, kept: opening one reads the whole schema (~1.7 ms here),
        # while a query on an open one costs microseconds and still sees every new commit
        self._local = threading.local()

    @classmethod
    def of(cls, uri: str) -> SqliteRegistry | None:
        if not uri.startswith("sqlite:///"):
            return None
        path = uri[len("sqlite:///"):]
        return cls(path) if os.path.isabs(path) else None

    def _rows(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]] | None:
        import sqlite3

        conn = getattr(self._local, "conn", None)
        try:
            if conn is None:
                conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
                self._local.conn = conn
            return conn.execute(sql, args).fetchall()
        except sqlite3.Error:
            if conn is not None:
                conn.close()
            self._local.conn = None  # open afresh next time
            return None

    def alias_version(self, name: str, alias: str) -> int | None:
        rows = self._rows("SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
                          (name, alias))
        return int(rows[0][0]) if rows and len(rows) == 1 else None

    def model_dir(self, name: str, version: int) -> str | None:
        rows = self._rows("SELECT storage_location FROM model_versions WHERE name = ? AND version = ? "
                          "AND current_stage != 'Deleted_Internal'",
                          (name, int(version)))
        if not rows or len(rows) != 1 or not rows[0][0]:
            return None
        path = str(rows[0][0])
        if path.startswith("file://"):
            path = path[len("file://"):]
        return path if os.path.isabs(path) and os.path.isfile(os.path.join(path, "MLmodel")) else None

    def retired(self, name: str, version: int) -> bool | None:
        """Whether the version is retired (None: the store could not say)."""
        from ..versions import T_RETIRED

        rows = self._rows("SELECT value FROM model_version_tags WHERE name = ? AND version = ? AND key = ?",
                          (name, int(version), T_RETIRED))
        if rows is None:
            return None
        return bool(rows) and rows[0][0] == "true"
