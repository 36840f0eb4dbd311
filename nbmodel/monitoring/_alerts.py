"""Alert rules: a small grammar, checks per window, open alerts kept in the registry, callbacks.

A model's rules and its open alerts are tags of the registered model (``nbmodel.alert_rules``
and ``nbmodel.alerts``), so ``%model_status``, the panel, the JupyterLab sidebar and ``mlflow
ui`` all see them, from any kernel. An alert is open while its rule fails in the newest window
where the rule's metric has a value; it clears when a later check finds that window fine.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
import threading
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ..errors import BadAlert, NbmodelError, NbmodelWarning
from ..metrics import CLASSIFIER, REGRESSOR
from ._stats import QUALITY

if TYPE_CHECKING:
    import numpy as np

    from ._schema import Schema
    from ._stats import Summary

T_RULES = "nbmodel.alert_rules"
T_OPEN = "nbmodel.alerts"
MAX_TAG = 5000

GRAMMAR = """\
alert rules are METRIC OP NUMBER, or METRIC[FEATURE] OP NUMBER for one feature:
  METRIC  volume, labelled, latency_p50, latency_p95 (ms of served requests),
          accuracy, f1_macro (classifiers), rmse, mae (regressors),
          psi, ks, pvalue (drift of the worst feature, or of the one in [...]),
          prediction_psi (drift of the predictions),
          est_accuracy, est_f1_macro (estimated before labels; see nbmodel.monitoring.calibrate)
  OP      <  <=  >  >=
  groups  METRIC[COL=VALUE] (one group), METRIC_gap or METRIC_ratio (between the groups),
          demographic_parity, equalized_odds (binary classifiers); COL in [...] or --groups COL
  e.g.    "accuracy<0.9"  "psi>0.2"  "psi[petal length (cm)]>0.2"  "rmse>=50"  "volume<100"
          "accuracy[sex=F]<0.85"  "accuracy_gap>0.05\""""

#: The one line a refused rule ends with (the whole grammar is :data:`GRAMMAR`).
_HINT = ("rules are METRIC OP NUMBER; the metrics are volume, labelled, latency_p50/p95, accuracy, "
         "f1_macro, rmse, mae, psi, ks, pvalue, prediction_psi, est_accuracy, est_f1_macro, and per "
         "group METRIC[COL=VALUE], METRIC_gap, METRIC_ratio")

#: Each metric a rule can name -> what it needs: a task, a drift reference ("drift"), or nothing.
METRICS: dict[str, str | None] = {
    "volume": None, "labelled": None, "latency_p50": None, "latency_p95": None,
    **{m: task for task, names in QUALITY.items() for m in names},
    "psi": "drift", "ks": "drift", "pvalue": "drift", "prediction_psi": "drift",
    "est_accuracy": CLASSIFIER, "est_f1_macro": CLASSIFIER,
}
_SYNONYMS = {"f1": "f1_macro", "acc": "accuracy", "p_value": "pvalue", "pred_psi": "prediction_psi",
             "count": "volume", "latency": "latency_p95", "est_f1": "est_f1_macro", "est_acc": "est_accuracy"}
_RULE = re.compile(r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*)\s*(?:\[(?P<feature>[^\]]+)\])?\s*"
                   r"(?P<op><=|>=|<|>)\s*(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Rule:
    metric: str
    op: str
    threshold: float
    feature: str | None = None

    @property
    def text(self) -> str:
        feat = f"[{self.feature}]" if self.feature else ""
        return f"{self.metric}{feat}{self.op}{self.threshold:g}"

    def __str__(self) -> str:
        return self.text

    def fails(self, values: np.ndarray) -> np.ndarray:
        """True where the rule fires (NaN never fires)."""
        import numpy as np

        with np.errstate(invalid="ignore"):
            return {"<": values < self.threshold, "<=": values <= self.threshold,
                    ">": values > self.threshold, ">=": values >= self.threshold}[self.op] & ~np.isnan(values)


