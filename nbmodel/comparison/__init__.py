"""Side-by-side evaluation of versions: ``nbmodel.compare(["iris/2", "iris/3"], X, y)``.

:func:`compare` scores every version on the same data: a metrics table with the best value of
each row marked, one figure per kind of plot, the rows where the versions disagree and whether
the difference is real. :func:`metric_history` shows the metrics stored at commit time against
the version number, aliases marked.

The private modules, one step each: ``_compare`` (the steps in order), ``_scoring`` (metrics,
from :mod:`nbmodel.metrics`), ``_significance`` (the tests), ``_plots`` (the figures, matplotlib
imported inside), ``_results`` (what a comparison returns and how it shows), ``_history``
(stored metrics by version), ``_progress`` (the bar) and ``_saving`` (the MLflow run).

Example:
    >>> from nbmodel.comparison import compare
    >>> c = compare(["iris/1", "iris/2"], X_test, y_test)  # doctest: +SKIP
"""

from __future__ import annotations

from ._compare import check_refs as check_refs
from ._compare import compare
from ._history import MetricHistory, metric_history
from ._results import Comparison
from ._results import Disagreements as Disagreements
from ._results import Figure as Figure
from ._results import Significance as Significance

#: The former private name, which the magic imports.
_check_refs = check_refs

__all__ = ["Comparison", "MetricHistory", "compare", "metric_history"]
