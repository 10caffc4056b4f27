"""Video decoding with PyAV: metadata, and only the frames asked for.

Frames come out as uint8 tensors of shape ``(frames, H, W, 3)`` (RGB, channels last): the layout
FFmpeg and numpy hand us, so no copy is made, and ``frames.permute(0, 3, 1, 2)`` is a free view that
is already ``channels_last`` in memory, the layout torch's fast uint8 resize kernels want.
Frames are upright: a display matrix (phones' portrait videos) is applied with ``torch.rot90``.

Time is the unit, not frame numbers: a request is a list of timestamps in seconds from the start
of the video, and the answer for ``t`` is the frame on screen at ``t`` (the last frame whose
``pts * time_base <= t``). Header frame counts are never trusted, so variable frame rate, missing
counts (WebM) and wrong counts all work. For each run of nearby timestamps the reader seeks to the
keyframe before it and decodes forward, instead of decoding the file from the start.
"""

from __future__ import annotations

import bisect
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Sequence, Union

import av
import numpy as np
import torch

from .sampling import ClipSampler, indices_to_timestamps

VideoSource = Union[str, os.PathLike, IO[bytes]]

# When the next requested time is at most this far past the current decode position, decoding on
# is cheaper than a seek (which lands on the keyframe before the target and re-decodes the GOP).
_SEEK_THRESHOLD_S = 0.5
# A request left unanswered at end of stream counts as truncation only when it lies this far past
# the last decoded frame (plus two frame durations): headers round durations a little.
_TRUNCATION_SLACK_S = 0.25
# FFmpeg "decodes" any text file as ANSI art through its tty demuxer; that is not a video.
_TEXT_FORMATS = {"tty"}
_TEXT_CODECS = {"ansi", "bintext", "xbin", "idf"}


class VideoDecodeError(ValueError):
    """A video could not be opened or decoded; the message names the file and the cause."""


@dataclass(frozen=True)
class VideoMetadata:
    """What the container says about the first video stream.

    ``width``/``height`` are the size of the frames as returned, i.e. after rotation;
    ``rotation`` is the counter-clockwise rotation (0, 90, 180, 270) that was needed to
    make them upright (FFmpeg's display matrix, as ``av.VideoFrame.rotation`` reads it).
    ``duration`` and ``num_frames`` are ``None`` when the container does not know them;
    ``num_frames`` is the header's count, a hint only (see ``estimated_num_frames``).
    """

    source: str
    duration: float | None
    fps: float | None
    num_frames: int | None
    width: int
    height: int
    rotation: int
    has_audio: bool
    codec: str
    start_time: float

    @property
    def estimated_num_frames(self) -> int | None:
        """Frames in the video as ``duration * fps`` (VFR-safe), else the header's count."""
        if self.duration is not None and self.fps:
            return max(1, round(self.duration * self.fps))
        return self.num_frames


