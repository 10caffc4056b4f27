"""Training: fine-tune a classifier of any family on labelled media (see recipe.Recipe)."""
from .data import DataError
from .recipe import Recipe

__all__ = ["DataError", "Recipe"]
