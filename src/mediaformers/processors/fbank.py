"""Log-mel features in torch: one batched power-spectrogram core, Kaldi fbank, and AST's extractor.

``power_spectrogram`` frames a padded batch with ``unfold`` (no loop over frames), applies the
per-frame Kaldi steps (DC removal, pre-emphasis) when asked, and takes one ``rfft``. Windows and mel
matrices are built once per (parameters, device, dtype) and cached. Everything runs where the input
is (CPU or GPU).

Parity target: transformers' ``ASTFeatureExtractor`` *without* torchaudio (the numpy path of
``audio_utils.spectrogram``, what runs in this project). How that path differs from its torchaudio
path (``torchaudio.compliance.kaldi.fbank``, what AST was trained with):
  * numpy computes in float64 (storing the FFT as complex64); torchaudio in float32. float32 FFT
    error is relative to the loudest bin, so after the log it shows in near-silent bins: up to
    ~7e-4 after normalisation (a chirp). ``compute_dtype=torch.float32`` here is that same trade.
  * numpy's mel bank covers 257 bins including Nyquist; Kaldi's covers 256 and pads a zero column.
    The last filter ends exactly at Nyquist, so that weight is 0 either way. In both, mel filter 3
    of 128 catches no FFT bin at 16 kHz / 512 points and sits at the floor (transformers warns).
  * clips shorter than one frame (400 samples): torchaudio gives 0 frames (all padding); numpy gives
    0 frames for 240..399 samples and raises below 240. We give 0 frames for all of them.
The FFT runs in float64 by default (parity ~1e-7); everything after it is float32 (per-bin rounding
is harmless there).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import numpy as np
import torch

from ._audio_features import FeatureExtractorFiles, collate_audio

__all__ = [
    "ASTFeatureExtractor",
    "fbank",
    "get_mel_filters",
    "get_window",
    "mel_filter_bank",
    "power_spectrogram",
]

# float32 machine epsilon: Kaldi's floor on mel energies before the log.
KALDI_MEL_FLOOR = 1.192092955078125e-07


# ----------------------------------------------------------------------------------------------
# windows and mel banks (cached per parameters, device, dtype)


@functools.lru_cache(maxsize=32)
def get_window(name: str, length: int, periodic: bool, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A ``(length,)`` window: 'hann' (Kaldi's 'hanning' when not periodic) or 'povey' (hann ** 0.85)."""
    n = length + 1 if periodic else length
    # np.hanning's formula, 0.5 - 0.5 cos(2 pi k / (n - 1)), computed in float64 then cast.
    k = torch.arange(n, dtype=torch.float64)
    win = 0.5 - 0.5 * torch.cos(2 * math.pi * k / (n - 1)) if n > 1 else torch.ones(1, dtype=torch.float64)
    if name == "povey":
        win = win**0.85
    elif name != "hann":
        raise ValueError(f"window must be 'hann' or 'povey', got {name!r}")
    return win[:length].to(device=device, dtype=dtype)


def _hz_to_mel(freq: np.ndarray, scale: str) -> np.ndarray:
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + freq / 700.0)
    if scale == "kaldi":
        return 1127.0 * np.log(1.0 + freq / 700.0)
    # slaney: linear below 1 kHz, logarithmic above
    freq = np.asarray(freq, dtype=np.float64)
    mel = 3.0 * freq / 200.0
    log_region = freq >= 1000.0
    return np.where(log_region, 15.0 + np.log(np.maximum(freq, 1e-10) / 1000.0) * (27.0 / np.log(6.4)), mel)


def _mel_to_hz(mel: np.ndarray, scale: str) -> np.ndarray:
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    if scale == "kaldi":
        return 700.0 * (np.exp(mel / 1127.0) - 1.0)
    hz = 200.0 * mel / 3.0
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), hz)


