"""Audio in: decode files and arrays to float32 mono at the rate a model needs.

Files go through libsndfile (soundfile: wav, flac, ogg/vorbis/opus, mp3 with libsndfile >= 1.1,
aiff, ...) and fall back to FFmpeg (PyAV) for everything else, notably the audio track of a video
container (mp4, mkv, webm, mov). Channels are mixed down by their mean and the result is resampled
with soxr (HQ), so any file at any rate is accepted: a 44.1 kHz stereo file is valid input for a
16 kHz model.

Errors are ``AudioDecodeError`` (a ``ValueError``) naming the file and the cause, or a ``ValueError``
naming the argument for bad arrays.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import av
import numpy as np
import soundfile as sf
import soxr
import torch

__all__ = ["AudioDecodeError", "AudioSource", "decode_audio", "load_audio", "resample", "to_mono"]

AudioSource = Union[str, os.PathLike, bytes, BinaryIO, np.ndarray, torch.Tensor]

# More channels than this on the short axis of a 2-D array is taken as a layout mistake, not audio.
_MAX_CHANNELS = 64


class AudioDecodeError(ValueError):
    """A file or stream could not be decoded to audio; the message names the source and the cause."""


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
        if not isinstance(rate, (int, np.integer)) or rate <= 0:
            raise ValueError(f"{arg} must be a positive integer rate in Hz, got {rate!r}")
    if orig_rate == target_rate:
        return audio
    out = soxr.resample(audio, int(orig_rate), int(target_rate), quality="HQ")
    return np.asarray(out, dtype=np.float32)


# ----------------------------------------------------------------------------------------------
# files


def _declared_wav_bytes(head: bytes) -> int | None:
    """The total size a RIFF/WAVE header declares, or None when it is unknown or a streaming sentinel."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    size = int.from_bytes(head[4:8], "little")
    return None if size in (0, 0xFFFFFFFF) else size + 8


def _read_soundfile(fh: BinaryIO, name: str) -> tuple[np.ndarray, int] | None:
    """Decode with libsndfile; None when it does not know the format (so FFmpeg gets a try)."""
    start = fh.tell()
    head = fh.read(12)
    fh.seek(0, io.SEEK_END)
    actual = fh.tell() - start
    fh.seek(start)
    try:
        with sf.SoundFile(fh) as f:
            declared_frames, fmt, rate = f.frames, f.format, f.samplerate
            data = f.read(dtype="float32", always_2d=True)
    except sf.LibsndfileError as err:
        msg = str(err)
        if "Format not recognised" in msg or err.code == 1:  # 1: SF_ERR_UNRECOGNISED_FORMAT
            fh.seek(start)
            return None
        raise AudioDecodeError(f"cannot decode audio file {name}: corrupt or truncated ({msg.strip()})") from err
    except (RuntimeError, sf.SoundFileError) as err:
        raise AudioDecodeError(f"cannot decode audio file {name}: corrupt or truncated ({err})") from err
    if len(data) == 0:
        raise AudioDecodeError(
            f"cannot decode audio file {name}: no audio samples decoded ({fmt} header without audio data: "
            "empty, truncated or corrupt)"
        )
    # libsndfile quietly clips a short WAV to the bytes that are there; the RIFF header knows better.
    declared = _declared_wav_bytes(head)
    if declared is not None and actual < declared:
        raise AudioDecodeError(
            f"cannot decode audio file {name}: truncated WAV, header declares {declared} bytes, file has {actual}"
        )
    if len(data) < declared_frames:
        note = f"audio file {name}: header declares {declared_frames} frames, decoded {len(data)} (truncated?)"
        if fmt == "MP3":  # MP3 frame counts are estimates (Xing/VBR), so only warn
            warnings.warn(note, stacklevel=3)
        else:
            raise AudioDecodeError(f"cannot decode {note}")
    return data, rate


