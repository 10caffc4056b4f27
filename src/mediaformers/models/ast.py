"""AST (Gong et al., 2021): a DeiT-style ViT over overlapping patches of a log-mel spectrogram.

Two learned tokens (cls and distillation) lead the sequence; the pooled output is their mean after
the final norm. Spectrograms of another length than ``max_length`` are accepted: the time axis of
the position table is cut or resampled (``pos_mode``), the frequency axis must match.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..checkpoints.ast import CONVERTER
from ..config import ViTEncoderConfig
from ..family import Family, Pretrained, Processor, register_family
from ..layers import Encoder, PatchEmbed, padding_mask_to_bias, resample_grid
from ..modeling import PreTrainedModel
from ..outputs import BaseModelOutputWithPooling, SequenceClassifierOutput, forward_options
from .common import backbone, check_float, classification_loss, pair

POS_MODES = ("auto", "crop", "interpolate")


@dataclass(kw_only=True)
class ASTConfig(ViTEncoderConfig):
    model_type = "audio-spectrogram-transformer"

    patch_size: int | list[int] = 16  # square patch side over (mel, time)
    frequency_stride: int = 10  # patch stride along mel bins; < patch_size means overlapping patches
    time_stride: int = 10  # patch stride along frames
    max_length: int = 1024  # frames of the trained input (the position table's time extent)
    num_mel_bins: int = 128  # mel bins per frame

    @property
    def kernel(self) -> tuple[int, int]:
        """Patch (mel, time) size."""
        return pair(self.patch_size)

    @property
    def grid(self) -> tuple[int, int]:
        """Patch grid (frequency, time) of a ``max_length`` x ``num_mel_bins`` input."""
        (kf, kt) = self.kernel
        return (self.num_mel_bins - kf) // self.frequency_stride + 1, (self.max_length - kt) // self.time_stride + 1


def check_spectrogram(input_values: torch.Tensor, *, num_mel_bins: int, min_frames: int) -> None:
    """Raise a ValueError naming what was expected unless ``input_values`` is float (batch, frames, num_mel_bins)."""
    name, want = "input_values", f"(batch, frames, {num_mel_bins})"
    _, frames, mels = check_float(input_values, name, 3, want, "log-mel features")
    if mels != num_mel_bins:
        raise ValueError(
            f"{name}: expected {num_mel_bins} mel bins in dim 2, shape {want}, got shape {tuple(input_values.shape)}"
        )
    if frames < min_frames:
        raise ValueError(
            f"{name}: expected at least {min_frames} frames (one patch) in dim 1, got shape {tuple(input_values.shape)}"
        )


class ASTPreTrainedModel(PreTrainedModel):
    config_class = ASTConfig
    base_model_prefix = "audio_spectrogram_transformer"
    converter = CONVERTER
    main_input_name = "input_values"


class ASTModel(ASTPreTrainedModel):
    """The encoder: patch embedding + cls/distillation tokens + learned positions -> blocks -> norm."""

    is_backbone = True

    def __init__(self, config: ASTConfig):
        super().__init__(config)
        c = config
        self.patch_embed = PatchEmbed(1, c.hidden_size, c.kernel, (c.frequency_stride, c.time_stride))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.hidden_size))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, c.hidden_size))
        f, t = c.grid
        self.pos_embed = nn.Parameter(torch.zeros(1, 2 + f * t, c.hidden_size))
        self.drop = nn.Dropout(c.hidden_dropout_prob)
        self.encoder = Encoder.stack(c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size,
                                     act=c.hidden_act, eps=c.layer_norm_eps, qkv_bias=c.qkv_bias,
                                     drop=c.hidden_dropout_prob, attn_drop=c.attention_probs_dropout_prob)
        self.norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.post_init()

    def positions(self, time_patches: int, pos_mode: str = "auto") -> torch.Tensor:
        """Position embeddings (1, 2 + freq_patches * time_patches, hidden) for a grid of ``time_patches``.

        At the trained grid the table is returned unchanged. Otherwise, per ``pos_mode``:
        ``"crop"`` keeps the first ``time_patches`` columns (a shorter clip sees the positions it
        would have had at the start of a padded one); ``"interpolate"`` resamples the time axis
        linearly to the new length (stretches the trained positions over a longer or shorter
        window); ``"auto"`` crops when shorter and interpolates when longer.
        """
        if pos_mode not in POS_MODES:
            raise ValueError(f"pos_mode: expected one of {POS_MODES}, got {pos_mode!r}")
        f, t0 = self.config.grid
        if time_patches == t0:
            return self.pos_embed
        if pos_mode == "auto":
            pos_mode = "crop" if time_patches < t0 else "interpolate"
        tokens, pos = self.pos_embed[:, :2], self.pos_embed[:, 2:]
        dim = pos.shape[-1]
        if pos_mode == "crop":
            if time_patches > t0:
                raise ValueError(
                    f"pos_mode='crop': the input has {time_patches} time patches, more than the {t0} the position "
                    f"table holds (max_length={self.config.max_length}); use pos_mode='interpolate'"
                )
            pos = pos.reshape(1, f, t0, dim)[:, :, :time_patches].reshape(1, -1, dim)
        else:
            # Bilinear on an unchanged frequency axis is linear interpolation along time only.
            pos = resample_grid(pos, (f, t0), (f, time_patches), mode="bilinear")
        return torch.cat([tokens, pos], dim=1)

    @forward_options
    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                head_mask: torch.Tensor | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None, pos_mode: str = "auto",
                pooled_only: bool = False) -> BaseModelOutputWithPooling:
        """input_values (batch, frames, num_mel_bins) -> last_hidden_state (batch, 2 + patches, hidden).

        ``pooler_output`` (batch, hidden) is the mean of the cls and distillation tokens.
        ``attention_mask`` 1 = attend: per token (batch, 2 + patches) or per frame (batch, frames), as the
        feature extractor returns it (see :meth:`token_mask`). ``frames`` other than ``max_length`` use :meth:`positions` with ``pos_mode``.
        ``pooled_only`` skips the last block's work for the patch tokens, which the pooled output
        never reads (~7% of a 12-layer forward); last_hidden_state is then (batch, 2, hidden).
        """
        c = self.config
        check_spectrogram(input_values, num_mel_bins=c.num_mel_bins, min_frames=c.kernel[1])
        x = input_values.to(self.pos_embed.dtype)
        # (batch, frames, mel) -> (batch, 1, mel, frames): the conv runs over (frequency, time).
        x = self.patch_embed(x.transpose(1, 2).unsqueeze(1))
        time_patches = self.patch_embed.grid((c.num_mel_bins, input_values.shape[1]))[1]
        b = x.shape[0]
        x = torch.cat([self.cls_token.expand(b, -1, -1), self.dist_token.expand(b, -1, -1), x], dim=1)
        x = self.drop(x + self.positions(time_patches, pos_mode))
        bias = None
        if attention_mask is not None:
            bias = padding_mask_to_bias(self.token_mask(attention_mask, x.shape[:2], input_values.shape[1]), x.dtype)
        out = self.encoder(x, bias, output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                           num_queries=2 if pooled_only else None, head_mask=head_mask)
        x = self.norm(out.last_hidden_state)
        pooled = (x[:, 0] + x[:, 1]) / 2
        return BaseModelOutputWithPooling(x, pooled, out.hidden_states, out.attentions)


    def token_mask(self, attention_mask: torch.Tensor, tokens: tuple[int, int], frames: int) -> torch.Tensor:
        """A key mask (batch, 2 + patches) from ``attention_mask``: given per token, or per frame as the
        feature extractor returns it (batch, frames), 1 = real. A patch is masked when every frame it
        covers is padding; the cls and distillation tokens always attend. (transformers drops an all-ones
        frame mask and fails on any other, its length not being the tokens'.)"""
        shape = tuple(attention_mask.shape)
        if shape == tuple(tokens):
            return attention_mask
        if shape != (tokens[0], frames):
            raise ValueError(f"attention_mask: expected shape {tuple(tokens)} (batch, 2 + patches) or "
                             f"{(tokens[0], frames)} (batch, frames), got {shape}")
        c = self.config
        # Patch t of the time axis covers frames [t * stride, t * stride + patch).
        real = attention_mask.to(torch.bool).unfold(1, c.kernel[1], c.time_stride).any(-1)  # (batch, time patches)
        f = (tokens[1] - 2) // real.shape[1]
        keep = real[:, None, :].expand(-1, f, -1).reshape(tokens[0], -1)  # (frequency, time) order, as patch_embed
        return torch.cat([keep.new_ones(tokens[0], 2), keep], dim=1)


class ASTHead(nn.Module):
    """LayerNorm -> Linear on the pooled output (transformers' ASTMLPHead)."""

    def __init__(self, dim: int, num_labels: int, eps: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.fc = nn.Linear(dim, num_labels) if num_labels > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(x))


class ASTForAudioClassification(ASTPreTrainedModel):
    """AST with a norm + linear head on the pooled output (AudioSet: multi-label, ESC-50, Speech Commands)."""

    is_classifier = True

    def __init__(self, config: ASTConfig):
        super().__init__(config)
        # Named as transformers' base_model_prefix so checkpoint keys need no prefix rule.
        self.audio_spectrogram_transformer = ASTModel(config)
        self.head = ASTHead(config.hidden_size, config.num_labels, config.layer_norm_eps)
        self.post_init()

    @forward_options
    def forward(self, input_values: torch.Tensor, labels: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, *, head_mask: torch.Tensor | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, pos_mode: str = "auto") -> SequenceClassifierOutput:
        """input_values (batch, frames, num_mel_bins) -> logits (batch, num_labels).

        ``labels``: class ids (batch,) for single-label, float multi-hot (batch, num_labels) for
        multi-label (AudioSet), float targets for regression; ``config.problem_type`` decides, else
        it is inferred as transformers does.
        """
        out = self.audio_spectrogram_transformer(
            input_values, attention_mask, head_mask=head_mask, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, pos_mode=pos_mode,
            pooled_only=not (output_hidden_states or output_attentions),  # else the last layer is returned whole
        )
        logits = self.head(out.pooler_output)
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        return SequenceClassifierOutput(loss, logits, out.hidden_states, out.attentions)


# ---- the family declaration ---------------------------------------------------------------------
def _pooled(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean of the cls and distillation tokens (pooler_output, what the head reads)."""
    return backbone(model)(input_values=batch["input_values"]).pooler_output


def _dummy_inputs(cls: type, c: ASTConfig, batch_size: int = 1) -> dict[str, torch.Tensor]:
    return {"input_values": torch.randn(batch_size, c.max_length, c.num_mel_bins)}


def _input_doc(c: ASTConfig) -> str:
    return (f"input_values (batch, {c.max_length}, {c.num_mel_bins}) float: normalised Kaldi log-mel frames "
            f"(10 ms hop, {c.max_length / 100:.2f} s per window)")


FAMILY = register_family(Family(
    name="ast",
    classes=(ASTModel, ASTForAudioClassification),
    task="audio-classification",
    processors={"audio": Processor("ast_features:ASTFeatureExtractor",
                                   lambda c: {"num_mel_bins": c.num_mel_bins, "max_length": c.max_length})},
    accepts=frozenset({"audio", "video"}),  # a video's audio track
    pooled=_pooled, dummy_inputs=_dummy_inputs, input_doc=_input_doc,
    tiny=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48, num_mel_bins=32,
              max_length=64),
    variants={"no-overlap": {"frequency_stride": 16, "time_stride": 16}},
    demo=dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256, num_mel_bins=64,
              max_length=100),
    pretrained={
        "ast-audioset": Pretrained("MIT/ast-finetuned-audioset-10-10-0.4593", "audio-classification",
                                   "AudioSet-527, 10.24 s windows"),
        "ast-speech-commands": Pretrained("MIT/ast-finetuned-speech-commands-v2", "audio-classification",
                                          "Speech Commands v2"),
    },
))
