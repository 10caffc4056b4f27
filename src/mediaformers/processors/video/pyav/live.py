"""Live media in: anything FFmpeg reads as it arrives (RTSP, HTTP, UDP/TCP MPEG-TS, HLS, a file that is
still being written, stdin as ``-``), with bounded waits.

- Every read has a timeout (``read_timeout``): a stream that stalls ends (or reconnects) instead of hanging.
- A network stream that drops or ends is reopened after a wait that doubles from ``backoff`` up to
  ``max_backoff``, at most ``reconnect`` times in a row (a connection that delivers media resets the count).
- Media time runs on across reconnections (it counts the media received, not the sender's clock).
- A growing file is read with FFmpeg's ``follow``: its end is ``read_timeout`` seconds without growth.
- stdin is read by a thread into a small queue, so its reads can time out too.
- ``options`` go to FFmpeg as given (``rtsp_transport=tcp``, ``fifo_size``, ...) and win over ours;
  ``format`` names FFmpeg's input format, needed for capture devices (``alsa``, ``x11grab``, ``lavfi``).
- The read timeout reaches every protocol twice: FFmpeg's own (``rw_timeout`` for avio protocols such as
  tcp, udp, http and HLS's segments; ``timeout`` for RTSP, whose sockets are its own) and PyAV's
  interrupt callback around every open and read, which also bounds what those options do not (HLS's
  playlist reloads, RTSP's handshake, a device).
"""
from __future__ import annotations

import math
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import av
import numpy as np

from .option_names import unknown_options
from .windows import audio_chunks, stream_fps, video_frames


def check_seconds(name: str, value: object) -> None:
    """A duration a live option takes: a finite number > 0 (not a bool)."""
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: expected a positive number of seconds, got {value!r}")


@dataclass(frozen=True)
class LiveOptions:
    read_timeout: float = 10.0  # seconds without data before a stream counts as stalled
    reconnect: int = 5  # reopenings in a row after a network stream drops (0: end instead)
    backoff: float = 0.5  # seconds before the first reopening; doubles each time
    max_backoff: float = 8.0  # the longest wait between reopenings
    options: Mapping[str, str] = field(default_factory=dict, hash=False)  # FFmpeg options, e.g. {"rtsp_transport": "tcp"}
    format: str | None = None  # FFmpeg's input format (-f): a capture device's ("alsa"), raw stdin ("s16le")

    def __post_init__(self) -> None:
        for name in ("read_timeout", "backoff", "max_backoff"):
            check_seconds(name, getattr(self, name))
        if not isinstance(self.reconnect, int) or self.reconnect < 0:
            raise ValueError(f"reconnect: expected 0 or more reopenings, got {self.reconnect!r}")
        if not isinstance(self.options, Mapping) or not all(
                isinstance(k, str) and k and isinstance(v, str) for k, v in self.options.items()):
            raise ValueError(f"options: expected FFmpeg options as {{name: value}} strings, got {self.options!r}")
        object.__setattr__(self, "options", dict(self.options))  # a copy: the caller's dict may change later
        unknown = unknown_options(list(self.options))
        if unknown:  # FFmpeg would drop it without a word (ffmpeg itself refuses it)
            raise ValueError(f"options: FFmpeg has no option named {unknown[0]!r} (names: ffmpeg -h "
                             "protocol=udp, -h demuxer=rtsp, -h decoder=h264, ...)")
        if self.format is not None and (self.format not in av.formats_available
                                        or not av.ContainerFormat(self.format).is_input):
            raise ValueError(f"format: expected an input format of this FFmpeg build (such as mpegts, alsa, "
                             f"lavfi), got {self.format!r}")


_PROBE_S = 1.0  # seconds of media FFmpeg analyses when a stream opens


