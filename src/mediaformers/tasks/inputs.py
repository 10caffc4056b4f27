"""Turn what a user names (files, folders, lists of paths, tensors) into work items."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..processors.kinds import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, KINDS, VIDEO_EXTENSIONS, media_kind

LIST_EXTENSIONS = (".txt", ".lst")
__all__ = ["AUDIO_EXTENSIONS", "IMAGE_EXTENSIONS", "KINDS", "LIST_EXTENSIONS", "VIDEO_EXTENSIONS", "Item",
           "expand_inputs", "media_kind"]


@dataclass
class Item:
    """One input: ``key`` names it in results (the path, or ``tensor[i]``)."""

    key: str
    source: Any
    error: str | None = None


def _describe(accept: set[str]) -> str:
    return " or ".join(sorted(accept))


def expand_inputs(inputs: Any, accept: set[str], _lists: frozenset[str] = frozenset()) -> list[Item]:
    """Files, folders (recursive, by known extension), list files (one path a line) and tensors.

    A folder contributes the files of the kinds in ``accept`` (sorted); a named file of another
    kind, or a path that does not exist, becomes an item with an error, so one bad name never
    stops the others.
    """
    if not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    items: list[Item] = []
    for i, entry in enumerate(inputs):
        if not isinstance(entry, (str, os.PathLike)):
            items.append(Item(f"input[{i}]", entry))
            continue
        if not os.fspath(entry).strip():  # Path("") is the current folder: never scan it by accident
            items.append(Item(os.fspath(entry), None, "empty path: expected a file, folder or list file"))
            continue
        path = Path(entry)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and media_kind(p) in accept)
            items.extend(Item(str(p), str(p)) for p in found)
            if not found:
                items.append(Item(str(path), None, f"no {_describe(accept)} files in folder {path}"))
        elif path.suffix.lower() in LIST_EXTENSIONS and path.is_file():
            real = os.path.realpath(path)
            if real in _lists:
                items.append(Item(str(path), None, f"{path}: list file includes itself (directly or through "
                                                   "another list); its entries are read once"))
                continue
            lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()]
            named = [ln if os.path.isabs(ln) or os.path.exists(ln) else str(path.parent / ln)
                     for ln in lines if ln and not ln.startswith("#")]
            items.extend(expand_inputs(named, accept, _lists | {real}))
        elif not path.exists():
            items.append(Item(str(path), None, f"{path}: no such file or folder"))
        else:
            kind = media_kind(path)
            if kind is not None and kind not in accept:
                article = "an" if kind[0] in "aeiou" else "a"
                items.append(Item(str(path), None,
                                  f"{path}: is {article} {kind} file, but this model takes {_describe(accept)}"))
            else:
                items.append(Item(str(path), str(path)))  # unknown extension: let the decoder decide
    return items
