"""Windows over long media, decoded as they come: memory holds a window (plus what overlapping windows
share), never the file, so a two-hour recording costs what a clip costs.

- :func:`audio_file_windows`: a file's audio, the model's window every hop (``AudioWindows``, chunked).
- :func:`clip_windows`: video clips of ``num_frames`` frames ``step`` frames apart, one every ``stride``
  seconds, picked from one forward decode (the frame on screen at each time, as ``VideoReader`` answers).
- :func:`video_frames` / :func:`audio_chunks`: an open container's frames or mono audio, as they decode
  (files and live streams alike; ``live`` opens them).

A window is ``Window(start, end, data, arrived)``: seconds of media, the samples ``(n,)`` float32 or the
frames ``(T, H, W, 3)`` uint8, and the ``time.monotonic()`` at which the media completing it was decoded
(what a live latency is measured from).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
import soxr

from ...audio.audio_decode import AudioDecodeError, AudioInfo
from ...audio.windows import AudioWindows
from ..backend import MAX_PIXELS, VideoDecodeError, source_name
from .container import _open

# Frame rate assumed when a stream declares none (raw or live streams without timing headers).
_DEFAULT_FPS = 25.0


@dataclass
class Window:
    start: float
    end: float
    data: Any
    arrived: float


def audio_file_windows(source: Any, rate: int, *, window: int, hop: int, grid: int,
                       allow_partial: bool = False) -> Iterator[Window]:
    """The windows of an audio file (or a video's audio track), decoded chunk by chunk."""
    for start, wave in AudioWindows(source, rate, window=window, hop=hop, grid=grid, allow_partial=allow_partial,
                                    return_numpy=True):
        yield Window(start, start + len(wave) / rate, wave, time.monotonic())


class _ChunkWindows(AudioWindows):
    """``AudioWindows``' windowing over mono chunks that are already at ``rate`` (a live stream's)."""

    def __init__(self, rate: int, window: int, hop: int, grid: int, name: str) -> None:  # noqa: D107
        self.rate, self.window, self.hop, self.grid, self.return_numpy, self.name = rate, window, hop, grid, True, name
        self.info = None

    def over(self, chunks: Iterable[np.ndarray]) -> Iterator[tuple[float, Any]]:
        def finish() -> AudioInfo:
            return AudioInfo(self.name, self.rate, 1, "ffmpeg", "live", "live")
        return self._windows(iter(chunks), finish)


def chunk_windows(chunks: Iterable[tuple[np.ndarray, float]], rate: int, *, window: int, hop: int, grid: int,
                  name: str) -> Iterator[Window]:
    """Windows over ``(mono samples at rate, arrival time)`` chunks, as each completes."""
    arrived = [time.monotonic()]

    def samples() -> Iterator[np.ndarray]:
        for x, t in chunks:
            arrived[0] = t
            yield x

    for start, wave in _ChunkWindows(rate, window, hop, grid, name).over(samples()):
        yield Window(start, start + len(wave) / rate, wave, arrived[0])


class _Clip:
    __slots__ = ("start", "targets", "frames")

    def __init__(self, start: float, offsets: list[float]):
        self.start, self.targets = start, [start + o for o in offsets]
        self.frames: list[np.ndarray] = []


def clip_step(stride: float, fps: float, num_frames: int) -> int:
    """The frame step at which a clip of ``num_frames`` spans ``stride`` seconds (clips tile the timeline:
    16 frames every 2 s of 30 fps video is VideoMAE's 16 x 4 sampling)."""
    return max(1, round(stride * fps / num_frames))


def clip_windows(frames: Iterable[tuple[float, Callable[[], np.ndarray], float]], *, num_frames: int,
                 step: int | None, stride: float, fps: float) -> Iterator[Window]:
    """Clips from ``(seconds, rgb getter, arrival)`` frames in presentation order: one clip every ``stride``
    seconds from 0, its frames at ``start + (k * step + 0.5) / fps`` (as ``indices_to_timestamps``), each the
    last frame at or before that time (``step`` None: see :func:`clip_step`). A clip cut by the end of the
    stream repeats its last frame (as the samplers pad short videos). Each frame is converted once, whatever
    the number of clips it is in."""
    if not (stride > 0 and math.isfinite(stride)):
        raise ValueError(f"stride: expected a positive number of seconds, got {stride!r}")
    step = clip_step(stride, fps, num_frames) if step is None else step
    offsets = [(k * step + 0.5) / fps for k in range(num_frames)]
    span = max(num_frames * step / fps, stride)  # a clip stands for its stride seconds: clips tile the timeline
    active: list[_Clip] = []
    made = 0  # clips started so far (starts are made * stride: no float drift over hours)
    prev: tuple[Callable[[], np.ndarray], float] | None = None
    for t, rgb, arrived in frames:
        while made * stride <= t:
            active.append(_Clip(made * stride, offsets))
            made += 1
        if prev is not None:
            for clip in active:  # every time before this frame shows the one before it
                while len(clip.frames) < num_frames and clip.targets[len(clip.frames)] < t:
                    clip.frames.append(prev[0]())
        while active and len(active[0].frames) == num_frames:
            clip = active.pop(0)
            yield Window(clip.start, clip.start + span, np.stack(clip.frames), arrived)
        prev = (rgb, arrived)
    for clip in active:  # the end of the stream: what is left shows the last frame
        if prev is None:
            break
        clip.frames += [prev[0]()] * (num_frames - len(clip.frames))
        yield Window(clip.start, clip.start + span, np.stack(clip.frames), prev[1])


def video_file_windows(source: Any, *, num_frames: int, step: int | None, stride: float,
                       allow_partial: bool = False) -> Iterator[Window]:
    """Clips every ``stride`` seconds over a whole video file (see :func:`clip_windows`), one forward decode."""
    name = source_name(source)
    container = _open(source)
    try:
        frames = video_frames(container, name)
        fps = stream_fps(container)
        last = [0.0]

        def checked() -> Iterator[tuple[float, Callable[[], np.ndarray], float]]:
            try:
                for item in frames:
                    last[0] = item[0]
                    yield item
            except av.FFmpegError as err:
                if not allow_partial:
                    raise VideoDecodeError(f"cannot decode video '{name}' after {last[0]:.3f}s: damaged or "
                                           f"truncated (FFmpeg: {err}); pass allow_partial=True to keep the "
                                           "windows before the damage") from err
        yield from clip_windows(checked(), num_frames=num_frames, step=step, stride=stride, fps=fps)
    finally:
        container.close()


def _rgb_once(frame: av.VideoFrame) -> Callable[[], np.ndarray]:
    cache: list[np.ndarray] = []

    def rgb() -> np.ndarray:
        if not cache:
            w, h = frame.width, frame.height
            if w * h > MAX_PIXELS:  # as VideoReader: huge frames scaled down inside FFmpeg
                s = math.sqrt(MAX_PIXELS / (w * h))
                cache.append(frame.to_ndarray(format="rgb24", width=max(2, int(w * s) // 2 * 2),
                                              height=max(2, int(h * s) // 2 * 2)))
            else:
                cache.append(frame.to_ndarray(format="rgb24"))
        return cache[0]
    return rgb


def stream_fps(container: av.container.InputContainer) -> float:
    """The first video stream's frame rate (``_DEFAULT_FPS`` when it declares none)."""
    s = container.streams.video[0]
    rate = s.average_rate or s.guessed_rate or s.base_rate
    fps = float(rate) if rate else 0.0
    return fps if math.isfinite(fps) and fps > 0 else _DEFAULT_FPS


def video_frames(container: av.container.InputContainer, name: str, *, offset: float = 0.0,
                 live: bool = False) -> Iterator[tuple[float, Callable[[], np.ndarray], float]]:
    """``(seconds, rgb getter, arrival)`` of each decoded frame: seconds from the stream's start time (``live``:
    from its first frame, as a live sender's clock starts anywhere) plus ``offset``. Decoder and demuxer
    errors propagate (the caller decides between damage, a dropped connection and the end of a growing
    file)."""
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        raise VideoDecodeError(f"cannot read video '{name}': it has no video stream")
    stream = streams[0]
    stream.thread_type = "AUTO"
    zero = None
    if not live and stream.start_time is not None and stream.time_base:
        zero = float(stream.start_time * stream.time_base)
    prev = -math.inf
    fps = stream_fps(container)

    def decoded(frames: Iterable[av.VideoFrame]) -> Iterator[tuple[float, Callable[[], np.ndarray], float]]:
        nonlocal zero, prev
        for frame in frames:
            if frame.pts is not None and frame.time_base is not None:
                t = float(frame.pts * frame.time_base)
                if zero is None:
                    zero = t
                t -= zero
            else:  # no timestamp: the nominal rate after the previous frame
                t = prev + 1.0 / fps if math.isfinite(prev) else 0.0
            prev = t
            yield max(t, 0.0) + offset, _rgb_once(frame), time.monotonic()

    try:
        for packet in container.demux(stream):
            yield from decoded(packet.decode())
    except (av.FFmpegError, OSError, TimeoutError):
        if live:  # a drop or a stall (UDP's only end): the frames the decoder still holds were received
            try:
                flushed = stream.codec_context.decode(None)
            except av.FFmpegError:
                flushed = []
            yield from decoded(flushed)
        raise


def audio_chunks(container: av.container.InputContainer, name: str, rate: int) -> Iterator[tuple[np.ndarray, float]]:
    """``(mono float32 samples at rate, arrival)`` of the first audio stream, as it decodes: channels mixed
    by their mean and resampled by soxr, as ``load_audio`` does for files."""
    if not container.streams.audio:
        kinds = sorted({str(s.type) for s in container.streams}) or ["none"]
        raise AudioDecodeError(f"cannot decode audio of {name}: it has no audio stream (streams: {', '.join(kinds)})")
    stream = container.streams.audio[0]
    convert = resample = None

    def converted(frames: Iterable[av.AudioFrame]) -> Iterator[tuple[np.ndarray, float]]:
        nonlocal convert, resample
        for frame in frames:
            if convert is None:  # the first frame fixes the layout and rate (as AudioDecoder)
                convert = av.AudioResampler(format="fltp", layout=frame.layout, rate=frame.sample_rate)
                if frame.sample_rate != rate:
                    resample = soxr.ResampleStream(frame.sample_rate, rate, 1, dtype="float32", quality="HQ")
            for out in convert.resample(frame):
                x = out.to_ndarray()
                x = x[0] if x.shape[0] == 1 else x.mean(axis=0, dtype=np.float64).astype(np.float32)
                x = np.ascontiguousarray(x, dtype=np.float32)
                yield (resample.resample_chunk(x) if resample is not None else x), time.monotonic()

    try:
        for packet in container.demux(stream):
            yield from converted(packet.decode())
    except (av.FFmpegError, OSError, TimeoutError):  # a drop or a stall: what the decoder holds was received
        try:
            flushed = stream.codec_context.decode(None)
        except av.FFmpegError:
            flushed = []
        yield from converted(flushed)
        if resample is not None:
            yield resample.resample_chunk(np.zeros(0, np.float32), last=True), time.monotonic()
        raise
    if resample is not None:
        yield resample.resample_chunk(np.zeros(0, np.float32), last=True), time.monotonic()
