"""Moved to ``processors/audio/mel.py``; this path keeps existing imports working (the same module)."""
import sys

from .audio import mel as _moved

sys.modules[__name__] = _moved