def parse_rule(text: str | Rule) -> Rule:
    """Read an alert rule (see :data:`GRAMMAR`).

    Args:
        text: ``METRIC OP NUMBER`` or ``METRIC[FEATURE] OP NUMBER``; a :class:`Rule` is returned as is.

    Returns:
        The :class:`Rule`.

    Raises:
        BadAlert: a rule that does not follow the grammar (the message shows it).

    Example:
        >>> parse_rule("psi[petal length (cm)]>0.2")
        Rule(metric='psi', op='>', threshold=0.2, feature='petal length (cm)')
    """
    if isinstance(text, Rule):
        return text
    m = _RULE.match(str(text))
    if not m:
        raise BadAlert(f'cannot read the alert {text!r} (write one such as "accuracy<0.9" or '
                       f'"psi[age]>0.2"); {_HINT}')
    metric = m.group("metric").lower()
    metric = _SYNONYMS.get(metric, metric)
    feature = m.group("feature")
    from ..explain._groups import is_group_rule  # rules that name a group: nbmodel.explain's

    if is_group_rule(metric, feature):
        return Rule(metric, m.group("op"), float(m.group("num")), feature.strip() if feature else None)
    if metric not in METRICS:
        raise BadAlert(f"unknown metric {m.group('metric')!r} in the alert {text!r}; {_HINT}")
    if feature is not None and metric not in ("psi", "ks", "pvalue"):
        raise BadAlert(f"only psi, ks and pvalue take a [feature], not {metric} ({text!r}); "
                       "rules are METRIC OP NUMBER, and METRIC[COL=VALUE] OP NUMBER for a group")
    threshold = float(m.group("num"))
    if not math.isfinite(threshold):
        # 1e999 reads as inf, which the rule's saved text could not be read back from.
        raise BadAlert(f"the threshold of the alert {text!r} is out of range; give a finite number "
                       "such as 0.2")
    return Rule(metric, m.group("op"), threshold, feature.strip() if feature else None)


def is_group(rule: Rule) -> bool:
    """Whether a rule names a group or compares groups (``accuracy[sex=F]``, ``accuracy_gap``).

    Example:
        >>> is_group(parse_rule("accuracy[sex=F]<0.85"))
        True
    """
    from ..explain._groups import is_group_rule

    return is_group_rule(rule.metric, rule.feature)


def check_rules(rules: list[Rule], sch: Schema, task: str | None) -> None:
    """Refuse rules that cannot apply to this version, saying why.

    Args:
        rules: the parsed rules.
        sch: the version's schema.
        task: ``classifier``, ``regressor`` or None (not known yet: task rules pass).

    Raises:
        BadAlert: a quality metric of the other task, a drift rule without a training
            reference, or a feature the version does not have.

    Example:
        >>> check_rules([parse_rule("rmse>5")], schema("iris", 1), "classifier")  # doctest: +SKIP
        Traceback (most recent call last):
        BadAlert: rmse is for regressors but iris/1 is a classifier; use accuracy, f1_macro
    """
    prof = (sch.profile or {}).get("features") or {}
    from ..explain._groups import quality_task

    for r in rules:
        need = METRICS.get(r.metric) or quality_task(r.metric)
        if need == "drift" and not sch.has_reference:
            raise BadAlert(f"{r.text} needs a drift reference, but {sch.ref} was committed without "
                           "training data; commit with --train X_train y_train to add one")
        if need in (CLASSIFIER, REGRESSOR) and task and need != task:
            other = ", ".join(QUALITY[task]) if task in QUALITY else ""
            raise BadAlert(f"{r.metric} is for {need}s but {sch.ref} is a {task}; use {other}")
        if is_group(r):
            continue  # its column is checked against the recorded rows
        if r.feature is not None:
            if r.feature not in prof:
                raise BadAlert(f"{sch.ref} has no feature {r.feature!r}; its features are "
                               f"{', '.join(prof) or '(none)'}")
            if r.metric == "ks" and prof[r.feature].get("kind") == "categorical":
                raise BadAlert(f"{r.feature!r} is categorical: the KS test is for numeric features; "
                               f"use pvalue[{r.feature}] (chi-square) or psi[{r.feature}]")


