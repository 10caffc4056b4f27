"""Container and timing facts for the PyAV backend: opening (and refusing) files, metadata, which
containers' timestamps and durations can be trusted, and the time of each decoded frame."""

from __future__ import annotations

import math
import os
from pathlib import Path

import av
import torch

from ..backend import VideoDecodeError, VideoMetadata, VideoSource, source_name
from .convert import normalise_rotation
from .stamps import mpeg_stamps_in_output_order, picture_type, stamp_frames
from .state import ReaderState

# Containers whose seeks land on frames with trustworthy timestamps. In MPEG-PS/TS, raw streams and
# the like, the first frames a decoder gives after a seek can carry another frame's pts (B-frames
# whose timestamps come from packets they do not belong to), so those files are decoded forward
# from the start: slower on long files, never wrong.
_SEEKABLE = {"mov", "matroska", "flv", "ogg", "asf", "nut"}
# Containers whose timestamps are in decode order (AVI keeps no presentation times; raw streams have
# none): with B-frames they date frames wrongly, so frames are timed by the decoder's output order
# (frame k of a forward decode is at k / fps) and these files are never seeked.
_BY_ORDER = {"avi", "h264", "hevc", "mpegvideo", "m4v", "h263", "rawvideo"}
# Containers whose header durations are estimates (bitrate-based or missing); their frame counts come
# from the packets instead.
_UNRELIABLE_DURATION = {"mpeg", "mpegts", "mpegvideo", "m4v", "h264", "hevc", "h263", "mjpeg", "rawvideo",
                        "image2", "flv", "avi"}
# Containers where FFmpeg invents the stamps packets lack from the header's frame rate (an MPEG-PS packet
# holds several pictures and one stamp; a header may claim 25 fps over frames stamped 1/29.97 s apart):
# read with ``fflags=nofillin``, so only the file's own stamps are seen, and the frames between two
# stamps are timed from those stamps (``_timed``), never from the header's rate.
_SPARSE_STAMPS = {"mpeg", "mpegts"}
# FFmpeg "decodes" any text file as ANSI art through its tty demuxer; that is not a video.
_TEXT_FORMATS = {"tty"}
_TEXT_CODECS = {"ansi", "bintext", "xbin", "idf"}

def _open(source: VideoSource, stamps_only: bool = False) -> av.container.InputContainer:
    """``av.open`` that refuses empty, missing and non-video inputs with a clear message.
    ``stamps_only``: FFmpeg leaves packets without a stamp unstamped (see ``_SPARSE_STAMPS``)."""
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
        container: av.container.InputContainer = av.open(source if not isinstance(source, os.PathLike) else os.fspath(source),
                            metadata_errors="ignore", options={"fflags": "nofillin"} if stamps_only else None)  # type: ignore[assignment]
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


def _encrypted(packet: av.Packet) -> bool:
    """Whether the packet carries CENC/cbcs encryption info (MP4 'encv' tracks, encrypted WebM): FFmpeg
    would decode the ciphertext into noise that varies with threading."""
    try:
        return bool(packet.has_sidedata("encryption_info"))
    except (AttributeError, TypeError, ValueError, KeyError):  # a PyAV without side data access
        return False


def _rotation_from_tag(stream: av.video.stream.VideoStream) -> int:
    # Old muxers wrote a clockwise 'rotate' tag; FFmpeg >= 7 exposes only the display matrix,
    # which PyAV surfaces per frame (``VideoFrame.rotation``, counter-clockwise).
    tag = stream.metadata.get("rotate")
    try:
        return (-int(float(tag))) % 360 if tag else 0
    except ValueError:
        return 0



