"""Training: a :class:`Recipe` and :func:`fit` (``mediaformers train`` is the same from the shell).

Loaded lazily so that building the CLI parser does not import torch.
"""
from .recipe import Recipe

__all__ = ["Recipe", "fit"]


def __getattr__(name: str):
    if name == "fit":
        from .loop import fit

        return fit
    raise AttributeError(name)
