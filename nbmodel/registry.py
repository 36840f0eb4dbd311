"""Fast paths over MLflow's registry for the reads and writes nbmodel does most.

MLflow's SQLAlchemy registry builds ORM objects for every version and every tag: listing a
model with 1000 versions costs most of a second, and each alias move first loads the whole
registered model (with its latest versions) several times. For SQL-backed stores (the embedded
sqlite store, a PostgreSQL backend opened directly) nbmodel reads MLflow's own tables with
three plain SELECTs, and writes aliases and tags through MLflow's store methods (MLflow's own
write logic, without the client's extra prompt checks). Any other store (an ``http://`` server),
or any error on the fast path (a schema MLflow changed), falls back to the public client API.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import Store

_log = logging.getLogger(__name__)


@dataclass
class Row:
    """One model version as stored, with its tags."""

    name: str
    version: int
    created_ms: int
    description: str | None
    user_id: str | None
    run_id: str | None
    source: str | None
    tags: dict[str, str] = field(default_factory=dict)


class Registry:
    """Reads and writes of the registry for one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._sql_store: Any = None
        self._engine: Any = None
        self._workspace: str | None = None
        self._fast = None  # unknown until first use

    # -- plumbing ----------------------------------------------------------------------------
    def _sql(self) -> Any:
        if self._fast is None:
            self._fast = False
            try:
                reg = self.store.client._get_registry_client().store
                engine = getattr(reg, "engine", None)
                if engine is not None:
                    self._sql_store = reg
                    self._engine = engine
                    ws = getattr(reg, "_get_active_workspace", None)
                    self._workspace = ws() if callable(ws) else None
                    self._fast = True
            except Exception:  # noqa: BLE001 - any surprise: use the public API
                self._fast = False
        return self._engine if self._fast else None

    def _query(self, sql: str, **params: Any) -> list[Any]:
        from sqlalchemy import text

        engine = self._sql()
        where_ws = " AND workspace = :ws" if self._workspace is not None else ""
        with engine.connect() as conn:
            return list(conn.execute(text(sql.format(ws=where_ws)), {**params, "ws": self._workspace}))

    def _disable(self, exc: BaseException) -> None:
        _log.debug("nbmodel: fast registry path off (%s); using the MLflow client", exc)
        self._fast = False

    # -- reads -------------------------------------------------------------------------------
    def aliases(self, name: str) -> dict[str, int] | None:
        """Alias -> version of a model, or None if the model does not exist."""
        if self._sql() is not None:
            try:
                if not self._query("SELECT 1 FROM registered_models WHERE name = :n{ws}", n=name):
                    return None
                rows = self._query(
                    "SELECT alias, version FROM registered_model_aliases WHERE name = :n{ws}", n=name)
                return {a: int(v) for a, v in rows}
            except Exception as exc:  # noqa: BLE001
                self._disable(exc)
        rm = self._get_rm(name)
        return None if rm is None else {a: int(v) for a, v in (rm.aliases or {}).items()}

    def model_tags(self, name: str, prefix: str = "") -> dict[str, str] | None:
        """Tags of a registered model (those starting with ``prefix``), None if no model."""
        if self._sql() is not None:
            try:
                if not self._query("SELECT 1 FROM registered_models WHERE name = :n{ws}", n=name):
                    return None
                rows = self._query(
                    "SELECT key, value FROM registered_model_tags WHERE name = :n"
                    " AND key LIKE :p{ws}", n=name, p=prefix.replace("%", r"\%") + "%")
                return {k: v for k, v in rows if k.startswith(prefix)}
            except Exception as exc:  # noqa: BLE001
                self._disable(exc)
        rm = self._get_rm(name)
        if rm is None:
            return None
        return {k: v for k, v in (rm.tags or {}).items() if k.startswith(prefix)}

    def versions(self, name: str, *, limit: int | None = None, offset: int = 0,
                 version: int | None = None) -> tuple[list[Row], int]:
        """Versions newest first (or one version), with tags; and how many versions exist."""
        if self._sql() is not None:
            try:
                return self._versions_sql(name, limit, offset, version)
            except Exception as exc:  # noqa: BLE001
                self._disable(exc)
        return self._versions_client(name, limit, offset, version)

    def _versions_sql(self, name: str, limit: int | None, offset: int,
                      version: int | None) -> tuple[list[Row], int]:
        cond = ("name = :n AND current_stage != 'Deleted_Internal'"
                + (" AND version = :v" if version is not None else ""))
        total = self._query(f"SELECT COUNT(*) FROM model_versions WHERE {cond}{{ws}}",
                            n=name, v=version)[0][0]
        page = ""
        if limit is not None:
            page = f" LIMIT {int(limit)} OFFSET {int(offset)}"
        elif offset:
            page = f" LIMIT -1 OFFSET {int(offset)}"
        rows = self._query(
            "SELECT version, creation_time, description, user_id, run_id, source"
            f" FROM model_versions WHERE {cond}{{ws}}"
            f" ORDER BY version DESC{page}", n=name, v=version)
        out = [Row(name, int(r[0]), int(r[1] or 0), r[2], r[3], r[4], r[5]) for r in rows]
        if out:
            lo, hi = out[-1].version, out[0].version
            by_version = {r.version: r for r in out}
            for v, key, value in self._query(
                    "SELECT version, key, value FROM model_version_tags WHERE name = :n"
                    " AND version BETWEEN :lo AND :hi{ws}", n=name, lo=lo, hi=hi):
                row = by_version.get(int(v))
                if row is not None:
                    row.tags[key] = value
        return out, int(total)

    def _versions_client(self, name: str, limit: int | None, offset: int,
                         version: int | None) -> tuple[list[Row], int]:
        from mlflow.exceptions import MlflowException

        client = self.store.client
        if version is not None:
            try:
                mvs = [self.store.retry(client.get_model_version, name, str(version))]
            except MlflowException:
                mvs = []
            total = len(mvs)
        else:
            mvs, token = [], None
            want = None if limit is None else offset + limit
            while True:
                page = self.store.retry(
                    client.search_model_versions, f"name = '{_escape(name)}'",
                    max_results=min(want or 10000, 10000), order_by=["version_number DESC"],
                    page_token=token)
                mvs.extend(page)
                token = page.token
                if not token or (want is not None and len(mvs) >= want):
                    break
            total = len(mvs) if not token else max(int(mvs[0].version), len(mvs))
            mvs = mvs[offset:want]
        rows = [Row(mv.name, int(mv.version), int(mv.creation_timestamp or 0), mv.description,
                    mv.user_id, mv.run_id, mv.source, dict(mv.tags or {})) for mv in mvs]
        return rows, total

    def _get_rm(self, name: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self.store.retry(self.store.client.get_registered_model, name)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower():
                return None
            raise

    # -- writes ------------------------------------------------------------------------------
    def set_alias(self, name: str, alias: str, version: int) -> None:
        if self._sql() is not None and self._sql_store is not None:
            self.store.retry(self._sql_store.set_registered_model_alias, name, alias, str(version))
        else:
            self.store.retry(self.store.client.set_registered_model_alias, name, alias, str(version))

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        if self._sql() is not None and self._sql_store is not None:
            from mlflow.entities.model_registry import RegisteredModelTag

            self.store.retry(self._sql_store.set_registered_model_tag, name, RegisteredModelTag(key, value))
        else:
            self.store.retry(self.store.client.set_registered_model_tag, name, key, value)


def _escape(name: str) -> str:
    return name.replace("\\", "\\\\").replace("'", "\\'")
