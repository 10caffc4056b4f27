"""Kaldi log-mel filterbank (torchaudio's ``compliance.kaldi.fbank`` with AST's settings), batched.

Parity target: transformers' ``ASTFeatureExtractor`` *without* torchaudio (the numpy path of
``audio_utils.spectrogram``, what runs in this project). How that path differs from its torchaudio
path (``torchaudio.compliance.kaldi.fbank``, what AST was trained with):
  * numpy computes in float64 (storing the FFT as complex64); torchaudio in float32. float32 FFT
    error is relative to the frame's energy, so after the log it shows in near-silent mel bins (up
    to ~1e-3 after normalisation on a chirp, depending on the CPU's FFT kernels).
    ``compute_dtype=torch.float32`` here is that same trade.
  * numpy's mel bank covers 257 bins including Nyquist; Kaldi's covers 256 and pads a zero column.
    The last filter ends exactly at Nyquist, so that weight is 0 either way. In both, mel filter 3
    of 128 catches no FFT bin at 16 kHz / 512 points and sits at the floor (transformers warns).
  * clips shorter than one frame (400 samples): torchaudio gives 0 frames (all padding); numpy gives
    0 frames for 240..399 samples and raises below 240. We give 0 frames for all of them.
The FFT runs in float64 by default (parity ~1e-7); everything after it is float32 (per-bin rounding
is harmless there).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .mel import as_batch, count_frames, get_mel_filters, get_window, mel_spectrogram

__all__ = ["KALDI_MEL_FLOOR", "fbank", "kaldi_framing", "kaldi_num_frames"]

# float32 machine epsilon: Kaldi's floor on mel energies before the log.
KALDI_MEL_FLOOR = 1.192092955078125e-07


def kaldi_framing(sample_frequency: int, frame_length: float = 25.0, frame_shift: float = 10.0) -> tuple[int, int, int]:
    """``(window samples, hop samples, FFT size)`` for Kaldi frames given in milliseconds."""
    win_len = int(sample_frequency * frame_length * 0.001)
    hop = int(sample_frequency * frame_shift * 0.001)
    return win_len, hop, 1 << (win_len - 1).bit_length()


def kaldi_num_frames(num_samples: int, sample_frequency: int, frame_length: float = 25.0,
                     frame_shift: float = 10.0) -> int:
    """Frames ``fbank`` cuts from ``num_samples`` (snip_edges: whole frames only)."""
    win_len, hop, _ = kaldi_framing(sample_frequency, frame_length, frame_shift)
    return int(count_frames(torch.tensor([num_samples]), win_len, hop)[0])


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
    chunk_frames: int = 256,
    out_frames: int | None = None,
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
        chunk_frames: frames per chunk (short rows together, long rows in spans): bounds memory and
            keeps the float64 frames in cache (256 measured fastest here, 1.3x 1024 on 10 s clips).
        out_frames: return at least this many frames (zeros past ``num_frames[b]``), for a caller
            that pads to a fixed length (it then works in place instead of copying).

    Returns:
        ``features (batch, frames, num_mel_bins)`` float32, frames past ``num_frames[b]`` set to 0,
        and ``num_frames (batch,)``.
    """
    batch, lengths = as_batch(waveforms, lengths)
    if window_type not in ("hanning", "povey"):
        raise ValueError(f"window_type must be 'hanning' or 'povey', got {window_type!r}")
    win_len, hop, n_fft = kaldi_framing(sample_frequency, frame_length, frame_shift)
    high = high_freq if high_freq > 0 else sample_frequency / 2 + high_freq
    device = batch.device
    window = get_window("hann" if window_type == "hanning" else "povey", win_len, False, device, compute_dtype)
    mel = get_mel_filters(n_fft // 2 + 1, num_mel_bins, low_freq, high, sample_frequency, None, "kaldi", True,
                          device, torch.float32)
    feats, num_frames = mel_spectrogram(
        batch, lengths, mel, mel_floor=KALDI_MEL_FLOOR, chunk_frames=chunk_frames, window=window,
        hop_length=hop, fft_length=n_fft, remove_dc_offset=remove_dc_offset,
        preemphasis=preemphasis_coefficient or None, max_frames=max_frames, out_frames=out_frames,
    )
    valid = torch.arange(feats.shape[1], device=device)[None, :] < num_frames[:, None]
    return feats.log_().masked_fill_(~valid[..., None], 0.0), num_frames

