"""IPython magics: thin layers that parse arguments, call the core and display the result.

Each feature keeps its magics in its own module here; ``MAGIC_CLASSES`` lists them. Modules
in this package import nothing heavy at import time, so ``%load_ext nbmodel`` stays instant.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

#: "module:Class" of every Magics class to register.
MAGIC_CLASSES = [
    "nbmodel.magics.versioning:VersioningMagics",
    "nbmodel.magics.compare:CompareMagics",
    "nbmodel.magics.deploy:DeployMagics",
    "nbmodel.magics.monitor:MonitorMagics",
    "nbmodel.magics.panel:PanelMagics",
]


def _classes() -> list[type]:
    out = []
    for spec in MAGIC_CLASSES:
        module, cls = spec.split(":")
        if importlib.util.find_spec(module) is None:
            continue  # a feature not installed in this build
        out.append(getattr(importlib.import_module(module), cls))
    return out


def register(ipython: Any) -> None:
    from ..source import install

    for cls in _classes():
        ipython.register_magics(cls)
    install(ipython)


def unregister(ipython: Any) -> None:
    from ..source import uninstall

    uninstall(ipython)
    manager = ipython.magics_manager
    for cls in _classes():
        for kind, names in cls.magics.items():
            for name in names:
                manager.magics[kind].pop(name, None)
