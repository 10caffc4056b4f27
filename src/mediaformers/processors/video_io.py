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
import itertools
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
# A seek pays a fixed cost (demuxer seek, decoder flush) worth about this many decoded frames.
_SEEK_OVERHEAD_FRAMES = 4
# A seek whose first frame lies past its target is retried this many times, each further back,
# before the request falls back to a forward decode from the start.
_SEEK_RETRIES = 3
# Decoder errors tolerated before the first good frame (a seek point may start on data the decoder
# cannot use yet); after a good frame an error is damage.
_MAX_LEADING_ERRORS = 64
# Non-key packets skipped after a seek before giving up on finding a keyframe there.
_MAX_SKIPPED_PACKETS = 4096
# Float slack when comparing frame times with requested times (seconds).
_EPS = 1e-6
# Containers whose timestamps are in decode order (B-frames come out 1,2,4,3,...): frames are
# timed by their index in the decoder's output instead.
_INDEX_TIMED_FORMATS = {"avi"}
# Formats whose seeks re-derive timestamps (MPEG-PS dates the packets after a seek 0.1 s off
# from a straight read) or that have no index (raw elementary streams): read forward only.
_NO_SEEK_FORMATS = {"mpeg", "mpegvideo", "h264", "hevc", "m4v", "h263"}
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


def _video_streams(container: av.container.InputContainer) -> list:
    """Real video streams: cover art in audio files (``attached_pic``) is not one."""
    attached = av.stream.Disposition.attached_pic
    return [s for s in container.streams.video if not (s.disposition & attached)]


