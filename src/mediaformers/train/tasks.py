"""Renamed :mod:`mediaformers.train.objectives` (``tasks/`` is inference); this path keeps old imports working."""
from .objectives import *
from .objectives import __all__  # noqa: F401
