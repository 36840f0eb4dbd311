"""Canary and shadow rollouts on a running deployment.

A rollout is part of the deployment record (:class:`~._records.Rollout` on the model's entry):
the kernel writes it to start or stop one, and the server answers by it.

- **canary**: a share of the requests goes to the candidate version, sticky per caller (the
  ``X-Request-Key`` header, else a hash of the request's rows), so one caller sees one version.
  The server process that serves the model drives the steps (:class:`Controller`): when a
  step's interval is over, the checks (``error_rate<0.01``, ``p99_ms<20``, ``accuracy>=0.95``)
  are evaluated on what the candidate answered during the step; if all hold the share grows,
  and at 100 the alias moves to the candidate (the servers then swap to it, reusing the loaded
  candidate); if one fails the candidate gets no more traffic and the reason is kept. Every
  step is in the alias's audit trail.
- **shadow**: every request is answered by the serving version and also, off the request path
  (a background thread, in batches), predicted by the candidate; the report gives the
  agreement rate, rows where they differ and both latencies.

The rules, the routing and the controller are here; the kernel's side (:func:`canary`,
:func:`shadow`, :class:`RolloutReport`) too. Only the standard library is imported at the top:
the server imports this module on its start-up path.
"""

from __future__ import annotations

import contextlib
import html
import logging
import operator
import re
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..display import Shown
from ..errors import DeployError, first_line
from . import _records as R
from ._records import Rollout

if TYPE_CHECKING:
    from ._models import Handle

log = logging.getLogger("nbmodel.serving")

DEFAULT_STEPS = (10, 25, 50, 100)
DEFAULT_INTERVAL = 60.0
DEFAULT_CHECKS = ("error_rate<0.01",)
#: The request header that makes canary routing sticky per caller.
KEY_HEADER = b"x-request-key"
#: Metrics a check may name.
CHECK_METRICS = ("error_rate", "p99_ms", "p50_ms", "accuracy", "requests")
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_CHECK = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*$")


