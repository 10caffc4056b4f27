"""Audio in: decode files and arrays to float32 mono at the rate a model needs.

Files go through libsndfile (soundfile: wav, flac, ogg/vorbis/opus, mp3, aiff, ...) and, on any
libsndfile failure, FFmpeg (PyAV: m4a/aac, ac3, wavpack, Ogg-FLAC, the audio track of mp4/mkv/webm/
mov, ...); see ``audio_decode`` for the policy. Channels are mixed down by their mean and the result
is resampled with soxr (HQ), so any file at any rate is accepted: a 44.1 kHz stereo file is valid
input for a 16 kHz model.

Decoding, mixdown and resampling run chunk by chunk into one output buffer, so memory peaks near
the size of the result (an hour of 48 kHz stereo to 16 kHz mono: ~230 MB), and ``AudioWindows``
(``audio/windows.py``, re-exported here) streams fixed windows of arbitrarily long audio in memory
bounded by one window.

A damaged or truncated stream raises unless ``allow_partial=True``, which returns the audio before
the damage; ``return_info=True`` says whether that happened (``AudioInfo.partial``).

Errors are ``AudioDecodeError`` (a ``ValueError``) naming the file and the cause, or a ``ValueError``
naming the argument for bad arrays.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import soxr
import torch

from .audio_decode import AudioDecodeError, AudioDecoder, AudioInfo
from ..time_range import time_range

__all__ = [
    "AudioDecodeError", "AudioInfo", "AudioSource", "decode_audio", "load_audio", "resample",
    "to_mono",
]

AudioSource = Union[str, os.PathLike, bytes, BinaryIO, np.ndarray, torch.Tensor]

# More channels than this on the short axis of a 2-D array is taken as a layout mistake, not audio.
_MAX_CHANNELS = 64


def _name(source: object) -> str:
    """A printable name for error messages: the path, or the file object's name, or its type."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    name = getattr(source, "name", None)
    return repr(name) if isinstance(name, str) else f"<{type(source).__name__}>"


# ----------------------------------------------------------------------------------------------
# arrays


def to_mono(audio: np.ndarray, channel_axis: int | None = None, *, arg: str = "audio") -> np.ndarray:
    """Mix a (samples,), (channels, samples) or (samples, channels) array down to (samples,).

    The mixdown is the mean of the channels (no -3 dB pan law), as transformers' pipelines do.
    ``channel_axis=None`` takes the shorter axis of a 2-D array as the channel axis.
    """
    if audio.ndim == 1:
        return audio
    if audio.ndim != 2:
        raise ValueError(
            f"{arg} must be 1-D (samples,) or 2-D (channels, samples)/(samples, channels), "
            f"got shape {tuple(audio.shape)}"
        )
    if channel_axis is None:
        channel_axis = int(np.argmin(audio.shape))
        if audio.shape[channel_axis] > _MAX_CHANNELS:
            raise ValueError(
                f"{arg} has shape {tuple(audio.shape)}: no axis looks like channels (<= {_MAX_CHANNELS}); "
                "pass channel_axis, or a list of 1-D waveforms for a batch"
            )
    return audio.mean(axis=channel_axis, dtype=np.float64).astype(np.float32)


def _as_float32(audio: np.ndarray, arg: str) -> np.ndarray:
    """Float arrays are cast; integer PCM is scaled to [-1, 1) the way soundfile reads it."""
    if audio.dtype == np.bool_ or np.iscomplexobj(audio):
        raise ValueError(f"{arg} must hold real samples, got dtype {audio.dtype}")
    if np.issubdtype(audio.dtype, np.integer):
        info = np.iinfo(audio.dtype)
        if info.min == 0:  # unsigned PCM (8-bit wav) is offset binary
            mid = (info.max + 1) // 2
            return ((audio.astype(np.float64) - mid) / mid).astype(np.float32)
        return (audio.astype(np.float64) / -float(info.min)).astype(np.float32)
    return audio.astype(np.float32, copy=False)


def _check_samples(audio: np.ndarray, what: str) -> None:
    """Reject empty or non-finite audio; ``what`` names the argument or the file."""
    if audio.size == 0:
        raise ValueError(f"{what} holds no audio samples (empty, shape {tuple(audio.shape)})")
    finite = np.isfinite(audio)
    if not finite.all():
        bad = int(audio.size - finite.sum())
        first = int(np.flatnonzero(~finite.reshape(-1))[0])
        raise ValueError(f"{what} has {bad} non-finite (NaN/inf) sample(s), the first at flat index {first}")


