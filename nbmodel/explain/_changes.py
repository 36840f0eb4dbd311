"""How importance changed between versions: rank changes, the largest moves against their
spread over repeats, and one plain sentence."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

from ..display import STYLE, Shown, html_table, text_table
from ._importance import Importance

#: A move is real when it exceeds this many standard deviations of the difference (over the
#: repeats) and this share of the larger version's top importance: the repeats shuffle one
#: data set, so their spread alone understates how much a rerun on other rows would move.
SPREADS = 2.0
FLOOR = 0.05
#: Rank changes in the sentence come from the top features of either version.
TOP = 5


def ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``...

    Example:
        >>> ordinal(2), ordinal(11), ordinal(23)
        ('2nd', '11th', '23rd')
    """
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _times(r: float) -> str:
    if 1.8 <= r <= 2.2:
        return "twice as much"
    if r > 2.2:
        return f"{r:.1f} times as much" if r < 10 else f"{r:.0f} times as much"
    if 0.45 <= r <= 0.55:
        return "half as much"
    if 0.3 <= r <= 0.37:
        return "a third as much"
    if 0.22 <= r <= 0.28:
        return "a quarter as much"
    return f"{r:.0%} as much"


@dataclass
class Move:
    """One feature's importance in two versions."""

    feature: str
    rank_a: int | None
    rank_b: int | None
    mean_a: float | None
    mean_b: float | None
    spread: float
    floor: float = 0.0

    @property
    def change(self) -> float:
        return (self.mean_b or 0.0) - (self.mean_a or 0.0)

    @property
    def real(self) -> bool:
        """Whether the move exceeds :data:`SPREADS` standard deviations of the difference and
        the floor (:data:`FLOOR` of the top importance)."""
        return abs(self.change) > max(SPREADS * self.spread, self.floor, 1e-12)

    def words(self) -> str | None:
        """The move in words, or None when the importance did not change in proportion."""
        a, b = self.mean_a or 0.0, self.mean_b or 0.0
        if a <= 0 < b:
            return f"{self.feature} now matters (it did not before)"
        if b <= 0 < a:
            return f"{self.feature} no longer matters"
        if a > 0 and b > 0 and (b / a >= 1.5 or b / a <= 2 / 3):
            return f"{self.feature} now matters {_times(b / a)}"
        return None


@dataclass(repr=False)
class ImportanceChange(Shown):
    """Permutation importance of version ``a`` against version ``b``, feature by feature."""

    a: str
    b: str
    moves: list[Move] = field(default_factory=list)
    metric: str = ""

    @property
    def sentence(self) -> str:
        """The biggest real changes in plain words ("x now matters twice as much; y dropped
        from 2nd to 4th")."""
        real = sorted((m for m in self.moves if m.real), key=lambda m: -abs(m.change))
        parts: list[str] = []
        for m in real:
            w = m.words()
            if w:
                parts.append(w)
            if len(parts) == 2:
                break
        ranked = [m for m in self.moves if m.rank_a and m.rank_b and m.rank_a != m.rank_b
                  and min(m.rank_a, m.rank_b) <= TOP and (m.real or abs(m.rank_a - m.rank_b) >= 2)]
        ranked.sort(key=lambda m: (-abs((m.rank_a or 0) - (m.rank_b or 0)), m.rank_a or 0))
        for m in ranked[:2]:
            verb = "dropped" if (m.rank_b or 0) > (m.rank_a or 0) else "rose"
            parts.append(f"{m.feature} {verb} from {ordinal(m.rank_a or 0)} to {ordinal(m.rank_b or 0)}")
        if not parts:
            return "importance did not change beyond its spread over repeats"
        return "; ".join(parts)

    def _rows(self) -> tuple[list[str], list[list[str]]]:
        head = ["feature", f"rank {self.a}", f"rank {self.b}", self.a, self.b, "change"]
        rows = []
        for m in self.moves:
            mark = " (beyond spread)" if m.real else ""
            rows.append([m.feature, str(m.rank_a or "-"), str(m.rank_b or "-"),
                         "-" if m.mean_a is None else f"{m.mean_a + 0.0:.4g}",
                         "-" if m.mean_b is None else f"{m.mean_b + 0.0:.4g}",
                         f"{m.change + 0.0:+.4g}{mark}"])
        return head, rows

    def __str__(self) -> str:
        head, rows = self._rows()
        return "\n".join([f"importance (drop in {self.metric}) {self.a} -> {self.b}:",
                          text_table(head, rows), self.sentence])

    def _repr_html_(self) -> str:
        head, rows = self._rows()
        return (STYLE + html_table(head, rows, caption=f"importance (drop in {self.metric})")
                + f"<div class='nbm-line'><b>{html.escape(self.sentence)}</b></div>")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form."""
        return {"a": self.a, "b": self.b, "metric": self.metric, "sentence": self.sentence,
                "moves": [{"feature": m.feature, "rank_a": m.rank_a, "rank_b": m.rank_b,
                           "mean_a": m.mean_a, "mean_b": m.mean_b, "change": m.change,
                           "beyond_spread": m.real} for m in self.moves]}


def changes(a: Importance, b: Importance, ref_a: str, ref_b: str) -> ImportanceChange:
    """Compare two versions' importance, features in ``b``'s order then those only ``a`` has.

    Example:
        >>> changes(stored(v2), stored(v3), "iris/2", "iris/3").sentence  # doctest: +SKIP
        'petal width (cm) now matters twice as much; sepal length (cm) dropped from 2nd to 4th'
    """
    names = list(dict.fromkeys([*b.features, *a.features]))
    moves = []
    floor = FLOOR * max([0.0, *a.mean[:1], *b.mean[:1]])
    for f in names:
        va, vb = a.value(f), b.value(f)
        spread = math.sqrt((va[1] if va else 0.0) ** 2 + (vb[1] if vb else 0.0) ** 2)
        moves.append(Move(f, a.rank(f), b.rank(f), va[0] if va else None, vb[0] if vb else None, spread,
                          floor))
    metric = b.metric if a.metric == b.metric else f"{a.metric} / {b.metric}"
    return ImportanceChange(ref_a, ref_b, moves, metric)


def version_changes(va: Any, vb: Any) -> ImportanceChange | None:
    """The diff's hook: how importance changed from version ``va`` to ``vb``, when both have it."""
    from ._importance import stored

    a, b = stored(va), stored(vb)
    if a is None or b is None:
        return None
    return changes(a, b, va.ref, vb.ref)