# -- rules -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    """One rule on the candidate's live metrics, such as ``p99_ms<20``.

    Example:
        >>> Check.parse("error_rate<0.01").holds({"error_rate": 0.0})
        (True, 'error_rate 0 < 0.01')
    """

    metric: str
    op: str
    limit: float

    @classmethod
    def parse(cls, text: str) -> Check:
        """Read a rule.

        Raises:
            DeployError: not ``METRIC OP NUMBER`` with a known metric.
        """
        m = _CHECK.match(str(text))
        if not m or m.group(1) not in CHECK_METRICS:
            raise DeployError(
                f"--check {text!r} is not a rule; write METRIC OP NUMBER with METRIC one of "
                f"{', '.join(CHECK_METRICS)}, such as \"error_rate<0.01\" or \"p99_ms<20\"")
        try:
            limit = float(m.group(3))
        except ValueError:
            raise DeployError(f"--check {text!r}: {m.group(3)!r} is not a number") from None
        return cls(m.group(1), m.group(2), limit)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.limit:g}"

    def holds(self, stats: dict[str, Any]) -> tuple[bool | None, str]:
        """Whether the rule holds on ``stats`` (None: no figure to judge yet), and why."""
        value = stats.get(self.metric)
        if value is None:
            return None, f"{self.metric}: no figure yet"
        ok = _OPS[self.op](value, self.limit)
        sign = self.op if ok else {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}[self.op]
        return ok, f"{self.metric} {value:.4g} {sign} {self.limit:g}"


def parse_steps(text: str | list[int] | tuple[int, ...] | None) -> list[int]:
    """The canary's shares in percent, growing, ending at 100.

    Example:
        >>> parse_steps("10,50")
        [10, 50, 100]

    Raises:
        DeployError: not growing whole percentages from 1 to 100.
    """
    if text is None:
        return list(DEFAULT_STEPS)
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        steps = [int(str(s).strip().rstrip("%")) for s in items if str(s).strip()]
    except ValueError:
        steps = []
    if not steps or any(not 1 <= s <= 100 for s in steps) or steps != sorted(set(steps)):
        raise DeployError(f"--steps {text!r}: give growing percentages from 1 to 100, such as 10,25,50,100")
    return steps if steps[-1] == 100 else [*steps, 100]


def parse_interval(text: str | float | int | None) -> float:
    """Seconds between canary steps: ``60s``, ``2m``, ``1h`` or a number of seconds.

    Example:
        >>> parse_interval("2m")
        120.0

    Raises:
        DeployError: not a duration.
    """
    if text is None:
        return DEFAULT_INTERVAL
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        m = re.match(r"^\s*([0-9.]+)\s*(ms|s|m|min|h)?\s*$", str(text))
        if not m:
            raise DeployError(f"--interval {text!r} is not a duration; write 30s, 2m or 1h")
        try:
            seconds = float(m.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "min": 60,
                                           "h": 3600}[m.group(2)]
        except ValueError:
            raise DeployError(f"--interval {text!r} is not a duration; write 30s, 2m or 1h") from None
    if seconds <= 0:
        raise DeployError(f"--interval {text!r}: give a duration above zero")
    return seconds


def evaluate(checks: list[str], stats: dict[str, Any]) -> tuple[bool | None, str]:
    """All ``checks`` on ``stats``: True (all hold), False (one fails: the first failure says
    why) or None (a figure is missing, such as no request reached the candidate yet).

    Example:
        >>> evaluate(["error_rate<0.01", "p99_ms<20"], {"error_rate": 0.0, "p99_ms": 31.0})
        (False, 'p99_ms 31 >= 20')
    """
    said = []
    waiting = None
    for text in checks:
        ok, why = Check.parse(text).holds(stats)
        if ok is False:
            return False, why
        if ok is None and waiting is None:
            waiting = why
        said.append(why)
    if waiting is not None:
        return None, waiting
    return True, ", ".join(said) or "no checks"


def to_candidate(key: bytes, share: int) -> bool:
    """Whether the request with routing key ``key`` goes to the candidate at ``share`` percent.

    The same key always lands in the same one of 100 buckets, and a share that grows only adds
    buckets, so a caller sent to the candidate stays there as the canary grows.

    Example:
        >>> to_candidate(b"caller-1", 100), to_candidate(b"caller-1", 0)
        (True, False)
    """
    return zlib.crc32(key) % 100 < share


# -- the server's side -------------------------------------------------------------------------
class Shadow:
    """Mirrors requests to the candidate off the request path and keeps the agreement figures.

    The request path only appends ``(rows, predictions)`` to a bounded queue; a thread predicts
    what is queued with the candidate in one call per batch (as the serving version's batcher
    does) and compares.
    """

    MAX_QUEUED = 20_000
    MAX_DIFFERING = 20
    BATCH_ROWS = 4096
    #: the thread's pause between batches: requests gather meanwhile, so it makes few, large
    #: predict calls (each holds the GIL the request path needs)
    PAUSE = 0.05

    def __init__(self, candidate: Handle, on_compare: Any = None) -> None:
        self.candidate = candidate
        self.queue: deque[tuple[Any, Any]] = deque()
        self.compared = self.agreed = self.skipped = self.failed = 0
        self.candidate_s = 0.0  # seconds the candidate spent predicting
        self.candidate_requests = 0
        self.differing: list[dict[str, Any]] = []
        self.last_error: str | None = None
        self.on_compare = on_compare
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="nbmodel-shadow", daemon=True)
        self.thread.start()

    def offer(self, rows: Any, predictions: Any) -> None:
        """Queue one answered request for the candidate (dropped, and counted, when full)."""
        if len(self.queue) >= self.MAX_QUEUED:
            self.skipped += 1
            return
        self.queue.append((rows, predictions))
        if len(self.queue) == 1:
            self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.05)
            self._wake.clear()
            while self.queue and not self._stop.is_set():
                batch, size = [], 0
                while self.queue and size < self.BATCH_ROWS:
                    item = self.queue.popleft()
                    batch.append(item)
                    size += _length(item[0])
                try:
                    self._compare(batch)
                except Exception as exc:  # noqa: BLE001 - a shadow never disturbs serving
                    self.failed += len(batch)
                    self.last_error = first_line(exc)
            self._stop.wait(self.PAUSE)

    def _compare(self, batch: list[tuple[Any, Any]]) -> None:
        import numpy as np

        from . import _models as M

        h = self.candidate
        t0 = time.perf_counter()
        lists = all(isinstance(rows, list) for rows, _ in batch)
        if lists and h.native is not None and h.fast:
            joined = [r for rows, _ in batch for r in rows]
            theirs = np.asarray(M._predict_native(h, joined))
        else:
            import pandas as pd

            frames = [rows if not isinstance(rows, list) else pd.DataFrame(rows, columns=h.names)
                      for rows, _ in batch]
            theirs = np.asarray(h.pyfunc().predict(pd.concat(frames, ignore_index=True)))
        self.candidate_s += time.perf_counter() - t0
        self.candidate_requests += len(batch)
        ours = np.concatenate([np.atleast_1d(np.asarray(p)) for _, p in batch])
        same = _same(ours, theirs)
        self.compared += len(same)
        self.agreed += int(same.sum())
        if self.on_compare is not None:
            self.on_compare(int(same.sum()), int(len(same) - same.sum()))
        if len(self.differing) < self.MAX_DIFFERING and not same.all():
            rows = [r for rows, _ in batch for r in _as_rows(rows)]
            for i in np.flatnonzero(~same)[: self.MAX_DIFFERING - len(self.differing)]:
                self.differing.append({"row": rows[i] if i < len(rows) else None,
                                       "serving": _plain(ours[i]), "candidate": _plain(theirs[i])})

    def status(self) -> dict[str, Any]:
        return {
            "compared": self.compared, "agreed": self.agreed,
            "agreement": round(self.agreed / self.compared, 6) if self.compared else None,
            "differing": list(self.differing), "skipped": self.skipped, "failed": self.failed,
            "error": self.last_error, "queued": len(self.queue),
            "candidate_ms": (round(1000 * self.candidate_s / self.candidate_requests, 4)
                             if self.candidate_requests else None),
        }


def _length(rows: Any) -> int:
    try:
        return len(rows)
    except TypeError:
        return 1


def _as_rows(rows: Any) -> list[Any]:
    if isinstance(rows, list):
        return rows
    with contextlib.suppress(Exception):
        return rows.values.tolist()  # a DataFrame
    return [None] * _length(rows)


def _same(a: Any, b: Any) -> Any:
    import numpy as np

    if a.shape != b.shape:
        return np.zeros(max(len(a), len(b)), dtype=bool)
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        try:
            eq = np.isclose(a.astype(float), b.astype(float), rtol=1e-6, atol=1e-9)
        except (TypeError, ValueError):
            eq = a == b
    else:
        eq = a == b
    return eq.reshape(len(a), -1).all(axis=1) if eq.ndim > 1 else eq


def _plain(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else value


class Controller:
    """Drives the canaries of one server: at each step's end it evaluates the checks on what
    the candidate answered during the step and grows the share, promotes or rolls back, writing
    the record and the audit trail. Runs in the server's follower thread (or, with several
    workers, in the supervisor, whose metrics sum the workers')."""

    def __init__(self, record_path: str, stats: Any, gateway: Any) -> None:
        self.record_path = record_path
        self.stats = stats  # (name, version) -> cumulative figures of canary traffic
        self.gateway = gateway  # () -> opens the store (MLflow imported) before the trail is written
        self.base: dict[tuple[str, int, int, float], dict[str, Any]] = {}

    def tick(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        try:
            record = R.read(self.record_path)
        except (OSError, ValueError):
            return
        for spec in record.models:
            ro = spec.rollout
            if ro is None or ro.kind != "canary" or ro.state != "running":
                continue
            key = (spec.name, ro.candidate, ro.step, float(ro.step_started or 0))
            base = self.base.get(key)
            if base is None:
                # this step's window starts now (or when this process took the canary over)
                self.base = {k: v for k, v in self.base.items() if k[:2] != key[:2]}
                self.base[key] = {"at": now, **self.stats(spec.name, ro.candidate)}
                continue
            if now - base["at"] < ro.interval:
                continue
            figures = step_figures(base, self.stats(spec.name, ro.candidate))
            if any(Check.parse(c).metric == "accuracy" for c in ro.checks):
                figures["accuracy"] = labelled_accuracy(spec.name, ro.candidate, base["at"])
            verdict, why = evaluate(ro.checks, figures)
            if verdict is None:
                continue  # no traffic reached the candidate yet: the step waits
            self.base.pop(key, None)
            self._advance(spec, ro, verdict, why, now)

    def _advance(self, spec: R.ModelSpec, ro: Rollout, ok: bool, why: str, now: float) -> None:
        cand = f"{spec.name}/{ro.candidate}"
        if not ok:
            self._write(spec.name, ro, state="rolled back", share=0,
                        reason=f"{why} at {ro.share}%", note=f"canary of {cand} rolled back at "
                        f"{ro.share}%: {why}")
            return
        nxt = ro.step + 1
        if nxt >= len(ro.steps) or ro.steps[nxt] >= 100:
            self._promote(spec, ro, why)
            return
        self._write(spec.name, ro, step=nxt, share=ro.steps[nxt], step_started=now,
                    note=f"canary of {cand}: {ro.share}% -> {ro.steps[nxt]}% ({why})")

    def _promote(self, spec: R.ModelSpec, ro: Rollout, why: str) -> None:
        from ..aliases import ANY, set_alias

        cand = f"{spec.name}/{ro.candidate}"
        # Every request goes to the candidate first, then the alias moves: the servers swap to
        # the candidate they have loaded already, and no caller goes back and forth.
        self._write(spec.name, ro, share=100, note=None)
        try:
            self.gateway()
            set_alias(cand, spec.alias or "production", kind="deploy",
                      expected=ro.serving if ro.serving is not None else ANY,
                      message=f"canary of {cand} promoted ({why})")
        except Exception as exc:  # noqa: BLE001 - said in the record; the serving version stays
            self._write(spec.name, ro, state="stopped", share=0,
                        reason=f"the alias could not move: {first_line(exc)}",
                        note=f"canary of {cand} stopped: the alias could not move ({first_line(exc)})")
            return
        self._write(spec.name, ro, state="promoted", share=100, reason=None, note=None)

    def _write(self, name: str, ro: Rollout, *, note: str | None, **changes: Any) -> None:
        from pathlib import Path

        def change(current: Rollout) -> Rollout | None:
            if current.candidate != ro.candidate or current.started != ro.started or \
                    current.state != "running":
                return None  # stopped or replaced by the kernel meanwhile
            for k, v in changes.items():
                setattr(current, k, v)
            current.changed = time.time()
            return current

        if R.update_rollout(Path(self.record_path), name, change) is None:
            return
        for k, v in changes.items():
            setattr(ro, k, v)
        if note:
            spec_alias = _alias_of(self.record_path, name)
            try:
                self.gateway()
                from ..aliases import note as trail_note

                trail_note(name, spec_alias, note, kind="canary")
            except Exception as exc:  # noqa: BLE001 - the step stands; the trail says less
                log.warning("could not keep the canary step in the audit trail: %s", first_line(exc))


def _alias_of(record_path: str, name: str) -> str:
    with contextlib.suppress(OSError, ValueError):
        spec = R.read(record_path).model(name)
        if spec is not None and spec.alias:
            return spec.alias
    return "production"


def step_figures(base: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """The candidate's figures over one step, from two readings of its cumulative counters.

    Example:
        >>> step_figures({"requests": 10, "errors": 0, "buckets": [(0.005, 10)]},
        ...              {"requests": 110, "errors": 1, "buckets": [(0.005, 110)]})["error_rate"]
        0.01
    """
    requests = now.get("requests", 0) - base.get("requests", 0)
    errors = now.get("errors", 0) - base.get("errors", 0)
    out: dict[str, Any] = {"requests": requests, "error_rate": None, "p99_ms": None, "p50_ms": None}
    if requests <= 0:
        return out
    out["error_rate"] = errors / requests
    before = dict(base.get("buckets") or [])
    counts = [(le, c - before.get(le, 0)) for le, c in now.get("buckets") or []]
    answered = counts[-1][1] if counts else 0
    for q, label in ((0.99, "p99_ms"), (0.5, "p50_ms")):
        if answered:
            # the upper bound of the bucket that holds the quantile: never better than it was
            le = next(le for le, c in counts if c >= q * answered)
            out[label] = le * 1000.0
    return out


def labelled_accuracy(name: str, version: int, since: float) -> float | None:
    """The candidate's accuracy on its recorded requests whose labels have arrived since
    ``since`` (``nbmodel.record_labels``), or None without labels."""
    try:
        import datetime as dt

        from ..monitoring import recorded

        df = recorded(f"{name}/{version}", since=dt.datetime.fromtimestamp(since, dt.UTC),
                      labelled=True)
    except Exception as exc:  # noqa: BLE001 - no labels to judge by
        log.debug("no labelled traffic for %s/%s: %s", name, version, first_line(exc))
        return None
    if not len(df):
        return None
    return float((df["y_pred"].astype(str) == df["y_true"].astype(str)).mean())


def model_tests_hold(name: str, version: int) -> tuple[bool, str] | None:
    """Whether the candidate passes its own model tests (:mod:`nbmodel.modeltests`), and why
    not; None when it has no test cases.

    The canary and the shadow refuse to start a candidate whose tests fail or never ran on
    its current cases; this is where they ask.
    """
    from ..modeltests import gate_problem
    from ..modeltests._tags import tests_summary
    from ..versions import all_tags, resolve

    v = resolve(f"{name}/{version}")
    if tests_summary(all_tags(v)) is None:
        return None
    problem = gate_problem(v)
    return (True, "its tests pass") if problem is None else (False, problem)


# -- the kernel's side -------------------------------------------------------------------------
@dataclass
class RolloutReport(Shown):
    """Where a canary or shadow stands, as ``%model_canary`` and ``%model_shadow`` show it.

    Example:
        >>> print(nbmodel.serving.canary("iris/4"))  # doctest: +SKIP
        canary of iris/4 on iris@production (serving iris/3): 10% to iris/4, running
    """

    name: str
    alias: str
    kind: str
    candidate: int
    serving: int | None
    share: int
    state: str
    reason: str | None = None
    checks: list[str] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    interval: float = DEFAULT_INTERVAL
    #: live figures from the server: per version requests/errors, and the shadow's comparison
    live: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, spec: R.ModelSpec, health: dict[str, Any] | None) -> RolloutReport:
        ro = spec.rollout
        assert ro is not None
        live: dict[str, Any] = {}
        for m in (health or {}).get("models", []):
            if m.get("name") == spec.name and isinstance(m.get("rollout"), dict):
                live = m["rollout"]
                break
        serving = live.get("serving") or ro.serving
        return cls(spec.name, spec.alias or "production", ro.kind, ro.candidate, serving,
                   ro.share, ro.state, ro.reason, list(ro.checks), list(ro.steps), ro.interval, live)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.alias}"

    def to_dict(self) -> dict[str, Any]:
        """The REST form: ``{"kind", "candidate": "iris/4", "share", "state", "reason"}``."""
        return {"kind": self.kind, "candidate": f"{self.name}/{self.candidate}", "share": self.share,
                "state": self.state, "reason": self.reason}

    def lines(self) -> list[tuple[str, str]]:
        cand, serving = f"{self.name}/{self.candidate}", f"{self.name}/{self.serving}"
        rows = [("serving", serving), ("candidate", cand), ("state", self.state)]
        if self.kind == "canary" and self.state == "running":
            rows.append(("split", f"{100 - self.share}% {serving}, {self.share}% {cand}"))
            rows.append(("steps", ", ".join(f"{s}%" for s in self.steps) + f" every {self.interval:g} s"))
            rows.append(("checks", ", ".join(self.checks) or "none"))
        if self.reason:
            rows.append(("reason", self.reason))
        per = self.live.get("versions") or {}
        for v, f in sorted(per.items()):
            rows.append((f"{self.name}/{v}", f"{f.get('requests', 0)} requests, {f.get('errors', 0)} errors"
                         + (f", {f['mean_ms']:.3g} ms mean" if f.get("mean_ms") is not None else "")))
        sh = self.live.get("shadow")
        if self.kind == "shadow" and sh:
            if sh.get("agreement") is None:
                rows.append(("agreement", "no request compared yet"))
            else:
                rows.append(("agreement", f"{100 * sh['agreement']:.2f}% of {sh['compared']} rows"))
            if sh.get("candidate_ms") is not None:
                rows.append(("candidate latency",
                             f"{sh['candidate_ms']:.3g} ms per request (batched, off the request path)"))
            for d in (sh.get("differing") or [])[:5]:
                rows.append(("differs", f"{d.get('row')}: {serving} says {d.get('serving')}, "
                                        f"{cand} says {d.get('candidate')}"))
            if sh.get("error"):
                rows.append(("candidate error", str(sh["error"])))
        return rows

    def __str__(self) -> str:
        head = f"{self.kind} of {self.name}/{self.candidate} on {self.ref}: {self.state}"
        return "\n".join([head] + [f"  {k}: {v}" for k, v in self.lines()])

    def __repr__(self) -> str:
        return f"<RolloutReport {self.kind} {self.name}/{self.candidate} {self.state}>"

    def _repr_html_(self) -> str:
        from ..display import badge, card

        title = f"{html.escape(self.kind)} of {html.escape(self.name)}/{self.candidate}" + badge(self.state)
        return card(title, [(k, html.escape(str(v))) for k, v in self.lines()])


