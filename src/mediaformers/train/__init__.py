"""Training: a :class:`Recipe` and :func:`fit` (``mediaformers train`` is the same from the shell)."""
from .recipe import Recipe, fit

__all__ = ["Recipe", "fit"]
