"""Moved to ``processors/audio/ast_features.py``; this path keeps existing imports working (the same module)."""
import sys

from .audio import ast_features as _moved

sys.modules[__name__] = _moved