@dataclass
class Alert:
    """A rule that fails on a version's traffic."""

    model: str
    version: int
    rule: str
    value: float
    threshold: float
    window: str
    windows_failed: int
    feature: str | None = None
    since: str = ""
    checked: str = ""

    @property
    def ref(self) -> str:
        return f"{self.model}/{self.version}"

    @property
    def where(self) -> str:
        """`` (feature)`` when the rule names no feature but one feature made it fail."""
        return f" ({self.feature})" if self.feature and "[" not in self.rule else ""

    @property
    def value_text(self) -> str:
        """The value as tables show it, with the feature it was measured on."""
        return f"{_num(self.value)}{self.where}"

    def __str__(self) -> str:
        return (f"{self.rule} on {self.ref}: {self.value_text} in the window {self.window}"
                f" ({self.windows_failed} window{'s' if self.windows_failed != 1 else ''} failed)")

    __repr__ = __str__

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Firing:
    """One rule failing in one window."""

    rule: Rule
    window: int
    value: float
    feature: str | None


def _num(x: float) -> str:
    if x != x:
        return "nan"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def evaluate(summary: Summary, rules: list[Rule], model: str, version: int,
             group_values: Callable[[Rule], np.ndarray] | None = None
             ) -> tuple[list[Firing], list[Alert]]:
    """Every (rule, window) that fails, and the alerts open now (failing in the newest window
    where the metric has a value).

    Args:
        summary: the windows' metrics.
        rules: the rules to check.
        model, version: what the alerts are about.
        group_values: a group rule's value per window (rules whose metric is not a window's).

    Returns:
        ``(firings, open alerts)``.

    Example:
        >>> fired, open_ = evaluate(summary, [parse_rule("volume<100")], "iris", 1)  # doctest: +SKIP
    """
    import numpy as np

    fired: list[Firing] = []
    open_: list[Alert] = []
    labels = summary.labels()
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    for r in rules:
        if not is_group(r) or group_values is None:
            values = summary.metric(r.metric, r.feature)
        else:
            values = group_values(r)
        bad = r.fails(values)
        for w in np.flatnonzero(bad):
            feat = r.feature or _worst(summary, r, int(w))
            fired.append(Firing(r, int(w), float(values[w]), feat))
        defined = np.flatnonzero(~np.isnan(values))
        if len(defined) and bad[defined[-1]]:
            last = int(defined[-1])
            first = last
            while first - 1 >= 0 and (bad[first - 1] or np.isnan(values[first - 1])):
                first -= 1
            while np.isnan(values[first]):
                first += 1
            feat = r.feature or _worst(summary, r, last)
            open_.append(Alert(model, version, r.text, float(values[last]), r.threshold, labels[last],
                               int(bad.sum()), feat, labels[first], now))
    return fired, open_


def _worst(summary: Summary, rule: Rule, w: int) -> str | None:
    """The feature that drifted most in window ``w`` (for a drift rule over every feature)."""
    return summary.worst_feature(rule.metric, w) if rule.metric in ("psi", "ks", "pvalue") else None


# -- kept in the registry ----------------------------------------------------------------------
def stored(name: str) -> tuple[list[str], list[Alert]]:
    """The model's saved rules and its open alerts (one registry read).

    Args:
        name: the registered model.

    Returns:
        ``(rule texts, open alerts)``.

    Example:
        >>> stored("iris")  # doctest: +SKIP
        (['psi>0.2'], [])
    """
    from ..store import get_store

    store = get_store()
    rm = store.gateway.model(name)
    return _from_tags(dict(rm.tags or {}) if rm is not None else {})


def _from_tags(tags: dict[str, str]) -> tuple[list[str], list[Alert]]:
    try:
        rules = [str(r) for r in json.loads(tags.get(T_RULES) or "[]")]
    except ValueError:
        rules = []
    try:
        open_ = [Alert(**a) for a in json.loads(tags.get(T_OPEN) or "[]")]
    except (ValueError, TypeError):
        open_ = []
    return rules, open_


