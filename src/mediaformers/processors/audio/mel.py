"""Mel maths in torch: windows, mel filter banks and one batched power/mel-spectrogram core.

``power_spectrogram`` frames a padded batch with ``unfold`` (no loop over frames), applies the
per-frame Kaldi steps (DC removal, pre-emphasis) when asked, and takes one ``rfft``. Windows and mel
matrices are built once per (parameters, device, dtype) and cached. Everything runs where the input
is (CPU or GPU). Kaldi's fbank (fbank.py) and TVLT's log-mel (tvlt_audio.py) are built on it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["as_batch", "count_frames", "get_mel_filters", "get_window", "mel_bands", "mel_filter_bank", "mel_spectrogram",
           "power_spectrogram"]


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


def _hz_to_mel(freq: np.ndarray | float, scale: str) -> np.ndarray:
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
    x, z, num_frames, total = _prepare(waveforms, lengths, window, hop_length, fft_length, center, preemphasis,
                                       max_frames)
    power = _span_power(x, z, 0, total, window, hop_length, fft_length, remove_dc_offset, preemphasis)
    return (power if mel_filters is None else power @ mel_filters), num_frames


def _prepare(waveforms, lengths, window, hop_length, fft_length, center, preemphasis, max_frames):
    """The rows cast to the window's dtype (reflect-padded when centred) ``x``, their pre-emphasis ``z``
    zero-padded to hold every frame's ``fft_length`` samples, ``num_frames`` and the most frames ``total``."""
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
    x = x.to(window.dtype)  # one cast up front: mixed-dtype ops on the strided frames are slow
    z = x.new_empty(x.shape[0], need)
    n = min(need, x.shape[-1])
    z[:, n:] = 0.0
    if preemphasis:
        z[:, 0] = x[:, 0] * (1.0 - preemphasis)
        torch.sub(x[:, 1:n], x[:, : n - 1], alpha=preemphasis, out=z[:, 1:n])
    else:
        z[:, :n] = x[:, :n]
    return x, z, num_frames, total


def _span_power(x, z, first, count, window, hop_length, fft_length, remove_dc_offset, preemphasis):
    """float32 power ``(batch, count, fft_length // 2 + 1)`` of frames ``first .. first + count - 1``
    of ``_prepare``'s rows (so a caller can run a long row in cache-sized spans)."""
    frame_length = window.shape[-1]
    win = _padded_window(window, fft_length)
    begin = first * hop_length
    frames = z[:, begin : begin + (count - 1) * hop_length + fft_length].unfold(-1, fft_length, hop_length) * win
    if remove_dc_offset:
        # frame means as one vectorised reduction over the strided frames (no copy; 10x a running sum)
        mean = x[:, begin : begin + (count - 1) * hop_length + frame_length].unfold(-1, frame_length, hop_length)
        frames.addcmul_(mean.mean(-1)[..., None], win, value=-(1.0 - (preemphasis or 0.0)))
    if preemphasis and float(window[0]) != 0.0:
        skip = 1 if first == 0 else 0  # the row's first sample has no predecessor: z already holds (1 - p) x
        starts = torch.arange(first + skip, first + count, device=x.device) * hop_length
        frames[:, skip:, 0] += window[0] * preemphasis * (x[:, starts - 1] - x[:, starts])
    # a 2-D batch of rows: MKL's float64 FFT is ~2x faster on it than on the 3-D view
    spec = torch.fft.rfft(frames.reshape(-1, fft_length)).reshape(*frames.shape[:2], -1)
    spec = torch.view_as_real(spec.to(torch.complex64)).square_()  # (batch, count, bins, 2)
    return spec[..., 0] + spec[..., 1]


def _padded_window(window: torch.Tensor, fft_length: int) -> torch.Tensor:
    return torch.nn.functional.pad(window, (0, fft_length - window.shape[-1]))


