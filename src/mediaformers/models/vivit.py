"""ViViT (Arnab et al., 2021): model 1 (joint space-time attention over tubelets, learned positions),
as transformers has it; models 2-4 (factorised) are ``vivit_variant`` options built in vivit_variants.py."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints.vivit import CONVERTER
from ..config import ViTEncoderConfig
from ..family import Family, Pretrained, Processor, register_family
from ..layers import Activation, Encoder, PatchEmbed, padding_mask_to_bias, resample_grid
from ..modeling import PreTrainedModel
from ..outputs import BaseModelOutputWithPooling, ImageClassifierOutput, forward_options
from . import vivit_variants as variants
from .common import (backbone, check_video, classification_loss, frame_settings, pair, random_video,
                     video_input_doc)


@dataclass(kw_only=True)
class VivitConfig(ViTEncoderConfig):
    model_type = "vivit"
    own_fields = ("vivit_variant", "num_temporal_layers")

    image_size: int | list[int] = 224  # frame height/width
    num_frames: int = 32  # frames per clip
    tubelet_size: list[int] = (2, 16, 16)  # (time, height, width) of a tubelet
    num_channels: int = 3
    hidden_act: str = "gelu_fast"
    layer_norm_eps: float = 1e-6
    pooler_output_size: int | None = None  # defaults to hidden_size
    pooler_act: str = "tanh"
    # Not in transformers: ViViT's factorised models (2-4); "joint" is model 1, the only one checkpoints
    # on the hub hold. factorised_encoder: num_hidden_layers spatial + num_temporal_layers temporal blocks.
    vivit_variant: str = "joint"
    num_temporal_layers: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vivit_variant not in variants.VARIANTS:
            raise ValueError(f"vivit_variant: expected one of {list(variants.VARIANTS)}, got {self.vivit_variant!r}")
        self.tubelet_size = [int(v) for v in self.tubelet_size]
        if len(self.tubelet_size) != 3:
            raise ValueError(f"tubelet_size: expected [time, height, width], got {self.tubelet_size}")
        self.pooler_output_size = self.pooler_output_size or self.hidden_size

    @property
    def grid(self) -> tuple[int, int, int]:
        h, w = pair(self.image_size)
        t, ph, pw = self.tubelet_size
        return self.num_frames // t, h // ph, w // pw


class Pooler(nn.Module):
    """First token -> dense -> activation (BERT-style pooler)."""

    def __init__(self, dim: int, out: int, act: str):
        super().__init__()
        self.dense = nn.Linear(dim, out)
        self.act = Activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: the summary token (batch, dim)."""
        return self.act(self.dense(x))


class VivitPreTrainedModel(PreTrainedModel):
    config_class = VivitConfig
    base_model_prefix = "vivit"
    converter = CONVERTER

    def _init_weights(self) -> None:
        super()._init_weights()
        for m in self.modules():
            if isinstance(m, VivitModel):
                if m.cls_token is not None:
                    nn.init.zeros_(m.cls_token)
                nn.init.zeros_(m.pos_embed)
                variants.init_weights(m)


