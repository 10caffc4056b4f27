"""Moved to :mod:`mediaformers.search`; this path keeps working for existing code."""
from __future__ import annotations

from .search.library import NPROBES, REFINE, Library, group_hits
from .search.records import LIBRARY_FILE, VISUAL_KINDS, Hit, LibraryError, file_hash
from .search.store import ANN_MIN_ROWS

__all__ = ["ANN_MIN_ROWS", "LIBRARY_FILE", "NPROBES", "REFINE", "VISUAL_KINDS", "Hit", "Library", "LibraryError",
           "file_hash", "group_hits"]
