"""Video decoding: metadata, and only the frames asked for.

Frames come out as uint8 tensors of shape ``(frames, H, W, 3)`` (RGB, channels last): the layout
FFmpeg and numpy hand us, so no copy is made, and ``frames.permute(0, 3, 1, 2)`` is a free view that
is already ``channels_last`` in memory, the layout torch's fast uint8 resize kernels want.
Frames are upright: a display matrix (phones' portrait videos) is applied with ``torch.rot90``.

Time is the unit, not frame numbers: a request is a list of timestamps in seconds from the start
of the video, and the answer for ``t`` is the frame on screen at ``t``: the last frame, in the
decoder's output order, whose ``pts * time_base <= t`` — exactly what decoding the whole file and
picking would give. Header frame counts are never trusted, so variable frame rate, missing counts
(WebM) and wrong counts all work.

How: dense requests (several per keyframe interval) decode the file forward once; sparse ones seek
to the keyframe before each run of times and decode forward. Every seek is checked — the first
frame it yields must not be later than the target (indexes of B-frame and TS/AVI files point past
it), else it seeks earlier, a bounded number of times, then decodes from the start — and every
target gets at most one seek, so no request can loop. Decoding "from the start" reopens the file
rather than seeking (a seek to the start lands on the second GOP of some MPEG-TS files and at the
end of a JPEG). Decoder complaints before the first frame after a seek (a non-key packet) are
skipped; after it they are damage.

Exact frames cost a decode from the keyframe before each time, but not of every frame: a packet whose
frame is followed, before the next requested time, by a frame already demuxed cannot be an answer, so
it is fed with ``skip_frame = NONREF`` and the decoder drops it if no other frame refers to it (x264's
non-reference B-frames: 40-45% of the frames of a file with B-frames). Only where pts are trusted
(h264/HEVC/MPEG-4 in MP4, MKV, MOV, FLV...), and every answer is checked against the packets that
were skipped: a file where skipping could change an answer is decoded again without it.

The backend interface is ``backend.VideoBackend``; PyAV (``pyav/``) is the one implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..sampling import ClipSampler, indices_to_timestamps
from ..time_range import time_range
from .backend import (
    MAX_PIXELS,
    TRUNCATION_SLACK_S,
    VideoBackend,
    VideoDecodeError,
    VideoMetadata,
    VideoSource,
    source_name,
)
from .pyav import VideoReader

__all__ = ["BACKENDS", "MAX_PIXELS", "VideoBackend", "VideoDecodeError", "VideoMetadata", "VideoReader",
           "VideoSource", "open_video", "probe_video", "read_clip", "read_frames_at", "source_name"]

# Decoders by name: a class taking ``(source, *, threads)`` and implementing ``VideoBackend``.
BACKENDS: dict[str, Callable[..., VideoBackend]] = {"pyav": VideoReader}


def open_video(source: VideoSource, *, backend: str = "pyav", threads: bool = True) -> VideoBackend:
    """An open reader of ``source`` by the named backend (see ``BACKENDS``); use it as a context manager."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {sorted(BACKENDS)}, got {backend!r}")
    return BACKENDS[backend](source, threads=threads)


def probe_video(source: VideoSource, *, backend: str = "pyav") -> VideoMetadata:
    """Metadata of ``source`` (see ``VideoMetadata``) without decoding more than one frame."""
    with open_video(source, backend=backend, threads=False) as reader:
        return reader.metadata


def read_frames_at(
    source: VideoSource,
    timestamps: Sequence[float] | torch.Tensor | np.ndarray,
    *,
    allow_partial: bool = False,
    seek_mode: str = "exact",
    backend: str = "pyav",
) -> torch.Tensor:
    """Open ``source`` and return the frames on screen at ``timestamps``: ``(n, H, W, 3)`` uint8.

    ``seek_mode="keyframe"`` trades exactness for speed (see ``VideoReader.get_frames_at``).
    """
    with open_video(source, backend=backend) as reader:
        return reader.get_frames_at(timestamps, allow_partial=allow_partial, seek_mode=seek_mode)


def read_clip(
    source: VideoSource,
    sampler: ClipSampler,
    *,
    generator: torch.Generator | None = None,
    allow_partial: bool = False,
    exact_times: bool = False,
    seek_mode: str = "exact",
    backend: str = "pyav",
) -> torch.Tensor:
    """Sample and decode clip(s) from ``source``.

    ``seek_mode="keyframe"`` returns the keyframe at or before each sampled time (fast, for
    clips spread thinly over long videos); the default ``"exact"`` returns the sampled frames.

    Frame indices come from ``sampler`` over ``duration * fps`` frames and are decoded by time
    (see ``indices_to_timestamps``). With ``exact_times`` (or when the header lacks duration or
    frame rate) the frame times are read from the packets instead (demuxing only, no decoding),
    so indices are exact even on variable-frame-rate files.

    A :class:`~mediaformers.processors.time_range.ClipPath` source is sampled only from the frames
    shown in its ``[start, end)`` (their times read from the packets).

    Returns:
        ``(num_clips, num_frames, H, W, 3)`` uint8, upright.
    """
    span = time_range(source)
    with open_video(source, backend=backend) as reader:
        meta = reader.metadata
        total = meta.estimated_num_frames
        if (span is not None or exact_times or total is None or meta.fps is None or meta.num_frames is None
                or not reader.reliable_duration()):
            # Frame times from the packets (demuxing only): VFR files and headers without counts.
            times = reader.frame_times()
            if times.numel() == 0:
                raise VideoDecodeError(f"cannot decode video '{reader.name}': no video packets")
            fps = meta.fps or 25.0
            # The last frame's own duration where the packets carry one (a VFR file's last frame can be long).
            end = reader.packets_end if reader.packets_end is not None else float(times[-1]) + 2.0 / fps
            if (not allow_partial and meta.duration and reader.reliable_duration()
                    and end + TRUNCATION_SLACK_S < meta.duration):
                raise VideoDecodeError(
                    f"cannot decode video '{reader.name}': the packets end at {end:.3f}s but the "
                    f"header says {meta.duration:.3f}s (truncated?); pass allow_partial=True to sample what is there")
            if span is not None:
                times = _in_range(times, *span, float(times[-1]) + 1.0 / fps, reader.name)
            indices = sampler(times.numel(), generator)
            timestamps = times[indices]
        else:
            indices = sampler(total, generator)
            timestamps = indices_to_timestamps(indices, meta.fps)
        frames = reader.get_frames_at(timestamps.reshape(-1), allow_partial=allow_partial, seek_mode=seek_mode)
    return frames.reshape(*indices.shape, *frames.shape[1:])


def _in_range(times: torch.Tensor, start: float, end: float | None, video_end: float, name: str) -> torch.Tensor:
    """The frame times on screen during ``[start, end)``: from the frame showing at ``start`` (the last
    one at or before it) to the last one before ``end``; a range after the last frame is an error."""
    first = max(0, int((times <= start).sum()) - 1)
    stop = int((times < end).sum()) if end is not None else times.numel()
    if start >= video_end or stop <= first:
        raise VideoDecodeError(f"cannot decode video '{name}': no frame between {start}s and {end}s "
                               f"(the frames span {float(times[0]):.3f}s to {float(times[-1]):.3f}s)")
    return times[first:stop]
