"""Moved to ``processors/image/transforms.py``; this path keeps existing imports working (the same module)."""
import sys

from .image import transforms as _moved

sys.modules[__name__] = _moved
