"""TVLT's pieces beside the models: output records, input checks, the factored position embeddings and
the audio-visual matching head (kept apart so models/tvlt.py stays readable in one sitting)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ..outputs import ModelOutput, Tensors
from .common import check_float, check_video, pair

if TYPE_CHECKING:  # annotations only: tvlt.py imports this module
    from .tvlt import TvltConfig


@dataclass
class TvltModelOutput(ModelOutput):
    last_hidden_state: torch.Tensor | None = None  # (batch, 1 + pixel tokens + audio tokens, hidden)
    last_pixel_hidden_state: torch.Tensor | None = None
    last_audio_hidden_state: torch.Tensor | None = None
    pixel_label_masks: torch.Tensor | None = None  # (batch, pixel patches), 1 = masked real patch
    audio_label_masks: torch.Tensor | None = None
    pixel_ids_restore: torch.Tensor | None = None  # (batch, pixel patches)
    audio_ids_restore: torch.Tensor | None = None
    hidden_states: Tensors = None
    attentions: Tensors = None


@dataclass
class TvltForPreTrainingOutput(ModelOutput):
    loss: torch.Tensor | None = None  # matching BCE + pixel MAE + audio MAE (whichever ran)
    matching_logits: torch.Tensor | None = None  # (batch, 1)
    pixel_logits: torch.Tensor | None = None  # (batch, pixel patches, patch**2 * channels)
    audio_logits: torch.Tensor | None = None  # (batch, audio patches, patch_t * patch_f * channels)
    hidden_states: Tensors = None  # of the last encoder pass (the MAE one when it ran)
    attentions: Tensors = None


# ---- input checks -------------------------------------------------------------------------------
def _check_mask(mask: torch.Tensor | None, name: str, batch: int, length: int) -> None:
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(mask).__name__}")
    if mask.shape != (batch, length):
        raise ValueError(f"{name}: expected shape ({batch}, {length}) (batch, patches), got {tuple(mask.shape)}")
    if not ((mask == 0) | (mask == 1)).all():
        raise ValueError(f"{name}: expected 0/1 values (1 = real patch, 0 = padding)")


def check_inputs(c: TvltConfig, pixel_values, audio_values, pixel_mask=None, audio_mask=None,
                 pixel_name: str = "pixel_values", mask_name: str = "pixel_mask") -> tuple[int, int]:
    """Validate a batch; returns the number of pixel and audio patches."""
    check_video(pixel_values, frames=None, size=pair(c.image_size), channels=c.num_image_channels, name=pixel_name)
    b, t = pixel_values.shape[:2]
    if t > c.num_frames:
        raise ValueError(f"{pixel_name}: expected at most {c.num_frames} frames (config.num_frames) in dim 1, "
                         f"got shape {tuple(pixel_values.shape)}")
    want = f"(batch, {c.num_audio_channels}, time <= {c.spectrogram_length}, {c.frequency_length})"
    shape = check_float(audio_values, "audio_values", 4, want, "log-mel features")
    pt = pair(c.audio_patch_size)[0]
    if shape[0] != b:
        raise ValueError(f"audio_values: expected batch {b} (as {pixel_name}), got shape {shape}")
    if shape[1] != c.num_audio_channels or shape[3] != c.frequency_length or not pt <= shape[2] <= c.spectrogram_length:
        raise ValueError(f"audio_values: expected shape {want} with time >= {pt}, got shape {shape}")
    n_pixel, n_audio = t * c.patches_per_frame, (shape[2] // pt) * c.freq_patches
    _check_mask(pixel_mask, mask_name, b, n_pixel)
    _check_mask(audio_mask, "audio_mask", b, n_audio)
    return n_pixel, n_audio


# ---- embeddings and heads --------------------------------------------------------------------
class FactoredPositions(nn.Module):
    """Adds within-step + per-step + modality-type embeddings to step-major tokens.

    Pixels: steps are frames, ``within`` the spatial patches of a frame. Audio: steps are time
    patches, ``within`` the frequency patches of a time step (as the (time, freq) conv grid
    flattens). Tokens are (batch, steps * within, dim); fewer steps than the table holds use its
    first rows. Used by the encoder and, with their own tables, by the pre-training decoders.
    """

    def __init__(self, within: int, steps: int, dim: int):
        super().__init__()
        self.within = nn.Parameter(torch.zeros(1, within, dim))
        self.steps = nn.Parameter(torch.zeros(1, steps, dim))
        self.type_embed = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        steps = n // self.within.shape[1]
        table = self.within[:, None] + self.steps[:, :steps, None] + self.type_embed[:, None]
        return x + table.reshape(1, n, d).to(x.dtype)


class MatchingHead(nn.Module):
    """tanh-pooled cls token -> one matching logit."""

    def __init__(self, dim: int):
        super().__init__()
        self.pooler = nn.Linear(dim, dim)
        self.fc = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.pooler(x[:, 0])))


def audio_visual_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str) -> torch.Tensor | None:
    """The classifier's loss for ``config.loss_type`` ("regression" or "classification"), as the reference."""
    b, n = logits.shape
    if kind == "regression":
        if labels.numel() != b * n:
            raise ValueError(f"labels: regression needs shape ({b}, {n}), got {tuple(labels.shape)}")
        return F.mse_loss(logits, labels.reshape(b, n).to(logits.dtype))
    if kind == "classification":
        if labels.is_floating_point():  # class probabilities, as CrossEntropyLoss accepts
            if labels.shape != logits.shape:
                raise ValueError(f"labels: float (probability) labels need shape ({b}, {n}), "
                                 f"got {tuple(labels.shape)}")
            return F.cross_entropy(logits, labels.to(logits.dtype))
        if labels.shape != (b,):
            raise ValueError(f"labels: classification needs class ids of shape ({b},), got {tuple(labels.shape)}")
        return F.cross_entropy(logits, labels)
    return None  # the reference computes no loss for other loss_type values