class ContainerFacts(ReaderState):
    """What the container and its packets say: metadata, the time of each frame, trust in the header.
    A mixin of ``VideoReader`` (reads ``_stream``, ``_container``, ``_format``, ``_by_order``)."""

    def _probe(self) -> VideoMetadata:
        rotation = self._first_frame_rotation()  # decodes a frame, then reopens: read the streams after
        s, c = self._stream, self._container
        tb = s.time_base
        stated = self._stated_start()
        # The packets win over a header whose start lies after the first frame (VVC in MP4: start 2.12 s,
        # frames from 1.16 s): frames before it stay reachable. The track's duration spans its packets,
        # so it counts from the real start.
        start = min(stated, self._first_time) if self._first_time is not None else stated
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

    def _stated_start(self) -> float:
        """The stream's start time as its header states it (absolute seconds)."""
        s = self._stream
        return float(s.start_time * s.time_base) if s.start_time is not None and s.time_base else 0.0

    def _first_frame_rotation(self) -> int:
        # PyAV 18 cannot read the stream's display matrix, but FFmpeg copies it onto every decoded
        # frame; decoding one frame is cheap and the demuxer is rewound afterwards. The first packets
        # also say whether the stream is encrypted.
        rotation = _rotation_from_tag(self._stream)
        self._fresh = False
        self._first_time: float | None = None  # absolute seconds of the first frame shown
        encrypted = False
        try:
            for packet in self._container.demux(self._stream):
                encrypted = encrypted or _encrypted(packet)
                decoded = packet.decode()
                if decoded:
                    first = decoded[0]
                    if first.pts is not None and first.time_base is not None and not self._by_order:
                        self._first_time = float(first.pts * first.time_base)
                    rotation = normalise_rotation(decoded[0].rotation) if decoded[0].rotation else rotation
                    break
        except av.FFmpegError:
            pass  # the real decode reports damage with its context
        if encrypted:
            self.close()
            raise VideoDecodeError(
                f"cannot decode video '{self.name}': the video stream is encrypted (CENC/cbcs: its packets "
                "carry encryption info); decrypt it first, e.g. ffmpeg -decryption_key KEY -i in.mp4 -c copy out.mp4")
        self._reopen()
        return rotation

    def _time(self, frame: av.VideoFrame, prev_t: float) -> float:
        """Relative seconds of ``frame`` (called once per frame, in output order); frames without a pts
        follow the previous one at the nominal rate."""
        if self._by_order:
            return (self._count - 1) / (self.metadata.fps or 25.0)
        if frame.pts is not None and frame.time_base is not None:
            return float(frame.pts * frame.time_base) - self.metadata.start_time
        return prev_t + 1.0 / (self.metadata.fps or 25.0) if math.isfinite(prev_t) else 0.0

    def _timed(self, frames):
        """``(frame, seconds)`` for each frame of ``frames`` (output order).

        In MPEG-PS/TS (``_SPARSE_STAMPS``) frames without a stamp of their own are held (boundedly) until
        the next stamped frame and timed from the stamps (``stamps.py``); elsewhere ``_time`` dates each frame.
        """
        if not self._sparse:
            t = -math.inf
            for frame in frames:
                t = self._time(frame, t)
                yield frame, t
            return
        tb = self._stream.time_base
        nominal = max(1, round(1 / ((self.metadata.fps or 25.0) * tb)))
        for frame, stamp in stamp_frames(frames, nominal):
            yield frame, float(stamp * tb) - self.metadata.start_time

    def _shown_until(self, frame: av.VideoFrame, t: float) -> float:
        """When ``frame`` (shown from ``t``) leaves the screen: its own duration (the packet's, so a VFR
        file's long last frame counts), else two nominal frame durations."""
        if frame.duration and frame.time_base is not None:
            return t + float(frame.duration * frame.time_base)
        return t + 2.0 / (self.metadata.fps or 25.0)

    def reliable_duration(self) -> bool:
        """Whether the header's duration can be believed (not an estimate from a bit rate)."""
        return self._format not in _UNRELIABLE_DURATION

    def frame_times(self) -> torch.Tensor:
        """``(n,)`` float64 presentation times (s, from start) of every frame, by demuxing only.

        Sets ``packets_end``: when the last frame leaves the screen by the packets' durations (None:
        they carry none). Cheap (no decoding): for exact frame-indexed sampling on variable-frame-rate files and
        files whose header counts are estimates. Raw streams and AVI (``_BY_ORDER``) count packets,
        stamped or not; in MPEG-PS/TS whose packets are not all stamped, frames between stamps get the
        times reads give them (``_timed``): from the picture types for MPEG-1/2, else by decoding.
        """
        self._reopen()
        tb = self._stream.time_base
        pts: list[int] = []
        unstamped, end = 0, -math.inf
        mpeg = self._sparse and self._stream.codec_context.name in ("mpeg1video", "mpeg2video")
        kinds: list[tuple[int | None, int | None]] = []  # MPEG-1/2 in PS/TS: (pts, picture type)
        self._fresh = False
        try:
            for packet in self._container.demux(self._stream):
                if packet.size > 0:
                    if mpeg:
                        kinds.append((packet.pts, picture_type(bytes(packet))))
                    if packet.pts is None:
                        unstamped += 1
                    else:
                        pts.append(packet.pts)
                        end = max(end, packet.pts + (packet.duration or 0))
        except av.FFmpegError:
            pass  # a cut file: the packets before the cut
        self._reopen()
        if self._by_order:  # one frame per packet, at the nominal rate (see _BY_ORDER)
            return torch.arange(len(pts) + unstamped, dtype=torch.float64) / (self.metadata.fps or 25.0)
        if self._sparse and unstamped:
            # Frames between stamps, timed as reads time them: from the packets' picture types (MPEG-1/2),
            # else by decoding once (bounded: one pass over the file).
            nominal = max(1, round(1 / ((self.metadata.fps or 25.0) * tb)))
            stamps = mpeg_stamps_in_output_order(kinds, nominal) if mpeg else None
            if stamps is None:
                self._fresh = False
                seconds = [t for _, t in self._timed(self._frames())]
                self._reopen()
            else:
                seconds = [float(p * tb) - self.metadata.start_time for p in stamps]
            return torch.tensor(sorted(seconds), dtype=torch.float64)
        if not pts:
            return torch.zeros(0, dtype=torch.float64)
        # Where the last frame leaves the screen, by the packets' durations (read_clip's truncation check).
        self.packets_end = float(end * tb) - self.metadata.start_time if end > max(pts) else None
        return (torch.tensor(sorted(pts), dtype=torch.float64) * float(tb)) - self.metadata.start_time