def resample(audio: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample (samples,) or (samples, channels) float32 audio with soxr's HQ filter."""
    for arg, rate in (("orig_rate", orig_rate), ("target_rate", target_rate)):
        _check_rate(arg, rate)
    if orig_rate == target_rate:
        return audio
    out = soxr.resample(audio, int(orig_rate), int(target_rate), quality="HQ")
    return np.asarray(out, dtype=np.float32)


# ----------------------------------------------------------------------------------------------
# files, chunk by chunk

# Output capacity when the header gives no length (grown by half when exceeded).
_DEFAULT_SECONDS = 30


@contextmanager
def _opened(source: str | os.PathLike | bytes | BinaryIO) -> Iterator[tuple[BinaryIO, str]]:
    """A binary file object and a printable name for any file-like source."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():  # also refuses FIFOs and devices, which would block or never end
            raise FileNotFoundError(f"audio file {_name(source)} does not exist or is not a file")
        with open(path, "rb") as fh:
            yield fh, _name(source)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        yield io.BytesIO(bytes(source)), "<bytes>"
    elif hasattr(source, "read") and hasattr(source, "seek"):
        yield source, _name(source)
    else:
        raise ValueError(f"source must be a path, bytes or a seekable binary file object, got {type(source).__name__}")


class _FiniteCheck:
    """Counts non-finite samples over a stream of ``(frames, channels)`` chunks (flat indices as in the
    whole ``(frames, channels)`` array)."""

    def __init__(self) -> None:
        self.bad, self.first, self.offset = 0, -1, 0

    def __call__(self, chunk: np.ndarray) -> None:
        finite = np.isfinite(chunk)
        if not finite.all():
            bad = np.flatnonzero(~finite.reshape(-1))
            self.bad += len(bad)
            if self.first < 0:
                self.first = self.offset + int(bad[0])
        self.offset += chunk.size

    def raise_if_bad(self, what: str) -> None:
        if self.bad:
            raise AudioDecodeError(
                f"{what} has {self.bad} non-finite (NaN/inf) sample(s), the first at flat index {self.first}"
            )


def _converted(dec: AudioDecoder, target_rate: int | None, mono: bool, check: _FiniteCheck) -> Iterator[np.ndarray]:
    """The decoder's chunks, mixed to mono (channel mean) and resampled to ``target_rate`` as they come."""
    stream = None
    if target_rate is not None and target_rate != dec.rate:
        # Same filter as soxr.resample (HQ); chunked output is identical to a one-shot call.
        channels = 1 if mono else dec.channels
        stream = soxr.ResampleStream(dec.rate, int(target_rate), channels, dtype="float32", quality="HQ")
    for chunk in dec.chunks():
        check(chunk)
        if mono:
            x = chunk[:, 0] if chunk.shape[1] == 1 else chunk.mean(axis=1, dtype=np.float64).astype(np.float32)
        else:
            x = chunk
        x = np.ascontiguousarray(x, dtype=np.float32)
        yield stream.resample_chunk(x) if stream is not None else x
    if stream is not None:
        yield stream.resample_chunk(np.zeros((0,) if mono else (0, dec.channels), np.float32), last=True)


def _collect(chunks: Iterator[np.ndarray], capacity: int, tail: tuple[int, ...]) -> np.ndarray:
    """Concatenate chunks into one array preallocated to ``capacity`` rows (grown by half if short)."""
    out = np.empty((max(capacity, 1), *tail), np.float32)
    n = 0
    for x in chunks:
        if n + len(x) > len(out):
            grown = np.empty((max(n + len(x), len(out) + len(out) // 2), *tail), np.float32)
            grown[:n] = out[:n]
            out = grown
        out[n : n + len(x)] = x
        n += len(x)
    # A short slice is copied so the spare capacity is freed; a nearly full one is kept as a view.
    return out[:n].copy() if n < len(out) - len(out) // 8 else out[:n]


def _decode_file(
    source: str | os.PathLike | bytes | BinaryIO,
    target_rate: int | None,
    mono: bool,
    allow_partial: bool,
    sampling_rate: int | None = None,
) -> tuple[np.ndarray, int, AudioInfo]:
    """Decode, (mix down,) resample in chunks; returns ``(audio, rate, info)``."""
    if target_rate is not None:
        _check_rate("target_rate", target_rate)
    with _opened(source) as (fh, name):
        dec = AudioDecoder(fh, name)
        try:
            what = f"audio file {name}"
            if sampling_rate is not None and sampling_rate != dec.rate:
                raise ValueError(f"sampling_rate={sampling_rate} was given, but {what} is at {dec.rate} Hz")
            rate = dec.rate if target_rate is None else int(target_rate)
            # Preallocate from the header's length, but never trust a huge one beyond what the file's
            # bytes could plausibly hold (np.empty only reserves; untouched pages cost nothing).
            default = _DEFAULT_SECONDS * dec.rate
            frames = min(dec.estimated_frames or default, 256 * dec.size + default)
            check = _FiniteCheck()
            audio = _collect(_converted(dec, target_rate, mono, check), math.ceil(frames * rate / dec.rate) + 64,
                             () if mono else (dec.channels,))
        finally:
            dec.close()
        info = dec.finish(allow_partial)
        check.raise_if_bad(what)
    if audio.size == 0:  # a handful of samples can resample to none
        raise ValueError(
            f"{what} is too short: {info.num_frames} samples at {info.sample_rate} Hz resample to none at {rate} Hz"
        )
    return audio, rate, info


def decode_audio(
    source: str | os.PathLike | bytes | BinaryIO, *, allow_partial: bool = False, return_info: bool = False
) -> tuple[np.ndarray, int] | tuple[np.ndarray, int, AudioInfo]:
    """Decode a file, bytes or binary file object to ``(samples, channels)`` float32 and its rate.

    libsndfile first (exact, fast, no FFmpeg start-up), then FFmpeg on any libsndfile failure.
    ``allow_partial``/``return_info`` as in ``load_audio``; with ``return_info`` the result is
    ``(samples, rate, info)``.
    """
    data, rate, info = _decode_file(source, None, False, allow_partial)
    return (data, rate, info) if return_info else (data, rate)


def _check_rate(arg: str, rate: object) -> None:
    if not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise ValueError(f"{arg} must be a positive integer rate in Hz, got {rate!r}")


# ----------------------------------------------------------------------------------------------
# the one entry point


def _array_audio(
    source: np.ndarray | torch.Tensor, sampling_rate: int | None, channel_axis: int | None
) -> tuple[np.ndarray, AudioInfo]:
    """A validated float32 mono array and its info (an array is never partial)."""
    if sampling_rate is None:
        raise ValueError("sampling_rate is required with array input: pass the rate of `source` in Hz")
    if isinstance(source, torch.Tensor):
        source = source.detach().cpu().numpy()
    audio = to_mono(_as_float32(source, "source"), channel_axis, arg="source")  # validates the shape
    axis = int(np.argmin(source.shape)) if channel_axis is None else channel_axis
    channels = 1 if source.ndim == 1 else int(source.shape[axis])
    _check_samples(audio, "source")
    info = AudioInfo(source="source", sample_rate=int(sampling_rate), channels=channels, decoder="array",
                     container="array", codec=str(source.dtype), num_frames=len(audio))
    return audio, info


def load_audio(
    source: AudioSource,
    target_rate: int | None = 16000,
    *,
    sampling_rate: int | None = None,
    channel_axis: int | None = None,
    return_numpy: bool = False,
    allow_partial: bool = False,
    return_info: bool = False,
) -> torch.Tensor | np.ndarray | tuple[torch.Tensor | np.ndarray, AudioInfo]:
    """Load any audio as float32 mono ``(samples,)`` at ``target_rate``.

    Args:
        source: a path, bytes or binary file object (any format libsndfile or FFmpeg decodes,
            including the audio track of a video), or a numpy array / tensor of samples shaped
            ``(samples,)``, ``(channels, samples)`` or ``(samples, channels)``. Integer arrays are
            PCM and scaled to [-1, 1).
        target_rate: the rate the caller needs, in Hz; None keeps the source's rate.
        sampling_rate: the rate of an array or tensor ``source`` (required for those; files carry
            their own and passing a different one is an error).
        channel_axis: the channel axis of a 2-D array; None takes the shorter axis.
        return_numpy: return an ``np.ndarray`` instead of a tensor.
        allow_partial: a file whose stream stops early (decoder/demuxer error, shorter than an exact
            header length) gives the audio before the damage instead of raising, as video_io does.
        return_info: also return an ``AudioInfo`` (decoder, source rate and channels, decoded length,
            ``partial`` and the ``damage`` cause), i.e. ``(audio, info)``.

    A :class:`~mediaformers.processors.time_range.ClipPath` source gives only the samples of its
    ``[start, end)`` seconds (the info still describes the whole file).

    Returns:
        ``(samples,)`` float32 mono. Tensors come back on the device they came from.
    """
    device = source.device if isinstance(source, torch.Tensor) else torch.device("cpu")
    if isinstance(source, (np.ndarray, torch.Tensor)):
        audio, info = _array_audio(source, sampling_rate, channel_axis)
        if target_rate is not None:
            n_in = len(audio)
            audio = resample(audio, info.sample_rate, target_rate)
            if audio.size == 0:  # a handful of samples can resample to none
                raise ValueError(
                    f"source is too short: {n_in} samples at {info.sample_rate} Hz resample to none at {target_rate} Hz"
                )
    else:
        audio, rate, info = _decode_file(source, target_rate, True, allow_partial, sampling_rate)
        span = time_range(source)
        if span is not None:
            audio = _in_range(audio, rate, *span, _name(source))
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    out = audio if return_numpy else torch.from_numpy(audio).to(device)
    return (out, info) if return_info else out


def _in_range(audio: np.ndarray, rate: int, start: float, end: float | None, name: str) -> np.ndarray:
    """The samples of ``[start, end)`` seconds; a range past the end of the audio is an error."""
    first = round(start * rate)
    stop = len(audio) if end is None else min(len(audio), round(end * rate))
    if first >= stop:
        raise ValueError(f"audio file {name}: no audio between {start}s and {end}s (it lasts {len(audio) / rate:.3f}s)")
    return audio[first:stop]

