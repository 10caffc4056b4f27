"""Moved to ``processors/audio/fbank.py``; this path keeps existing imports working (the same module)."""
import sys

from .audio import fbank as _moved

sys.modules[__name__] = _moved
