"""Moved to :mod:`mediaformers.search` (``app``, ``server``, ``thumbs``); this path keeps working."""
from __future__ import annotations

from .search.app import make_app
from .search.page import PAGE
from .search.server import is_loopback, serve

__all__ = ["PAGE", "is_loopback", "make_app", "serve", "thumbnail_jpeg"]


def thumbnail_jpeg(path: str, t: float, width: int = 320) -> bytes:
    """The frame on screen at ``t`` (an image's only frame) as a JPEG (kept for callers of the old module)."""
    from .search.thumbs import frame_jpeg

    with open(path, "rb") as fh:
        return frame_jpeg(fh, t, width)