def _find(name: str, alias: str) -> tuple[R.DeploymentRecord, R.ModelSpec]:
    from . import _deploy, _process

    for record in R.read_all(_deploy.state_dir()):
        spec = record.model(name)
        if spec is not None and (spec.alias or None) == alias and not record.stopped \
                and _process.pid_alive(record.pid):
            return record, spec
    raise DeployError(f"nothing here serves {name}@{alias}; deploy it first "
                      f"(%model_deploy {name}@{alias}), then start the rollout")


def report(name: str, alias: str = "production") -> RolloutReport:
    """Where the rollout on ``name@alias`` stands (the last one, if it ended).

    Raises:
        DeployError: nothing serves it, or it has had no rollout.
    """
    from . import _deploy

    record, spec = _find(name, alias)
    if spec.rollout is None:
        raise DeployError(f"{name}@{alias} has no canary or shadow; start one with %model_canary "
                          f"{name}/VERSION or %model_shadow {name}/VERSION")
    return RolloutReport.of(spec, _deploy._health(record))


def _start(ref: str, kind: str, *, alias: str | None, steps: Any = None, interval: Any = None,
           checks: list[str] | None = None) -> RolloutReport:
    from ..refs import parse_ref
    from ..versions import resolve
    from . import _deploy

    alias = alias or "production"
    steps_l = parse_steps(steps)
    seconds = parse_interval(interval)
    rules = list(checks) if checks else list(DEFAULT_CHECKS)
    for c in rules:
        Check.parse(c)
    v = resolve(parse_ref(ref))
    if v.retired:
        raise DeployError(f"{v.ref} is retired; choose another version for the {kind}")
    tests = model_tests_hold(v.name, v.version)
    if tests is not None and not tests[0]:
        raise DeployError(f"{v.ref} {tests[1]}; run %model_test {v.ref} and fix them before a {kind}")
    record, spec = _find(v.name, alias)
    health = _deploy._health(record)
    serving = next((m.get("version") for m in (health or {}).get("models", [])
                    if m.get("name") == v.name), spec.version)
    if serving == v.version:
        raise DeployError(f"{v.ref} already serves {v.name}@{alias}; name another version")
    now = time.time()
    ro = Rollout(kind, v.version, steps=steps_l, interval=seconds, checks=rules,
                 share=steps_l[0] if kind == "canary" else 0, serving=serving,
                 started=now, step_started=now, changed=now)

    def change(current: Rollout | None) -> Rollout:
        if current is not None and current.state == "running" and current.kind == kind \
                and current.candidate == v.version:
            return current  # already running: show it
        if current is not None and current.state == "running":
            raise DeployError(f"a {current.kind} of {v.name}/{current.candidate} runs on "
                              f"{v.name}@{alias}; stop it first (%model_{current.kind} "
                              f"{v.name}/{current.candidate} --stop)")
        return ro

    assert record.path is not None
    started = R.update_rollout(record.path, v.name, change, create=True)
    if started is ro:
        _trail(v.name, alias, f"{kind} of {v.ref} started"
               + (f": {ro.share}% first, steps {','.join(map(str, steps_l))} every {seconds:g} s, "
                  f"checks {', '.join(rules)}" if kind == "canary" else ": every request mirrored"),
               kind)
        try:
            _wait_loaded(record, v.name, v.version, kind)
        except DeployError as exc:
            why = str(exc)

            def failed(current: Rollout | None) -> Rollout | None:
                if current is None or current.started != ro.started:
                    return None
                current.state, current.share, current.reason = "stopped", 0, why
                return current

            R.update_rollout(record.path, v.name, failed)
            _trail(v.name, alias, f"{kind} of {v.ref} stopped: {exc}", kind)
            raise
    return report(v.name, alias)


