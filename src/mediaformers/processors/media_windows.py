"""Moved to ``processors/video/pyav/windows.py`` (PyAV lives in the video package); this path keeps
existing imports working (the same module)."""
import sys

from .video.pyav import windows as _moved

sys.modules[__name__] = _moved
