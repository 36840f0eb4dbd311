"""``pytest --nbmodel iris@candidate``: a version's test cases as pytest items, for CI.

nbmodel installs this plugin (entry point ``pytest11``). Without ``--nbmodel`` it only adds
the option: it imports nothing else and collects nothing. With it, each case of each version
named becomes an item ``nbmodel::iris/4::accuracy>=0.9``, so ``-k accuracy`` picks cases and
``-x`` stops at the first failure. When every case of a version ran, the results are recorded
on it as ``%model_test`` records them, for the release gate.
"""

from __future__ import annotations

from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--nbmodel REF`` (repeatable) and ``--nbmodel-store URI``.

    Example:
        pytest --nbmodel iris@candidate -k accuracy -x
    """
    group = parser.getgroup("nbmodel", "test cases stored with model versions")
    group.addoption("--nbmodel", action="append", default=[], metavar="REF",
                    help="collect the test cases of this model version (iris/4, iris@candidate)")
    group.addoption("--nbmodel-store", default=None, metavar="URI",
                    help="the store to read them from (default: as nbmodel resolves it)")


def pytest_configure(config: pytest.Config) -> None:
    """With ``--nbmodel``, keep MLflow's own deprecation warnings (from its database layer)
    out of the run's summary: they say nothing about the model under test.

    Example:
        pytest --nbmodel iris@candidate   # its summary ends "3 passed", no MLflow warning
    """
    if config.getoption("nbmodel", default=None):
        config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:mlflow")
        config.addinivalue_line("filterwarnings", "ignore:The ``noload`` loader strategy")


class CaseItem(pytest.Item):
    """One test case of one version."""

    def __init__(self, *, version: Any, cases: Any, case: Any, shared: dict[str, Any],
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.version = version
        self.cases = cases
        self.case = case
        self.shared = shared
        self.result: Any = None

    def runtest(self) -> None:
        """Run the case (the version's model is loaded once for all its items).

        Example:
            pytest --nbmodel iris/4 -k nan_answered
        """
        from . import execute

        if "model" not in self.shared:
            from ..flavors import adapt
            from ..versions import load

            self.shared["model"] = adapt(load(self.version), self.version.task)
        self.result = execute(self.shared["model"], self.cases, self.case,
                              cache=self.shared.setdefault("data", {}))
        self.shared.setdefault("results", {})[self.case.name] = self.result
        if not self.result.passed:
            raise CaseFailed(self.result)

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        """What was measured against what the case requires, and the first failing rows.

        Example:
            iris/4: nan answered failed / measured: refused: Input X contains NaN.
        """
        if isinstance(excinfo.value, CaseFailed):
            r = excinfo.value.result
            lines = [f"{self.version.ref}: {r.name} failed",
                     f"  measured: {r.error or r.measured}", f"  requires: {r.threshold}"]
            lines += [f"  row: {row}" for row in r.rows]
            return "\n".join(lines)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[str, int | None, str]:
        """Where the case lives: its version, not a file.

        Example:
            ('iris/4', None, 'iris/4::nan answered')
        """
        return self.version.ref, None, f"{self.version.ref}::{self.case.name}"


class Models(pytest.Collector):
    """The parent of the case items, so that their ids read ``nbmodel::iris/4::CASE``."""

    def collect(self) -> list[pytest.Item]:
        """Nothing: the items are made from the versions named on the command line.

        Example:
            pytest --nbmodel iris/4 --collect-only
        """
        return []


class CaseFailed(Exception):
    """A case that did not hold; the item reports its result."""

    def __init__(self, result: Any) -> None:
        super().__init__(result.name)
        self.result = result


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    """Append an item per case of each ``--nbmodel`` version.

    Example:
        pytest --nbmodel iris@candidate -k accuracy -x
    """
    refs = config.getoption("nbmodel")
    if not refs:
        return
    from ..errors import NbmodelError
    from . import load_cases

    uri = config.getoption("nbmodel_store")
    if uri:
        from ..store import set_store

        set_store(uri)
    runs: list[tuple[Any, Any, dict[str, Any]]] = []
    parent = Models.from_parent(session, name="nbmodel", nodeid="nbmodel")
    added: list[pytest.Item] = []
    for ref in refs:
        try:
            version, cases = load_cases(ref)
        except NbmodelError as exc:
            raise pytest.UsageError(f"--nbmodel {ref}: {exc}") from None
        shared: dict[str, Any] = {}
        runs.append((version, cases, shared))
        for case in cases.cases:
            added.append(CaseItem.from_parent(parent, name=f"{version.ref}::{case.id}",
                                              version=version, cases=cases, case=case,
                                              shared=shared))
    items.extend(added)
    # counted in "collected N items" like any other collected test
    collected: list[Any] = list(added)
    config.hook.pytest_collectreport(report=pytest.CollectReport(parent.nodeid, "passed", None,
                                                                 collected))
    config.stash[_RUNS] = runs


_RUNS = pytest.StashKey[list]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Record each version's results when all its cases ran (not after -k, -x or an error).

    Example:
        pytest --nbmodel iris@candidate -k accuracy -x
    """
    runs = session.config.stash.get(_RUNS, None)
    if not runs:
        return
    from . import ModelTestReport, record_results

    for version, cases, shared in runs:
        done = shared.get("results", {})
        if len(done) == len(cases.cases):
            record_results(version, ModelTestReport(version.ref, [done[c.name] for c in cases.cases],
                                                    cases.digest))