def source_name(source: VideoSource) -> str:
    """A printable name for a path or file-like object, for error messages."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return str(name) if isinstance(name, str) else f"<{type(source).__name__} object>"


def _open(source: VideoSource) -> av.container.InputContainer:
    """``av.open`` that refuses empty, missing and non-video inputs with a clear message."""
    name = source_name(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"video file not found: '{name}'")
        if path.is_file() and path.stat().st_size == 0:
            raise VideoDecodeError(f"cannot open video '{name}': the file is empty (0 bytes)")
    try:
        container = av.open(source if not isinstance(source, os.PathLike) else os.fspath(source),
                            metadata_errors="ignore")
    except av.FFmpegError as e:
        raise VideoDecodeError(
            f"cannot open video '{name}': not a readable media file or truncated before its header "
            f"(FFmpeg: {e})"
        ) from e
    fmt = container.format.name if container.format else ""
    if fmt in _TEXT_FORMATS or (container.streams.video and
                                container.streams.video[0].codec_context.name in _TEXT_CODECS):
        container.close()
        raise VideoDecodeError(
            f"cannot open video '{name}': not a readable media file (FFmpeg only reads it as text art, "
            f"format '{fmt}')"
        )
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        container.close()
        raise VideoDecodeError(
            f"cannot read video '{name}': the file has no video stream (streams found: {', '.join(kinds)})"
        )
    return container


def _rotation_from_tag(stream: av.video.stream.VideoStream) -> int:
    # Old muxers wrote a clockwise 'rotate' tag; FFmpeg >= 7 exposes only the display matrix,
    # which PyAV surfaces per frame (``VideoFrame.rotation``, counter-clockwise).
    tag = stream.metadata.get("rotate")
    try:
        return (-int(float(tag))) % 360 if tag else 0
    except ValueError:
        return 0


def _normalise_rotation(degrees: float) -> int:
    # Only quarter turns are meaningful for video; round anything else to the nearest one.
    return (int(round(degrees / 90.0)) * 90) % 360


def _rotate(frames: torch.Tensor, rotation: int) -> torch.Tensor:
    """Rotate ``(frames, H, W, 3)`` counter-clockwise by ``rotation`` degrees (a multiple of 90)."""
    k = (rotation // 90) % 4
    if k == 0:
        return frames
    # rot90 over (H, W) turns counter-clockwise for k > 0; contiguous() keeps the layout a
    # permute-to-channels_last view for the transforms.
    return torch.rot90(frames, k, dims=(1, 2)).contiguous()


class VideoReader:
    """An open video file that answers "which frames are on screen at these times?".

    Example::

        with VideoReader("clip.mp4") as reader:
            print(reader.metadata.duration, reader.metadata.fps)
            frames = reader.get_frames_at([0.0, 1.5, 3.0])  # (3, H, W, 3) uint8

    Args:
        source: a path or a binary file-like object (seekable for seeking to work).
        threads: FFmpeg's ``thread_type = "AUTO"`` (frame + slice threads) when True.
    """

    def __init__(self, source: VideoSource, *, threads: bool = True) -> None:
        self.name = source_name(source)
        self._container = _open(source)
        self._stream = self._container.streams.video[0]
        if threads:
            self._stream.thread_type = "AUTO"
        self.metadata = self._probe()

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- metadata -------------------------------------------------------------------------
    def _probe(self) -> VideoMetadata:
        s, c = self._stream, self._container
        tb = s.time_base
        start = float(s.start_time * tb) if s.start_time is not None and tb else 0.0
        if s.duration is not None and tb:
            duration = float(s.duration * tb)
        elif c.duration is not None:
            # Container duration is in AV_TIME_BASE (microseconds) and counts from its own start.
            duration = c.duration / av.time_base - max(0.0, start - (c.start_time or 0) / av.time_base)
        else:
            duration = None
        rate = s.average_rate or s.guessed_rate or s.base_rate
        fps = float(rate) if rate else None
        rotation = self._first_frame_rotation()
        width, height = s.codec_context.width, s.codec_context.height
        if rotation in (90, 270):
            width, height = height, width
        return VideoMetadata(
            source=self.name,
            duration=duration if duration and duration > 0 else None,
            fps=fps if fps and math.isfinite(fps) and fps > 0 else None,
            num_frames=s.frames or None,
            width=width,
            height=height,
            rotation=rotation,
            has_audio=bool(c.streams.audio),
            codec=s.codec_context.name,
            start_time=start,
        )

    def _first_frame_rotation(self) -> int:
        # PyAV 18 cannot read the stream's display matrix, but FFmpeg copies it onto every decoded
        # frame; decoding one frame is cheap and the demuxer is rewound afterwards.
        rotation = _rotation_from_tag(self._stream)
        try:
            for frame in self._container.decode(self._stream):
                rotation = _normalise_rotation(frame.rotation) if frame.rotation else rotation
                break
        except av.FFmpegError:
            pass  # the real decode reports damage with its context
        self._seek(None)
        return rotation

    # -- decoding -------------------------------------------------------------------------
    def _seek(self, seconds_abs: float | None) -> None:
        """Seek to the keyframe at or before ``seconds_abs`` (absolute stream time; None = start)."""
        tb = self._stream.time_base
        if seconds_abs is None:
            start = self._stream.start_time
            offset = start if start is not None else 0
        else:
            offset = int(math.floor(seconds_abs / tb))
        try:
            self._container.seek(offset, backward=True, any_frame=False, stream=self._stream)
        except av.FFmpegError as e:
            raise VideoDecodeError(f"cannot seek in video '{self.name}' (FFmpeg: {e})") from e

    def get_frames_at(
        self,
        timestamps: Sequence[float] | torch.Tensor | np.ndarray,
        *,
        allow_partial: bool = False,
        seek_mode: str = "exact",
    ) -> torch.Tensor:
        """Decode the frames on screen at ``timestamps`` (seconds from the start of the video).

        Times past the end give the last frame. Duplicates are decoded once.

        Args:
            timestamps: ``(n,)`` seconds, any order, duplicates allowed.
            allow_partial: when the file is damaged or truncated, answer requests past the damage
                with the last good frame instead of raising (requests before it are exact).
            seek_mode: ``"exact"`` decodes from the keyframe before each time up to it;
                ``"keyframe"`` returns the keyframe at or before each time instead (up to one
                keyframe interval early, but one decoded frame per time: several times faster
                for clips spread over a long video, where the exact frame rarely matters).

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
        out = torch.from_numpy(np.stack(frames))[inverse]
        return _rotate(out, self.metadata.rotation)

    def _keyframe_times(self) -> list[float] | None:
        """Sorted keyframe times (relative seconds) from the demuxer's index, when it has one."""
        if not hasattr(self, "_keyframes"):
            tb = float(self._stream.time_base)
            try:
                entries = self._stream.index_entries
                times = sorted(e.timestamp * tb for e in entries if e.is_keyframe)
            except (TypeError, AttributeError):
                times = []
            # Index times are decode times (mp4): B-frame reordering puts them a constant delay
            # before presentation, so anchor the first keyframe at the stream start.
            self._keyframes = [t - times[0] for t in times] if times else None
        return self._keyframes

    def _should_seek(self, target: float, position: float) -> bool:
        """Whether to seek for ``target`` rather than decode on from ``position`` (relative s)."""
        if target <= position:
            return False
        keyframes = self._keyframe_times()
        if keyframes is None:
            return target - position > _SEEK_THRESHOLD_S
        # Seek only if a keyframe lies between here and the target: otherwise a seek would land
        # on a keyframe behind us and re-decode frames we already passed.
        k = bisect.bisect_right(keyframes, target + 1e-6) - 1
        return k >= 0 and keyframes[k] > position + 1e-6

    def _decode_sorted(self, targets: list[float], allow_partial: bool) -> list[np.ndarray]:
        """One RGB array per target (sorted, unique, relative seconds), seeking between far-apart runs."""
        start = self.metadata.start_time
        fps = self.metadata.fps or 25.0
        eps = 1e-6
        results: list[np.ndarray | None] = [None] * len(targets)
        prev: av.VideoFrame | None = None  # the frame on screen now, kept unconverted
        prev_t = -math.inf  # its time, relative seconds
        error: Exception | None = None
        frames = None
        i = 0
        while i < len(targets):
            if frames is None or self._should_seek(targets[i], prev_t):
                # A tiny first target decodes from the start: no seek needed, and no risk of an
                # index that cannot reach time 0 exactly (B-frame delays, edit lists).
                self._seek(start + targets[i] if targets[i] > eps else None)
                frames = self._container.decode(self._stream)
                prev, prev_t = None, -math.inf
            try:
                frame = next(frames)
            except StopIteration:
                break
            except av.FFmpegError as e:  # damaged data mid-stream
                error = e
                break
            t = self._frame_time(frame, prev_t + start, fps) - start
            if t > targets[i] + eps:
                # ``frame`` starts after the target, so ``prev`` was on screen then. Without a
                # ``prev`` (target before the first frame, or a seek that overshot) the nearest
                # frame is this one.
                shown = prev if prev is not None else frame
                rgb = shown.to_ndarray(format="rgb24")
                while i < len(targets) and t > targets[i] + eps:
                    results[i] = rgb
                    i += 1
            prev, prev_t = frame, t
        return self._finish(targets, results, prev, prev_t, error, allow_partial)

    def _decode_keyframes(self, targets: list[float], allow_partial: bool) -> list[np.ndarray]:
        """The keyframe at or before each target: one seek and one decoded frame per target."""
        start, results, cache = self.metadata.start_time, [], {}
        for target in targets:
            self._seek(start + target if target > 1e-6 else None)
            try:
                frame = next(self._container.decode(self._stream), None)
            except av.FFmpegError as e:
                if not (allow_partial and results):
                    raise VideoDecodeError(f"cannot decode video '{self.name}' near {target:.3f}s (FFmpeg: {e})"
                                           + ("" if allow_partial else "; pass allow_partial=True")) from e
                frame = None
            if frame is None:  # past the end, or damage: keep the last good keyframe
                if not results:
                    raise VideoDecodeError(f"cannot decode video '{self.name}': no decodable video frames")
                results.append(results[-1])
                continue
            key = frame.pts
            if key not in cache:
                cache[key] = frame.to_ndarray(format="rgb24")
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
        fps = self.metadata.fps or 25.0
        damaged = error is not None or (
            self.metadata.duration is not None
            and last_t + 2.0 / fps + _TRUNCATION_SLACK_S < min(targets[pending[-1]], self.metadata.duration)
        )
        if damaged and not allow_partial:
            cause = f"FFmpeg: {error}" if error else (
                f"the stream ends at {last_t:.3f}s but the header says {self.metadata.duration:.3f}s (truncated?)"
            )
            raise VideoDecodeError(
                f"cannot decode video '{self.name}' at {targets[pending[-1]]:.3f}s: {cause}; "
                "pass allow_partial=True to get the frames before the damage"
            )
        arr = last.to_ndarray(format="rgb24")
        for k in pending:
            results[k] = arr
        return results

    @staticmethod
    def _frame_time(frame: av.VideoFrame, prev_abs: float, fps: float) -> float:
        # Some containers leave pts unset; continue from the previous frame at the nominal rate.
        if frame.pts is not None and frame.time_base is not None:
            return float(frame.pts * frame.time_base)
        return (prev_abs + 1.0 / fps) if math.isfinite(prev_abs) else 0.0

    def frame_times(self) -> torch.Tensor:
        """``(n,)`` float64 presentation times (s, from start) of every frame, by demuxing only.

        Cheap (no decoding): for exact frame-indexed sampling on variable-frame-rate files.
        """
        self._seek(None)
        tb = self._stream.time_base
        pts = [p.pts for p in self._container.demux(self._stream) if p.pts is not None and p.size > 0]
        self._seek(None)
        return (torch.tensor(sorted(pts), dtype=torch.float64) * float(tb)) - self.metadata.start_time


