"""ViViT's factorised models (Arnab et al., 2021, section 3.3); model 1 (joint attention) is vivit.py.

- model 2, factorised encoder: a spatial encoder runs on each time step's tubelets (with a [CLS]
  token of its own); a temporal encoder runs on the per-step [CLS] outputs with a temporal [CLS].
- model 3, factorised self-attention: each block attends over space (tokens of one time step),
  then over time (tokens of one spatial position), then applies its MLP.
- model 4, factorised dot-product attention: in each block half of the heads attend over space and
  half over time; the parameters are model 1's.
Models 3 and 4 have no [CLS] token (the paper's choice: a token that belongs to no space-time
position cannot be reshaped with the others); their heads average the tokens.

Tokens are kept as (batch, time * space, dim) in model 1's raster order, so model 1's position
table and blocks carry over (``init_from_joint``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import Encoder
from ..layers.attention import Attention, attend
from ..layers.blocks import Block, Mlp

VARIANTS = {"joint": 1, "factorised_encoder": 2, "factorised_self_attention": 3, "factorised_dot_product": 4}


class SpaceTimeAttention(Attention):
    """Model 4: the first half of the heads attend within a time step, the second half within a position."""

    def forward(self, x: torch.Tensor, grid: tuple[int, int], need_weights: bool = False):
        """(batch, t*s, dim) -> same; no attention maps (VivitModel refuses output_attentions for variants)."""
        b, n, c = x.shape
        t, s = grid
        hs = self.num_heads // 2
        qkv = self.project_qkv(x).view(b, t, s, 3, self.num_heads, self.head_dim)
        drop = self.attn_drop if self.training else 0.0
        d, ht = self.head_dim, self.num_heads - hs
        # 4-D (batch, groups, tokens, dim) so SDPA takes its fused kernel (5-D falls back to plain math).
        space = qkv[..., :hs, :].permute(3, 0, 4, 1, 2, 5).reshape(3, b, hs * t, s, d)  # attend over s
        time = qkv[..., hs:, :].permute(3, 0, 4, 2, 1, 5).reshape(3, b, ht * s, t, d)  # attend over t
        out_s = attend(self.attention_mode, *space.unbind(0), None, drop, self.training).view(b, hs, t, s, d)
        out_t = attend(self.attention_mode, *time.unbind(0), None, drop, self.training).view(b, ht, s, t, d)
        out = torch.cat((out_s, out_t.transpose(2, 3)), dim=1).permute(0, 2, 3, 1, 4).reshape(b, n, c)
        return self.proj_drop(self.proj(out)), None


class DotProductBlock(Block):
    """Model 4's block: model 1's pre-norm block with space/time head groups."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, **kwargs):
        if num_heads % 2:
            raise ValueError(f"num_attention_heads: factorised dot-product attention splits the heads in two "
                             f"halves, expected an even number, got {num_heads}")
        super().__init__(dim, num_heads, mlp_hidden, **kwargs)
        old = self.attn
        self.attn = SpaceTimeAttention(dim, num_heads, qkv_bias=old.qkv.bias is not None,
                                       attn_drop=old.attn_drop, proj_drop=old.proj_drop.p)

    def forward(self, x: torch.Tensor, grid: tuple[int, int], need_weights: bool = False):
        a, _ = self.attn(self.norm1(x), grid, need_weights)
        x = x + a
        return x + self.mlp(self.norm2(x)), None