class _TimedPipe:
    """A pipe's bytes through a reader thread, so ``read`` can give up after ``timeout`` seconds (a read
    on the descriptor itself cannot be interrupted). The queue is small: memory stays bounded."""

    def __init__(self, fd: int, timeout: float, name: str) -> None:
        self.timeout, self.name, self._buf = timeout, name, b""
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=16)
        threading.Thread(target=self._pump, args=(fd,), daemon=True, name="mediaformers-stdin").start()

    def _pump(self, fd: int) -> None:
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                chunk = b""
            self._queue.put(chunk)
            if not chunk:
                return

    def read(self, n: int = -1) -> bytes:
        if not self._buf:
            try:
                self._buf = self._queue.get(timeout=self.timeout)
            except queue.Empty:
                raise TimeoutError(f"{self.name}: no data for {self.timeout:g}s") from None
            if not self._buf:
                self._queue.put(b"")  # end of stream stays the end for later reads
                return b""
        n = len(self._buf) if n is None or n < 0 else n
        out, self._buf = self._buf[:n], self._buf[n:]
        return out


def is_network(source: str) -> bool:
    """A URL FFmpeg reads over a network (reopened when it drops), not a file or stdin."""
    return "://" in source and not source.startswith("file:")


# Errors that end one connection: FFmpeg's (a reset, a timeout through the interrupt callback) and a
# timed-out pipe read.
_DROPS = (av.FFmpegError, TimeoutError, OSError)


class LiveSource:
    """An open live source: ``frames()`` (video) or ``chunks(rate)`` (audio) until it ends or is closed.

    ``log`` receives one line per drop, reopening and end (the CLI prints them to stderr).
    ``stdin_fd``: the descriptor ``-`` reads (tests pass a pipe).
    """

    def __init__(self, source: str, options: LiveOptions | None = None, *, log: Callable[[str], None] = print,
                 stdin_fd: int | None = None) -> None:
        if not isinstance(source, str) or not source:
            raise ValueError(f"stream: expected a URL, a file path or '-' (stdin), got {source!r}")
        self.source, self.options, self.log = source, options or LiveOptions(), log
        self._stdin_fd = stdin_fd
        self.reconnections, self._tries = 0, 0
        self.container = self._open_with_retries()
        self._closed = False

    def _open(self) -> av.container.InputContainer:
        t, o = self.options.read_timeout, self.options
        # a short probe: a live stream's first window should not wait for FFmpeg's 5 s of analysis
        opts = {"analyzeduration": str(int(_PROBE_S * 1e6)), "probesize": "1000000"}
        # the open reads _PROBE_S of media, which a live sender sends in as many seconds; and PyAV holds the first
        # read after the open to the open's deadline: with the read timeout alone, --read-timeout 1 on a real-time
        # stream failed its first read ("Immediate exit requested") and every reopening after it
        opening = (t + _PROBE_S, t)
        if self.source == "-":
            fd = sys.stdin.fileno() if self._stdin_fd is None else self._stdin_fd
            return av.open(_TimedPipe(fd, t, "stdin"), "r", format=o.format, options={**opts, **o.options},
                           timeout=opening)
        path = self.source[5:] if self.source.startswith("file:") else self.source
        if not is_network(self.source) and (o.format is None or os.path.isfile(path)):  # else a device's name
            if not os.path.exists(path):
                raise FileNotFoundError(f"stream: no such file {path}")
            if os.path.isdir(path):
                raise ValueError(f"stream: expected a file, URL or '-', got the folder {path}")
            # follow: keep reading at the end of a file being written; rw_timeout (us) ends it when it stops
            opts = {**opts, "follow": "1", "rw_timeout": str(int(t * 1e6))}
            return av.open("file:" + os.path.abspath(path), format=o.format, options={**opts, **o.options},
                           timeout=opening)
        return av.open(self.source, format=o.format, options={**opts, **_timeouts(self.source, t, o.options),
                                                             **o.options}, timeout=opening)

    def _open_with_retries(self) -> av.container.InputContainer:
        delays = _delays(self.options) if is_network(self.source) else iter(())
        while True:
            try:
                return self._open()
            except _DROPS as err:
                if isinstance(err, FileNotFoundError):
                    raise
                delay = next(delays, None)
                why = _why(err, self.options.read_timeout)
                if delay is None:
                    raise ValueError(f"stream: cannot open {self.source} ({why})") from err
                self.log(f"cannot open {self.source} ({why}); retrying in {delay:g}s")
                time.sleep(delay)

    def _reopen(self, err: BaseException | None, got: bool) -> bool:
        """After a connection ended: reopen a network stream (True), or say why it ends (False). At most
        ``reconnect`` tries in a row: only a connection that delivered media resets the count."""
        # a clean end of what declares its end (HLS's #EXT-X-ENDLIST, a length) is the end: reopening replays it
        recording = err is None and (self.container.format.name == "hls" or self.container.duration is not None)
        self.close()
        why = _why(err, self.options.read_timeout) if err is not None else "end of stream"
        if not is_network(self.source):
            if err is not None:
                self.log(f"{self.source}: stopped ({why})")
            return False
        if recording:
            self.log(f"{self.source}: ended (end of the recording)")
            return False
        if got:
            self._tries = 0
        opts = self.options
        while self._tries < opts.reconnect:
            delay = min(opts.backoff * 2 ** self._tries, opts.max_backoff)
            self._tries += 1
            self.log(f"{self.source}: dropped ({why}); reconnecting in {delay:g}s ({self._tries}/{opts.reconnect})")
            time.sleep(delay)
            try:
                self.container, self._closed = self._open(), False
                self.reconnections += 1
                return True
            except _DROPS as again:
                why = _why(again, self.options.read_timeout)
        self.log(f"{self.source}: ended ({why})")
        return False

    def frames(self) -> Iterator[tuple[float, Callable[[], np.ndarray], float]]:
        """Decoded video frames ``(media seconds, rgb getter, arrival)``; seconds run on across reconnections."""
        offset, last = 0.0, 0.0
        while True:
            fps, err, got = self.fps, None, False  # (no video stream: video_frames says so)
            try:
                for t, rgb, arrived in video_frames(self.container, self.source, offset=offset, live=True):
                    got, last = True, t
                    yield t, rgb, arrived
            except _DROPS as e:
                err = e
            if got:
                offset = last + 1.0 / fps
            if not self._reopen(err, got):
                return

    def chunks(self, rate: int) -> Iterator[tuple[np.ndarray, float]]:
        """Mono float32 audio at ``rate`` as it decodes, ``(samples, arrival)``."""
        while True:
            err, got = None, False
            try:
                for item in audio_chunks(self.container, self.source, rate):
                    got = True
                    yield item
            except _DROPS as e:
                err = e
            if not self._reopen(err, got):
                return

    @property
    def fps(self) -> float:
        return stream_fps(self.container) if not self._closed and self.container.streams.video else 25.0

    def close(self) -> None:
        if not self._closed:
            self.container.close()
            self._closed = True


