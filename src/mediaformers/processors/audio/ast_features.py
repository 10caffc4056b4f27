"""AST's feature extractor: Kaldi fbank, padded/truncated to ``max_length`` frames, normalised."""

from __future__ import annotations

from typing import Any

import torch

from ._audio_features import FeatureExtractorFiles, collate_audio
from .._tensors import check_return_tensors, convert
from .fbank import fbank, kaldi_framing, kaldi_num_frames

__all__ = ["ASTFeatureExtractor"]


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
    schema = {"feature_size": "pos_int", "sampling_rate": "pos_int", "num_mel_bins": "pos_int",
              "max_length": "pos_int", "padding_value": "number", "do_normalize": "bool", "mean": "number",
              "std": "pos_number", "return_attention_mask": "bool"}

    def __init__(self, feature_size: int = 1, sampling_rate: int = 16000, num_mel_bins: int = 128,
                 max_length: int = 1024, padding_value: float = 0.0, do_normalize: bool = True,
                 mean: float = -4.2677393, std: float = 4.5689974, return_attention_mask: bool = False,
                 **unused: Any) -> None:
        self.feature_size = feature_size  # transformers' SequenceFeatureExtractor field; unused here
        self.sampling_rate = sampling_rate  # the rate the model was trained at; inputs are resampled to it
        self.num_mel_bins = num_mel_bins  # mel filters = feature width
        self.max_length = max_length  # frames per example after padding/truncation
        self.padding_value = padding_value
        self.do_normalize = do_normalize
        self.mean = mean  # AudioSet statistics of the log-mel features
        self.std = std
        self.return_attention_mask = return_attention_mask
        self._check()

    def __call__(self, raw_speech: Any, sampling_rate: int | None = None, return_tensors: str | None = "pt", *,
                 max_length: int | None = None, padding: bool | str = True, truncation: bool = True,
                 return_attention_mask: bool | None = None, device: torch.device | str | None = None,
                 compute_dtype: torch.dtype = torch.float64) -> dict[str, Any]:
        """Features for one clip or a batch (transformers' argument order).

        Args:
            raw_speech: a path / file object / bytes, a 1-D waveform, a ``(batch, samples)`` array or
                tensor, or a list of any of these (one entry per example).
            sampling_rate: the rate of array input in Hz (default: ``self.sampling_rate``);
                anything else is resampled to ``self.sampling_rate``. Files carry their own rate.
            return_tensors: 'pt' (default here; transformers' default is None), 'np' or None (a list
                of one array per example).
            max_length, return_attention_mask: override the extractor's fields for this call.
            padding, truncation: AST always pads and cuts to ``max_length`` frames; only True /
                'max_length' are accepted (transformers ignores these arguments).
            device: where to compute; default the input tensor's device, else CPU.

        Returns:
            ``{"input_values": (batch, max_length, num_mel_bins) float32}`` (+ ``attention_mask``).
        """
        check_return_tensors(return_tensors)
        if padding not in (True, "max_length"):
            raise ValueError(f"padding: expected True or 'max_length' (AST pads every clip to max_length frames), "
                             f"got {padding!r}")
        if truncation is not True:
            raise ValueError(f"truncation: expected True (AST cuts every clip to max_length frames), got {truncation!r}")
        max_length = self.max_length if max_length is None else max_length
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length: expected a positive number of frames, got {max_length!r}")
        with_mask = self.return_attention_mask if return_attention_mask is None else return_attention_mask
        batch, lengths = collate_audio(raw_speech, sampling_rate, self.sampling_rate, device)
        feats, num_frames = fbank(
            batch, lengths, sample_frequency=self.sampling_rate, num_mel_bins=self.num_mel_bins,
            max_frames=max_length, out_frames=max_length, compute_dtype=compute_dtype,
        )
        values = feats  # (batch, max_length, mel): fbank pads with zeros, everything below is in place
        valid = torch.arange(max_length, device=feats.device)[None, :] < num_frames[:, None]
        if self.do_normalize:
            self.normalize_(values)
        if self.padding_value != 0:  # fbank's zero padding went through the normalisation already
            pad = float(self.padding_value)
            values.masked_fill_(~valid[..., None], (pad - self.mean) / (self.std * 2) if self.do_normalize else pad)
        out: dict[str, torch.Tensor] = {"input_values": values}
        if with_mask:
            out["attention_mask"] = valid.long()
        return convert(out, return_tensors)

    def normalize_(self, values: torch.Tensor) -> torch.Tensor:
        """AST's normalisation, in place: ``(x - mean) / (2 * std)`` with the dataset's statistics."""
        return values.sub_(self.mean).div_(self.std * 2)

    def windows(self, wave: torch.Tensor, hop: int | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Long audio as the model sees it: ``input_values (windows, max_length, mel)`` and each window's
        ``(start, end)`` seconds. Audio up to ``max_length`` frames is one window, padded as ``__call__``
        pads; longer audio is cut every ``hop`` frames (default half a window), the last window flush
        with the end."""
        length = self.max_length
        hop = length // 2 if hop is None else hop
        if isinstance(hop, bool) or not isinstance(hop, int) or hop < 1:
            raise ValueError(f"hop: expected a positive number of frames, got {hop!r}")
        win, shift, _ = kaldi_framing(self.sampling_rate)
        # frames counted first, so the features are computed once (by __call__ for one window)
        total = kaldi_num_frames(wave.shape[-1], self.sampling_rate)
        if total <= length:
            end = wave.shape[-1] / self.sampling_rate
            return ({"input_values": self(wave, sampling_rate=self.sampling_rate)["input_values"]},
                    torch.tensor([[0.0, end]]))
        feats, _ = fbank(wave, sample_frequency=self.sampling_rate, num_mel_bins=self.num_mel_bins)
        frames = feats[0, :total]
        starts = list(range(0, total - length + 1, hop))
        if starts[-1] != total - length:
            starts.append(total - length)
        values = torch.stack([frames[s:s + length] for s in starts])
        if self.do_normalize:
            self.normalize_(values)
        first = torch.tensor(starts, dtype=torch.float64) * shift
        spans = torch.stack([first, first + (length - 1) * shift + win], 1) / self.sampling_rate
        return {"input_values": values}, spans.float()
