"""glibc malloc settings for processes that run models: freed tensor memory is kept for reuse.

glibc serves each allocation above its mmap threshold (adaptive, at most 32 MiB) with a fresh mapping
and unmaps it on free, so the next forward page-faults the same gigabytes in again, zeroing every page:
0.4-1.5 million faults per VideoMAE-B training step at batch 4 on 2 cores, seconds of a 21 s step.
With mmap off and a high trim threshold, freed blocks stay in the heap and the next step reuses them;
the resident size stays at the peak instead of falling between steps. Applied by the training loop
and the command line (processes of ours), never on import; MEDIAFORMERS_KEEP_FREED_MEMORY=0 turns it off.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_applied = False


def keep_freed_memory() -> bool:
    """Tune glibc's malloc as above, once per process; False where the C library is not glibc."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("MEDIAFORMERS_KEEP_FREED_MEMORY") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt  # glibc only (musl has none)
    except (OSError, AttributeError):
        return False
    _applied = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _applied
