"""Reading the registry: a model's history and the list of models."""

from __future__ import annotations

import datetime as _dt
import html
from collections.abc import Iterator
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

from . import lineage
from .display import Shown, badge, html_table, text_table
from .errors import BadData, NbmodelError
from .evaluate import key_metrics
from .refs import Ref, parse_ref
from .store import Store, get_store
from .versions import Version, _fmt, age, model_aliases, model_not_found


def _parent_number(v: Version, parent: str | None = None) -> int | None:
    parent = v.parent if parent is None else parent
    if not parent:
        return None
    number = parent[len(v.name) + 1:] if parent.startswith(v.name + "/") and "/" not in v.name else ""
    if number.isascii() and number.isdigit() and not number.startswith("0"):
        return int(number)  # "name/N", as a commit records it: read without parsing (long histories)
    try:
        p = parse_ref(parent)
    except NbmodelError:
        return None
    return p.version if p.name == v.name else None


def _marks(v: Version) -> str:
    """The aliases column: aliases, then the branches whose head this is, as git decorates."""
    heads = f"({', '.join(v.branches)})" if v.branches else ""
    return ", ".join([*v.aliases, *([heads] if heads else [])])


@dataclass(repr=False)
class History(Shown):
    """A model's versions, newest first, with a lineage graph where they branch."""

    name: str
    versions: list[Version]
    total: int
    branch: str | None = None
    now: _dt.datetime = field(default_factory=lambda: _dt.datetime.now(_dt.UTC))

    def __iter__(self) -> Iterator[Version]:
        return iter(self.versions)

    def __len__(self) -> int:
        return len(self.versions)

    def __getitem__(self, i: int) -> Version:
        return self.versions[i]

    @property
    def metric_names(self) -> list[str]:
        """The metric columns of the table: each version's key metrics, first seen first, at most three.

        Example:
            >>> nbmodel.log("iris").metric_names  # doctest: +SKIP
            ['accuracy', 'f1_macro', 'roc_auc']
        """
        names: list[str] = []
        for v in self.versions:
            for k in key_metrics(v.metrics, v.task):
                if k not in names:
                    names.append(k)
        return names[:3]

    def _graph(self) -> list[tuple[str, int | None]] | None:
        rows = [(v.version, _parent_number(v), _parent_number(v, v.merge_parent or ""))
                for v in self.versions]
        return lineage.graph(rows) if lineage.branches(rows) else None

    def _table(self) -> tuple[list[str], list[list[str]], list[str] | None]:
        metrics = self.metric_names
        any_retired = any(v.retired for v in self.versions)
        head = ["version", "aliases", "age", "message", *metrics, "parent"]
        any_tests = any(v.tests for v in self.versions)
        if any_tests:
            head.append("tests")
        if any_retired:
            head.append("retired")
        by_number = {v.version: v for v in self.versions}
        # With branches, ages take their widest form ("59 minutes ago"): the table keeps its
        # shape as time passes, so a notebook's stored output of it stays comparable.
        age_width = 14 if any(v.branches for v in self.versions) else 0
        graph = self._graph()
        order = graph or [("", v.version) for v in self.versions]
        rows, prefixes = [], []
        for prefix, number in order:
            prefixes.append(prefix)
            if number is None:
                rows.append([""] * len(head))
                continue
            v = by_number[number]
            row = [str(v.version), _marks(v), age(v.created, self.now).ljust(age_width),
                   _one_line(v.message)]
            row += [_fmt(v.metrics[m]) if m in v.metrics else "" for m in metrics]
            row.append(v.parent + (f" + {v.merge_parent}" if v.merge_parent else "") if v.parent else "")
            if any_tests:
                from .modeltests._tags import summary_text

                row.append(summary_text(v.tests))
            if any_retired:
                row.append("retired" if v.retired else "")
            rows.append(row)
        return head, rows, (prefixes if graph else None)

    def _title(self) -> str:
        n = len(self.versions)
        shown = f"{n} of {self.total}" if n < self.total else str(self.total)
        line = f" on branch {self.branch}" if self.branch else ""
        return f"{self.name}{line}: {shown} version{'s' if self.total != 1 else ''}, newest first"

    def __str__(self) -> str:
        if not self.versions:
            return f"{self.name}: no versions yet"
        head, rows, prefixes = self._table()
        if prefixes is not None:
            width = max(len(p) for p in prefixes)
            head = ["graph".ljust(width)] + head
            rows = [[p.ljust(width)] + r for p, r in zip(prefixes, rows)]
        return self._title() + "\n" + text_table(head, rows)

    def _repr_html_(self) -> str:
        if not self.versions:
            return f"<div class='nbm-line'>{html.escape(self.name)}: no versions yet</div>"
        head, rows, prefixes = self._table()
        by_number = {str(v.version): v for v in self.versions}
        cells = []
        for i, row in enumerate(rows):
            out = [html.escape(c) for c in row]
            if row[0]:
                v = by_number[row[0]]
                out[1] = "".join(badge(a) for a in v.aliases) + "".join(
                    badge(b, kind="branch") for b in v.branches)
                if v.retired:
                    out[-1] = badge("retired", kind="retired")
            if prefixes is not None:
                out.insert(0, f"<span class='nbm-graph'>{html.escape(prefixes[i])}</span>")
            cells.append(out)
        if prefixes is not None:
            head = ["", *head]
        return html_table(head, cells, caption=self._title(), raw=True)