class VivitModel(VivitPreTrainedModel):
    is_backbone = True

    def __init__(self, config: VivitConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        c = config
        self.patch_embed = PatchEmbed(c.num_channels, c.hidden_size, tuple(c.tubelet_size))
        cls = variants.has_cls(c)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.hidden_size)) if cls else None
        self.pos_embed = nn.Parameter(torch.zeros(1, math.prod(c.grid) + cls, c.hidden_size))
        self.drop = nn.Dropout(c.hidden_dropout_prob)
        if c.vivit_variant in ("joint", "factorised_encoder"):  # model 2's spatial encoder is model 1's stack
            self.encoder = Encoder.stack(c.num_hidden_layers, c.hidden_size, c.num_attention_heads,
                                         c.intermediate_size, act=c.hidden_act, eps=c.layer_norm_eps,
                                         qkv_bias=c.qkv_bias, drop=c.hidden_dropout_prob,
                                         attn_drop=c.attention_probs_dropout_prob)
        if c.vivit_variant != "joint":
            variants.build(self, c)
        self.norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.pooler = Pooler(c.hidden_size, c.pooler_output_size, c.pooler_act) if add_pooling_layer else None
        self.post_init()

    def positions(self, grid: tuple[int, int, int]) -> torch.Tensor:
        """Position embeddings for a tubelet grid (time, h, w), resampled when it is not the trained one.

        Space is resized bicubically per time step (as transformers does for one time step);
        time, when it differs, linearly.
        """
        t0, h0, w0 = self.config.grid
        if tuple(grid) == (t0, h0, w0):
            return self.pos_embed
        n_cls = self.pos_embed.shape[1] - t0 * h0 * w0
        cls_pos, pos = self.pos_embed[:, :n_cls], self.pos_embed[:, n_cls:]
        dim = pos.shape[-1]
        pos = resample_grid(pos.reshape(t0, h0 * w0, dim), (h0, w0), grid[1:])
        if grid[0] != t0:
            pos = F.interpolate(pos.permute(1, 2, 0).float(), size=grid[0], mode="linear", align_corners=False)
            pos = pos.permute(2, 0, 1).to(cls_pos.dtype)
        return torch.cat([cls_pos, pos.reshape(1, -1, dim)], dim=1)

    @forward_options
    def forward(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False,
                attention_mask: torch.Tensor | None = None, *, head_mask: torch.Tensor | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, pooled_only: bool = False) -> BaseModelOutputWithPooling:
        """pixel_values (batch, frames, channels, H, W) -> last_hidden_state (batch, 1 + tubelets, hidden).

        With ``interpolate_pos_encoding`` other frame sizes and counts are accepted. ``attention_mask``
        (batch, 1 + tubelets), 1 = attend, masks keys, as transformers 5 does. ``pooled_only``
        skips the last block's work for the tubelet tokens, which [CLS]-reading heads never use
        (1/layers of the compute); last_hidden_state is then (batch, 1, hidden).
        """
        c = self.config
        fixed = not interpolate_pos_encoding
        check_video(pixel_values, frames=c.num_frames if fixed else None,
                    size=pair(c.image_size) if fixed else None, channels=c.num_channels)
        t, _, h, w = pixel_values.shape[1:]
        grid = self.patch_embed.grid((t, h, w))
        if min(grid) < 1:
            raise ValueError(f"pixel_values: {t} frames of {h}x{w} is smaller than one tubelet {c.tubelet_size}")
        x = self.patch_embed(pixel_values.transpose(1, 2))
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.to(x.dtype).expand(x.shape[0], -1, -1), x], dim=1)
        x = self.drop(x + self.positions(grid).to(x.dtype))
        bias = None
        if attention_mask is not None:
            if not isinstance(attention_mask, torch.Tensor) or tuple(attention_mask.shape) != tuple(x.shape[:2]):
                got = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask).__name__
                raise ValueError(f"attention_mask: expected shape {tuple(x.shape[:2])} (batch, 1 + tubelets), got {got}")
            bias = padding_mask_to_bias(attention_mask, x.dtype)
        if c.vivit_variant == "joint":
            out = self.encoder(x, bias, output_hidden_states=output_hidden_states,
                               output_attentions=output_attentions, num_queries=1 if pooled_only else None,
                               head_mask=head_mask)
            x, hidden, attentions = out.last_hidden_state, out.hidden_states, out.attentions
        else:
            if bias is not None or head_mask is not None:
                raise ValueError(f"attention_mask / head_mask: only for vivit_variant 'joint' (transformers' ViViT), "
                                 f"got vivit_variant {c.vivit_variant!r}")
            if output_attentions:
                raise ValueError(f"output_attentions: not available for vivit_variant {c.vivit_variant!r} "
                                 "(its attention maps are per time step / per position), got True")
            x, hidden = variants.encode(self, x, grid, output_hidden_states)
            attentions = None
        x = self.norm(x)
        pooled = self.pooler(self.summary(x)) if self.pooler is not None else None
        return BaseModelOutputWithPooling(x, pooled, hidden, attentions)

    def summary(self, x: torch.Tensor) -> torch.Tensor:
        """The token a head reads (batch, dim): [CLS] (models 1, 2), else the mean of all tokens (3, 4)."""
        return x[:, 0] if self.cls_token is not None else x.mean(dim=1)


class VivitForVideoClassification(VivitPreTrainedModel):
    """Linear classifier on the final [CLS] token."""

    is_classifier = True

    def __init__(self, config: VivitConfig):
        super().__init__(config)
        self.vivit = VivitModel(config, add_pooling_layer=False)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0 else nn.Identity()
        self.post_init()

    @forward_options
    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                interpolate_pos_encoding: bool = False, *, attention_mask: torch.Tensor | None = None,
                head_mask: torch.Tensor | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None) -> ImageClassifierOutput:
        """``labels``: as VideoMAE's classifier; ``attention_mask`` as :meth:`VivitModel.forward`."""
        out = self.vivit(pixel_values, interpolate_pos_encoding, attention_mask, head_mask=head_mask,
                         output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                         pooled_only=not (output_hidden_states or output_attentions))
        logits = self.classifier(self.vivit.summary(out.last_hidden_state))
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        return ImageClassifierOutput(loss, logits, out.hidden_states, out.attentions)


# ---- the family declaration ---------------------------------------------------------------------
def _pooled(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The token the classifier reads: [CLS], or the mean of all tokens for the variants without one."""
    net = backbone(model)
    return net.summary(net(pixel_values=batch["pixel_values"]).last_hidden_state)


def _dummy_inputs(cls: type, c: VivitConfig, batch_size: int = 1) -> dict[str, torch.Tensor]:
    return {"pixel_values": random_video(batch_size, c.num_frames, c.num_channels, c.image_size)}


FAMILY = register_family(Family(
    name="vivit",
    classes=(VivitModel, VivitForVideoClassification),
    task="video-classification",
    # transformers' defaults resize the short side to 256 for a 224 crop: keep that ratio.
    processors={"video": Processor("video_processors:VivitVideoProcessor",
                                   lambda c: {"num_frames": c.num_frames, **frame_settings(c.image_size, 256 / 224)})},
    accepts=frozenset({"video"}),
    pooled=_pooled, dummy_inputs=_dummy_inputs,
    input_doc=lambda c: video_input_doc(c.num_frames, c.num_channels, c.image_size),
    tiny=dict(image_size=32, num_frames=4, tubelet_size=[2, 16, 16], hidden_size=32, num_hidden_layers=2,
              num_attention_heads=2, intermediate_size=48),
    variants={name: {"vivit_variant": name} for name in variants.VARIANTS if name != "joint"},
    pretrained={
        "vivit-b-kinetics": Pretrained("google/vivit-b-16x2-kinetics400", "video-classification",
                                       "Kinetics-400, 32x224"),
    },
))
