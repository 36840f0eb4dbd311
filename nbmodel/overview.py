"""``%model_status``: the store in use, its models, what is deployed and which alerts are open.

This module sits above serving and monitoring and reads both, so that neither the core nor
those layers need to know about each other.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from .display import Shown, html_table, text_table
from .history import ModelSummary, models
from .store import get_store

#: A section of the status: title, column heads, rows.
Section = tuple[str, list[str], list[list[str]]]


@dataclass(repr=False)
class Status(Shown):
    """What :func:`status` reports: the store, its models and the extra sections.

    ``str()`` is the text ``%model_status`` prints (notebooks compare it); in a notebook it
    shows as HTML tables.
    """

    uri: str
    origin: str
    models: list[ModelSummary]
    sections: list[Section] = field(default_factory=list)
    exists: bool = True

    def _model_rows(self) -> list[list[str]]:
        return [[m.name, f"{m.name}/{m.latest}" if m.latest else "-",
                 ", ".join(f"{a} -> {v}" for a, v in sorted(m.aliases.items()))]
                for m in self.models]

    def _origin_text(self) -> str:
        return {"set_store": "set by %model_store", "MLFLOW_TRACKING_URI": "from MLFLOW_TRACKING_URI",
                "default": "the default"}.get(self.origin, f"from {self.origin}")

    def __str__(self) -> str:
        lines = [f"store: {self.uri} ({self._origin_text()})"]
        if not self.models:
            lines.append("no models yet: commit one with %model_commit")
        else:
            lines.append(text_table(["model", "newest", "aliases"], self._model_rows()))
        for title, head, rows in self.sections:
            lines.append(f"{title}:")
            lines.append(text_table(head, rows) if rows else "  none")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        parts = [f"<div class='nbm-line'><b>store</b> <code>{html.escape(self.uri)}</code> "
                 f"({html.escape(self._origin_text())})</div>"]
        if self.models:
            parts.append(html_table(["model", "newest", "aliases"], self._model_rows()))
        else:
            parts.append("<div class='nbm-line'>no models yet: commit one with %model_commit</div>")
        for title, head, rows in self.sections:
            parts.append(html_table(head, rows, caption=title) if rows
                         else f"<div class='nbm-line'><b>{html.escape(title)}</b>: none</div>")
        return "".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (for the REST routes).

        Example:
            >>> nbmodel.status().to_dict()["models"]  # doctest: +SKIP
            [{'name': 'iris', 'latest': 3, 'aliases': {'production': 3}, 'updated': '...'}]
        """
        return {"uri": self.uri, "origin": self.origin, "models": [m.to_dict() for m in self.models],
                "sections": [{"title": t, "head": h, "rows": r} for t, h, r in self.sections]}


def status() -> Status:
    """The store in use, its models with their newest versions and aliases, what is deployed
    and which alerts are open.

    Returns:
        A :class:`Status`; the deployments section appears when something is (or was) deployed,
        the open alerts section when some model has alert rules.

    Raises:
        StoreError: the store cannot be opened.

    Example:
        >>> nbmodel.status()  # doctest: +SKIP
        store: sqlite:///.../mlflow.db (the default)
        model  newest  aliases
        iris   iris/3  production -> 3
    """
    store = get_store()
    sections = [s for s in (deployments_section(), alerts_section()) if s is not None]
    return Status(store.uri, store.origin, models(store), sections)


def deployments_section() -> Section | None:
    """The deployments of the store in use, as :func:`nbmodel.serving.deployments` lists them.

    Returns:
        ``("deployments", head, rows)``, or None when nothing was deployed.

    Example:
        >>> deployments_section()  # doctest: +SKIP
        ('deployments', ['ref', 'serving', ...], [['iris@production', 'iris/3', ...]])
    """
    from .serving import Deployments, deployments

    deps = deployments()
    if not deps:
        return None
    return ("deployments", list(Deployments.head), deps.rows())


def alerts_section() -> Section | None:
    """The open alerts of every model, from :func:`nbmodel.monitoring.alert_state`.

    Returns:
        ``("open alerts", head, rows)`` (rows may be empty: the rules pass), or None when no
        model has alert rules or open alerts.

    Example:
        >>> alerts_section()  # doctest: +SKIP
        ('open alerts', ['version', 'rule', 'value', 'window', 'failing since'], [])
    """
    from .monitoring import alert_state

    used, alerts = alert_state()
    if not used:
        return None
    rows = [[a.ref, a.rule, a.value_text, a.window, a.since] for a in alerts]
    return ("open alerts", ["version", "rule", "value", "window", "failing since"], rows)
