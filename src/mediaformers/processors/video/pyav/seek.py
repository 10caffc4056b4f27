"""Seek policy for the PyAV backend: when a seek beats decoding on, where keyframes are, and checked
seeks (a seek whose first frame lands after its target is retried further back, a bounded number of
times, then the file is decoded from the start)."""

from __future__ import annotations

import bisect
import math
import os

import av

from ..backend import VideoDecodeError
from .container import _SEEKABLE, _open, _video_streams
from .state import ReaderState

# Without a keyframe index, a seek is tried only for a target at least this far ahead.
_NO_INDEX_SEEK_S = 4.0
# An index whose last keyframe lies further than this (or a quarter of the file) before the end was
# built from the packets read so far, not loaded from the file: the keyframes are read from the packets.
_INDEX_REACH_S = 10.0
# A seek pays off when it skips more than this many frames of decoding.
_SEEK_COST_FRAMES = 4
# A seek whose first frame lands after the target is retried this many times, each time further back,
# before decoding from the start.
_SEEK_RETRIES = 4


def _index(stream) -> tuple[list, list[float]]:
    """The demuxer's index entries of ``stream`` and its sorted keyframe times (absolute seconds)."""
    tb = float(stream.time_base)
    try:
        entries = list(stream.index_entries)
        return entries, sorted(e.timestamp * tb for e in entries if e.is_keyframe)
    except (TypeError, AttributeError):
        return [], []


def _has_cues(path) -> bool:
    """Whether a Matroska file's SeekHead points at Cues (SeekID 0x53AB, 4 bytes, Cues' ID 0x1C53BB6B),
    read from the head of the file: muxers that write Cues (FFmpeg, mkvmerge) list them there."""
    with open(path, "rb") as f:
        return b"\x53\xab\x84\x1c\x53\xbb\x6b" in f.read(1 << 16)


class SeekPolicy(ReaderState):
    """A mixin of ``VideoReader``: keyframe index, seek-or-decode decisions, checked seeks."""

    def _seek(self, seconds_abs: float) -> None:
        """Seek to the keyframe at or before ``seconds_abs`` (absolute stream time) and drop decoder state."""
        offset = math.floor(seconds_abs / self._stream.time_base)
        self._fresh = False
        try:
            self._container.seek(offset, backward=True, any_frame=False, stream=self._stream)
        except av.FFmpegError as e:
            raise VideoDecodeError(f"cannot seek in video '{self.name}' (FFmpeg: {e})") from e

    def _keyframe_times(self) -> list[float] | None:
        """Sorted keyframe times (relative seconds) from the demuxer's index, or from the packets when the
        file has none (``_scan_keyframes``).

        A hint for planning only: index times can be decode times (B-frames) or point past the frame,
        so every seek is checked against the frame it actually yields.
        """
        if not hasattr(self, "_keyframes"):
            entries, times = _index(self._stream)
            if self._partial_index(entries, times) and self._can_seek() and isinstance(self._source, (str, os.PathLike)):
                times = self._keyframes_from_file()
            self._keyframes = [t - times[0] for t in times] if len(times) > 1 else None
        return self._keyframes

    def _keyframes_from_file(self) -> list[float]:
        """The whole file's keyframes (absolute seconds). Matroska parses its Cues only at the first seek,
        so one seek in a container of our own loads them; files without an index (Matroska without Cues,
        FLV without keyframe metadata) have their packets read (``_scan_keyframes``)."""
        if self._format == "matroska" and _has_cues(self._source):
            container = _open(self._source)
            try:
                stream = _video_streams(container)[0]
                try:
                    container.seek(0, stream=stream)
                except av.FFmpegError:
                    pass
                times = _index(stream)[1]
            finally:
                container.close()
            if len(times) > 1:
                return times
        return self._scan_keyframes()

    def _partial_index(self, entries: list, times: list[float]) -> bool:
        """Whether the demuxer's index lacks most of the file: only the entries the reads so far added
        (Matroska before its first seek or without Cues, FLV without keyframe metadata), as opposed to
        MP4/MOV sample tables (always whole) or an index reaching near the stated end."""
        if self._format == "mov":
            return False
        if self._format == "matroska" or len(entries) <= 1:  # Matroska: Cues parsed at the first seek
            return True
        duration = self.metadata.duration
        if duration is None:  # muxed to a stream, so no Cues either (and no duration)
            return True
        last = times[-1] - self.metadata.start_time if times else 0.0
        return last < duration - max(_INDEX_REACH_S, 0.25 * duration)

    def _scan_keyframes(self) -> list[float]:
        """Keyframe times (absolute seconds) from the packets' key flags, by demuxing only: the index of a
        file muxed without one (WebM/MKV without Cues, FLV without keyframe metadata). Demuxing is cheap
        next to decoding, and without it every sparse request decodes the whole file. Bounded by the
        file (the demuxer ends), in a container of its own so the reader's position is untouched."""
        times: list[float] = []
        container = _open(self._source)
        try:
            stream = _video_streams(container)[0]
            tb = float(stream.time_base)
            for packet in container.demux(stream):
                if packet.is_keyframe and packet.pts is not None:
                    times.append(packet.pts * tb)
        except av.FFmpegError:
            pass  # a cut file: the keyframes before the cut
        finally:
            container.close()
        return sorted(times)

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
        """A ``(frame, seconds)`` iterator positioned so its first frame is at or before ``target``, and
        that first pair (None at end of stream).

        Seeks to the keyframe before ``target`` and checks the frame it lands on; a seek that lands
        after the target (or nowhere), or on a frame the decoder reports as damaged (an IDR that cannot be
        decoded alone: High 4:4:4's "top block unavailable"; a corrupt keyframe a forward decode conceals
        from the frame before), is retried further back, then the file is decoded from the start.
        """
        keyframes = self._keyframe_times()
        near = (target < keyframes[1] - 1e-6) if keyframes is not None else target <= _NO_INDEX_SEEK_S
        if self._can_seek() and not near:
            back = 0.0
            for _ in range(_SEEK_RETRIES):
                self._seek(self.metadata.start_time + max(0.0, target - back))
                frames = self._timed(self._frames())
                first = next(frames, None)
                if first is not None:
                    t = first[1]
                    if t <= target + 1e-6 and not first[0].is_corrupt:
                        return frames, first
                    if t <= target + 1e-6:  # the decoder concealed errors: land before this keyframe
                        back = max(2.0 * back, target - t + 1e-3)
                    else:
                        back = max(2.0 * back, t - target + 1.0)
                else:
                    back = max(2.0 * back, 1.0)
                if target - back <= 0:
                    break
        self._reopen("SLICE" if self._seeking else None)
        frames = self._timed(self._frames())
        return frames, next(frames, None)

