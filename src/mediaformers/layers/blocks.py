"""Transformer blocks and the encoder stack shared by every family."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.module import _global_forward_hooks, _global_forward_pre_hooks
from torch.utils.checkpoint import checkpoint

from .activations import Activation
from .attention import Attention, head_mask_per_layer


class Mlp(nn.Module):
    """fc1 -> act -> fc2 (timm's Mlp); dropout after the block output only, as the references do."""

    def __init__(self, dim: int, hidden: int, *, act: str = "gelu", drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = Activation(act)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        # fc1's output is this block's own buffer unless a hook kept it: the activation may overwrite it.
        h = self.act(h, overwrite=not (self.fc1._forward_hooks or _global_forward_hooks or _global_forward_pre_hooks))
        return self.drop(self.fc2(h))


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero a residual branch for a random ``p`` of the samples, scale the rest by
    ``1 / (1 - p)`` (timm's drop_path); the identity when ``p`` is 0 or in eval mode."""
    if p == 0.0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - p)
    return x * keep / (1 - p)


class Block(nn.Module):
    """Pre-norm block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))`` (ViT, VideoMAE, ViViT, AST, TVLT, CLIP)."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, *, act: str = "gelu", eps: float = 1e-12,
                 qkv_bias: bool = True, qv_bias: bool = False, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: float = 0.0):
        super().__init__()
        self.drop_path = drop_path  # stochastic depth probability (training only)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, qv_bias=qv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, mlp_hidden, act=act, drop=drop)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor | None = None, need_weights: bool = False,
                num_queries: int | None = None, head_mask: torch.Tensor | None = None):
        """x (batch, tokens, dim) -> (batch, tokens, dim), or (batch, num_queries, dim) for the leading tokens only."""
        a, weights = self.attn(self.norm1(x), attn_bias, need_weights, num_queries, head_mask)
        x = (x if num_queries is None else x[:, :num_queries]) + drop_path(a, self.drop_path, self.training)
        x = x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)
        return x, weights


class PostNormBlock(nn.Module):
    """Post-norm block (BERT/XLM-R): ``norm1(x + attn(x))`` then ``norm2(x + mlp(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, *, act: str = "gelu", eps: float = 1e-12,
                 qkv_bias: bool = True, drop: float = 0.0, attn_drop: float = 0.0):
        super().__init__()
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, mlp_hidden, act=act, drop=drop)
        self.norm2 = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor | None = None, need_weights: bool = False,
                head_mask: torch.Tensor | None = None):
        a, weights = self.attn(x, attn_bias, need_weights, head_mask=head_mask)
        x = self.norm1(x + a)
        x = self.norm2(x + self.mlp(x))
        return x, weights


@dataclass
class EncoderOutput:
    last_hidden_state: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class Encoder(nn.Module):
    """A stack of blocks with optional per-layer outputs and gradient checkpointing.

    ``hidden_states`` holds the input followed by every block's output, as transformers returns them.
    """

    def __init__(self, blocks: list[nn.Module]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.gradient_checkpointing = False
        self.checkpoint_kwargs: dict = {"use_reentrant": False}  # torch.utils.checkpoint options
        # transformers' every_n_layers (block offset + i checkpointed when divisible; the offset counts the
        # blocks of the model's earlier stacks) and offload (saved activations in pinned host memory)
        self.checkpoint_every, self.checkpoint_offset, self.checkpoint_offload = 1, 0, False

    @classmethod
    def stack(cls, depth: int, dim: int, num_heads: int, mlp_hidden: int, *, block: type = Block, **kwargs):
        """``depth`` identical blocks (``Block`` unless given); ``kwargs`` go to each block."""
        return cls([block(dim, num_heads, mlp_hidden, **kwargs) for _ in range(depth)])

    def set_drop_path(self, rate: float) -> None:
        """Stochastic depth rising linearly from 0 at the first block to ``rate`` at the last (timm's
        schedule); blocks without it (post-norm) are left alone."""
        if not 0 <= rate < 1:
            raise ValueError(f"drop_path_rate: expected a number in [0, 1), got {rate}")
        n = len(self.blocks)
        for i, block in enumerate(self.blocks):
            if hasattr(block, "drop_path"):
                block.drop_path = rate * i / max(n - 1, 1)

    def _checkpointed(self, i: int) -> bool:
        return (self.gradient_checkpointing and self.training and torch.is_grad_enabled()
                and (self.checkpoint_offset + i) % self.checkpoint_every == 0)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor | None = None, *, output_hidden_states: bool = False,
                output_attentions: bool = False, num_queries: int | None = None,
                head_mask: torch.Tensor | None = None) -> EncoderOutput:
        """``attn_bias`` goes to every block as its second argument (ViViT's factorised blocks take their
        (time, space) token grid there). ``num_queries``: the last (pre-norm) block computes only the first ``num_queries`` tokens,
        all a pooled head reads (cls tokens); its output, and last_hidden_state, are then that short.
        ``head_mask``: transformers' (heads,) or (layers, heads) factors on the attention probabilities."""
        hidden = [x] if output_hidden_states else None
        attentions = [] if output_attentions else None
        last = len(self.blocks) - 1
        heads = getattr(self.blocks[0].attn, "num_heads", 1) if len(self.blocks) else 1
        layer_masks = head_mask_per_layer(head_mask, len(self.blocks), heads)
        for i, block in enumerate(self.blocks):
            # Leaving the arguments out when unused keeps blocks without them (PostNormBlock) working.
            kw = {"num_queries": num_queries} if num_queries is not None and i == last else {}
            if layer_masks[i] is not None:
                kw["head_mask"] = layer_masks[i]
            if self._checkpointed(i):
                offload = self.checkpoint_offload and x.device.type != "cpu"  # on the CPU they already are
                with torch.autograd.graph.save_on_cpu(pin_memory=True) if offload else contextlib.nullcontext():
                    x, w = checkpoint(block, x, attn_bias, output_attentions, **kw, **self.checkpoint_kwargs)
            else:
                x, w = block(x, attn_bias, output_attentions, **kw)
            if hidden is not None:
                hidden.append(x)
            if attentions is not None:
                attentions.append(w)
        return EncoderOutput(
            x, tuple(hidden) if hidden is not None else None, tuple(attentions) if attentions is not None else None
        )