def mel_bands(mel_filters: torch.Tensor, groups: int = 4) -> list[tuple[slice, slice, torch.Tensor]]:
    """The mel matrix as ``groups`` blocks of consecutive filters, each with only the FFT bins where
    one of them is non-zero: ``(filter columns, bin rows, block)``. Triangular filters overlap only
    their neighbours, so the blocks hold ~1/4 of the matrix and ``power[:, bins] @ block`` for each
    gives ``power @ mel_filters`` from the same terms (the dropped ones are exact zeros)."""
    bands = []
    used = mel_filters != 0
    width = mel_filters.shape[1]
    groups = max(1, min(groups, width))
    for g in range(groups):
        cols = slice(g * width // groups, (g + 1) * width // groups)
        rows = used[:, cols].any(1).nonzero()
        lo, hi = (int(rows.min()), int(rows.max()) + 1) if len(rows) else (0, 1)
        bands.append((cols, slice(lo, hi), mel_filters[lo:hi, cols].contiguous()))
    return bands


def mel_spectrogram(
    waveforms: torch.Tensor,
    lengths: torch.Tensor,
    mel_filters: torch.Tensor,
    *,
    mel_floor: float,
    chunk_frames: int = 1024,
    out_frames: int | None = None,
    **stft: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``max(mel_floor, power @ mel_filters)`` for a batch, in chunks of about ``chunk_frames`` frames
    (several short rows, or a span of a long row) so the float64 frames and spectra stay cache-sized.

    Args:
        waveforms, lengths: as ``power_spectrogram``; ``stft`` holds its other keyword arguments.
        mel_filters: ``(fft_length // 2 + 1, num_mel)`` float32.
        out_frames: allocate at least this many frames (the extra ones hold ``mel_floor``), so a
            caller that pads to a fixed length writes into this tensor instead of copying it.

    Returns:
        ``mel (batch, frames, num_mel)`` float32 (garbage past ``num_frames[b]``) and ``num_frames``.
    """
    lengths = lengths.to(device=waveforms.device, dtype=torch.long)
    num_frames = count_frames(lengths, stft["window"].shape[-1], stft["hop_length"], stft.get("center", False))
    if stft.get("max_frames") is not None:
        num_frames = num_frames.clamp_max(stft["max_frames"])
    total = int(num_frames.max())
    out = waveforms.new_empty(waveforms.shape[0], max(total, out_frames or 0), mel_filters.shape[1],
                              dtype=torch.float32)
    bands = mel_bands(mel_filters)
    window, hop, fft_length = stft["window"], stft["hop_length"], stft["fft_length"]
    center, preemphasis = stft.get("center", False), stft.get("preemphasis")
    span = max(1, chunk_frames)  # frames per FFT batch: long rows run in spans, so the float64 stays in cache
    step = max(1, chunk_frames // max(1, total))  # rows per chunk, when rows are short
    for start in range(0, waveforms.shape[0] if total else 0, step):
        rows = slice(start, start + step)
        x, z, _, row_frames = _prepare(waveforms[rows, : int(lengths[rows].max())], lengths[rows], window, hop,
                                       fft_length, center, preemphasis, stft.get("max_frames"))
        for first in range(0, row_frames, span):
            frames = min(span, row_frames - first)
            power = _span_power(x, z, first, frames, window, hop, fft_length, stft.get("remove_dc_offset", False),
                                preemphasis)
            dest = out[rows, first : first + frames]
            if dest.is_contiguous():  # one row, or rows as long as the output: write in place, no copy
                flat, into = power.view(-1, power.shape[-1]), dest.view(-1, dest.shape[-1])
                for cols, bins, block in bands:
                    torch.mm(flat[:, bins], block, out=into[:, cols])
            else:
                dest.copy_(power @ mel_filters)
        out[rows, row_frames:] = mel_floor  # rows of this chunk end early: padding, not garbage
    if not total:
        out.fill_(mel_floor)
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
