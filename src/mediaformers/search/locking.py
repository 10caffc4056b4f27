"""One writer per library: an exclusive, non-blocking flock on ``<library>/.lock`` (released by the kernel
when the process ends, however it ends)."""
from __future__ import annotations

import fcntl
from pathlib import Path
from typing import IO

from .records import LibraryError


def writer_lock(folder: Path) -> IO:
    """The open lock file; close it to release. A second writer gets a clear error, not a wait."""
    fh = open(folder / ".lock", "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise LibraryError(f"library: {folder} is being written by another process; try again when it ends") from None
    return fh
