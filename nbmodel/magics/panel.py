"""``%model_panel NAME``: the ipywidgets panel of a model (History, Compare, Monitor and
Deployments tabs). ipywidgets is imported only when the magic runs."""

from __future__ import annotations

import argparse
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class

from ._common import declared, shell_of


@magics_class
class PanelMagics(Magics):
    @line_magic
    @declared
    def model_panel(self, args: argparse.Namespace) -> Any:
        """A panel of the model whose buttons do what the magics do: History (card, diff,
        checkout, alias, rollback, retire), Compare, Monitor and Deployments.

        Example: %model_panel iris
        """
        from ..widgets import panel

        return panel(args.name, namespace=shell_of(self).user_ns)
