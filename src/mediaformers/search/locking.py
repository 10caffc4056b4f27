"""One writer per library: an exclusive, non-blocking flock on ``<library>/.lock`` (released by the kernel
when the process ends, however it ends)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from ..locks import exclusive
from .records import LibraryError


def writer_lock(folder: Path) -> IO:
    """The open lock file; close it to release. A second writer gets a clear error, not a wait."""
    fd = os.open(folder / ".lock", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    busy = LibraryError(f"library: {folder} is being written by another process; try again when it ends")
    return os.fdopen(exclusive(fd, busy), "w")
