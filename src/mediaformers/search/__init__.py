"""The media library as an application: index media into LanceDB, search it by text or example, serve a page.

Modules: ``records`` (errors, hits, checks), ``models`` (checkpoints and embedding), ``store`` (LanceDB tables),
``sync`` (indexing), ``locking`` (one writer), ``library`` (the ``Library`` facade and search), ``app`` /
``page`` / ``thumbs`` / ``server`` (the web page), ``client`` (``search`` through a running server), ``demo``.
Names are imported on first use, so ``search`` through a running server starts without loading torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"Library": "library", "group_hits": "library", "Hit": "records", "LibraryError": "records",
            "file_hash": "records"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mediaformers.search' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
