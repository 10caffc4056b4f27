"""Moved to ``processors/audio/_audio_features.py``; this path keeps existing imports working (the same module)."""
import sys

from .audio import _audio_features as _moved

sys.modules[__name__] = _moved
