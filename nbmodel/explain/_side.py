"""Importance and groups of several versions side by side, for :func:`nbmodel.compare`."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from ..display import STYLE, Shown, html_table, text_table
from ..metrics import LOWER_IS_BETTER
from ._changes import ImportanceChange, changes
from ._groups import GroupReport, _fmt, group_metrics
from ._importance import Importance, stored

#: Side by side, every feature is listed up to this many; beyond, those in a version's top SHOWN.
ALL_UP_TO = 15
SHOWN = 10


@dataclass(repr=False)
class ImportanceSideBySide(Shown):
    """Each version's importance rank and value per feature, and how the last moved from the first."""

    refs: list[str]
    importances: list[Importance | None]
    change: ImportanceChange | None = None

    def _names(self) -> tuple[list[str], int]:
        """The features shown, in the last version's order, and how many more there are: with
        many features, those in some version's top :data:`SHOWN`."""
        have = [i for i in self.importances if i is not None]
        names = list(dict.fromkeys(f for imp in reversed(have) for f in imp.features))
        if len(names) <= ALL_UP_TO:
            return names, 0
        shown = [f for f in names if any((imp.rank(f) or SHOWN + 1) <= SHOWN for imp in have)]
        return shown, len(names) - len(shown)

    def _more(self) -> str:
        more = self._names()[1]
        return (f"and {more} more features, none in any version's top {SHOWN} (to_dict() has them all)"
                if more else "")

    def _rows(self) -> tuple[list[str], list[list[str]]]:
        names = self._names()[0]
        rows = []
        for f in names:
            cells = []
            for imp in self.importances:
                r = imp.rank(f) if imp else None
                val = imp.value(f) if imp else None
                cells.append("-" if r is None or val is None else f"#{r} {val[0] + 0.0:.3g} ± {val[1]:.2g}")
            rows.append([f, *cells])
        return ["feature", *self.refs], rows

    def __str__(self) -> str:
        head, rows = self._rows()
        lines = ["importance (rank, drop when shuffled ± std):", text_table(head, rows)]
        if self._more():
            lines.append(self._more())
        if self.change is not None:
            lines.append(f"{self.change.a} -> {self.change.b}: {self.change.sentence}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head, rows = self._rows()
        out = STYLE + html_table(head, rows, caption="importance (rank, drop when shuffled ± std)")
        if self._more():
            out += f"<div class='nbm-line'>{html.escape(self._more())}</div>"
        if self.change is not None:
            out += (f"<div class='nbm-line'><b>{html.escape(self.change.a)} -&gt; "
                    f"{html.escape(self.change.b)}: {html.escape(self.change.sentence)}</b></div>")
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form."""
        return {"refs": self.refs,
                "importance": [None if i is None else i.to_dict() for i in self.importances],
                "change": None if self.change is None else self.change.to_dict()}


def side_by_side(versions: list[Any]) -> ImportanceSideBySide | None:
    """Compare's hook: each version's importance recorded at commit, and the change from the
    first version to the last; None when no version has one (nothing is measured here, so a
    comparison costs no more)."""
    imps = [stored(v) for v in versions]
    if not any(imps):
        return None
    first, last = imps[0], imps[-1]
    change = changes(first, last, versions[0].ref, versions[-1].ref) if first and last else None
    return ImportanceSideBySide([v.ref for v in versions], imps, change)


@dataclass(repr=False)
class GroupsSideBySide(Shown):
    """The primary metric per group for each version, with the gaps, the worst group marked."""

    refs: list[str]
    reports: list[GroupReport] = field(default_factory=list)

    def _rows(self) -> tuple[list[str], list[list[str]]]:
        first = self.reports[0]
        m = first.primary
        rows = []
        for i, g in enumerate(first.groups):
            cells = []
            for r in self.reports:
                val = _fmt(r.metrics[m][i]) + (" (worst)" if r.worst == g else "")
                ci = r.intervals[i] if i < len(r.intervals) else None
                cells.append(val + (f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else ""))
            rows.append([g, str(first.counts[i]), *cells])
        rows.append(["overall", str(sum(first.counts)), *[_fmt(r.overall[m]) for r in self.reports]])
        rows.append(["largest difference", "", *[_fmt(r.difference(m)) for r in self.reports]])
        rows.append(["smallest ratio", "", *[_fmt(r.ratio(m)) for r in self.reports]])
        for k in first.parity:
            rows.append([k.replace("_", " "), "", *[_fmt(r.parity.get(k)) for r in self.reports]])
        return [first.column, "rows", *self.refs], rows

    @property
    def caption(self) -> str:
        m = self.reports[0].primary
        lower = " (lower is better)" if m in LOWER_IS_BETTER else ""
        return f"{m}{lower} by group ({self.reports[0].column})"

    def __str__(self) -> str:
        head, rows = self._rows()
        return "\n".join([self.caption + ":", text_table(head, rows)])

    def _repr_html_(self) -> str:
        head, rows = self._rows()
        return STYLE + html_table(head, rows, caption=self.caption)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form."""
        return {"refs": self.refs, "reports": [r.to_dict() for r in self.reports]}


def groups_side_by_side(refs: list[str], y: Any, predictions: list[Any], groups: Any, task: str,
                        column: str) -> GroupsSideBySide:
    """Compare's hook for ``groups``: every version's metrics per group on the same rows."""
    return GroupsSideBySide(refs, [group_metrics(y, p, groups, task=task, column=column)
                                   for p in predictions])
