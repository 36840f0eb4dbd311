"""``nbmodel.diff``: what changed between two versions."""

from __future__ import annotations

import difflib
import html
from dataclasses import dataclass, field
from typing import Any

from .display import STYLE, Shown, html_table, text_table
from .evaluate import LOWER_IS_BETTER
from .refs import Ref
from .store import get_store
from .versions import SOURCE_ARTIFACT, Version, _fmt, resolve


def _artifact_text(v: Version, path: str) -> str | None:
    if not v.run_id:
        return None
    import mlflow.artifacts

    from .store import mlflow_calls

    try:
        with mlflow_calls():  # quiet: MLflow draws a progress bar for the download otherwise
            return mlflow.artifacts.load_text(f"runs:/{v.run_id}/{path}")
    except Exception:  # noqa: BLE001 - not recorded for this version
        return None


def _signature(v: Version) -> dict[str, list[str]] | None:
    from .versions import model_info

    try:
        sig = model_info(v.uri).signature
    except Exception:  # noqa: BLE001
        return None
    if sig is None:
        return None

    def cols(schema: Any) -> list[str]:
        if schema is None:
            return []
        out = []
        for item in schema.to_dict():
            name = item.get("name")
            kind = item.get("type")
            if kind == "tensor":
                spec = item.get("tensor-spec", {})
                kind = f"tensor {spec.get('dtype')} {spec.get('shape')}"
            out.append(f"{name}: {kind}" if name else str(kind))
        return out

    return {"inputs": cols(sig.inputs), "outputs": cols(sig.outputs)}


