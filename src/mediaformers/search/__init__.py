"""The media library as an application: index media into LanceDB, search it by text or example, serve a page.

Modules: ``records`` (errors, hits, checks), ``models`` (checkpoints and embedding), ``store`` (LanceDB tables),
``sync`` (indexing), ``locking`` (one writer), ``library`` (the ``Library`` facade and search), ``app`` /
``thumbs`` / ``server`` (the web page), ``client`` (``search`` through a running server), ``demo`` (offline demo).
"""
from __future__ import annotations

from .library import Library, group_hits
from .records import Hit, LibraryError, file_hash

__all__ = ["Hit", "Library", "LibraryError", "file_hash", "group_hits"]
