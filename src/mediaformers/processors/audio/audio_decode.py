"""Audio files as a stream of decoded chunks: libsndfile first, FFmpeg (PyAV) when it fails.

``AudioDecoder`` yields ``(frames, channels)`` float32 chunks of a file at the file's rate and
records what happened (``AudioInfo``): which decoder ran, how many frames came out, and whether the
stream stopped early (damage or truncation). Callers (``audio_io``) mix, resample and store the
chunks as they come, so memory stays at the size of the result, not of the decoded file.

Policy:
- libsndfile is tried first (exact, fast); ANY failure of it, at open or mid-stream, hands over to
  FFmpeg, which continues from the frame libsndfile reached. Only when FFmpeg cannot get further
  either is the file damaged.
- A stream is *partial* when a decoder or demuxer error stops it, when a WAV is shorter than its
  RIFF header declares, or when it ends well before an exact header length (FLAC STREAMINFO, WAV,
  AIFF, mp4/mov, Matroska, Ogg, WavPack). Lengths that are estimates (MP3, raw AAC/AC3 streams,
  MPEG-TS) are never compared, and the comparison allows a few codec frames of priming/padding.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import av
import numpy as np
import soundfile as sf

# Frames per libsndfile read: ~0.5 MB of float32 stereo, small next to any result worth streaming.
_BLOCK = 65536
# Containers whose audio length in the header is exact (FFmpeg format names). Others (mp3, adts,
# ac3, mpegts, ...) estimate it from the bitrate, so a shortfall there says nothing.
_EXACT_LENGTH_FORMATS = {"flac", "wav", "w64", "aiff", "caf", "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "ogg", "wv"}
# libsndfile formats whose frame count is an estimate.
_ESTIMATED_SNDFILE_FORMATS = {"MP3", "MPEG"}
# libsndfile returns multichannel Ogg (Vorbis, Opus) in Vorbis channel order; FFmpeg and WAV use
# FL FR FC LFE BL BR ...: these permutations give every decoder's output the same order.
_VORBIS_TO_WAV_ORDER = {3: [0, 2, 1], 5: [0, 2, 1, 3, 4], 6: [0, 2, 1, 5, 3, 4], 7: [0, 2, 1, 6, 5, 3, 4],
                        8: [0, 2, 1, 7, 5, 6, 3, 4]}
# Samples per frame of codecs that prime/pad (decoders may drop up to a few of them at each end).
_LOSSY_FRAME = {"VORBIS": 2048, "OPUS": 960, "MPEG_LAYER_III": 1152}


class AudioDecodeError(ValueError):
    """A file or stream could not be decoded to audio; the message names the source and the cause."""


@dataclass
class AudioInfo:
    """What decoding one audio source found. ``partial`` is the flag to state in a record.

    ``num_frames`` counts decoded frames at ``sample_rate`` (one frame = one sample per channel);
    ``expected_frames`` is the header's length where it is exact, else None. ``damage`` says why the
    stream stopped early when ``partial`` (only returned with ``allow_partial=True``).
    """

    source: str
    sample_rate: int
    channels: int
    decoder: str  # "libsndfile", "ffmpeg" or "array"
    container: str
    codec: str
    num_frames: int = 0
    expected_frames: int | None = None
    partial: bool = False
    damage: str | None = None

    @property
    def duration(self) -> float:
        """Seconds decoded."""
        return self.num_frames / self.sample_rate if self.sample_rate else 0.0


def _declared_wav_bytes(head: bytes) -> int | None:
    """The total size a RIFF/WAVE header declares, or None when it is unknown or a streaming sentinel."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    size = int.from_bytes(head[4:8], "little")
    return None if size in (0, 0xFFFFFFFF) else size + 8


def _length_tolerance(frame_size: int, rate: int) -> int:
    """Frames a valid stream may fall short of its header: priming/padding of a few codec frames
    (the decoder drops them, the header may count them) plus 10 ms of container rounding."""
    return 4 * frame_size + rate // 100


