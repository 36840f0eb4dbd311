"""The jupyter-server extension's former name, kept for configs that enable ``nbmodel.server``."""
from .handlers import _jupyter_server_extension_points, _load_jupyter_server_extension  # noqa: F401
