"""AltCLIP's output records, contrastive loss and text-input check (kept apart so models/altclip.py stays
under 400 lines); models/altclip.py re-exports them."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..outputs import BaseModelOutputWithPooling, ModelOutput, Tensors


@dataclass
class BaseModelOutputWithPoolingAndProjection(ModelOutput):
    last_hidden_state: torch.Tensor | None = None  # AltCLIP: the projected tokens (batch, tokens, project_dim)
    pooler_output: torch.Tensor | None = None
    hidden_states: Tensors = None
    attentions: Tensors = None
    projection_state: Tensors = None


@dataclass
class AltCLIPOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits_per_image: torch.Tensor | None = None  # (images, texts)
    logits_per_text: torch.Tensor | None = None  # (texts, images)
    text_embeds: torch.Tensor | None = None  # (texts, projection_dim), unit length
    image_embeds: torch.Tensor | None = None  # (images, projection_dim), unit length
    text_model_output: BaseModelOutputWithPoolingAndProjection | None = None
    vision_model_output: BaseModelOutputWithPooling | None = None

    def to_tuple(self) -> tuple:
        return tuple(v.to_tuple() if isinstance(v, ModelOutput) else v for v in super().to_tuple())


def check_text(input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None, inputs_embeds) -> None:
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("input_ids / inputs_embeds: pass exactly one of them")
    if input_ids is not None:
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.is_floating_point():
            got = f"shape {tuple(input_ids.shape)}, {input_ids.dtype}" if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
            raise ValueError(f"input_ids: expected an integer tensor (batch, tokens), got {got}")
    shape = input_ids.shape if input_ids is not None else inputs_embeds.shape[:2]
    if attention_mask is None or tuple(attention_mask.shape) == tuple(shape):
        return
    # transformers' extended mask (batch, 1 or heads, 1 or tokens, tokens)
    if attention_mask.dim() == 4 and attention_mask.shape[0] in (1, shape[0]) and attention_mask.shape[2] in (
            1, shape[1]) and attention_mask.shape[3] == shape[1]:
        return
    raise ValueError(f"attention_mask: expected shape {tuple(shape)} like the tokens, or 4-D "
                     f"({shape[0]}, 1 or heads, 1 or {shape[1]}, {shape[1]}), got {tuple(attention_mask.shape)}")