def _wait_loaded(record: R.DeploymentRecord, name: str, version: int, kind: str,
                 timeout: float = 60.0) -> None:
    """Wait until the server serves this ``kind`` of rollout with the candidate loaded (or
    says why it cannot): a shadow promoted to a canary has its candidate loaded already, and
    the report must not show the shadow's figures as the canary's."""
    from . import _deploy

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in (_deploy._health(record) or {}).get("models", []):
            ro = m.get("rollout") if m.get("name") == name else None
            if isinstance(ro, dict) and ro.get("candidate") == version and ro.get("kind") == kind:
                if ro.get("loaded"):
                    return
                if ro.get("error"):
                    raise DeployError(f"{name}/{version} did not load on the server: {ro['error']}")
        time.sleep(0.05)
    raise DeployError(f"the server did not load {name}/{version} within {timeout:g} s; "
                      f"see %model_deployments {name}")


def _trail(name: str, alias: str, why: str, kind: str) -> None:
    from ..aliases import note

    note(name, alias, why, kind=kind)


def _stop(ref: str, kind: str, alias: str | None) -> RolloutReport:
    from ..refs import parse_ref

    r = parse_ref(ref)
    alias = alias or "production"
    record, spec = _find(r.name, alias)
    stopped: list[Rollout] = []

    def change(current: Rollout | None) -> Rollout | None:
        if current is None or current.state != "running" or current.kind != kind:
            raise DeployError(f"no {kind} runs on {r.name}@{alias}")
        current.state, current.share, current.reason = "stopped", 0, "stopped by hand"
        current.changed = time.time()
        stopped.append(current)
        return current

    assert record.path is not None
    R.update_rollout(record.path, r.name, change, create=True)
    _trail(r.name, alias, f"{kind} of {r.name}/{stopped[0].candidate} stopped by hand", kind)
    return report(r.name, alias)


