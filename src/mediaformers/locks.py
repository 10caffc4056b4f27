"""One writer at a time: an exclusive, non-blocking flock, released by the kernel however the process ends."""
from __future__ import annotations

import fcntl
import os


def exclusive(fd: int, busy: Exception) -> int:
    """Lock ``fd`` (returned), or close it and raise ``busy``: a second writer gets a clear error, not a wait."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise busy from None
    return fd
