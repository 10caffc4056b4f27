"""The XLM-R (RoBERTa) text encoder that AltCLIP's text tower is built on: embeddings + post-norm blocks."""
from __future__ import annotations

import torch
from torch import nn

from ..layers import Encoder, EncoderOutput, PostNormBlock, padding_mask_to_bias


def position_ids_from_input_ids(input_ids: torch.Tensor, padding_idx: int) -> torch.Tensor:
    """fairseq's ``make_positions``: real tokens count up from ``padding_idx + 1``, pads stay at ``padding_idx``.

    (batch, tokens) -> (batch, tokens). Because pads keep one fixed position, a right-padded sequence
    gets the same positions as the unpadded one.
    """
    mask = input_ids.ne(padding_idx).int()
    return (torch.cumsum(mask, dim=1).type_as(mask) * mask).long() + padding_idx


def _embedding(n: int, dim: int, padding_idx: int | None) -> nn.Embedding:
    # on meta, the normal init would import torch._dynamo (1.5 s of start-up); a structure needs no init
    weight = torch.empty(n, dim) if torch.get_default_device().type == "meta" else None
    return nn.Embedding(n, dim, padding_idx=padding_idx, _weight=weight)


class TextEmbeddings(nn.Module):
    """word + position + token-type embeddings, LayerNorm, dropout (BERT/RoBERTa)."""

    def __init__(self, vocab_size: int, dim: int, max_positions: int, type_vocab_size: int, *,
                 padding_idx: int | None, eps: float, drop: float = 0.0):
        super().__init__()
        self.word = _embedding(vocab_size, dim, padding_idx)
        self.position = _embedding(max_positions, dim, padding_idx)
        self.token_type = _embedding(type_vocab_size, dim, None)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.drop = nn.Dropout(drop)
        self.padding_idx = padding_idx if padding_idx is not None else 0

    def forward(self, input_ids: torch.Tensor | None = None, token_type_ids: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (batch, tokens) or inputs_embeds (batch, tokens, dim) -> (batch, tokens, dim)."""
        if inputs_embeds is None:
            inputs_embeds = self.word(input_ids)
        b, n = inputs_embeds.shape[:2]
        if position_ids is None:
            if input_ids is not None:
                position_ids = position_ids_from_input_ids(input_ids, self.padding_idx)
            else:  # no ids to find the pads in: plain sequential positions after padding_idx
                position_ids = torch.arange(n, device=inputs_embeds.device)[None] + self.padding_idx + 1
        # A data-dependent check: eager only (torch.export/compile would have to guard on the values).
        if not torch.compiler.is_compiling() and position_ids.max() >= self.position.num_embeddings:
            raise ValueError(
                f"input_ids: sequence of {n} tokens needs position {int(position_ids.max())}, but the model has "
                f"{self.position.num_embeddings} position embeddings (max_position_embeddings); truncate the text"
            )
        if token_type_ids is None:
            x = inputs_embeds + self.token_type.weight[0]  # all-zero token types, without an index tensor
        else:
            x = inputs_embeds + self.token_type(token_type_ids)
        return self.drop(self.norm(x + self.position(position_ids)))


def mask_to_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """An additive attention bias from a padding mask (batch, keys), 1 = token, or from a 4-D mask
    (batch, 1 or heads, 1 or queries, keys) as transformers takes it: floating point = already additive
    (its extended mask), bool or integer = 1/True attends."""
    if mask.dim() != 4:
        return padding_mask_to_bias(mask, dtype)
    if mask.is_floating_point():
        return mask.to(dtype)
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask.to(torch.bool),
                                                                              torch.finfo(dtype).min)


class XLMRobertaEncoder(nn.Module):
    """Embeddings + a stack of post-norm blocks (fused qkv), with a key-padding mask; no pooler.

    Leaf layers take typed sizes; the AltCLIP model reads them from its config.
    """

    def __init__(self, *, vocab_size: int, dim: int, depth: int, num_heads: int, mlp_hidden: int, max_positions: int,
                 type_vocab_size: int, padding_idx: int | None, act: str = "gelu", eps: float = 1e-5,
                 drop: float = 0.0, attn_drop: float = 0.0):
        super().__init__()
        self.embeddings = TextEmbeddings(
            vocab_size, dim, max_positions, type_vocab_size, padding_idx=padding_idx, eps=eps, drop=drop
        )
        self.encoder = Encoder.stack(depth, dim, num_heads, mlp_hidden, block=PostNormBlock, act=act, eps=eps,
                                     drop=drop, attn_drop=attn_drop)

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, *, head_mask: torch.Tensor | None = None,
                output_hidden_states: bool = False, output_attentions: bool = False) -> EncoderOutput:
        """-> last_hidden_state (batch, tokens, dim); hidden_states start with the embeddings' output."""
        x = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)
        bias = mask_to_bias(attention_mask, x.dtype) if attention_mask is not None else None
        return self.encoder(x, bias, output_hidden_states=output_hidden_states, output_attentions=output_attentions,
                            head_mask=head_mask)
