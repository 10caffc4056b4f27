"""Renamed :mod:`mediaformers.train.objectives` (``tasks/`` is inference); this path keeps old imports working."""
from .objectives import *  # noqa: F403 (the old path re-exports the package)
from .objectives import __all__  # noqa: F401