def _timeouts(source: str, t: float, given: Mapping[str, str]) -> dict[str, str]:
    """FFmpeg's own read timeouts for ``source`` (microseconds): avio's ``rw_timeout`` (tcp, udp, http, HLS's
    playlist and segments), RTSP's socket ``timeout``; waiting for an RTSP sender to connect
    (``rtsp_flags=listen``) is bounded too (FFmpeg's default, forever, is refused by its own tcp layer)."""
    us = str(int(t * 1e6))
    out = {"rw_timeout": us}
    if source.split("://", 1)[0].lower() in ("rtsp", "rtsps"):
        out["timeout"] = us
        if "listen" in given.get("rtsp_flags", ""):
            out["listen_timeout"] = str(max(1, math.ceil(t)))  # seconds
    return out


def _delays(o: LiveOptions) -> Iterator[float]:
    """The waits before each reopening: bounded in number and in length."""
    for k in range(o.reconnect):
        yield min(o.backoff * 2 ** k, o.max_backoff)


def _why(err: BaseException, timeout: float | None = None) -> str:
    # the read timeout: through PyAV's interrupt callback, or FFmpeg's own (set to the same seconds), whichever
    # fires first; both mean the same to the user
    if isinstance(err, (av.ExitError, av.error.TimeoutError)):
        return f"no data for {timeout:g}s" if timeout else "no data in time"
    return getattr(err, "strerror", None) or str(err) or type(err).__name__
