"""Small HTML and text building blocks shared by every result nbmodel shows.

HTML uses JupyterLab's CSS variables where they exist (so dark themes work) with plain
fallbacks for Notebook 7 and VS Code; text forms are plain and deterministic for nbval.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

STYLE = """<style>
.nbm-card,.nbm-table{font-family:var(--jp-ui-font-family,sans-serif);font-size:var(--jp-ui-font-size1,13px);
 color:var(--jp-ui-font-color1,inherit)}
.nbm-card{border:1px solid var(--jp-border-color2,#ddd);border-radius:4px;padding:6px 10px;\
margin:2px 0;max-width:60em;width:fit-content;box-sizing:border-box}
.nbm-card table,table.nbm-table{margin-left:0;margin-right:auto}
.nbm-card h4{margin:2px 0 6px 0;font-size:1.1em}
.nbm-card table,.nbm-table{border-collapse:collapse}
.nbm-card td{padding:1px 8px 1px 0;vertical-align:top;text-align:left}
.nbm-card td.k{color:var(--jp-ui-font-color2,#666);white-space:nowrap}
.nbm-table th,.nbm-table td{padding:2px 8px;text-align:left;\
border-bottom:1px solid var(--jp-border-color2,#eee)}
.nbm-table th,.nbm-badge{white-space:nowrap}
.nbm-table caption{text-align:left;font-weight:bold;padding:2px 0}
.nbm-badge{display:inline-block;margin-left:6px;padding:0 6px;border-radius:8px;font-size:.85em;
 background:var(--jp-brand-color3,#d3e5f8);color:var(--jp-ui-font-color1,#000)}
.nbm-badge.retired{background:var(--jp-warn-color3,#f5d8b0)}
.nbm-metric{margin-right:10px}
.nbm-graph{font-family:var(--jp-code-font-family,monospace);white-space:pre}
.nbm-add{color:var(--jp-success-color1,#2a7a2a)} .nbm-del{color:var(--jp-error-color1,#b22)}
.nbm-best{font-weight:bold}
pre.nbm-diff{font-size:.9em;max-height:30em;overflow:auto}
</style>"""


class Shown:
    """Results that show as their text form everywhere but a notebook's HTML: ``str()`` is the
    text, ``repr()`` and IPython's pretty printer use it too.

    A subclass may keep a short ``__repr__`` of its own (``<Version iris/3>``); IPython still
    prints ``str()``. IPython walks the class's MRO and uses the first class that defines
    either ``_repr_pretty_`` or ``__repr__``, so every subclass gets ``_repr_pretty_`` in its
    own namespace here: without it, a subclass's ``__repr__`` would win over this class's
    ``_repr_pretty_``.

    Example:
        >>> class Answer(Shown):
        ...     def __str__(self) -> str:
        ...         return "42"
        >>> repr(Answer())
        '42'
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_repr_pretty_" not in cls.__dict__:
            cls._repr_pretty_ = Shown._repr_pretty_  # type: ignore[method-assign]

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


def badge(text: str, *, kind: str = "") -> str:
    """A small rounded label (an alias, ``retired``) for HTML cards and tables.

    Args:
        text: the label (escaped).
        kind: an extra CSS class (``retired``).

    Returns:
        HTML.

    Example:
        >>> badge("prod")
        "<span class='nbm-badge '>prod</span>"
    """
    return f"<span class='nbm-badge {kind}'>{html.escape(text)}</span>"


def card(title_html: str, rows: Iterable[tuple[str, str]]) -> str:
    """A titled card of key/value rows, with nbmodel's style.

    Args:
        title_html: the title (trusted HTML).
        rows: ``(key, value_html)`` pairs; keys are escaped, values are trusted HTML.

    Returns:
        HTML.

    Example:
        >>> "<td class='k'>message</td>" in card("iris/3", [("message", "more trees")])
        True
    """
    body = "".join(f"<tr><td class='k'>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in rows)
    return f"{STYLE}<div class='nbm-card'><h4>{title_html}</h4><table>{body}</table></div>"


def html_table(head: Sequence[str], rows: Iterable[Sequence[str]], *, caption: str = "",
               raw: bool = False) -> str:
    """A table; cells are escaped unless ``raw`` (then they are trusted HTML).

    Args:
        head: column heads.
        rows: the rows' cells.
        caption: a caption above the table.
        raw: the cells are HTML already.

    Returns:
        HTML, with nbmodel's style.

    Example:
        >>> "<td>a&lt;b</td>" in html_table(["x"], [["a<b"]])
        True
    """
    esc = (lambda x: x) if raw else html.escape
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"{STYLE}<table class='nbm-table'>{cap}<thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def text_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the last column is not padded.

    Args:
        head: column heads.
        rows: the rows' cells.

    Returns:
        The table as lines of text.

    Example:
        >>> print(text_table(["model", "newest"], [["iris", "iris/3"]]))
        model  newest
        iris   iris/3
    """
    rows = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows if i < len(r)]) for i, h in enumerate(head)]

    def line(cells: Sequence[str]) -> str:
        parts = [c.ljust(widths[i]) if i < len(cells) - 1 else c for i, c in enumerate(cells)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(head)] + [line(r) for r in rows])