class SelfAttentionBlock(nn.Module):
    """Model 3's block: ``x + attn_space(norm1 x)``, ``x + attn_time(norm_t x)``, ``x + mlp(norm2 x)``."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, *, act: str = "gelu", eps: float = 1e-12,
                 qkv_bias: bool = True, drop: float = 0.0, attn_drop: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.norm_t = nn.LayerNorm(dim, eps=eps)
        self.attn_t = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, mlp_hidden, act=act, drop=drop)

    def forward(self, x: torch.Tensor, grid: tuple[int, int], need_weights: bool = False):
        b, n, d = x.shape
        t, s = grid
        x = x.reshape(b * t, s, d)
        x = x + self.attn(self.norm1(x))[0]
        x = x.reshape(b, t, s, d).transpose(1, 2).reshape(b * s, t, d)
        x = x + self.attn_t(self.norm_t(x))[0]
        x = x.reshape(b, s, t, d).transpose(1, 2).reshape(b, n, d)
        return x + self.mlp(self.norm2(x)), None


def build(model: nn.Module, c) -> None:
    """Add the variant's modules to a VivitModel (model 1's are built by the model itself)."""
    kw = dict(act=c.hidden_act, eps=c.layer_norm_eps, qkv_bias=c.qkv_bias, drop=c.hidden_dropout_prob,
              attn_drop=c.attention_probs_dropout_prob)
    dim = c.hidden_size
    if c.vivit_variant == "factorised_encoder":
        model.temporal_cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        model.temporal_pos_embed = nn.Parameter(torch.zeros(1, c.grid[0] + 1, dim))
        model.temporal_encoder = Encoder.stack(c.num_temporal_layers, dim, c.num_attention_heads,
                                               c.intermediate_size, **kw)
    elif c.vivit_variant in ("factorised_self_attention", "factorised_dot_product"):
        block = SelfAttentionBlock if c.vivit_variant == "factorised_self_attention" else DotProductBlock
        # the shared Encoder (gradient checkpointing and its options included) hands each block the grid
        model.encoder = Encoder.stack(c.num_hidden_layers, dim, c.num_attention_heads, c.intermediate_size,
                                      block=block, **kw)
    else:
        raise ValueError(f"vivit_variant: expected one of {list(VARIANTS)}, got {c.vivit_variant!r}")


def has_cls(c) -> bool:
    return c.vivit_variant in ("joint", "factorised_encoder")


def encode(model: nn.Module, x: torch.Tensor, grid: tuple[int, int, int], output_hidden_states: bool):
    """Embedded tokens (batch, [1 +] t*h*w, dim) with positions -> (last tokens, hidden states).

    Model 2 returns (batch, 1 + t, dim): the temporal [CLS] then one token per time step; its hidden
    states are the spatial encoder's (per time step, batch * t rows) then the temporal encoder's.
    """
    c = model.config
    t, s = grid[0], grid[1] * grid[2]
    if c.vivit_variant != "factorised_encoder":
        out = model.encoder(x, (t, s), output_hidden_states=output_hidden_states)
        return out.last_hidden_state, out.hidden_states
    b, dim = x.shape[0], x.shape[-1]
    cls, tokens = x[:, :1], x[:, 1:]
    frames = torch.cat([cls.expand(b, t, dim).reshape(b * t, 1, dim), tokens.reshape(b * t, s, dim)], dim=1)
    spatial = model.encoder(frames, output_hidden_states=output_hidden_states)
    per_step = spatial.last_hidden_state[:, 0].reshape(b, t, dim)
    pos = model.temporal_pos_embed
    if pos.shape[1] != t + 1:
        pos = torch.cat([pos[:, :1], F.interpolate(pos[:, 1:].transpose(1, 2).float(), size=t, mode="linear",
                                                   align_corners=False).transpose(1, 2).to(pos.dtype)], dim=1)
    seq = torch.cat([model.temporal_cls_token.to(x.dtype).expand(b, 1, dim), per_step], dim=1) + pos.to(x.dtype)
    temporal = model.temporal_encoder(seq, output_hidden_states=output_hidden_states)
    hidden = (spatial.hidden_states + temporal.hidden_states) if output_hidden_states else None
    return temporal.last_hidden_state, hidden


def init_weights(model: nn.Module) -> None:
    if getattr(model, "temporal_cls_token", None) is not None:
        nn.init.zeros_(model.temporal_cls_token)
        nn.init.zeros_(model.temporal_pos_embed)
    for m in model.modules():  # model 3 starts as the image model: the temporal attention adds nothing
        if isinstance(m, SelfAttentionBlock):
            nn.init.zeros_(m.attn_t.proj.weight)
            nn.init.zeros_(m.attn_t.proj.bias)


def inflate_patch_weight(weight: torch.Tensor, frames: int, mode: str = "central") -> torch.Tensor:
    """An image patch-embedding kernel (dim, C, kh, kw) as a tubelet kernel (dim, C, frames, kh, kw).

    ``central``: the image kernel on the central frame, zeros elsewhere (the paper's best: the
    model starts as the image model on each tubelet's middle frame); ``average``: the kernel
    repeated on every frame and divided by ``frames`` (filter inflation, I3D).
    """
    if weight.dim() == 5:
        weight = weight[:, :, weight.shape[2] // 2]
    if mode == "central":
        out = weight.new_zeros(*weight.shape[:2], frames, *weight.shape[2:])
        out[:, :, frames // 2] = weight
        return out
    if mode == "average":
        return weight[:, :, None].expand(-1, -1, frames, -1, -1) / frames
    raise ValueError(f"mode: expected 'central' or 'average', got {mode!r}")


@torch.no_grad()
def init_from_joint(model: nn.Module, source: nn.Module, *, patch_init: str = "central") -> list[str]:
    """Copy a model-1 ViViT (or any VivitModel with the same widths) into ``model``, as the paper does.

    Blocks, norms and the patch embedding are copied (a kernel of another temporal size is inflated
    with ``inflate_patch_weight``); positions are resampled to the target grid; model 3's temporal
    attention stays zero so the model starts as the source's spatial model. Returns the names of
    ``model``'s parameters that were not copied (new in the variant).
    """
    src = source.vivit if hasattr(source, "vivit") else source
    dst = model.vivit if hasattr(model, "vivit") else model
    for name, m in (("source", src), ("model", dst)):  # duck-typed: this module is imported by vivit.py
        if getattr(getattr(m, "config", None), "model_type", None) != "vivit" or not hasattr(m, "positions"):
            raise ValueError(f"{name}: expected a ViViT model, got {type(m).__name__}")
    w = src.patch_embed.proj.weight
    kt = dst.patch_embed.proj.weight.shape[2]
    dst.patch_embed.proj.weight.copy_(w if w.shape[2] == kt else inflate_patch_weight(w, kt, patch_init))
    dst.patch_embed.proj.bias.copy_(src.patch_embed.proj.bias)
    grid = dst.config.grid
    pos = src.positions(grid)  # (1, 1 + t*h*w, dim), resampled to our grid
    if has_cls(dst.config):
        dst.cls_token.copy_(src.cls_token)
        dst.pos_embed.copy_(pos)
    else:
        dst.pos_embed.copy_(pos[:, 1:])
    dst.norm.load_state_dict(src.norm.state_dict())
    copied = {"patch_embed.proj.weight", "patch_embed.proj.bias", "pos_embed", "cls_token", "norm.weight", "norm.bias"}
    src_blocks = src.encoder.blocks
    for i, block in enumerate(dst.encoder.blocks):
        own = block.state_dict()
        theirs = src_blocks[min(i, len(src_blocks) - 1)].state_dict()
        take = {k: v for k, v in theirs.items() if k in own and own[k].shape == v.shape}
        block.load_state_dict(take, strict=False)
        copied.update(f"encoder.blocks.{i}.{k}" for k in take)
    return sorted(k for k in dst.state_dict() if k not in copied)
