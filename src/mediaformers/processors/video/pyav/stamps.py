"""Timing frames from sparse stamps (MPEG-PS/TS read with ``fflags=nofillin``).

An MPEG-PS packet can hold several pictures and one stamp, and FFmpeg fills the missing stamps from the
header's frame rate, which may be wrong (a header saying 25 fps over frames stamped 1/29.97 s apart).
Here only the file's own stamps count; the frames between two stamps get times from those stamps:

- the frame step is the header's if any gap between two stamps agrees with it, else the step that
  at least two gaps agree on (the header is wrong), else the header's;
- frames between two stamps are spread evenly when that matches the step; when it is slower they
  sit one step apart just before the later stamp (a pause); when faster (a stamp out of line), one
  step apart after the earlier stamp, as FFmpeg would give them.

Everything works in stamp units (integers of the stream's time base), so a stamped frame keeps exactly
the time its stamp says.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Iterator

# Stamps to see (or frames to hold) before choosing the step.
_DECIDE_STAMPS = 4
# Unstamped frames held while waiting for the next stamp (decoded pictures: memory); past this they follow
# the last stamp by the step, as FFmpeg would time them.
_MAX_HELD = 64
# How far a spacing may differ from the step and still count as "the same".
_TOLERANCE = 0.1


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= _TOLERANCE * b


def choose_step(gaps: list[float], nominal: int) -> int:
    """The frame step (stamp units) from the even spacings between stamps seen so far."""
    if not gaps or any(_close(g, nominal) for g in gaps):
        return nominal
    for g in sorted(gaps, key=lambda g: abs(g - statistics.median(gaps))):
        agreeing = [h for h in gaps if _close(h, g)]
        if len(agreeing) >= 2:
            return max(1, round(statistics.median(agreeing)))
    return nominal


def spread(n: int, last: int | None, nxt: int | None, step: int) -> list[int]:
    """Stamps for ``n`` unstamped frames shown after a frame stamped ``last`` and before one stamped
    ``nxt`` (None: not known)."""
    if n == 0:
        return []
    if nxt is None:
        base = last if last is not None else -step
        return [base + step * (k + 1) for k in range(n)]
    if last is None:  # frames before the first stamp (nxt is known here)
        return [nxt - step * (n - k) for k in range(n)]
    if nxt <= last:  # a later stamp out of order
        return [last + step * (k + 1) for k in range(n)]
    even = (nxt - last) / (n + 1)
    if _close(even, step):
        return [last + round((nxt - last) * (k + 1) / (n + 1)) for k in range(n)]
    if even > step:  # a pause: the frames lead up to the later stamp
        return [max(last + k + 1, nxt - step * (n - k)) for k in range(n)]
    return [last + step * (k + 1) for k in range(n)]


def stamp_frames(frames: Iterable, nominal: int) -> Iterator[tuple[object, int]]:
    """``(frame, stamp)`` for each frame (output order) whose ``pts`` may be None; every wait bounded."""
    early: list = []  # frames before the step is chosen
    stamps = 0
    it = iter(frames)
    for frame in it:
        early.append(frame)
        stamps += frame.pts is not None
        if stamps >= _DECIDE_STAMPS or len(early) >= _MAX_HELD:
            break
    gaps, last, between = [], None, 0
    for frame in early:
        if frame.pts is None:
            between += 1
            continue
        if last is not None and frame.pts > last:
            gaps.append((frame.pts - last) / (between + 1))
        last, between = frame.pts, 0
    step = choose_step(gaps, nominal)

    held: list = []
    last = None
    for frame in _chain(early, it):
        if frame.pts is None:
            held.append(frame)
            if len(held) >= _MAX_HELD:  # no stamp in sight
                times = spread(len(held), last, None, step)
                yield from zip(held, times)
                last, held = times[-1], []
            continue
        yield from zip(held, spread(len(held), last, frame.pts, step))
        yield frame, frame.pts
        last, held = frame.pts, []
    yield from zip(held, spread(len(held), last, None, step))


def _chain(first: list, rest: Iterator) -> Iterator:
    yield from first
    yield from rest


class _Stamp:
    """A packet's stamp standing in for its frame (``stamp_frames`` reads only ``pts``)."""

    __slots__ = ("pts",)

    def __init__(self, pts: int | None) -> None:
        self.pts = pts


def picture_type(data: bytes) -> int | None:
    """MPEG-1/2 picture_coding_type of a packet (1 I, 2 P, 3 B), from its picture header; None if absent."""
    i = data.find(b"\x00\x00\x01\x00")
    if i < 0 or len(data) < i + 6:
        return None
    return (data[i + 5] >> 3) & 7  # after the start code: temporal_reference (10 bits), then the type


def mpeg_stamps_in_output_order(packets: list[tuple[int | None, int | None]], nominal: int) -> list[int] | None:
    """Stamps of every frame of an MPEG-1/2 stream from its packets ``(pts or None, picture type)`` in
    decode order, without decoding: B-pictures are shown as they come, an I/P picture when the next I/P
    arrives (the standard's reordering); then timed as ``stamp_frames`` times decoded frames. None when
    a packet's picture type is unknown."""
    if any(kind not in (1, 2, 3) for _, kind in packets):
        return None
    shown: list[_Stamp] = []
    anchor: _Stamp | None = None
    for pts, kind in packets:
        if kind == 3:
            shown.append(_Stamp(pts))
            continue
        if anchor is not None:
            shown.append(anchor)
        anchor = _Stamp(pts)
    if anchor is not None:
        shown.append(anchor)
    return [stamp for _, stamp in stamp_frames(shown, nominal)]
