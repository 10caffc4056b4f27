"""Live input: windows of a stream classified as they complete, one record per window at once (with its
media time, the wall-clock seconds from the media's arrival to its record, and how far behind live the record
is), and segments merged incrementally; with ``max_lag``, windows already that far behind are skipped, so a
model slower than real time stays current. Opening, timeouts and reconnection are ``processors.live``'s."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..processors.video.pyav.live import LiveOptions, LiveSource, check_seconds
from ..processors.video.pyav.windows import Window, chunk_windows, clip_windows
from .timeline import Timeline


def live_windows(timeline: Timeline, source: LiveSource) -> Iterator[Window]:
    """The windows a timeline takes (audio windows every hop, video clips every stride), as they complete."""
    if timeline.kind == "audio":
        rate = timeline.views.fe.sampling_rate
        return chunk_windows(source.chunks(rate), rate, name=source.source, **timeline.audio_geometry())
    return clip_windows(source.frames(), num_frames=timeline.views.processor.sampler.num_frames,
                        step=timeline.frame_step, stride=timeline.stride, fps=source.fps)


class LiveClock:
    """How far behind live a window is: the stream's wall-clock time at media time 0 is taken as the earliest
    ``arrival - end`` seen (media decoded as it arrives is on time; media that waited unread while the model
    ran arrives late), started again at each reconnection (its gap is not lag)."""

    def __init__(self, source: LiveSource) -> None:
        self.source, self.since = source, -1
        self.zero: float | None = None

    def note(self, window: Window) -> None:
        if self.source.reconnections != self.since:
            self.since, self.zero = self.source.reconnections, None
        edge = window.arrived - window.end
        self.zero = edge if self.zero is None else min(self.zero, edge)

    def behind(self, window: Window) -> float:
        zero = self.zero if self.zero is not None else window.arrived - window.end  # (noted first)
        return max(0.0, time.monotonic() - zero - window.end)


def kept_windows(windows: Iterator[Window], clock: LiveClock, max_lag: float | None, name: str,
                 log: Callable[[str], None]) -> Iterator[Window]:
    """The windows to classify: all, or (``max_lag``) those less than ``max_lag`` seconds behind live when
    the model is free for them; each run of skipped windows is logged once."""
    skipped: list[tuple[float, float, float]] = []  # (start, end, behind)

    def said() -> None:
        if skipped:
            lag = max(b for _, _, b in skipped)
            log(f"{name}: skipped {len(skipped)} window(s), media {skipped[0][0]:g}-{skipped[-1][1]:g} s, up to "
                f"{lag:.1f} s behind live (--max-lag {max_lag:g})")
            skipped.clear()
    try:
        for w in windows:
            clock.note(w)
            behind = clock.behind(w)
            if max_lag is not None and behind > max_lag:
                skipped.append((w.start, w.end, behind))
                continue
            said()
            yield w
    finally:
        said()


def stream_records(timeline: Timeline, url: str, options: LiveOptions | None = None, *,
                   log: Callable[[str], None] | None = None, segments: bool = True, collect: list | None = None,
                   stdin_fd: int | None = None, max_lag: float | None = None) -> Iterator[dict[str, Any]]:
    """Window records (``kind: window``, with ``latency`` and ``behind`` seconds) as each window completes
    and, with ``segments``, segment records as they close; ends with the stream (after its reconnections).
    ``max_lag``: skip (no model call, no record) each window already more than that many seconds behind live
    when the model is free for it; None classifies every window however far behind."""
    if max_lag is not None:
        check_seconds("max_lag", max_lag)
    log = log or (lambda line: print(f"mediaformers: {line}", file=sys.stderr, flush=True))
    source = LiveSource(url, options, log=log, stdin_fd=stdin_fd)
    clock = LiveClock(source)
    try:
        windows = kept_windows(live_windows(timeline, source), clock, max_lag, url, log)
        scored = timeline.scored(windows, batch_size=1)  # one window: no waiting for a batch
        for rec in timeline.merged(url, scored, collect=collect,
                                   extra=lambda w: {"latency": round(time.monotonic() - w.arrived, 4),
                                                    "behind": round(clock.behind(w), 4)}):
            if segments or rec["kind"] == "window":
                yield rec
    finally:
        source.close()
