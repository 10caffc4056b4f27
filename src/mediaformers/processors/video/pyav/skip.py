"""Skipping non-reference frames that cannot be an answer (``skip_frame = NONREF``), with the check
that sends a request back to a full decode when skipping could have changed an answer."""

from __future__ import annotations

import bisect
import math
from collections import deque

import av
import numpy as np

from .container import _SEEKABLE
from .state import ReaderState

# Codecs whose decoders honour ``skip_frame = NONREF`` packet by packet (also under frame threads, which
# copy it per submitted packet) and drop only frames no other frame predicts from: h264/hevc (nal_ref_idc
# 0, non-reference NAL types), MPEG-4 part 2 (B-frames). Other decoders read it once at open (dav1d) or
# not at all, so they never get it.
_SKIP_CODECS = {"h264", "hevc", "mpeg4"}
# How many earlier packets' times a packet is compared with when deciding whether it may be skipped
# (only a window: a shorter one only skips less).
_SKIP_LOOKBACK = 32
class _SkipUnsafe(Exception):
    """Skipping non-reference frames met a file where it might change an answer: decode again without it."""



class SkipNonref(ReaderState):
    """A mixin of ``VideoReader``: which packets to feed with NONREF, and the safety check."""

    def _skip_frame_for(self, packet: av.Packet, targets: list[float], recent: deque) -> str:
        """``skip_frame`` for feeding ``packet``: "NONREF" when its frame cannot be an answer, else "DEFAULT".

        The answer for a target ``T`` is the last frame (in output order, by pts) at or before ``T``. A
        packet at ``p`` can be no target's answer when a packet already demuxed is at ``q``, with
        ``p < q <= T`` for the first target ``T >= p``: that frame (or a later one <= T) is shown after it.
        The decoder drops the packet only if no other frame refers to it; every packet it may drop is
        recorded in ``self._nonref_fed`` and checked against the answers (``_check_skips``).
        """
        if packet.pts is None or packet.time_base is None:
            return "DEFAULT"
        p = float(packet.pts * packet.time_base) - self.metadata.start_time
        k = bisect.bisect_left(targets, p - 1e-6)
        limit = targets[k] + 1e-6 if k < len(targets) else -math.inf
        skip = any(p < q <= limit for q in recent)
        recent.append(p)
        if skip:
            self._nonref_fed.append(p)
            return "NONREF"
        return "DEFAULT"

    def _check_skips(self, shown_t: float, limit: float) -> None:
        """Raise ``_SkipUnsafe`` if a packet that may have been skipped lies after the frame answering
        a target (``shown_t``) and at or before it (``limit``): the answer would have been that packet's
        frame (a decoder that dropped the later frame it was skipped for, or a damaged stream)."""
        if self._nonref_fed:
            if any(shown_t < p <= limit for p in self._nonref_fed):
                raise _SkipUnsafe
            self._nonref_fed = [p for p in self._nonref_fed if p > limit]

    def _can_skip(self) -> bool:
        """Whether this file's frames may be skipped: trusted pts (seekable containers, not decode-order
        timestamps) and a decoder that honours ``skip_frame`` per packet."""
        return (self._skip_nonref and self._format in _SEEKABLE and not self._by_order
                and self._stream.codec_context.name in _SKIP_CODECS)

    def _decode_run(self, targets: list[float], allow_partial: bool) -> list[np.ndarray]:
        """One RGB array per target, by this reader alone.

        Non-reference frames that cannot be an answer are not decoded (``_skip_frame_for``); if the
        file breaks that rule's assumptions (frames out of pts order, a frame it relied on never
        shown), the request is decoded again without skipping, and so is every later one.
        """
        if self._can_skip():
            self._skip_targets = targets
            try:
                return self._decode_sorted_once(targets, allow_partial)
            except _SkipUnsafe:
                self._skip_nonref = False
            finally:
                self._skip_targets = None
                self._nonref_fed = []
        return self._decode_sorted_once(targets, allow_partial)

