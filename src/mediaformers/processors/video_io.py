"""Video decoding with PyAV: metadata, and only the frames asked for.

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
"""

from __future__ import annotations

import bisect
import math
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Sequence, Union

import av
import numpy as np
import torch

from .sampling import ClipSampler, indices_to_timestamps
from .time_range import time_range

VideoSource = Union[str, os.PathLike, IO[bytes]]

# Containers whose seeks land on frames with trustworthy timestamps. In MPEG-PS/TS, raw streams and
# the like, the first frames a decoder gives after a seek can carry another frame's pts (B-frames
# whose timestamps come from packets they do not belong to), so those files are decoded forward
# from the start: slower on long files, never wrong.
_SEEKABLE = {"mov", "matroska", "flv", "ogg", "asf", "nut"}
# Containers whose timestamps are in decode order (AVI keeps no presentation times; raw streams have
# none): with B-frames they date frames wrongly, so frames are timed by the decoder's output order
# (frame k of a forward decode is at k / fps) and these files are never seeked.
_BY_ORDER = {"avi", "h264", "hevc", "mpegvideo", "m4v", "h263", "rawvideo"}
# Without a keyframe index, a seek is tried only for a target at least this far ahead.
_NO_INDEX_SEEK_S = 4.0
# A seek pays off when it skips more than this many frames of decoding.
_SEEK_COST_FRAMES = 4
# A request left unanswered at end of stream counts as truncation only when it lies this far past
# the last decoded frame (plus two frame durations): headers round durations a little.
_TRUNCATION_SLACK_S = 0.25
# A seek whose first frame lands after the target is retried this many times, each time further back,
# before decoding from the start.
_SEEK_RETRIES = 4
# Undecodable packets skipped after a seek before the first frame (a stream starting on non-key data).
_SKIP_AFTER_SEEK = 512
# Seek-heavy exact requests are split over up to this many readers of the file in threads, each decoder
# single-threaded (FFmpeg decodes without the GIL), never more than torch's thread count (which follows
# the CPU affinity, and is 1 in DataLoader workers).
_MAX_PARALLEL_READERS = 4
# A frame larger than this is scaled down inside FFmpeg (same aspect): models take a few hundred pixels,
# and a 16000x16000 picture would otherwise take gigabytes per copy.
MAX_PIXELS = 3840 * 2160
# Codecs whose decoders honour ``skip_frame = NONREF`` packet by packet (also under frame threads, which
# copy it per submitted packet) and drop only frames no other frame predicts from: h264/hevc (nal_ref_idc
# 0, non-reference NAL types), MPEG-4 part 2 (B-frames). Other decoders read it once at open (dav1d) or
# not at all, so they never get it.
_SKIP_CODECS = {"h264", "hevc", "mpeg4"}
# How many earlier packets' times a packet is compared with when deciding whether it may be skipped
# (only a window: a shorter one only skips less).
_SKIP_LOOKBACK = 32
# Containers whose header durations are estimates (bitrate-based or missing); their frame counts come
# from the packets instead.
_UNRELIABLE_DURATION = {"mpeg", "mpegts", "mpegvideo", "m4v", "h264", "hevc", "h263", "mjpeg", "rawvideo",
                        "image2", "flv", "avi"}
# FFmpeg "decodes" any text file as ANSI art through its tty demuxer; that is not a video.
_TEXT_FORMATS = {"tty"}
_TEXT_CODECS = {"ansi", "bintext", "xbin", "idf"}


class VideoDecodeError(ValueError):
    """A video could not be opened or decoded; the message names the file and the cause."""


class _SkipUnsafe(Exception):
    """Skipping non-reference frames met a file where it might change an answer: decode again without it."""


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
        if not path.is_file():  # a FIFO or device would block the demuxer forever
            raise VideoDecodeError(f"cannot open video '{name}': expected a regular file, got "
                                   f"{'a folder' if path.is_dir() else 'a pipe, socket or device'}")
        if path.stat().st_size == 0:
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
        kinds = sorted({s.type if not _is_picture(s) else "attached picture" for s in container.streams}) or ["none"]
        container.close()
        raise VideoDecodeError(
            f"cannot read video '{name}': the file has no video stream (streams found: {', '.join(kinds)})"
        )
    return container


