"""%model_monitor: metrics per window, drift against the training reference, and alerts."""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class

from ..commands import run
from ._common import NbmodelUsageError, declared


@magics_class
class MonitorMagics(Magics):
    @line_magic
    @declared
    def model_monitor(self, args: argparse.Namespace) -> Any:
        """Volume, latency and predictions per time window; accuracy/F1 or RMSE/MAE where labels
        exist; drift of every feature and of the predictions against the training reference
        (PSI, KS, chi-square); alert rules checked per window, open alerts kept in the store.

        Feed it with nbmodel.record(name, X, y_pred) (served traffic is recorded by itself).
        Example: %model_monitor iris --window 1d --alert "accuracy<0.9" --alert "psi>0.2"
        """
        from ..monitoring import live

        if not args.live:
            return run("monitor", args)
        if args.every <= 0:
            raise NbmodelUsageError("--every takes a number of seconds above 0", "usage")
        if args.clear_alerts or args.alert:
            run("monitor", argparse.Namespace(**{**vars(args), "no_plots": True}))  # save the rules once
        return live(args.name, every=args.every, window=args.window, since=args.since,
                    until=args.until, plots=not args.no_plots)
