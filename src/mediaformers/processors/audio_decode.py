"""Moved to ``processors/audio/audio_decode.py``; this path keeps existing imports working (the same module)."""
import sys

from .audio import audio_decode as _moved

sys.modules[__name__] = _moved
