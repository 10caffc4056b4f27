"""Moved to ``processors/audio/tvlt_audio.py``; this path keeps existing imports working (the same module)."""
import sys

from .audio import tvlt_audio as _moved

sys.modules[__name__] = _moved