def _read_ffmpeg(fh: BinaryIO, name: str) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of any container FFmpeg knows; returns (samples, channels)."""
    try:
        container = av.open(fh, mode="r")
    except av.FFmpegError as err:
        raise AudioDecodeError(
            f"cannot decode audio file {name}: unknown format or corrupt file ({err.strerror or err})"
        ) from err
    with container:
        if not container.streams.audio:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise AudioDecodeError(
                f"cannot decode audio file {name}: it has no audio stream (streams: {', '.join(kinds)}); "
                "a silent video?"
            )
        stream = container.streams.audio[0]
        # Planar float keeps FFmpeg from mixing channels (its matrix is not a plain mean) or resampling
        # (soxr does that better, below).
        converter = av.AudioResampler(format="fltp")
        chunks: list[np.ndarray] = []
        rate = 0
        try:
            for frame in container.decode(stream):
                rate = frame.sample_rate
                chunks.extend(f.to_ndarray() for f in converter.resample(frame))
            chunks.extend(f.to_ndarray() for f in converter.resample(None))
        except av.FFmpegError as err:
            raise AudioDecodeError(f"cannot decode audio file {name}: corrupt or truncated ({err})") from err
        rate = rate or stream.rate or 0
    if not chunks or rate <= 0:
        raise AudioDecodeError(f"cannot decode audio file {name}: its audio stream decoded to no samples")
    return np.concatenate(chunks, axis=1).T, int(rate)


def decode_audio(source: str | os.PathLike | bytes | BinaryIO) -> tuple[np.ndarray, int]:
    """Decode a file, bytes or binary file object to ``(samples, channels)`` float32 and its rate.

    libsndfile first (exact, fast, no FFmpeg start-up), then FFmpeg for formats it does not know.
    """
    name = _name(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"audio file {name} does not exist or is not a file")
        with open(path, "rb") as fh:
            return _decode_stream(fh, name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode_stream(io.BytesIO(bytes(source)), "<bytes>")
    if hasattr(source, "read") and hasattr(source, "seek"):
        return _decode_stream(source, name)
    raise ValueError(f"source must be a path, bytes or a seekable binary file object, got {type(source).__name__}")


def _decode_stream(fh: BinaryIO, name: str) -> tuple[np.ndarray, int]:
    start = fh.tell()
    fh.seek(0, io.SEEK_END)
    if fh.tell() == start:
        raise AudioDecodeError(f"cannot decode audio file {name}: the file is empty (0 bytes)")
    fh.seek(start)
    decoded = _read_soundfile(fh, name)
    if decoded is None:
        fh.seek(start)
        decoded = _read_ffmpeg(fh, name)
    return decoded


# ----------------------------------------------------------------------------------------------
# the one entry point


def load_audio(
    source: AudioSource,
    target_rate: int | None = 16000,
    *,
    sampling_rate: int | None = None,
    channel_axis: int | None = None,
    return_numpy: bool = False,
) -> torch.Tensor | np.ndarray:
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

    Returns:
        ``(samples,)`` float32 mono. Tensors come back on the device they came from.
    """
    device = source.device if isinstance(source, torch.Tensor) else torch.device("cpu")
    if isinstance(source, (np.ndarray, torch.Tensor)):
        if sampling_rate is None:
            raise ValueError("sampling_rate is required with array input: pass the rate of `source` in Hz")
        if isinstance(source, torch.Tensor):
            source = source.detach().cpu().numpy()
        audio = to_mono(_as_float32(source, "source"), channel_axis, arg="source")
        _check_samples(audio, "source")
        rate, what = int(sampling_rate), "source"
    else:
        data, rate = decode_audio(source)
        what = f"audio file {_name(source)}"
        if sampling_rate is not None and sampling_rate != rate:
            raise ValueError(f"sampling_rate={sampling_rate} was given, but {what} is at {rate} Hz")
        try:
            _check_samples(data, what)
        except ValueError as err:
            raise AudioDecodeError(str(err)) from None
        audio = to_mono(data, channel_axis=1)
    if target_rate is not None:
        n_in = len(audio)
        audio = resample(audio, rate, target_rate)
        if audio.size == 0:  # a handful of samples can resample to none
            raise ValueError(f"{what} is too short: {n_in} samples at {rate} Hz resample to none at {target_rate} Hz")
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if return_numpy:
        return audio
    return torch.from_numpy(audio).to(device)
