"""Rollout magics: ``%model_canary`` and ``%model_shadow``. Each parses its line, calls
:mod:`nbmodel.serving` and returns its report (an HTML card in a notebook, text elsewhere)."""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class

from ..commands import run
from ._common import declared


@magics_class
class RolloutMagics(Magics):
    @line_magic
    @declared
    def model_canary(self, args: argparse.Namespace) -> Any:
        """Send a growing share of a running deployment's requests to a candidate version,
        sticky per caller; at each step the checks run on the candidate's live figures: all
        hold, the share grows (at 100 the alias moves); one fails, the candidate gets no more
        traffic. Every step is in the alias's audit trail.

        Example: %model_canary iris/4 --steps 10,50,100 --interval 2m --check "p99_ms<20"
                 %model_canary iris/4 --stop
        """
        return run("canary", args)

    @line_magic
    @declared
    def model_shadow(self, args: argparse.Namespace) -> Any:
        """Mirror every request of a running deployment to a candidate, off the request path
        (answers still come from the serving version); run it again for the report: agreement
        rate, rows that differ, both latencies.

        Example: %model_shadow iris/4      %model_shadow iris/4 --promote
        """
        return run("shadow", args)
