"""IPython magics: thin layers that parse arguments, call the core and display the result.

Each feature keeps its magics in its own module here; their arguments are declared once, in
:mod:`nbmodel.commands`, with the CLI's. Modules in this package import nothing heavy at import
time, so ``%load_ext nbmodel`` stays instant.
"""

from __future__ import annotations

from typing import Any


def magic_classes() -> list[type]:
    """Every Magics class nbmodel registers.

    Returns:
        The classes, versioning first.

    Example:
        >>> [c.__name__ for c in magic_classes()][:2]
        ['VersioningMagics', 'CompareMagics']
    """
    from .branches import BranchMagics
    from .compare import CompareMagics
    from .deploy import DeployMagics
    from .explain import ExplainMagics
    from .modeltests import ModelTestMagics
    from .monitor import MonitorMagics
    from .panel import PanelMagics
    from .rollout import RolloutMagics
    from .versioning import VersioningMagics

    return [VersioningMagics, CompareMagics, DeployMagics, MonitorMagics, PanelMagics, BranchMagics,
            ExplainMagics, RolloutMagics, ModelTestMagics]


def register(ipython: Any) -> None:
    """Register nbmodel's magics and the cell-source recorder with a shell.

    Args:
        ipython: the ``InteractiveShell``.

    Example:
        >>> register(get_ipython())  # doctest: +SKIP
    """
    from ..source import install

    for cls in magic_classes():
        ipython.register_magics(cls)
    install(ipython)


def unregister(ipython: Any) -> None:
    """Remove what :func:`register` added.

    Args:
        ipython: the ``InteractiveShell``.

    Example:
        >>> unregister(get_ipython())  # doctest: +SKIP
    """
    from ..source import uninstall

    uninstall(ipython)
    manager = ipython.magics_manager
    for cls in magic_classes():
        for kind, names in cls.magics.items():  # type: ignore[attr-defined]
            for name in names:
                manager.magics[kind].pop(name, None)
