"""Whether FFmpeg knows an option's name, asked of the FFmpeg that PyAV loaded.

FFmpeg's library leaves the options nobody used in a dictionary that PyAV drops, so a misspelt
``rtsp_transprot=tcp`` would be lost without a word. ``ffmpeg`` itself refuses an unknown name; this does
the same by looking the name up as it does (``av_opt_find`` over the format context's options and, through
its children, every demuxer's, protocol's and avio's, then the decoders'). PyAV does not expose it, hence
ctypes on the libraries PyAV's wheel ships (or the system's, where PyAV was built on them).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import glob
import os

import av

_SEARCH_CHILDREN, _SEARCH_FAKE_OBJ = 1, 2


def _library(name: str) -> ctypes.CDLL | None:
    here = os.path.dirname(av.__file__)
    for pattern in (os.path.join(os.path.dirname(here), "av.libs", f"lib{name}-*.so*"),  # Linux wheels
                    os.path.join(here, ".dylibs", f"lib{name}*.dylib"),  # macOS wheels
                    os.path.join(os.path.dirname(here), "av.libs", f"{name}-*.dll")):  # Windows wheels
        found = sorted(glob.glob(pattern))
        if found:
            return ctypes.CDLL(found[0])
    path = ctypes.util.find_library(name)  # PyAV built on the system's FFmpeg
    return ctypes.CDLL(path) if path else None


@functools.lru_cache(maxsize=1)
def _finder():
    try:
        fmt, codec, util = _library("avformat"), _library("avcodec"), _library("avutil")
        if fmt is None or codec is None or util is None:
            return None
        fmt.avformat_get_class.restype = codec.avcodec_get_class.restype = ctypes.c_void_p
        util.av_opt_find.restype = ctypes.c_void_p
        util.av_opt_find.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
        classes = [ctypes.c_void_p(fmt.avformat_get_class()), ctypes.c_void_p(codec.avcodec_get_class())]
    except (OSError, AttributeError):
        return None

    def known(name: str) -> bool:
        return any(util.av_opt_find(ctypes.byref(c), name.encode(), None, 0, _SEARCH_CHILDREN | _SEARCH_FAKE_OBJ)
                   for c in classes)
    return known


def unknown_options(names: list[str]) -> list[str] | None:
    """The names no FFmpeg format, protocol or decoder has; None when FFmpeg's libraries cannot be asked."""
    known = _finder()
    return None if known is None else [n for n in names if not known(n)]