def probe_video(source: VideoSource) -> VideoMetadata:
    """Metadata of ``source`` (see ``VideoMetadata``) without decoding more than one frame."""
    with VideoReader(source, threads=False) as reader:
        return reader.metadata


def read_frames_at(
    source: VideoSource,
    timestamps: Sequence[float] | torch.Tensor | np.ndarray,
    *,
    allow_partial: bool = False,
    seek_mode: str = "exact",
) -> torch.Tensor:
    """Open ``source`` and return the frames on screen at ``timestamps``: ``(n, H, W, 3)`` uint8.

    ``seek_mode="keyframe"`` trades exactness for speed (see ``VideoReader.get_frames_at``).
    """
    with VideoReader(source) as reader:
        return reader.get_frames_at(timestamps, allow_partial=allow_partial, seek_mode=seek_mode)


def read_clip(
    source: VideoSource,
    sampler: ClipSampler,
    *,
    generator: torch.Generator | None = None,
    allow_partial: bool = False,
    exact_times: bool = False,
    seek_mode: str = "exact",
) -> torch.Tensor:
    """Sample and decode clip(s) from ``source``.

    ``seek_mode="keyframe"`` returns the keyframe at or before each sampled time (fast, for
    clips spread thinly over long videos); the default ``"exact"`` returns the sampled frames.

    Frame indices come from ``sampler`` over ``duration * fps`` frames and are decoded by time
    (see ``indices_to_timestamps``). With ``exact_times`` (or when the header lacks duration or
    frame rate) the frame times are read from the packets instead (demuxing only, no decoding),
    so indices are exact even on variable-frame-rate files.

    Returns:
        ``(num_clips, num_frames, H, W, 3)`` uint8, upright.
    """
    with VideoReader(source) as reader:
        meta = reader.metadata
        total = meta.estimated_num_frames
        if exact_times or total is None or meta.fps is None:
            times = reader.frame_times()
            if times.numel() == 0:
                raise VideoDecodeError(f"cannot decode video '{reader.name}': no video packets")
            indices = sampler(times.numel(), generator)
            timestamps = times[indices]
        else:
            indices = sampler(total, generator)
            timestamps = indices_to_timestamps(indices, meta.fps)
        frames = reader.get_frames_at(timestamps.reshape(-1), allow_partial=allow_partial, seek_mode=seek_mode)
    return frames.reshape(*indices.shape, *frames.shape[1:])