def _is_picture(stream) -> bool:
    """Cover art (a still attached to an audio file) shows up as a one-frame video stream."""
    return stream.type == "video" and bool(stream.disposition & av.stream.Disposition.attached_pic)


def _video_streams(container) -> list:
    return [s for s in container.streams.video if not _is_picture(s)]


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
        self.frames_decoded = 0  # frames the decoder gave us, all requests together (tests, benchmarks)
        self._reopen()
        self.metadata = self._probe()

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
        self._container = _open(self._source)
        self._stream = _video_streams(self._container)[0]
        self._count = 0  # frames yielded since the file was opened (decoder output order)
        self._format = self._container.format.name.split(",")[0] if self._container.format else ""
        self._by_order = self._format in _BY_ORDER
        self._fresh = True  # nothing demuxed, sought or decoded since the open
        if self._threads:
            self._stream.thread_type = thread_type or "AUTO"

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- metadata -------------------------------------------------------------------------
    def _probe(self) -> VideoMetadata:
        rotation = self._first_frame_rotation()  # decodes a frame, then reopens: read the streams after
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
        self._fresh = False
        try:
            for frame in self._container.decode(self._stream):
                rotation = _normalise_rotation(frame.rotation) if frame.rotation else rotation
                break
        except av.FFmpegError:
            pass  # the real decode reports damage with its context
        self._reopen()
        return rotation

    # -- decoding -------------------------------------------------------------------------
    def _seek(self, seconds_abs: float) -> None:
        """Seek to the keyframe at or before ``seconds_abs`` (absolute stream time) and drop decoder state."""
        offset = int(math.floor(seconds_abs / self._stream.time_base))
        self._fresh = False
        try:
            self._container.seek(offset, backward=True, any_frame=False, stream=self._stream)
        except av.FFmpegError as e:
            raise VideoDecodeError(f"cannot seek in video '{self.name}' (FFmpeg: {e})") from e

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

    def _time(self, frame: av.VideoFrame, prev_t: float) -> float:
        """Relative seconds of ``frame`` (called once per frame, in output order); frames without a pts
        follow the previous one at the nominal rate."""
        if self._by_order:
            return (self._count - 1) / (self.metadata.fps or 25.0)
        if frame.pts is not None and frame.time_base is not None:
            return float(frame.pts * frame.time_base) - self.metadata.start_time
        return prev_t + 1.0 / (self.metadata.fps or 25.0) if math.isfinite(prev_t) else 0.0

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        w, h = frame.width, frame.height
        if self.max_pixels and w * h > self.max_pixels:  # scale in FFmpeg, never hold the full-size copy
            scale = math.sqrt(self.max_pixels / (w * h))
            return frame.to_ndarray(format="rgb24", width=max(2, int(w * scale) // 2 * 2),
                                    height=max(2, int(h * scale) // 2 * 2))
        return frame.to_ndarray(format="rgb24")

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
        return _rotate(out, self.metadata.rotation)

    def _keyframe_times(self) -> list[float] | None:
        """Sorted keyframe times (relative seconds) from the demuxer's index, when it has one.

        A hint for planning only: index times can be decode times (B-frames) or point past the frame,
        so every seek is checked against the frame it actually yields.
        """
        if not hasattr(self, "_keyframes"):
            tb = float(self._stream.time_base)
            try:
                times = sorted(e.timestamp * tb for e in self._stream.index_entries if e.is_keyframe)
            except (TypeError, AttributeError):
                times = []
            self._keyframes = [t - times[0] for t in times] if len(times) > 1 else None
        return self._keyframes

    def _dense(self, targets: list[float]) -> bool:
        """Whether one forward decode beats seeking: targets fill most of the keyframe intervals they span."""
        keyframes = self._keyframe_times()
        if keyframes is None:  # no index (WebM without cues, TS, AVI without idx1): judge by time
            return len(targets) >= max(2.0, (targets[-1] - targets[0]) / 2.0)
        gops = {bisect.bisect_right(keyframes, t) for t in targets}
        spanned = bisect.bisect_right(keyframes, targets[-1]) - max(0, bisect.bisect_right(keyframes, targets[0]) - 1)
        return len(gops) >= 0.5 * spanned or targets[0] < keyframes[1] and len(gops) >= 0.5 * (spanned + 1)

    def _can_seek(self) -> bool:
        seekable = isinstance(self._source, (str, os.PathLike)) or self._source.seekable()
        return self._format in _SEEKABLE and seekable

    def _worth_seeking(self, target: float, position: float) -> bool:
        """Whether a seek for ``target`` can land past ``position`` (else decoding on is cheaper)."""
        if not self._can_seek():
            return False
        keyframes = self._keyframe_times()
        if keyframes is None:
            return target - position > _NO_INDEX_SEEK_S
        k = bisect.bisect_right(keyframes, target + 1e-6) - 1
        # Frames a seek would skip, against its own cost (a demuxer jump and a decoder flush).
        return k >= 0 and keyframes[k] - position > max(_SEEK_COST_FRAMES / (self.metadata.fps or 25.0), 0.25)

    def _start(self, target: float):
        """A frame iterator positioned so its first frame is at or before ``target``, and that frame.

        Seeks to the keyframe before ``target`` and checks the frame it lands on; a seek that lands
        after the target (or nowhere) is retried further back, then the file is decoded from the start.
        """
        keyframes = self._keyframe_times()
        near = (target < keyframes[1] - 1e-6) if keyframes is not None else target <= _NO_INDEX_SEEK_S
        if self._can_seek() and not near:
            back = 0.0
            for _ in range(_SEEK_RETRIES):
                self._seek(self.metadata.start_time + max(0.0, target - back))
                frames = self._frames()
                first = next(frames, None)
                if first is not None:
                    t = self._time(first, -math.inf)
                    if t <= target + 1e-6:
                        return frames, first
                    back = max(2.0 * back, t - target + 1.0)
                else:
                    back = max(2.0 * back, 1.0)
                if target - back <= 0:
                    break
        self._reopen("SLICE" if self._seeking else None)
        frames = self._frames()
        return frames, next(frames, None)

    def _decode_sorted(self, targets: list[float], allow_partial: bool) -> list[np.ndarray]:
        """One RGB array per target (sorted, unique, relative seconds).

        Seek-heavy requests are cut into runs of whole keyframe intervals, each decoded by its own reader
        in a thread (``_parallel_chunks``): independent single-threaded decodes scale with the cores,
        where FFmpeg's frame threads refill their pipeline at every seek.
        """
        if self._threads and not self._dense(targets):
            chunks = self._parallel_chunks(targets)
            if len(chunks) > 1:
                return self._decode_parallel(chunks, allow_partial)
        return self._decode_run(targets, allow_partial)

    def _parallel_chunks(self, targets: list[float]) -> list[list[float]]:
        """``targets`` cut into contiguous runs of whole keyframe intervals, one per reader, balanced by the
        time each must decode (from its keyframe to its target); one run when splitting cannot help."""
        keyframes = self._keyframe_times()
        workers = min(_MAX_PARALLEL_READERS, torch.get_num_threads(), len(targets))
        if (workers < 2 or keyframes is None or not isinstance(self._source, (str, os.PathLike))
                or not self._can_seek()):
            return [targets]
        gop = [bisect.bisect_right(keyframes, t + 1e-6) - 1 for t in targets]
        work = [t - keyframes[max(g, 0)] + 0.1 for t, g in zip(targets, gop)]
        share, total, chunks, start = sum(work) / workers, 0.0, [], 0
        for i in range(1, len(targets)):
            total += work[i - 1]
            if gop[i] != gop[i - 1] and total >= share * (len(chunks) + 1) and len(chunks) < workers - 1:
                chunks.append(targets[start:i])
                start = i
        return chunks + [targets[start:]]

    def _decode_parallel(self, chunks: list[list[float]], allow_partial: bool) -> list[np.ndarray]:
        """Each chunk by its own single-threaded reader of the same file, in threads (this reader takes
        the first); the same frames as one reader, since each reader's frames are exact."""
        from concurrent.futures import ThreadPoolExecutor

        twins = [self._twin() for _ in chunks[1:]]
        try:
            with ThreadPoolExecutor(len(twins)) as pool:
                rest = [pool.submit(twin._decode_run, chunk, allow_partial) for twin, chunk in zip(twins, chunks[1:])]
                threads, self._threads = self._threads, False  # a single-threaded decoder (PyAV's default)
                try:
                    self._reopen()
                    first = self._decode_run(chunks[0], allow_partial)
                finally:
                    self._threads = threads
                parts = [first] + [f.result() for f in rest]
        finally:
            for twin in twins:
                self.frames_decoded += twin.frames_decoded
                self._skip_nonref = self._skip_nonref and twin._skip_nonref
                twin.close()
        return [frame for part in parts for frame in part]

    def _twin(self) -> "VideoReader":
        """Another single-threaded reader of this file, sharing the metadata and keyframe index (no probe)."""
        twin = object.__new__(VideoReader)
        twin.__dict__.update({k: v for k, v in self.__dict__.items() if not k.startswith("_container")})
        twin._container, twin._threads, twin._error = None, False, None
        twin._skip_targets, twin._nonref_fed, twin.frames_decoded = None, [], 0
        twin._reopen()
        return twin

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
            frame = pending if pending is not None else next(frames, None)
            pending = None
            if frame is None:
                break
            t = self._time(frame, prev_t)
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
        results, cache = [], {}
        self._seeking = True
        if self._threads:
            self._reopen("SLICE")
        for target in targets:
            _, frame = self._start(target)
            if frame is None:  # past the end, or damage: keep the last good keyframe
                if not results:
                    cause = f"FFmpeg: {self._error}" if self._error else "no decodable video frames"
                    raise VideoDecodeError(f"cannot decode video '{self.name}': {cause}")
                if self._error is not None and not allow_partial:
                    raise VideoDecodeError(f"cannot decode video '{self.name}' near {target:.3f}s "
                                           f"(FFmpeg: {self._error}); pass allow_partial=True")
                results.append(results[-1])
                continue
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
        fps = self.metadata.fps or 25.0
        damaged = error is not None or (
            self.metadata.duration is not None and self._reliable_duration()
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
        arr = self._rgb(last)
        for k in pending:
            results[k] = arr
        return results

    def _reliable_duration(self) -> bool:
        """Whether the header's duration can be believed (not an estimate from a bit rate)."""
        return self._format not in _UNRELIABLE_DURATION

    def frame_times(self) -> torch.Tensor:
        """``(n,)`` float64 presentation times (s, from start) of every frame, by demuxing only.

        Cheap (no decoding): for exact frame-indexed sampling on variable-frame-rate files and
        files whose header counts are estimates.
        """
        self._reopen()
        tb = self._stream.time_base
        pts: list[int] = []
        self._fresh = False
        try:
            for packet in self._container.demux(self._stream):
                if packet.pts is not None and packet.size > 0:
                    pts.append(packet.pts)
        except av.FFmpegError:
            pass  # a cut file: the packets before the cut
        self._reopen()
        if self._by_order:  # one frame per packet, at the nominal rate (see _BY_ORDER)
            return torch.arange(len(pts), dtype=torch.float64) / (self.metadata.fps or 25.0)
        if not pts:
            return torch.zeros(0, dtype=torch.float64)
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

    A :class:`~mediaformers.processors.time_range.ClipPath` source is sampled only from the frames
    shown in its ``[start, end)`` (their times read from the packets).

    Returns:
        ``(num_clips, num_frames, H, W, 3)`` uint8, upright.
    """
    span = time_range(source)
    with VideoReader(source) as reader:
        meta = reader.metadata
        total = meta.estimated_num_frames
        if (span is not None or exact_times or total is None or meta.fps is None or meta.num_frames is None
                or not reader._reliable_duration()):
            # Frame times from the packets (demuxing only): VFR files and headers without counts.
            times = reader.frame_times()
            if times.numel() == 0:
                raise VideoDecodeError(f"cannot decode video '{reader.name}': no video packets")
            fps = meta.fps or 25.0
            if (not allow_partial and meta.duration and reader._reliable_duration()
                    and float(times[-1]) + 2.0 / fps + _TRUNCATION_SLACK_S < meta.duration):
                raise VideoDecodeError(
                    f"cannot decode video '{reader.name}': the packets end at {float(times[-1]):.3f}s but the "
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
