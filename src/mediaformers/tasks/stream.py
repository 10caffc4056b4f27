"""Live input: windows of a stream classified as they complete, one record per window at once (with its
media time and the wall-clock seconds from the media's arrival to its record), and segments merged
incrementally. Opening, timeouts and reconnection are ``processors.live``'s."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..processors.video.pyav.live import LiveOptions, LiveSource
from ..processors.video.pyav.windows import Window, chunk_windows, clip_windows
from .timeline import Timeline


def live_windows(timeline: Timeline, source: LiveSource) -> Iterator[Window]:
    """The windows a timeline takes (audio windows every hop, video clips every stride), as they complete."""
    if timeline.kind == "audio":
        rate = timeline.views.fe.sampling_rate
        return chunk_windows(source.chunks(rate), rate, name=source.source, **timeline.audio_geometry())
    return clip_windows(source.frames(), num_frames=timeline.views.processor.sampler.num_frames,
                        step=timeline.frame_step, stride=timeline.stride, fps=source.fps)


def stream_records(timeline: Timeline, url: str, options: LiveOptions | None = None, *,
                   log: Callable[[str], None] | None = None, segments: bool = True, collect: list | None = None,
                   stdin_fd: int | None = None) -> Iterator[dict[str, Any]]:
    """Window records (``kind: window``, with ``latency`` seconds) as each window completes and, with
    ``segments``, segment records as they close; ends with the stream (after its reconnections)."""
    log = log or (lambda line: print(f"mediaformers: {line}", file=sys.stderr, flush=True))
    source = LiveSource(url, options, log=log, stdin_fd=stdin_fd)
    try:
        scored = timeline.scored(live_windows(timeline, source), batch_size=1)  # one window: no waiting for a batch
        for rec in timeline.merged(url, scored, collect=collect,
                                   extra=lambda w: {"latency": round(time.monotonic() - w.arrived, 4)}):
            if segments or rec["kind"] == "window":
                yield rec
    finally:
        source.close()