def _one_line(text: str, width: int = 60) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= width else line[: width - 3] + "..."


def log(name: str | Ref | None = None, *, limit: int | None = None, offset: int = 0,
        branch: str | None = None) -> History:
    """A model's history, newest first.

    Args:
        name: the model; may be left out when the store holds a single model.
        limit: show at most this many versions.
        offset: skip this many of the newest first (for paging).
        branch: only the versions on this branch's line (its head and everything it comes from).

    Returns:
        A :class:`History` (iterable over :class:`~nbmodel.versions.Version`), with a lineage graph
        where versions branch.

    Raises:
        ModelNotFound: there is no such model. NbmodelError: no name, and not exactly one model.

    Example:
        >>> nbmodel.log("iris", limit=5)  # doctest: +SKIP
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, Integral) or limit < 1):
        raise BadData(f"limit is how many versions to show: a whole number from 1, not {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, Integral) or offset < 0:
        raise BadData(f"offset is how many of the newest versions to skip: 0 or more, not {offset!r}")
    store = get_store()
    model = _default_name(store) if name is None else parse_ref(name).name
    if branch is None:
        found = store.gateway.history(model, limit=limit, offset=offset)
        if found is None:
            raise model_not_found(store, model)
        aliases, rows, total = found
        return History(model, [Version.from_row(r, aliases) for r in rows], total)
    aliases = model_aliases(store, model)
    from .branches import ancestors, head, parents

    line = ancestors(parents(store, model), head(model, branch, store=store))
    every, _ = store.gateway.versions(model)
    mine = [r for r in every if r.version in line]
    shown = mine[offset:] if limit is None else mine[offset:offset + limit]
    return History(model, [Version.from_row(r, aliases) for r in shown], len(mine), branch)


def _default_name(store: Store) -> str:
    names = [m.name for m in store.gateway.list_models(limit=3, order_by=None)]
    if len(names) == 1:
        return names[0]
    if not names:
        raise NbmodelError(f"the store {store.uri} has no models yet; commit one with %model_commit")
    raise NbmodelError("the store holds several models; name one: %model_log NAME "
                       "(%model_status lists them)")


@dataclass
class ModelSummary:
    name: str
    latest: int | None
    aliases: dict[str, int]
    updated: _dt.datetime | None
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (for REST routes).

        Returns:
            name, latest, aliases and ``updated`` as ISO text.

        Example:
            >>> nbmodel.models()[0].to_dict()["name"]  # doctest: +SKIP
            'iris'
        """
        return {"name": self.name, "latest": self.latest, "aliases": dict(self.aliases),
                "updated": self.updated.isoformat() if self.updated else None}


def models(store: Store | None = None) -> list[ModelSummary]:
    """Every registered model with its newest version and aliases, by name.

    Args:
        store: the store to read; the one in use when None.

    Returns:
        One :class:`ModelSummary` per model.

    Example:
        >>> [m.name for m in nbmodel.models()]  # doctest: +SKIP
        ['iris']
    """
    store = store or get_store()
    out = []
    for rm in store.gateway.list_models(order_by="name ASC"):
        latest = max((int(v.version) for v in (rm.latest_versions or [])), default=None)
        updated = (_dt.datetime.fromtimestamp(rm.last_updated_timestamp / 1000, _dt.UTC)
                   if rm.last_updated_timestamp else None)
        aliases = {a: int(v) for a, v in (rm.aliases or {}).items()}
        out.append(ModelSummary(rm.name, latest, aliases, updated, rm.description or ""))
    return out
