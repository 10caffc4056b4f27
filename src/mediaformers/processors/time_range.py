"""A media file path with a time range: ``ClipPath("long.mp4", start=12.0, end=20.0)``.

It is an ``os.PathLike``, so it goes everywhere a path goes (views, processors, DataLoader workers)
and the decoders read its range: video decoding (``video_io.read_clip``) samples frames only from
``[start, end)``, audio decoding (``audio_io.load_audio``) returns only those samples.
"""
from __future__ import annotations

import math
import os


class ClipPath(os.PathLike):
    """``path`` limited to ``[start, end)`` seconds (``end=None``: to the end of the file)."""

    __slots__ = ("path", "start", "end")

    def __init__(self, path: str | os.PathLike, start: float | None = None, end: float | None = None):
        start = 0.0 if start is None else start
        for name, value in (("start", start), ("end", end)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value < 0):
                raise ValueError(f"{name}: expected seconds >= 0, got {value!r}")
        if end is not None and end <= start:
            raise ValueError(f"end: expected a time after start ({start}s), got {end}s")
        self.path, self.start, self.end = os.fspath(path), float(start), None if end is None else float(end)

    def __fspath__(self) -> str:
        return self.path

    def __str__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"ClipPath({self.path!r}, start={self.start}, end={self.end})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClipPath) and (self.path, self.start, self.end) == (other.path, other.start, other.end)

    def __hash__(self) -> int:
        return hash((self.path, self.start, self.end))

    def __reduce__(self):  # picklable with __slots__, for DataLoader workers
        return ClipPath, (self.path, self.start, self.end)


def time_range(source: object) -> tuple[float, float | None] | None:
    """``(start, end)`` seconds of a :class:`ClipPath`, None for anything else (the whole file)."""
    return (source.start, source.end) if isinstance(source, ClipPath) else None