def mel_filter_bank(
    num_frequency_bins: int,
    num_mel_filters: int,
    min_frequency: float,
    max_frequency: float,
    sampling_rate: int,
    norm: str | None = None,
    mel_scale: str = "htk",
    triangularize_in_mel_space: bool = False,
) -> np.ndarray:
    """Triangular mel filters ``(num_frequency_bins, num_mel_filters)`` in float64.

    Same definition as transformers' ``audio_utils.mel_filter_bank``: ``triangularize_in_mel_space``
    builds the triangles on the mel axis (Kaldi/torchaudio), otherwise on the Hz axis (librosa);
    ``norm='slaney'`` scales each filter to constant area.
    """
    if mel_scale not in ("htk", "kaldi", "slaney"):
        raise ValueError(f"mel_scale must be 'htk', 'kaldi' or 'slaney', got {mel_scale!r}")
    if norm not in (None, "slaney"):
        raise ValueError(f"norm must be None or 'slaney', got {norm!r}")
    if not 0 <= min_frequency <= max_frequency:
        raise ValueError(f"need 0 <= min_frequency <= max_frequency, got {min_frequency}, {max_frequency}")
    mel_edges = np.linspace(_hz_to_mel(min_frequency, mel_scale), _hz_to_mel(max_frequency, mel_scale), num_mel_filters + 2)
    if triangularize_in_mel_space:
        bin_width = sampling_rate / ((num_frequency_bins - 1) * 2)
        bins = _hz_to_mel(bin_width * np.arange(num_frequency_bins), mel_scale)
        edges = mel_edges
    else:
        bins = np.linspace(0, sampling_rate // 2, num_frequency_bins)
        edges = _mel_to_hz(mel_edges, mel_scale)
    widths = np.diff(edges)
    slopes = edges[None, :] - bins[:, None]  # (bins, filters + 2)
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    filters = np.maximum(0.0, np.minimum(down, up))
    if norm == "slaney":
        filters *= 2.0 / (edges[2:] - edges[:-2])[None, :]
    return filters


@functools.lru_cache(maxsize=32)
def get_mel_filters(
    num_frequency_bins: int,
    num_mel_filters: int,
    min_frequency: float,
    max_frequency: float,
    sampling_rate: int,
    norm: str | None,
    mel_scale: str,
    triangularize_in_mel_space: bool,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """``mel_filter_bank`` as a cached tensor on ``device``/``dtype``."""
    bank = mel_filter_bank(
        num_frequency_bins, num_mel_filters, min_frequency, max_frequency, sampling_rate,
        norm, mel_scale, triangularize_in_mel_space,
    )
    return torch.from_numpy(bank).to(device=device, dtype=dtype)


# ----------------------------------------------------------------------------------------------
# the shared power spectrogram


def _reflect_pad(x: torch.Tensor, lengths: torch.Tensor, pad: int) -> torch.Tensor:
    """Reflect-pad each row of ``x (batch, samples)`` by ``pad`` around its own first ``lengths[b]``.

    numpy's 'reflect' (no edge repeat), reflecting again when ``pad`` exceeds the length; one gather,
    so rows of different lengths are padded in one go. Positions past a row's end hold garbage that
    callers drop with the frame count.
    """
    idx = torch.arange(-pad, x.shape[-1] + pad, device=x.device)[None, :]  # (1, samples + 2 pad)
    period = (2 * (lengths - 1)).clamp_min(1)[:, None]
    idx = idx.remainder(period)
    idx = torch.where(idx < lengths[:, None], idx, period - idx).clamp(0, max(x.shape[-1] - 1, 0))
    return torch.gather(x, 1, idx)


def count_frames(lengths: torch.Tensor, frame_length: int, hop_length: int, center: bool = False) -> torch.Tensor:
    """Frames per row: ``1 + (n - frame_length) // hop`` (Kaldi snip_edges), ``1 + n // hop`` centred."""
    if center:
        return torch.where(lengths > 0, torch.div(lengths, hop_length, rounding_mode="floor") + 1, 0)
    return torch.div(lengths - frame_length, hop_length, rounding_mode="floor").add(1).clamp_min(0)


def power_spectrogram(
    waveforms: torch.Tensor,
    lengths: torch.Tensor,
    *,
    window: torch.Tensor,
    hop_length: int,
    fft_length: int,
    center: bool = False,
    remove_dc_offset: bool = False,
    preemphasis: float | None = None,
    max_frames: int | None = None,
    mel_filters: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Power spectrum (or mel power) of every frame of a padded batch; the FFT runs in the window's dtype.

    Kaldi's per-frame steps are linear, so they are applied once to the waveform instead of to every
    (2.5x overlapping) frame: pre-emphasis of a frame equals the waveform's pre-emphasis except at the
    frame's first sample (a correction scaled by ``window[0]``, 0 for Hann/Povey), and removing the
    frame mean before pre-emphasis subtracts ``(1 - p) * mean`` from every sample.

    Args:
        waveforms: ``(batch, samples)``, zero-padded, on any device.
        lengths: ``(batch,)`` valid samples per row.
        window: ``(frame_length,)``; its length is the frame length, its dtype the FFT's (float64
            for parity with numpy references: float32 FFT error is relative to the loudest bin and
            shows after a log in near-silent bins). Everything after the FFT is float32.
        center: reflect-pad ``frame_length // 2`` on both sides of each row (librosa); else frames
            start at sample 0 and stop before the end (Kaldi's snip_edges).
        remove_dc_offset, preemphasis: Kaldi's per-frame steps, in that order, before the window.
        max_frames: compute at most this many frames per row.
        mel_filters: ``(fft_length // 2 + 1, num_mel)`` float32; when given, return
            ``power @ mel_filters`` (saves the caller a pass and the power tensor).

    Returns:
        ``power (batch, frames, fft_length // 2 + 1 or num_mel)`` float32 and ``num_frames (batch,)``;
        frames at or past ``num_frames[b]`` are padding and hold garbage.
    """
    frame_length = window.shape[-1]
    lengths = lengths.to(device=waveforms.device, dtype=torch.long)
    x = waveforms if waveforms.is_floating_point() else waveforms.float()
    if center:
        x = _reflect_pad(x, lengths, frame_length // 2)
    num_frames = count_frames(lengths, frame_length, hop_length, center)
    if max_frames is not None:
        num_frames = num_frames.clamp_max(max_frames)
    total = max(1, int(num_frames.max()))  # >= 1 keeps shapes simple; empty rows are all garbage
    # room for `total` frames of fft_length samples (the window is zero past frame_length)
    need = (total - 1) * hop_length + fft_length
    if x.shape[-1] < need - fft_length + frame_length:
        x = torch.nn.functional.pad(x, (0, need - fft_length + frame_length - x.shape[-1]))
    win = torch.nn.functional.pad(window, (0, fft_length - frame_length))
    x = x.to(window.dtype)  # one cast up front: mixed-dtype ops on the strided frames are slow
    z = x.new_empty(x.shape[0], need)
    n = min(need, x.shape[-1])
    z[:, n:] = 0.0
    if preemphasis:
        z[:, 0] = x[:, 0] * (1.0 - preemphasis)
        torch.sub(x[:, 1:n], x[:, : n - 1], alpha=preemphasis, out=z[:, 1:n])
    else:
        z[:, :n] = x[:, :n]
    frames = z.unfold(-1, fft_length, hop_length) * win  # (batch, total, fft_length)
    starts = torch.arange(total, device=x.device) * hop_length
    if remove_dc_offset:
        # frame means from a float64 running sum: O(samples) instead of O(frames * frame_length)
        csum = torch.nn.functional.pad(x.cumsum(-1, dtype=torch.float64), (1, 0))
        mean = ((csum[:, starts + frame_length] - csum[:, starts]) / frame_length).to(window.dtype)
        frames.addcmul_(mean[..., None], win, value=-(1.0 - (preemphasis or 0.0)))
    if preemphasis and float(window[0]) != 0.0:
        frames[:, 1:, 0] += window[0] * preemphasis * (x[:, starts[1:] - 1] - x[:, starts[1:]])
    # a 2-D batch of rows: MKL's float64 FFT is ~2x faster on it than on the 3-D view
    spec = torch.fft.rfft(frames.reshape(-1, fft_length)).reshape(*frames.shape[:2], -1)
    spec = torch.view_as_real(spec.to(torch.complex64)).square_()  # (batch, total, bins, 2)
    power = spec[..., 0] + spec[..., 1]
    return (power if mel_filters is None else power @ mel_filters), num_frames


def mel_spectrogram(
    waveforms: torch.Tensor,
    lengths: torch.Tensor,
    mel_filters: torch.Tensor,
    *,
    mel_floor: float,
    chunk_frames: int = 1024,
    **stft: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``max(mel_floor, power @ mel_filters)`` for a batch, in chunks of rows to stay cache-sized.

    Args:
        waveforms, lengths: as ``power_spectrogram``; ``stft`` holds its other keyword arguments.
        mel_filters: ``(fft_length // 2 + 1, num_mel)`` float32.

    Returns:
        ``mel (batch, frames, num_mel)`` float32 (garbage past ``num_frames[b]``) and ``num_frames``.
    """
    lengths = lengths.to(device=waveforms.device, dtype=torch.long)
    num_frames = count_frames(lengths, stft["window"].shape[-1], stft["hop_length"], stft.get("center", False))
    if stft.get("max_frames") is not None:
        num_frames = num_frames.clamp_max(stft["max_frames"])
    out = waveforms.new_empty(waveforms.shape[0], int(num_frames.max()), mel_filters.shape[1], dtype=torch.float32)
    step = max(1, chunk_frames // max(1, out.shape[1]))
    for start in range(0, waveforms.shape[0] if out.shape[1] else 0, step):
        rows = slice(start, start + step)
        chunk_len = int(lengths[rows].max())
        mel, n = power_spectrogram(waveforms[rows, :chunk_len], lengths[rows], mel_filters=mel_filters, **stft)
        out[rows, : mel.shape[1]] = mel[:, : out.shape[1]]
        out[rows, mel.shape[1] :] = mel_floor  # rows of this chunk end early: padding, not garbage
    return out.clamp_min_(mel_floor), num_frames


def as_batch(
    waveforms: torch.Tensor | np.ndarray | Sequence[torch.Tensor | np.ndarray],
    lengths: torch.Tensor | Sequence[int] | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(samples,)``, ``(batch, samples)`` or a list of 1-D waveforms -> padded batch and lengths."""
    if isinstance(waveforms, (list, tuple)):
        if not waveforms:
            raise ValueError("waveforms is an empty list; expected at least one 1-D waveform")
        rows = [torch.as_tensor(w) for w in waveforms]
        for i, row in enumerate(rows):
            if row.ndim != 1:
                raise ValueError(f"waveforms[{i}] must be 1-D (samples,), got shape {tuple(row.shape)}")
        if lengths is not None:
            raise ValueError("lengths is only for a padded (batch, samples) tensor; a list carries its own")
        lengths = [len(r) for r in rows]
        batch = torch.nn.utils.rnn.pad_sequence([r.to(dtype) for r in rows], batch_first=True)
        return batch, torch.tensor(lengths, device=batch.device)
    batch = torch.as_tensor(waveforms)
    if batch.ndim == 1:
        batch = batch[None]
    if batch.ndim != 2:
        raise ValueError(f"waveforms must be (samples,) or (batch, samples), got shape {tuple(batch.shape)}")
    if lengths is None:
        lengths = torch.full((batch.shape[0],), batch.shape[1], device=batch.device)
    lengths = torch.as_tensor(lengths, device=batch.device)
    if lengths.shape != (batch.shape[0],) or (lengths < 0).any() or (lengths > batch.shape[1]).any():
        raise ValueError(
            f"lengths must be ({batch.shape[0]},) values in [0, {batch.shape[1]}], got {lengths.tolist()}"
        )
    return batch.to(dtype), lengths


# ----------------------------------------------------------------------------------------------
# Kaldi fbank


def fbank(
    waveforms: torch.Tensor | np.ndarray | Sequence[torch.Tensor | np.ndarray],
    lengths: torch.Tensor | Sequence[int] | None = None,
    *,
    sample_frequency: int = 16000,
    num_mel_bins: int = 128,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    preemphasis_coefficient: float = 0.97,
    remove_dc_offset: bool = True,
    window_type: str = "hanning",
    max_frames: int | None = None,
    compute_dtype: torch.dtype = torch.float64,
    chunk_frames: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Kaldi log-mel filterbank, batched: torchaudio's ``compliance.kaldi.fbank`` with AST's settings.

    Fixed as AST uses them: ``dither=0``, ``snip_edges=True``, ``use_energy=False``, power spectrum,
    natural log with a float32-epsilon floor, FFT size the next power of two of the frame.

    Args:
        waveforms: ``(samples,)``, ``(batch, samples)`` padded (with ``lengths``), or a list of 1-D
            waveforms; the output lives on their device.
        lengths: ``(batch,)`` valid samples per row of a padded batch.
        frame_length, frame_shift: in milliseconds; high_freq <= 0 counts back from Nyquist.
        max_frames: stop after this many frames (AST truncates to 1024 anyway).
        compute_dtype: float64 matches the numpy reference to ~1e-6; float32 is faster on GPUs.
        chunk_frames: frames per chunk of rows: bounds memory and keeps the work cache-sized.

    Returns:
        ``features (batch, frames, num_mel_bins)`` float32, frames past ``num_frames[b]`` set to 0,
        and ``num_frames (batch,)``.
    """
    batch, lengths = as_batch(waveforms, lengths)
    if window_type not in ("hanning", "povey"):
        raise ValueError(f"window_type must be 'hanning' or 'povey', got {window_type!r}")
    win_len = int(sample_frequency * frame_length * 0.001)
    hop = int(sample_frequency * frame_shift * 0.001)
    n_fft = 1 << (win_len - 1).bit_length()
    high = high_freq if high_freq > 0 else sample_frequency / 2 + high_freq
    device = batch.device
    window = get_window("hann" if window_type == "hanning" else "povey", win_len, False, device, compute_dtype)
    mel = get_mel_filters(n_fft // 2 + 1, num_mel_bins, low_freq, high, sample_frequency, None, "kaldi", True,
                          device, torch.float32)
    feats, num_frames = mel_spectrogram(
        batch, lengths, mel, mel_floor=KALDI_MEL_FLOOR, chunk_frames=chunk_frames, window=window,
        hop_length=hop, fft_length=n_fft, remove_dc_offset=remove_dc_offset,
        preemphasis=preemphasis_coefficient or None, max_frames=max_frames,
    )
    valid = torch.arange(feats.shape[1], device=device)[None, :] < num_frames[:, None]
    return feats.log_().masked_fill_(~valid[..., None], 0.0), num_frames


# ----------------------------------------------------------------------------------------------
# AST's feature extractor


class ASTFeatureExtractor(FeatureExtractorFiles):
    """Audio Spectrogram Transformer input: Kaldi fbank, padded/truncated, normalised.

    Field names and defaults are transformers' (``preprocessor_config.json`` round-trips).
    ``padding_value`` fills frames past the end *before* normalisation (transformers always pads
    with 0 there, the default). ``return_attention_mask`` adds ``attention_mask (batch, max_length)``
    (1 on real frames); transformers keeps the flag but never returns one.
    """

    feature_extractor_type = "ASTFeatureExtractor"
    config_keys = ("feature_size", "sampling_rate", "num_mel_bins", "max_length", "padding_value",
                   "do_normalize", "mean", "std", "return_attention_mask")

    def __init__(
        self,
        feature_size: int = 1,
        sampling_rate: int = 16000,
        num_mel_bins: int = 128,
        max_length: int = 1024,
        padding_value: float = 0.0,
        do_normalize: bool = True,
        mean: float = -4.2677393,
        std: float = 4.5689974,
        return_attention_mask: bool = False,
        **unused: Any,
    ) -> None:
        self.feature_size = feature_size  # transformers' SequenceFeatureExtractor field; unused here
        self.sampling_rate = sampling_rate  # the rate the model was trained at; inputs are resampled to it
        self.num_mel_bins = num_mel_bins  # mel filters = feature width
        self.max_length = max_length  # frames per example after padding/truncation
        self.padding_value = padding_value
        self.do_normalize = do_normalize
        self.mean = mean  # AudioSet statistics of the log-mel features
        self.std = std
        self.return_attention_mask = return_attention_mask

    def __call__(
        self,
        audio: Any,
        sampling_rate: int | None = None,
        *,
        return_tensors: str = "pt",
        device: torch.device | str | None = None,
        compute_dtype: torch.dtype = torch.float64,
    ) -> dict[str, torch.Tensor | np.ndarray]:
        """Features for one clip or a batch.

        Args:
            audio: a path / file object / bytes, a 1-D waveform, a ``(batch, samples)`` array or
                tensor, or a list of any of these (one entry per example).
            sampling_rate: the rate of array input in Hz (default: ``self.sampling_rate``);
                anything else is resampled to ``self.sampling_rate``. Files carry their own rate.
            return_tensors: 'pt' or 'np'.
            device: where to compute; default the input tensor's device, else CPU.

        Returns:
            ``{"input_values": (batch, max_length, num_mel_bins) float32}`` (+ ``attention_mask``).
        """
        if return_tensors not in ("pt", "np"):
            raise ValueError(f"return_tensors must be 'pt' or 'np', got {return_tensors!r}")
        batch, lengths = collate_audio(audio, sampling_rate, self.sampling_rate, device)
        feats, num_frames = fbank(
            batch, lengths, sample_frequency=self.sampling_rate, num_mel_bins=self.num_mel_bins,
            max_frames=self.max_length, compute_dtype=compute_dtype,
        )
        valid = torch.arange(self.max_length, device=feats.device)[None, :] < num_frames[:, None]
        pad = float(self.padding_value)
        if self.do_normalize:  # normalise in place: the (batch, 1024, 128) tensor is written once
            pad = (pad - self.mean) / (self.std * 2)
            feats.sub_(self.mean).div_(self.std * 2)
        values = feats.new_empty((feats.shape[0], self.max_length, self.num_mel_bins))
        values[:, : feats.shape[1]] = feats
        values[:, feats.shape[1]:] = pad
        values.masked_fill_(~valid[..., None], pad)
        out: dict[str, torch.Tensor] = {"input_values": values}
        if self.return_attention_mask:
            out["attention_mask"] = valid.long()
        return {k: v.cpu().numpy() for k, v in out.items()} if return_tensors == "np" else out