def canary(ref: str, *, alias: str | None = None, steps: str | list[int] | None = None,
           interval: str | float | None = None, checks: list[str] | None = None,
           stop: bool = False) -> RolloutReport:
    """Send a growing share of a running deployment's requests to version ``ref``.

    Args:
        ref: the candidate (``iris/4``).
        alias: the deployment's alias (default: production).
        steps: the shares in percent (default ``10,25,50,100``); at 100 the alias moves.
        interval: how long each step lasts before its checks (``60s``, ``2m``).
        checks: rules on the candidate's live figures, all to hold at each step
            (default ``error_rate<0.01``): ``error_rate``, ``p99_ms``, ``p50_ms``,
            ``accuracy`` (on labels given with ``nbmodel.record_labels``), ``requests``.
        stop: end the running canary; the candidate gets no more traffic.

    Returns:
        The :class:`RolloutReport` (the same ``%model_canary`` shows).

    Raises:
        DeployError: nothing serves the alias, a rule or step that does not parse, another
            rollout runs, the candidate serves already or does not load.

    Example:
        >>> nbmodel.serving.canary("iris/4", steps="10,50,100", interval="30s",
        ...                        checks=["error_rate<0.01", "p99_ms<20"])  # doctest: +SKIP
    """
    if stop:
        return _stop(ref, "canary", alias)
    return _start(ref, "canary", alias=alias, steps=steps, interval=interval, checks=checks)


def shadow(ref: str, *, alias: str | None = None, promote: bool = False, stop: bool = False,
           steps: str | list[int] | None = None, interval: str | float | None = None,
           checks: list[str] | None = None) -> RolloutReport:
    """Mirror every request of a running deployment to version ``ref``, off the request path;
    the answers still come from the serving version. Called again, it reports.

    Args:
        ref: the candidate (``iris/4``).
        alias: the deployment's alias (default: production).
        promote: end the shadow and start a canary of the same candidate (``steps``,
            ``interval``, ``checks`` as for :func:`canary`).
        stop: end the shadow.

    Returns:
        The :class:`RolloutReport`: agreement rate, differing rows, both latencies.

    Raises:
        DeployError: as for :func:`canary`.

    Example:
        >>> nbmodel.serving.shadow("iris/4")  # doctest: +SKIP
    """
    if stop or promote:
        ended = _stop(ref, "shadow", alias)
        if not promote:
            return ended
        return _start(ref, "canary", alias=ended.alias, steps=steps, interval=interval, checks=checks)
    return _start(ref, "shadow", alias=alias)
