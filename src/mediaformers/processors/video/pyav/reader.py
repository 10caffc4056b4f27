"""The PyAV backend's reader: open/reopen, the decode loop, answers and truncation.

How: dense requests (several per keyframe interval) decode the file forward once; sparse ones seek
to the keyframe before each run of times and decode forward (``seek.py``); seek-heavy requests run in
parallel readers (``parallel.py``); non-reference frames that cannot be an answer are not decoded
(``skip.py``); container facts and frame times come from ``container.py``.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Sequence
from typing import Self

import av
import numpy as np
import torch

from ..backend import (
    MAX_PIXELS,
    TRUNCATION_SLACK_S,
    VideoDecodeError,
    VideoSource,
    source_name,
)
from .container import _BY_ORDER, _SPARSE_STAMPS, ContainerFacts, _open, _video_streams
from .convert import rotate, to_rgb
from .parallel import ParallelDecode
from .seek import SeekPolicy
from .skip import _SKIP_LOOKBACK, SkipNonref, _SkipUnsafe

# Undecodable packets skipped after a seek before the first frame (a stream starting on non-key data).
_SKIP_AFTER_SEEK = 512


class VideoReader(ContainerFacts, SeekPolicy, ParallelDecode, SkipNonref):
    """An open video file that answers "which frames are on screen at these times?".

    Example::

        with VideoReader("clip.mp4") as reader:
            print(reader.metadata.duration, reader.metadata.fps)
            frames = reader.get_frames_at([0.0, 1.5, 3.0])  # (3, H, W, 3) uint8

    Args:
        source: a path or a binary file-like object (seekable for seeking to work).
        threads: FFmpeg's ``thread_type = "AUTO"`` (frame + slice threads) when True.

    ``frames_decoded`` counts the frames the decoder has given this reader (a diagnostic).
    """

    def __init__(self, source: VideoSource, *, threads: bool = True, max_pixels: int | None = MAX_PIXELS) -> None:
        self.name = source_name(source)
        self._source = source
        self._threads = threads
        self.max_pixels = max_pixels
        self._error: Exception | None = None
        self._container = None
        # Skip decoding non-reference frames that cannot be an answer (see _skip_frame_for); turned off
        # for good on a file where it proved unsafe.
        self._skip_nonref = True
        self._skip_targets: list[float] | None = None
        self._nonref_fed: list[float] = []
        self.packets_end: float | None = None  # set by frame_times()
        self.frames_decoded = 0  # frames the decoder gave us, all requests together (tests, benchmarks)
        self._sparse = False  # set after the probe: the header's facts come from a default open
        self._reopen()
        self.metadata = self._probe()
        if self._format in _SPARSE_STAMPS:
            self._sparse, self._fresh = True, False
            self._reopen()

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def _reopen(self, thread_type: str | None = None) -> None:
        """A fresh demuxer and decoder at the start of the file (what "rewind" means here)."""
        if self._container is not None and self._fresh and not self._stream.codec_context.is_open:
            # Nothing read since the last open: only the thread setting may differ (an open is ~ms).
            self._stream.thread_type = (thread_type or "AUTO") if self._threads else "SLICE"  # PyAV's default
            return
        self.close()
        if not isinstance(self._source, (str, os.PathLike)):
            if not (hasattr(self._source, "seekable") and self._source.seekable()):
                if hasattr(self, "metadata"):
                    raise VideoDecodeError(f"cannot rewind '{self.name}': a non-seekable stream can be read once")
            else:
                self._source.seek(0)
        self._container = _open(self._source, self._sparse)
        self._stream = _video_streams(self._container)[0]
        self._count = 0  # frames yielded since the file was opened (decoder output order)
        self._format = self._container.format.name.split(",")[0] if self._container.format else ""
        self._by_order = self._format in _BY_ORDER
        self._fresh = True  # nothing demuxed, sought or decoded since the open
        if self._threads:
            self._stream.thread_type = thread_type or "AUTO"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _frames(self):
        """Decoded frames from the demuxer's position, in output order; ends at end of stream or at damage
        (kept in ``self._error``). Undecodable packets before the first frame are skipped (a seek can land
        on non-key data), a bounded number of them."""
        self._error = None
        got, skipped = False, 0
        targets = self._skip_targets
        ctx = self._stream.codec_context
        ctx.skip_frame = mode = "DEFAULT"
        recent: deque[float] = deque(maxlen=_SKIP_LOOKBACK)  # times of the packets demuxed since this seek
        self._nonref_fed = []
        self._fresh = False
        try:
            for packet in self._container.demux(self._stream):
                if targets is not None:
                    want = self._skip_frame_for(packet, targets, recent)
                    if want != mode:
                        ctx.skip_frame = mode = want
                try:
                    decoded = packet.decode()
                except av.FFmpegError as e:
                    if not got and skipped < _SKIP_AFTER_SEEK:
                        skipped += 1
                        continue
                    self._error = e
                    return
                for frame in decoded:
                    got = True
                    self._count += 1
                    self.frames_decoded += 1
                    yield frame
        except av.FFmpegError as e:  # the demuxer itself gave up (a cut file)
            self._error = e

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        return to_rgb(frame, self.max_pixels)

    def get_frames_at(
        self,
        timestamps: Sequence[float] | torch.Tensor | np.ndarray,
        *,
        allow_partial: bool = False,
        seek_mode: str = "exact",
    ) -> torch.Tensor:
        """Decode the frames on screen at ``timestamps`` (seconds from the start of the video).

        Times past the end give the last frame; times before the first frame give the first.
        Duplicates are decoded once.

        Args:
            timestamps: ``(n,)`` seconds, any order, duplicates allowed.
            allow_partial: when the file is damaged or truncated, answer requests past the damage
                with the last good frame instead of raising (requests before it are exact).
            seek_mode: ``"exact"`` gives the frames a full decode would; ``"keyframe"`` returns
                the keyframe at or before each time instead (up to one keyframe interval early,
                but one decoded frame per time: faster for clips spread over a long video).

        Returns:
            ``(n, H, W, 3)`` uint8, upright, in the order requested.

        Raises:
            VideoDecodeError: no frame could be decoded, or (unless ``allow_partial``) decoding
                stopped before the requested times.
        """
        times = torch.as_tensor(timestamps, dtype=torch.float64).reshape(-1)
        if times.numel() == 0:
            raise ValueError(f"timestamps: expected at least one time, got an empty sequence for '{self.name}'")
        if not torch.isfinite(times).all():
            raise ValueError(f"timestamps: expected finite seconds, got {times.tolist()} for '{self.name}'")
        if seek_mode not in ("exact", "keyframe"):
            raise ValueError(f"seek_mode: expected 'exact' or 'keyframe', got {seek_mode!r}")
        unique, inverse = torch.unique(times.clamp_min(0.0), sorted=True, return_inverse=True)
        if seek_mode == "keyframe":
            frames = self._decode_keyframes(unique.tolist(), allow_partial)
        else:
            frames = self._decode_sorted(unique.tolist(), allow_partial)
        # One copy into the batch, in request order (stacking then indexing copied every frame twice).
        out = torch.from_numpy(np.stack([frames[k] for k in inverse.tolist()]))
        return rotate(out, self.metadata.rotation)

    def _decode_sorted_once(self, targets: list[float], allow_partial: bool) -> list[np.ndarray]:
        eps = 1e-6
        skipping = self._skip_targets is not None
        n = len(targets)
        results: list[np.ndarray | None] = [None] * n
        # Frame threads speed a long forward decode but make every seek refill their pipeline.
        self._seeking = not self._dense(targets)
        if self._seeking and self._threads:
            self._reopen("SLICE")
        prev: av.VideoFrame | None = None  # the frame on screen now, kept unconverted
        prev_t = -math.inf
        i, sought = 0, 0  # the first target's seek is _start's
        frames, pending = self._start(targets[0])
        while i < n:
            pair = pending if pending is not None else next(frames, None)
            pending = None
            if pair is None:
                break
            frame, t = pair
            if skipping and t < prev_t:  # output out of pts order: "later pts" no longer means "shown later"
                raise _SkipUnsafe
            if t > targets[i] + eps:
                shown = prev if prev is not None else frame  # a target before the first frame gets the first
                j = i
                while j < n and t > targets[j] + eps:  # every target before this frame gets the one before it
                    j += 1
                if skipping:
                    self._check_skips(prev_t, targets[j - 1] + eps)
                rgb = self._rgb(shown)
                results[i:j] = [rgb] * (j - i)
                i = j
            prev, prev_t = frame, t
            # Seek ahead when a keyframe lies between here and the next target (by the index, or by
            # distance without one), at most once per target: progress is guaranteed.
            if i < n and i != sought and self._worth_seeking(targets[i], t):
                sought = i
                frames, pending = self._start(targets[i])
                prev, prev_t = None, -math.inf
        if skipping and i < n:  # end of stream (or damage) with targets left: they get the last frame
            self._check_skips(prev_t, math.inf)
        return self._finish(targets, results, prev, prev_t, self._error, allow_partial)

    def _decode_keyframes(self, targets: list[float], allow_partial: bool) -> list[np.ndarray]:
        """The keyframe at or before each target: one checked seek and one decoded frame per target."""
        if not self._can_seek():  # decoded forward anyway: the exact frames cost no more
            return self._decode_sorted(targets, allow_partial)
        results: list[np.ndarray] = []
        cache: dict[int | None, np.ndarray] = {}
        self._seeking = True
        if self._threads:
            self._reopen("SLICE")
        for target in targets:
            _, first = self._start(target)
            if first is None:  # past the end, or damage: keep the last good keyframe
                if not results:
                    cause = f"FFmpeg: {self._error}" if self._error else "no decodable video frames"
                    raise VideoDecodeError(f"cannot decode video '{self.name}': {cause}")
                if self._error is not None and not allow_partial:
                    raise VideoDecodeError(f"cannot decode video '{self.name}' near {target:.3f}s "
                                           f"(FFmpeg: {self._error}); pass allow_partial=True")
                results.append(results[-1])
                continue
            frame = first[0]
            key = frame.pts
            if key not in cache:
                cache[key] = self._rgb(frame)
            results.append(cache[key])
        return results

    def _finish(self, targets, results, last, last_t, error, allow_partial) -> list[np.ndarray]:
        """Answer requests left at end of stream, or report truncation/damage."""
        pending = [k for k, r in enumerate(results) if r is None]
        if not pending:
            return results
        if last is None:
            cause = f"FFmpeg: {error}" if error else "no decodable video frames"
            raise VideoDecodeError(f"cannot decode video '{self.name}': {cause}")
        damaged = error is not None or (
            self.metadata.duration is not None and self.reliable_duration()
            and self._shown_until(last, last_t) + TRUNCATION_SLACK_S < min(targets[pending[-1]], self.metadata.duration)
        )
        if damaged and not allow_partial:
            cause = f"FFmpeg: {error}" if error else (
                f"the stream ends at {last_t:.3f}s but the header says {self.metadata.duration:.3f}s (truncated?)"
            )
            raise VideoDecodeError(
                f"cannot decode video '{self.name}' at {targets[pending[-1]]:.3f}s: {cause}; "
                "pass allow_partial=True to get the frames before the damage"
            )
        arr = self._rgb(last)
        for k in pending:
            results[k] = arr
        return results

