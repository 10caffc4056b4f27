"""Training: ``Recipe(...).fit()`` (``mediaformers train`` is the same from the shell).

The loop loads lazily so that building the CLI parser does not import torch.
"""
from .recipe import Recipe

__all__ = ["DataError", "Recipe", "fit"]


def __getattr__(name: str):
    if name == "fit":
        from .loop import fit

        return fit
    if name == "DataError":
        from .data import DataError

        return DataError
    raise AttributeError(name)