@dataclass(repr=False)
class Diff(Shown):
    """Differences between version ``a`` and version ``b`` (read as a change from a to b)."""

    a: Version
    b: Version
    params: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    metrics: list[tuple[str, float | None, float | None]] = field(default_factory=list)
    tags: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    signature: list[str] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    other: list[tuple[str, str, str]] = field(default_factory=list)
    importance: Any = None  # nbmodel.explain.ImportanceChange, when both versions have it

    @property
    def same(self) -> bool:
        """True when nothing differs: no params, tags, data, signature, source or other rows,
        and every metric equal.

        Example:
            >>> nbmodel.diff("iris/2", "iris/3").same  # doctest: +SKIP
            False
        """
        return not (self.params or self.tags or self.data or self.signature or self.source
                    or self.other or any(x != y for _, x, y in self.metrics))

    def _metric_rows(self) -> list[list[str]]:
        rows = []
        for k, x, y in self.metrics:
            if x is not None and y is not None:
                d = y - x
                better = (d < 0) if k in LOWER_IS_BETTER else (d > 0)
                mark = "" if d == 0 else (" better" if better else " worse")
                rows.append([k, _fmt(x), _fmt(y), f"{d:+.4g}{mark}"])
            else:
                rows.append([k, "-" if x is None else _fmt(x), "-" if y is None else _fmt(y), ""])
        return rows

    def _sections(self) -> list[tuple[str, list[str], list[list[str]]]]:
        a, b = self.a.ref, self.b.ref
        out = []
        if self.other:
            out.append(("version", ["", a, b], [list(r) for r in self.other]))
        if self.params:
            out.append(("params", ["param", a, b], [[k, "-" if x is None else x, "-" if y is None else y]
                                                    for k, x, y in self.params]))
        if self.metrics:
            out.append(("metrics", ["metric", a, b, "change"], self._metric_rows()))
        if self.tags:
            out.append(("tags", ["tag", a, b], [[k, x or "-", y or "-"] for k, x, y in self.tags]))
        return out

    def __str__(self) -> str:
        lines = [f"diff {self.a.ref} {self.b.ref}"]
        if self.same:
            lines.append("no differences")
        for title, head, rows in self._sections():
            lines.append(f"\n{title}:")
            lines.append(text_table(head, rows))
        if self.data:
            lines.append("\ndata:")
            lines.extend(f"  {x}" for x in self.data)
        if self.signature:
            lines.append("\nsignature:")
            lines.extend(f"  {x}" for x in self.signature)
        if self.source:
            lines.append("\nsource:")
            lines.extend(self.source)
        if self.importance is not None:
            lines.append("\n" + str(self.importance))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        parts = [STYLE, f"<h4>diff {html.escape(self.a.ref)} {html.escape(self.b.ref)}</h4>"]
        if self.same:
            parts.append("<div>no differences</div>")
        for title, head, rows in self._sections():
            parts.append(html_table(head, rows, caption=title))
        for title, items in (("data", self.data), ("signature", self.signature)):
            if items:
                parts.append(f"<div><b>{title}</b><ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in items)
                             + "</ul></div>")
        if self.source:
            lines = []
            for ln in self.source:
                cls = "nbm-add" if ln.startswith("+") and not ln.startswith("+++") else (
                    "nbm-del" if ln.startswith("-") and not ln.startswith("---") else "")
                lines.append(f"<span class='{cls}'>{html.escape(ln)}</span>")
            parts.append("<div><b>source</b><pre class='nbm-diff'>" + "\n".join(lines) + "</pre></div>")
        if self.importance is not None:
            parts.append(self.importance._repr_html_())
        return "".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (for REST routes).

        Returns:
            Both refs and every changed section.

        Example:
            >>> nbmodel.diff("iris/2", "iris/3").to_dict()["a"]  # doctest: +SKIP
            'iris/2'
        """
        return {"a": self.a.ref, "b": self.b.ref, "params": self.params, "metrics": self.metrics,
                "tags": self.tags, "data": self.data, "signature": self.signature,
                "source": self.source, "other": self.other,
                "importance": None if self.importance is None else self.importance.to_dict()}


def _changes(x: dict[str, Any], y: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    return [(k, x.get(k), y.get(k)) for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)]


def _data_changes(a: Version, b: Version) -> list[str]:
    da, db = a.data, b.data
    if not da and not db:
        return []
    if not da or not db:
        which = a.ref if not da else b.ref
        return [f"training data not recorded for {which}"]
    if da["hash"] == db["hash"]:
        return [f"same training data ({da['rows']} rows x {len(da['columns'])} columns, {da['hash'][:8]})"]
    out = [f"training data changed: {da['hash'][:8]} -> {db['hash'][:8]}"]
    if da["rows"] != db["rows"]:
        out.append(f"rows {da['rows']} -> {db['rows']} ({db['rows'] - da['rows']:+d})")
    added = [c for c in db["columns"] if c not in da["columns"]]
    removed = [c for c in da["columns"] if c not in db["columns"]]
    if added:
        out.append("columns added: " + ", ".join(added))
    if removed:
        out.append("columns removed: " + ", ".join(removed))
    ta = dict(zip(da["columns"], da.get("dtypes", [])))
    tb = dict(zip(db["columns"], db.get("dtypes", [])))
    for c in da["columns"]:
        if c in tb and ta.get(c) != tb.get(c):
            out.append(f"column {c}: {ta.get(c)} -> {tb.get(c)}")
    if not (added or removed) and da["rows"] == db["rows"]:
        out.append("same shape and columns, different values")
    return out


def _signature_changes(a: Version, b: Version) -> list[str]:
    sa, sb = _signature(a), _signature(b)
    if sa == sb:
        return []
    if sa is None or sb is None:
        return [f"no signature recorded for {a.ref if sa is None else b.ref}"]
    out = []
    for part in ("inputs", "outputs"):
        xa, xb = sa[part], sb[part]
        if xa != xb:
            out += [f"{part} removed: {c}" for c in xa if c not in xb]
            out += [f"{part} added: {c}" for c in xb if c not in xa]
            if not any(c not in xb for c in xa) and not any(c not in xa for c in xb):
                out.append(f"{part} reordered")
    return out


def diff(a: str | Ref | Version, b: str | Ref | Version) -> Diff:
    """What changed from version ``a`` to version ``b``.

    Args:
        a: the older version (a reference or a :class:`~nbmodel.versions.Version`).
        b: the newer version.

    Returns:
        A :class:`Diff`: message, model, parameters, metrics, data, signature and source changes.

    Raises:
        ModelNotFound, VersionNotFound, AliasNotFound: a reference names nothing.

    Example:
        >>> nbmodel.diff("iris/2", "iris/3")  # doctest: +SKIP
    """
    va = a if isinstance(a, Version) else resolve(a)
    vb = b if isinstance(b, Version) else resolve(b)
    get_store()
    d = Diff(va, vb)
    for label, x, y in (("message", va.message, vb.message), ("model", va.estimator, vb.estimator),
                        ("parent", va.parent, vb.parent)):
        if (x or "") != (y or ""):
            d.other.append((label, x or "-", y or "-"))
    d.params = _changes(va.params, vb.params)
    keys = list(dict.fromkeys([*va.metrics, *vb.metrics]))
    d.metrics = [(k, va.metrics.get(k), vb.metrics.get(k)) for k in keys]
    d.tags = _changes(va.tags, vb.tags)
    d.data = _data_changes(va, vb)
    d.signature = _signature_changes(va, vb)
    src_a, src_b = _artifact_text(va, SOURCE_ARTIFACT), _artifact_text(vb, SOURCE_ARTIFACT)
    if (src_a or "") != (src_b or ""):
        d.source = list(difflib.unified_diff(
            (src_a or "").splitlines(), (src_b or "").splitlines(),
            fromfile=va.ref, tofile=vb.ref, lineterm=""))
    from .explain import version_changes  # importance side by side, when both recorded it

    d.importance = version_changes(va, vb)
    return d


__all__ = ["Diff", "diff"]