def _open(source: VideoSource) -> av.container.InputContainer:
    """``av.open`` that refuses empty, missing and non-video inputs with a clear message."""
    name = source_name(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"video file not found: '{name}'")
        if not path.is_file():
            # A FIFO or device would block FFmpeg forever waiting for data.
            raise VideoDecodeError(f"cannot open video '{name}': expected a regular file, got "
                                   f"{'a directory' if path.is_dir() else 'a FIFO, socket or device'}")
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
    if not _video_streams(container):
        kinds = sorted({s.type if not (s.type == "video" and s.disposition & av.stream.Disposition.attached_pic)
                        else "cover art" for s in container.streams}) or ["none"]
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
        self._source = source if not isinstance(source, os.PathLike) else os.fspath(source)
        self._container = _open(source)
        self._stream = _video_streams(self._container)[0]
        self._threads = threads
        self._dirty = False  # whether the demuxer has moved since it was opened
        self._max_size: int | None = None
        self._thread_type = "AUTO"
        fmt = self._container.format.name if self._container.format else ""
        self._index_timing = bool(set(fmt.split(",")) & _INDEX_TIMED_FORMATS)
        self._seekable_source = not set(fmt.split(",")) & _NO_SEEK_FORMATS and (
            isinstance(source, (str, os.PathLike)) or bool(getattr(source, "seekable", lambda: False)()))
        self._seekable = self._seekable_source
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
        self._dirty = True  # reads reopen rather than seek back: image2 (JPEG) cannot seek
        return rotation

    # -- decoding -------------------------------------------------------------------------
    # Every request is answered by a few *forward decodes*: from the start of a freshly opened
    # container (no seek, so image2 JPEGs and MPEG-TS start times need nothing special) or from a
    # seek whose first frame is checked to lie at or before its target. A seek is considered at
    # most once per target and retried a bounded number of times, so no request can loop.
    def _reopen(self, thread_type: str) -> None:
        """A fresh container positioned at the start (FFmpeg's own, no seek)."""
        if self._dirty:
            src = self._source
            if not isinstance(src, (str, os.PathLike)):
                if not (hasattr(src, "seek") and getattr(src, "seekable", lambda: False)()):
                    raise VideoDecodeError(f"cannot read video '{self.name}' twice: the file object is not seekable")
                src.seek(0)
            self._container.close()
            self._container = _open(src)
            self._stream = _video_streams(self._container)[0]
            self._dirty = False
        if self._threads:
            self._stream.thread_type = thread_type

    def _seek(self, seconds_abs: float) -> None:
        """Seek to the keyframe at or before ``seconds_abs`` (absolute stream time)."""
        offset = int(math.floor(seconds_abs / self._stream.time_base))
        self._container.seek(offset, backward=True, any_frame=False, stream=self._stream)

    def _forward(self, seeked: bool):
        """Decoded frames in output (= display) order from the demuxer's position to the end.

        After a seek, packets before the first keyframe are skipped and frames before the first
        key frame dropped (an open GOP's leading frames reference the previous GOP). Decoder
        errors before the first good frame are the seek point's, not damage; later ones raise
        ``_Damage``. The walk ends at end of file, so it is bounded by the file's length.
        """
        good, errors, skipped, keyed = False, 0, 0, not seeked
        self._dirty = True
        demux = self._container.demux(self._stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                return
            except av.FFmpegError as e:  # the demuxer hit damage
                if good:
                    raise _Damage(e) from e
                return
            if not keyed and packet.size:
                if not packet.is_keyframe:
                    skipped += 1
                    if skipped > _MAX_SKIPPED_PACKETS:
                        return
                    continue
                keyed = True
            try:
                frames = packet.decode()
            except av.FFmpegError as e:
                errors += 1
                if good or errors > _MAX_LEADING_ERRORS:
                    raise _Damage(e) from e
                continue
            for frame in frames:
                if seeked and not good and not frame.key_frame:
                    continue
                good = True
                yield frame

    def _timed(self, frames, seeked: bool):
        """``(relative seconds, frame)`` pairs; ``_BadTimestamps`` when pts are missing or go back."""
        start, fps = self.metadata.start_time, self.metadata.fps or 25.0
        prev = -math.inf
        for k, frame in enumerate(frames):
            if self._index_timing:
                t = k / fps  # only ever used from the start of the stream
            elif frame.pts is None or frame.time_base is None:
                raise _BadTimestamps
            else:
                t = float(frame.pts * frame.time_base) - start
                if t <= prev:
                    raise _BadTimestamps
            prev = t
            yield t, frame

    def _start(self, target: float, seek: bool):
        """A ``_timed`` walk whose first frame is at or before ``target`` (or the first frame)."""
        if seek and not self._index_timing and self._seekable:
            back = 0.0
            for _ in range(_SEEK_RETRIES):
                try:
                    self._seek(self.metadata.start_time + max(target - back, 0.0))
                except av.FFmpegError:
                    break
                walk = self._timed(self._forward(seeked=True), seeked=True)
                try:
                    first = next(walk)
                except (StopIteration, _Damage):
                    first = None
                if first is not None and first[0] <= target + _EPS:
                    return itertools.chain([first], walk)
                back = max(2.0 * back, 1.0)  # overshot (or past a cut): look further back
        self._reopen(self._thread_type)
        return self._timed(self._forward(seeked=False), seeked=False)

    def get_frames_at(
        self,
        timestamps: Sequence[float] | torch.Tensor | np.ndarray,
        *,
        allow_partial: bool = False,
        seek_mode: str = "exact",
        max_size: int | None = None,
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
            max_size: scale frames (inside FFmpeg, keeping the aspect ratio) so that their longer
                side is at most this many pixels; caps memory on huge pictures.

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
        if max_size is not None and (not isinstance(max_size, int) or isinstance(max_size, bool) or max_size < 1):
            raise ValueError(f"max_size: expected a positive int or None, got {max_size!r}")
        self._max_size = max_size
        unique, inverse = torch.unique(times.clamp_min(0.0), sorted=True, return_inverse=True)
        targets = unique.tolist()
        try:
            try:
                arrays, which = self._decode(targets, allow_partial, seek_mode)
            except _BadTimestamps:
                # Container timestamps lie (AVI with B-frames, raw streams): the decoder's output
                # order is the display order, so time the frames by their index from the start.
                self._index_timing = True
                arrays, which = self._decode(targets, allow_partial, seek_mode)
        except av.FFmpegError as e:
            raise VideoDecodeError(f"cannot decode video '{self.name}' (FFmpeg: {e})") from e
        # One copy of each distinct frame, gathered once into the output.
        out = torch.from_numpy(np.stack(arrays))[torch.as_tensor(which)[inverse]]
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
        """Cost model: seek for ``target`` rather than decode on from ``position`` (relative s)?

        A seek pays for the frames from the keyframe before the target plus a fixed overhead;
        decoding on pays for the frames up to the target. Dense targets (many per GOP) decode on.
        """
        if target <= position + _EPS or target <= _EPS:
            return False
        keyframes = self._keyframe_times()
        if keyframes is None:
            return target - position > _SEEK_THRESHOLD_S
        k = bisect.bisect_right(keyframes, target + _EPS) - 1
        if k < 0 or keyframes[k] <= position + _EPS:
            return False  # no keyframe between here and the target: a seek cannot save work
        overhead = _SEEK_OVERHEAD_FRAMES / (self.metadata.fps or 25.0)
        return (target - keyframes[k]) + overhead < target - position

    def _to_array(self, frame: av.VideoFrame) -> np.ndarray:
        limit, w, h = self._max_size, frame.width, frame.height
        if limit is not None and max(w, h) > limit:
            scale = limit / max(w, h)
            return frame.to_ndarray(format="rgb24", width=max(1, round(w * scale)),
                                    height=max(1, round(h * scale)), interpolation="AREA")
        return frame.to_ndarray(format="rgb24")

    def _decode(self, targets: list[float], allow_partial: bool, seek_mode: str):
        """Distinct frames and, per sorted target, the index of its frame among them."""
        self._seekable = self._seekable_source and not self._index_timing
        positions = [-math.inf] + targets[:-1]
        seeks = self._seekable and any(self._should_seek(t, p) for t, p in zip(targets, positions))
        # Frame threading makes every seek flush a pipeline of frames: slice threads only then.
        self._thread_type = "SLICE" if (seeks or seek_mode == "keyframe") else "AUTO"
        self._reopen(self._thread_type)
        if seek_mode == "keyframe" and self._seekable:
            return self._decode_keyframes(targets, allow_partial)
        return self._decode_exact(targets, allow_partial)

    def _decode_exact(self, targets: list[float], allow_partial: bool):
        arrays: list[np.ndarray] = []
        which: list[int | None] = [None] * len(targets)
        prev: av.VideoFrame | None = None  # the frame on screen now, kept unconverted
        prev_t = -math.inf
        error: Exception | None = None
        walk, considered, i = None, -1, 0
        while i < len(targets):
            if walk is None or (considered < i and self._should_seek(targets[i], prev_t)):
                # At most one (bounded) seek per target: the walk then runs until it is answered.
                walk = self._start(targets[i], seek=walk is not None or targets[i] > _EPS)
                prev, prev_t = None, -math.inf
            considered = i
            try:
                t, frame = next(walk)
            except StopIteration:
                break
            except _Damage as e:
                error = e.args[0]
                break
            if t > targets[i] + _EPS:
                # ``frame`` starts after the target, so ``prev`` was on screen then. Without a
                # ``prev`` (target before the first frame) the nearest frame is this one.
                arrays.append(self._to_array(prev if prev is not None else frame))
                while i < len(targets) and t > targets[i] + _EPS:
                    which[i] = len(arrays) - 1
                    i += 1
            prev, prev_t = frame, t
        return self._finish(targets, arrays, which, prev, prev_t, error, allow_partial)

    def _decode_keyframes(self, targets: list[float], allow_partial: bool):
        """The keyframe at or before each target: one seek and one decoded frame per target."""
        arrays: list[np.ndarray] = []
        which: list[int] = []
        seen: dict[float, int] = {}
        for target in targets:
            try:
                t, frame = next(self._start(target, seek=target > _EPS))
            except (StopIteration, _Damage) as e:
                if not which or not (allow_partial or isinstance(e, StopIteration)):
                    cause = f"FFmpeg: {e.args[0]}" if isinstance(e, _Damage) else "no decodable video frames"
                    raise VideoDecodeError(f"cannot decode video '{self.name}' near {target:.3f}s ({cause})"
                                           + ("; pass allow_partial=True" if isinstance(e, _Damage) else ""))
                which.append(which[-1])  # past the end, or damage: keep the last good keyframe
                continue
            if t not in seen:
                seen[t] = len(arrays)
                arrays.append(self._to_array(frame))
            which.append(seen[t])
        return arrays, which

    def _finish(self, targets, arrays, which, last, last_t, error, allow_partial):
        """Answer requests left at end of stream, or report truncation/damage."""
        pending = [k for k, r in enumerate(which) if r is None]
        if not pending:
            return arrays, which
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
        arrays.append(self._to_array(last))
        for k in pending:
            which[k] = len(arrays) - 1
        return arrays, which

    def frame_times(self) -> torch.Tensor:
        """``(n,)`` float64 presentation times (s, from start) of every frame, by demuxing only.

        Cheap (no decoding): for exact frame-indexed sampling on variable-frame-rate files.
        Where packets lack timestamps, or the container's are unusable (AVI), frames are taken
        to be ``1 / fps`` apart.
        """
        self._reopen("AUTO")
        self._dirty = True
        tb = self._stream.time_base
        pts, count = [], 0
        try:
            for p in self._container.demux(self._stream):
                if p.size > 0:
                    count += 1
                    if p.pts is not None:
                        pts.append(p.pts)
        except av.FFmpegError:
            pass  # damage: the frames before it
        if self._index_timing or len(pts) < count:
            return torch.arange(count, dtype=torch.float64) / (self.metadata.fps or 25.0)
        return (torch.tensor(sorted(pts), dtype=torch.float64) * float(tb)) - self.metadata.start_time

    def header_is_consistent(self) -> bool:
        """Whether the header's frame count agrees with its duration x frame rate (within 1%)."""
        m = self.metadata
        if m.num_frames is None or m.duration is None or m.fps is None or self._index_timing:
            return False
        return abs(m.duration * m.fps - m.num_frames) <= max(1.0, 0.01 * m.num_frames)


class _Damage(Exception):
    """Decoding stopped at damaged data after good frames (args[0]: FFmpeg's error)."""


class _BadTimestamps(Exception):
    """Frame timestamps are missing or not increasing in output order."""



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
    max_size: int | None = None,
) -> torch.Tensor:
    """Open ``source`` and return the frames on screen at ``timestamps``: ``(n, H, W, 3)`` uint8.

    ``seek_mode="keyframe"`` trades exactness for speed, ``max_size`` caps the longer side (see
    ``VideoReader.get_frames_at``).
    """
    with VideoReader(source) as reader:
        return reader.get_frames_at(timestamps, allow_partial=allow_partial, seek_mode=seek_mode,
                                    max_size=max_size)


def read_clip(
    source: VideoSource,
    sampler: ClipSampler,
    *,
    generator: torch.Generator | None = None,
    allow_partial: bool = False,
    exact_times: bool = False,
    seek_mode: str = "exact",
    max_size: int | None = None,
) -> torch.Tensor:
    """Sample and decode clip(s) from ``source``.

    ``seek_mode="keyframe"`` returns the keyframe at or before each sampled time (fast, for
    clips spread thinly over long videos); the default ``"exact"`` returns the sampled frames.

    Frame indices come from ``sampler`` over ``duration * fps`` frames and are decoded by time
    (see ``indices_to_timestamps``) only when the header's frame count agrees with its duration
    and rate. Otherwise, or with ``exact_times``, the frame times are read from the packets
    (demuxing only, no decoding), so indices are exact on variable-frame-rate files and on files
    whose header is wrong. ``max_size`` caps the longer side of the frames (scaled in FFmpeg).

    Returns:
        ``(num_clips, num_frames, H, W, 3)`` uint8, upright.
    """
    with VideoReader(source) as reader:
        meta = reader.metadata
        total = meta.estimated_num_frames
        if exact_times or not reader.header_is_consistent():
            times = reader.frame_times()
            if times.numel() == 0:
                raise VideoDecodeError(f"cannot decode video '{reader.name}': no video packets")
            indices = sampler(times.numel(), generator)
            timestamps = times[indices]
        else:
            indices = sampler(total, generator)
            timestamps = indices_to_timestamps(indices, meta.fps)
        frames = reader.get_frames_at(timestamps.reshape(-1), allow_partial=allow_partial, seek_mode=seek_mode,
                                      max_size=max_size)
    return frames.reshape(*indices.shape, *frames.shape[1:])
