"""%model_monitor: metrics per window, drift against the training reference, and alerts."""

from __future__ import annotations

from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ._common import NbmodelUsageError, parse, usage_errors


@magics_class
class MonitorMagics(Magics):
    @magic_arguments()
    @argument("name", help="iris (the production alias's holder, else the newest), iris/3 or iris@staging")
    @argument("--window", help="15m, 1h, 1d, 1w, or a number of rows such as 500 (default: auto)")
    @argument("--since", help="only traffic from then: 2026-03-01, '2026-03-01 12:00', or 7d (ago)")
    @argument("--until", help="only traffic before then")
    @argument("--alert", action="append", metavar="RULE",
              help='a rule such as "accuracy<0.9", "psi>0.2", "psi[age]>0.2", "rmse>=50", '
                   '"volume<100" (repeatable; saved for the model and checked again later)')
    @argument("--clear-alerts", action="store_true", help="remove the model's saved alert rules")
    @argument("--live", action="store_true", help="a view that refreshes as new records arrive")
    @argument("--every", type=float, default=5.0, metavar="SECONDS", help="refresh period of --live")
    @argument("--no-plots", action="store_true", help="tables only")
    @line_magic
    @usage_errors
    def model_monitor(self, line: str = "") -> Any:
        """Volume, latency and predictions per time window; accuracy/F1 or RMSE/MAE where labels
        exist; drift of every feature and of the predictions against the training reference
        (PSI, KS, chi-square); alert rules checked per window, open alerts kept in the store.

        Feed it with nbmodel.record(name, X, y_pred) (served traffic is recorded by itself).
        Example: %model_monitor iris --window 1d --alert "accuracy<0.9" --alert "psi>0.2"
        """
        from ..monitoring import live, monitor

        args = parse(self.model_monitor, line)
        if args.clear_alerts and args.alert:
            raise NbmodelUsageError("give --alert or --clear-alerts, not both", "usage")
        alerts = [] if args.clear_alerts else args.alert
        opts = dict(window=args.window, since=args.since, until=args.until, plots=not args.no_plots)
        if args.live:
            if args.every <= 0:
                raise NbmodelUsageError("--every takes a number of seconds above 0", "usage")
            if alerts is not None:
                monitor(args.name, alerts=alerts, **{**opts, "plots": False})  # save the rules once
            return live(args.name, every=args.every, **opts)
        return monitor(args.name, alerts=alerts, **opts)
