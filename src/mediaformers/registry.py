"""Known checkpoints by short name (``mf.list_models()``); the entries are data in the family declarations.

Preprocessing travels with the weights (the checkpoint's preprocessor_config.json), so an entry
holds no processor settings of its own.
"""
from __future__ import annotations

import os

from .family import Pretrained, families


def entries() -> dict[str, Pretrained]:
    """Registry name -> Pretrained, over every family."""
    return {name: p for fam in families().values() for name, p in fam.pretrained.items()}


def list_models(task: str | None = None) -> list[str]:
    """Registry names of the known checkpoints (those whose task is ``task`` when given), sorted."""
    return sorted(name for name, p in entries().items() if task is None or p.task == task)


def lookup(ref: str | os.PathLike) -> str:
    """The hub id of a registry name; anything else unchanged. A path that exists always wins, so a
    folder named like a registry entry is loaded, not downloaded."""
    ref = os.fspath(ref)
    if os.path.exists(ref):
        return ref
    entry = entries().get(ref)
    return entry.hub_id if entry else ref