class AudioDecoder:
    """Decode one open binary file chunk by chunk. Use ``chunks()`` once, then ``finish()``.

    ``rate``, ``channels`` and ``estimated_frames`` (a sizing hint, maybe an estimate) are known
    after construction; ``info`` is complete after ``finish()``.
    """

    def __init__(self, fh: BinaryIO, name: str) -> None:
        self.fh, self.name = fh, name
        self.start = fh.tell()
        head = fh.read(12)
        fh.seek(0, io.SEEK_END)
        self.size = fh.tell() - self.start
        fh.seek(self.start)
        if self.size <= 0:
            raise AudioDecodeError(f"cannot decode audio file {name}: the file is empty (0 bytes)")
        self.damage: str | None = None
        declared = _declared_wav_bytes(head)
        if declared is not None and self.size < declared - 1:  # 1: writers often omit the pad byte
            # libsndfile and FFmpeg both quietly stop at the end of a short WAV; the RIFF header knows better.
            self.damage = f"truncated WAV, header declares {declared} bytes, file has {self.size}"
        # Any: typed Optional, these would need a None check on every use after open() set them
        self._sf: Any = None
        self._av: Any = None
        self._sf_error: str | None = None
        try:
            self._sf = sf.SoundFile(fh)
        except Exception as err:  # noqa: BLE001 - any libsndfile refusal: FFmpeg gets a try (Ogg-FLAC, m4a, ac3, ...)
            self._sf_error = _sf_message(err)
        if self._sf is not None:
            f = self._sf
            self.decoder, self.rate, self.channels = "libsndfile", f.samplerate, f.channels
            self.container, self.codec = f.format, f.subtype.lower()
            self.estimated_frames: int | None = f.frames if f.frames > 0 else None
            exact = f.format not in _ESTIMATED_SNDFILE_FORMATS and f.frames > 0
            self.expected_frames = f.frames if exact else None
            self.tolerance = _length_tolerance(_LOSSY_FRAME.get(f.subtype, 0), f.samplerate)
        else:
            self._open_ffmpeg()
        self.decoded = 0

    # -- FFmpeg ------------------------------------------------------------------------------
    def _open_ffmpeg(self) -> None:
        self.fh.seek(self.start)
        try:
            container = av.open(self.fh, mode="r", metadata_errors="ignore")
        except av.FFmpegError as err:
            cause = err.strerror or str(err)
            if self._sf_error is None or "not recognised" in self._sf_error.lower():
                raise AudioDecodeError(
                    f"cannot decode audio file {self.name}: unknown format or corrupt file ({cause})"
                ) from err
            raise AudioDecodeError(
                f"cannot decode audio file {self.name}: corrupt or truncated "
                f"(libsndfile: {self._sf_error}; FFmpeg: {cause})"
            ) from err
        if container.format.name == "tty":  # FFmpeg reads any text file as ANSI art: not media
            container.close()
            raise AudioDecodeError(f"cannot decode audio file {self.name}: unknown format or corrupt file (text)")
        if not container.streams.audio:
            kinds: list[str] = sorted({s.type for s in container.streams}) or ["no streams"]
            container.close()
            raise AudioDecodeError(
                f"cannot decode audio file {self.name}: it has no audio stream (streams: {', '.join(kinds)}); "
                "a silent video?"
            )
        self._av = container
        stream = self._stream = container.streams.audio[0]
        ctx = stream.codec_context
        seconds = None
        if stream.duration is not None and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
        elif _tag_seconds(stream.metadata.get("DURATION")) is not None:  # Matroska/WebM per-track tag
            seconds = _tag_seconds(stream.metadata.get("DURATION"))
        elif container.duration is not None and len(container.streams) == 1:
            # The container's duration covers every stream: it is this track's only when alone.
            seconds = container.duration / av.time_base
        self._pending = self._ffmpeg_frames()
        # The first frame fixes the layout everything is converted to (streams may change mid-way).
        first = next(self._pending, None)
        if first is None:
            self.close()
            raise AudioDecodeError(
                f"cannot decode audio file {self.name}: its audio stream decoded to no samples"
                + (f" ({self.damage})" if self.damage else "")
            )
        # The decoder's rate, not the header's (HE-AAC headers give half of it).
        self.rate, self.channels = first.sample_rate, first.layout.nb_channels
        self.decoder, self.container, self.codec = "ffmpeg", container.format.name, ctx.name
        frames = int(round(seconds * self.rate)) if seconds and seconds > 0 else None
        self.estimated_frames = frames
        self.expected_frames = frames if self.container in _EXACT_LENGTH_FORMATS else None
        self.tolerance = _length_tolerance(int(ctx.frame_size or 1152), self.rate)
        # Planar float: FFmpeg neither mixes channels (its matrix is not a plain mean) nor resamples
        # (soxr does that better, in audio_io).
        self._converter = av.AudioResampler(format="fltp", layout=first.layout, rate=first.sample_rate)
        self._first: av.AudioFrame | None = first

    def _ffmpeg_frames(self) -> Iterator[av.AudioFrame]:
        """Decoded frames, packet by packet; a demuxer or decoder error ends the stream as damage."""
        stream = self._stream
        try:
            for packet in self._av.demux(stream):  # finite: one pass over the file, then flush packets
                yield from stream.decode(packet)
        except (av.FFmpegError, ValueError) as err:
            self.damage = self.damage or f"FFmpeg: {getattr(err, 'strerror', None) or err}"

    def _ffmpeg_chunks(self) -> Iterator[np.ndarray]:
        frames = self._pending
        first, self._first = self._first, None
        for frame in ([first] if first is not None else []):
            yield from self._convert(frame)
        for frame in frames:
            yield from self._convert(frame)
        try:
            for out in self._converter.resample(None):
                yield out.to_ndarray().T
        except (av.FFmpegError, ValueError):
            pass  # nothing buffered to flush

    def _convert(self, frame: av.AudioFrame) -> Iterator[np.ndarray]:
        try:
            converted = self._converter.resample(frame)
        except (av.FFmpegError, ValueError) as err:
            self.damage = self.damage or f"FFmpeg: cannot convert a frame ({err})"
            return
        for out in converted:
            yield out.to_ndarray().T

    # -- libsndfile ----------------------------------------------------------------------------
    def _sndfile_chunks(self) -> Iterator[np.ndarray]:
        f = self._sf
        order = _VORBIS_TO_WAV_ORDER.get(f.channels) if f.format == "OGG" else None
        while True:  # each pass reads > 0 frames or stops: bounded by the file
            try:
                block = f.read(_BLOCK, dtype="float32", always_2d=True)
            except Exception as err:  # noqa: BLE001 - any mid-stream failure: FFmpeg continues from here, if it can
                self._sf_error = _sf_message(err)
                yield from self._continue_with_ffmpeg()
                return
            if len(block) == 0:
                return
            yield block if order is None else block[:, order]
            if len(block) < _BLOCK:
                return

    def _continue_with_ffmpeg(self) -> Iterator[np.ndarray]:
        reached, rate, channels = self.decoded, self.rate, self.channels
        self._sf.close()
        self._sf = None
        sf_damage = f"libsndfile: {self._sf_error}"
        try:
            self._open_ffmpeg()
        except AudioDecodeError:
            self.damage = self.damage or sf_damage
            return
        if (self.rate, self.channels) != (rate, channels):
            self.damage = self.damage or f"{sf_damage}; FFmpeg reads {self.channels} channels at {self.rate} Hz"
            self.rate, self.channels = rate, channels
            return
        skip, got = reached, 0
        for chunk in self._ffmpeg_chunks():
            got += len(chunk)
            if skip >= len(chunk):
                skip -= len(chunk)
                continue
            yield chunk[skip:]
            skip = 0
        if got <= reached:  # FFmpeg got no further: libsndfile's error stands
            self.damage = self.damage or sf_damage

    # -- the stream ------------------------------------------------------------------------------
    def chunks(self) -> Iterator[np.ndarray]:
        """``(frames, channels)`` float32 chunks (maybe non-contiguous views), in order."""
        source = self._sndfile_chunks() if self._sf is not None else self._ffmpeg_chunks()
        for chunk in source:
            if len(chunk):
                self.decoded += len(chunk)
                yield chunk

    def finish(self, allow_partial: bool) -> AudioInfo:
        """Close, judge completeness; raise unless complete or ``allow_partial``."""
        self.close()
        expected = self.expected_frames
        if self.damage is None and expected is not None and self.decoded + self.tolerance < expected:
            self.damage = (
                f"the header declares {expected} frames ({expected / self.rate:.3f} s), "
                f"decoded {self.decoded} (truncated?)"
            )
        if self.decoded == 0:
            what = f"{self.container} header without audio data: empty, truncated or corrupt"
            raise AudioDecodeError(
                f"cannot decode audio file {self.name}: no audio samples decoded ({what}"
                + (f"; {self.damage}" if self.damage else "") + ")"
            )
        if self.damage is not None and not allow_partial:
            raise AudioDecodeError(
                f"cannot decode audio file {self.name}: corrupt or truncated after {self.decoded / self.rate:.3f} s "
                f"({self.damage}); pass allow_partial=True to use the audio before the damage"
            )
        return AudioInfo(
            source=self.name, sample_rate=int(self.rate), channels=int(self.channels), decoder=self.decoder,
            container=self.container, codec=self.codec, num_frames=self.decoded,
            expected_frames=self.expected_frames, partial=self.damage is not None, damage=self.damage,
        )

    def close(self) -> None:
        if self._sf is not None:
            self._sf.close()
            self._sf = None
        if self._av is not None:
            self._av.close()
            self._av = None


def _tag_seconds(tag: str | None) -> float | None:
    """Seconds from a Matroska ``DURATION`` tag ("HH:MM:SS.fffffffff"), None if absent or malformed."""
    try:
        h, m, sec = (tag or "").split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return None


def _sf_message(err: Exception) -> str:
    # LibsndfileError's str() starts with "Error opening <the file object's repr>": keep the cause.
    text = getattr(err, "error_string", None) or str(err)
    return " ".join(text.split()) or type(err).__name__
