"""Moved to ``processors/image/clip_image_processor.py``; this path keeps existing imports working (the same module)."""
import sys

from .image import clip_image_processor as _moved

sys.modules[__name__] = _moved