def save(name: str, *, rules: list[str] | None = None, open_alerts: list[Alert] | None = None,
         before: tuple[list[str], list[Alert]] | None = None) -> None:
    """Write what changed (one tag write each, none when nothing changed).

    Args:
        name: the registered model.
        rules: the rule texts to keep (None: leave them).
        open_alerts: the alerts open now (None: leave them).
        before: what :func:`stored` returned, to save a read.

    Raises:
        BadAlert: more rules than a registry tag holds.

    Example:
        >>> save("iris", rules=["psi>0.2"])  # doctest: +SKIP
    """
    from ..store import get_store

    store = get_store()
    old_rules, old_open = before if before is not None else stored(name)
    if rules is not None and rules != old_rules:
        text = json.dumps(rules)
        if len(text) > MAX_TAG:
            raise BadAlert(f"too many alert rules for {name} ({len(text)} characters; at most {MAX_TAG})")
        store.gateway.set_model_tag(name, T_RULES, text)
    if open_alerts is not None:
        new = [a.to_dict() for a in open_alerts]
        old = [a.to_dict() for a in old_open]
        strip = lambda xs: [{k: v for k, v in x.items() if k != "checked"} for x in xs]  # noqa: E731
        if strip(new) != strip(old):
            text = json.dumps(new)
            while len(text) > MAX_TAG and new:
                new = new[:-1]
                text = json.dumps(new)
            store.gateway.set_model_tag(name, T_OPEN, text)


def open_alerts(name: str | None = None) -> list[Alert]:
    """The open alerts of one model, or of every model in the store.

    Args:
        name: a model (``iris``; a version or alias in the reference is ignored); None for
            every model (one registry query per 1000 models).

    Returns:
        The :class:`Alert` objects open now, as the last check of each model left them.

    Raises:
        ModelNotFound: ``name`` is not a registered model.

    Example:
        >>> [str(a) for a in nbmodel.monitoring.open_alerts()]  # doctest: +SKIP
        ['psi>0.2 on iris/3: 0.41 (petal length (cm)) in the window 2026-03-03 (1 window failed)']
    """
    if name is not None:
        from ..refs import parse_ref

        return stored(parse_ref(name).name)[1]
    return alert_state()[1]


def alert_state() -> tuple[bool, list[Alert]]:
    """Whether any model has alert rules or open alerts, and the open alerts of every model.

    Returns:
        ``(used, alerts)`` from one pass over the registry.

    Example:
        >>> alert_state()  # doctest: +SKIP
        (True, [])
    """
    from ..store import get_store

    used = False
    out: list[Alert] = []
    for rm in get_store().gateway.list_models(order_by=None):
        tags = dict(rm.tags or {})
        if T_RULES in tags or T_OPEN in tags:
            used = True
            out.extend(_from_tags(tags)[1])
    return used, out


# -- callbacks --------------------------------------------------------------------------------
_callbacks: list[Callable[[Alert], Any]] = []
_callbacks_lock = threading.Lock()


def on_alert(fn: Callable[[Alert], Any]) -> Callable[[Alert], Any]:
    """Call ``fn(alert)`` each time an alert opens (not again while it stays open).

    Usable as a decorator. Remove it with :func:`remove_on_alert`. A callback that raises
    is reported with a warning; monitoring goes on.

    Args:
        fn: a function of one argument, the :class:`Alert`.

    Returns:
        ``fn`` itself.

    Raises:
        NbmodelError: ``fn`` is not callable.

    Example:
        >>> @nbmodel.on_alert  # doctest: +SKIP
        ... def notify(alert):
        ...     requests.post(SLACK_URL, json={"text": str(alert)})
    """
    if not callable(fn):
        raise NbmodelError("on_alert takes a function of one argument, the Alert")
    with _callbacks_lock:
        if fn not in _callbacks:
            _callbacks.append(fn)
    return fn


def remove_on_alert(fn: Callable[[Alert], Any]) -> None:
    """Stop calling ``fn`` for new alerts (nothing happens if it was not registered).

    Args:
        fn: a function given to :func:`on_alert`.

    Example:
        >>> nbmodel.monitoring.remove_on_alert(notify)  # doctest: +SKIP
    """
    with _callbacks_lock:
        if fn in _callbacks:
            _callbacks.remove(fn)


def notify(alerts: list[Alert]) -> None:
    """Call every :func:`on_alert` callback with each alert; a failing callback warns.

    Args:
        alerts: the alerts that just opened.

    Example:
        >>> notify(report.new)  # doctest: +SKIP
    """
    with _callbacks_lock:
        fns = list(_callbacks)
    for alert in alerts:
        for fn in fns:
            try:
                fn(alert)
            except Exception as exc:  # noqa: BLE001 - a broken notifier must not break monitoring
                warnings.warn(f"the on_alert callback {getattr(fn, '__name__', fn)!r} failed: {exc}",
                              NbmodelWarning, stacklevel=2)
