"""TVLT's audio input: a clipped dB log-mel spectrogram, padded to whole patches, and its patch mask.

Matches transformers 4.57.1's ``TvltFeatureExtractor`` (models/deprecated/tvlt; TVLT left transformers
after that release): a centred (reflect-padded) 2048-point STFT with a periodic Hann window, hop
``sampling_rate // 86`` (512 at 44.1 kHz), 128 Slaney mel filters over 0..22050 Hz with Slaney
area normalisation, ``10 log10`` power clipped to 80 dB below the clip's own maximum, the last
frame dropped, then ``clip((dB - 20) / 40, -2, 0) + 1`` (values in [-1, 1]), and time truncated to
``spectrogram_length`` frames. The power spectrogram is mel.py's, shared with AST.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ._audio_features import FeatureExtractorFiles, collate_audio
from .._tensors import check_return_tensors, convert
from .mel import get_mel_filters, get_window, mel_spectrogram

__all__ = ["TvltFeatureExtractor", "tvlt_log_mel"]


def tvlt_log_mel(
    waveforms: torch.Tensor,
    lengths: torch.Tensor,
    *,
    sampling_rate: int = 44100,
    n_fft: int = 2048,
    hop_length: int = 512,
    num_mel_bins: int = 128,
    db_range: float = 80.0,
    compute_dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """TVLT's scaled log-mel spectrogram of a padded batch.

    Args:
        waveforms: ``(batch, samples)`` zero-padded mono at ``sampling_rate``.
        lengths: ``(batch,)`` valid samples per row.

    Returns:
        ``features (batch, frames, num_mel_bins)`` float32 in [-1, 1] (frames past ``num_frames[b]``
        are garbage) and ``num_frames (batch,)``, which is ``samples // hop_length`` (the reference
        drops the last centred frame).
    """
    device = waveforms.device
    window = get_window("hann", n_fft, True, device, compute_dtype)
    mel = get_mel_filters(n_fft // 2 + 1, num_mel_bins, 0.0, 22050.0, sampling_rate, "slaney", "slaney", False,
                          device, torch.float32)
    power, num_frames = mel_spectrogram(
        waveforms, lengths, mel, mel_floor=1e-10, window=window, hop_length=hop_length, fft_length=n_fft, center=True
    )
    db = power.log10_().mul_(10.0)  # power_to_db with reference 1.0; the floor above is its min_value
    valid = torch.arange(db.shape[1], device=device)[None, :] < num_frames[:, None]
    # the 80 dB range is measured from each clip's own loudest bin, over all its frames
    peak = db.masked_fill(~valid[..., None], -math.inf).amax(dim=(1, 2), keepdim=True)
    db = torch.maximum(db, peak - db_range)
    feats = ((db - 20.0) / 40.0).clamp_(-2.0, 0.0).add_(1.0)
    return feats, (num_frames - 1).clamp_min(0)


class TvltFeatureExtractor(FeatureExtractorFiles):
    """TVLT audio features: ``audio_values (batch, 1, time, freq)`` and ``audio_mask (batch, patches)``.

    Field names and defaults are transformers 4.57.1's (``preprocessor_config.json`` round-trips).
    Audio at another rate is resampled to ``sampling_rate`` (the reference rejects it).
    """

    feature_extractor_type = "TvltFeatureExtractor"
    config_keys = ("spectrogram_length", "num_channels", "patch_size", "feature_size", "sampling_rate",
                   "hop_length_to_sampling_rate", "hop_length", "n_fft", "padding_value", "freq_len")
    schema = {"spectrogram_length": "pos_int", "num_channels": "pos_int", "patch_size": "pos_int_pair",
              "feature_size": "pos_int", "sampling_rate": "pos_int", "hop_length_to_sampling_rate": "pos_int",
              "hop_length": "pos_int", "n_fft": "pos_int", "padding_value": "number"}
    optional = ("hop_length",)  # derived from hop_length_to_sampling_rate when absent

    def __init__(
        self,
        spectrogram_length: int = 2048,
        num_channels: int = 1,
        patch_size: tuple[int, int] | list[int] = (16, 16),
        feature_size: int = 128,
        sampling_rate: int = 44100,
        hop_length_to_sampling_rate: int = 86,
        n_fft: int = 2048,
        padding_value: float = 0.0,
        hop_length: int | None = None,
        **unused: Any,
    ) -> None:
        self.spectrogram_length = spectrogram_length  # max time frames; longer audio is truncated
        self.num_channels = num_channels  # spectrogram channels (1)
        self.patch_size = list(patch_size) if isinstance(patch_size, (list, tuple)) else patch_size  # (time, freq)
        self.feature_size = feature_size  # mel bins
        self.sampling_rate = sampling_rate
        self.hop_length_to_sampling_rate = hop_length_to_sampling_rate  # frames per second
        self.n_fft = n_fft
        self.padding_value = padding_value  # fills time frames past the end of a clip
        # transformers saves the derived hop_length (and not hop_length_to_sampling_rate): honour it
        self.hop_length: int = hop_length  # type: ignore[assignment]  # None until checked, then derived
        self._check()
        if hop_length is None:
            self.hop_length = sampling_rate // hop_length_to_sampling_rate
        if self.hop_length < 1:
            raise ValueError(f"hop_length_to_sampling_rate: expected at most sampling_rate ({sampling_rate}), "
                             f"got {hop_length_to_sampling_rate}")
        if feature_size % self.patch_size[1]:
            raise ValueError(f"feature_size: expected a multiple of patch_size[1] ({self.patch_size[1]}), "
                             f"got {feature_size}")

    @property
    def freq_len(self) -> int:
        """Patches along frequency."""
        return self.feature_size // self.patch_size[1]

    def __call__(
        self,
        raw_speech: Any,
        return_tensors: str | None = "pt",
        return_attention_mask: bool = True,
        sampling_rate: int | None = None,
        resample: bool = True,
        mask_audio: bool = False,
        *,
        device: torch.device | str | None = None,
    ) -> dict[str, Any]:
        """Features for one clip or a batch (transformers 4.57's argument order).

        Args:
            raw_speech: a path / file object / bytes, a 1-D waveform, a ``(batch, samples)`` array or
                tensor, or a list of any of these (one entry per example).
            return_tensors: 'pt' (default here; transformers' is None), 'np' or None (a list of one
                array per example).
            return_attention_mask: also return ``audio_mask``.
            sampling_rate: the rate of array input in Hz (default: ``self.sampling_rate``).
            resample: True resamples other rates to ``self.sampling_rate``; False refuses them, as
                transformers does.
            mask_audio: accepted and, as in transformers, changes nothing (masking happens in the
                pre-training forward).

        Returns:
            ``audio_values (batch, 1, T, feature_size)`` float32, T the longest clip's frames rounded
            up to whole patches; ``audio_mask (batch, T / patch_size[0] * freq_len)`` float32, 1 for
            the patches (time-major) that cover real frames.
        """
        check_return_tensors(return_tensors)
        if not resample and sampling_rate is not None and sampling_rate != self.sampling_rate:
            raise ValueError(f"sampling_rate: expected {self.sampling_rate} with resample=False, got {sampling_rate}")
        batch, lengths = collate_audio(raw_speech, sampling_rate, self.sampling_rate, device)
        feats, num_frames = tvlt_log_mel(
            batch, lengths, sampling_rate=self.sampling_rate, n_fft=self.n_fft, hop_length=self.hop_length,
            num_mel_bins=self.feature_size,
        )
        num_frames = num_frames.clamp_max(self.spectrogram_length)
        patch_t = self.patch_size[0]
        time_patches = torch.div(num_frames + patch_t - 1, patch_t, rounding_mode="floor")  # ceil
        max_time = int(time_patches.max()) * patch_t
        values = feats.new_full((feats.shape[0], 1, max_time, self.feature_size), float(self.padding_value))
        frames = min(max_time, feats.shape[1])
        valid = torch.arange(frames, device=feats.device)[None, :] < num_frames[:, None]
        values[:, 0, :frames] = torch.where(valid[..., None], feats[:, :frames], values[:, 0, :frames])
        out: dict[str, torch.Tensor] = {"audio_values": values}
        if return_attention_mask:
            patches = torch.arange(max_time // patch_t * self.freq_len, device=feats.device)
            out["audio_mask"] = (patches[None, :] < (time_patches * self.freq_len)[:, None]).float()
        return convert(out, return_tensors)
