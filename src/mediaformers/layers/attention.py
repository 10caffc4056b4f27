"""Multi-head self-attention: one fused qkv projection, SDPA unless weights are asked for."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def padding_mask_to_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Turn a key-padding mask (batch, keys), 1/True = attend, into an additive bias (batch, 1, 1, keys).

    Masked keys get the dtype's most negative value, as transformers does, so a fully padded row
    softmaxes to uniform weights instead of NaN.
    """
    if mask.dim() != 2:
        raise ValueError(f"attention mask: expected (batch, keys), got shape {tuple(mask.shape)}")
    keep = mask.to(torch.bool)[:, None, None, :]
    bias = torch.zeros(keep.shape, dtype=dtype, device=mask.device)
    return bias.masked_fill(~keep, torch.finfo(dtype).min)


def head_mask_per_layer(head_mask: torch.Tensor | None, layers: int, heads: int) -> list[torch.Tensor | None]:
    """transformers' head_mask, (heads,) for every layer or (layers, heads), as one (1, heads, 1, 1) factor per layer.

    It multiplies the attention probabilities (1 keeps a head, 0 silences it).
    """
    if head_mask is None:
        return [None] * layers
    if not isinstance(head_mask, torch.Tensor):
        head_mask = torch.as_tensor(head_mask)
    if head_mask.dim() == 1:
        head_mask = head_mask[None].expand(layers, -1)
    if head_mask.dim() != 2 or tuple(head_mask.shape) != (layers, heads):
        raise ValueError(f"head_mask: expected shape ({heads},) or ({layers}, {heads}), got {tuple(head_mask.shape)}")
    return [m.reshape(1, heads, 1, 1) for m in head_mask]


class Attention(nn.Module):
    """Self-attention over (batch, tokens, dim).

    ``qkv_bias`` puts a bias on q, k and v; ``qv_bias`` is VideoMAE's variant: learnable q and v
    biases with a fixed zero k bias (as in BEiT/timm), concatenated once per forward.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        qkv_bias: bool = True,
        qv_bias: bool = False,
        proj_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"hidden size {dim} is not a multiple of the number of heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias and not qv_bias)
        if qv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
            self.register_buffer("k_bias", torch.zeros(dim), persistent=False)
        else:
            self.q_bias = self.v_bias = None
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.proj_drop = nn.Dropout(proj_drop)
        self.pruned_heads: set[int] = set()  # original indices of removed heads, as transformers keeps them

    def prune_heads(self, heads) -> None:
        """Remove heads (indices as in the unpruned layer; already removed ones are ignored), as
        transformers' prune_heads: the q/k/v rows and the output columns of those heads go."""
        alive = [h for h in range(self.num_heads + len(self.pruned_heads)) if h not in self.pruned_heads]
        drop = {int(h) for h in heads} - self.pruned_heads
        if not drop:
            return
        if not drop <= set(alive):
            raise ValueError(f"heads: expected indices in [0, {len(alive) + len(self.pruned_heads)}), got {sorted(drop)}")
        keep = torch.tensor([i for i, h in enumerate(alive) if h not in drop], device=self.qkv.weight.device)
        inner = self.num_heads * self.head_dim
        cols = (keep[:, None] * self.head_dim + torch.arange(self.head_dim, device=keep.device)).flatten()
        rows = torch.cat([cols + part * inner for part in range(3)])
        self.qkv = _pruned(self.qkv, rows, dim=0)
        self.proj = _pruned(self.proj, cols, dim=1)
        for name in ("q_bias", "v_bias"):
            if getattr(self, name) is not None:
                setattr(self, name, nn.Parameter(getattr(self, name).detach()[cols].clone()))
        if self.q_bias is not None:
            self.k_bias = self.k_bias[cols].clone()
        self.num_heads = len(keep)
        self.pruned_heads |= drop

    def forward(
        self,
        x: torch.Tensor,
        attn_bias: torch.Tensor | None = None,
        need_weights: bool = False,
        num_queries: int | None = None,
        head_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (batch, tokens, dim); attn_bias: additive, broadcastable to (batch, heads, tokens, tokens).

        Returns the output (batch, tokens, dim) and, only when ``need_weights``, the attention
        probabilities (batch, heads, tokens, tokens). With ``num_queries`` only the first
        ``num_queries`` tokens attend (keys and values are still all tokens): the output is
        (batch, num_queries, dim), for heads that read a few leading tokens only. ``head_mask``
        (broadcastable to (batch, heads, 1, 1)) multiplies the attention probabilities, as transformers'
        head_mask does; it takes the explicit path, since SDPA has no hook between softmax and values.
        """
        b, n, _ = x.shape
        c = self.num_heads * self.head_dim  # the width of q/k/v: the model's width unless heads were pruned
        bias = self.qkv.bias
        if self.q_bias is not None:
            bias = torch.cat((self.q_bias, self.k_bias, self.v_bias))
        if num_queries is None:
            m = n
            qkv = F.linear(x, self.qkv.weight, bias).view(b, n, 3, self.num_heads, self.head_dim)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        else:
            m = num_queries
            (wq, wkv), (bq, bkv) = self.qkv.weight.split((c, 2 * c)), (None, None)
            if bias is not None:
                bq, bkv = bias.split((c, 2 * c))
            q = F.linear(x[:, :m], wq, bq).view(b, m, self.num_heads, self.head_dim).transpose(1, 2)
            kv = F.linear(x, wkv, bkv).view(b, n, 2, self.num_heads, self.head_dim)
            k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
        drop = self.attn_drop if self.training else 0.0
        weights = None
        if need_weights or head_mask is not None:
            scores = (q * self.scale) @ k.transpose(-2, -1)
            if attn_bias is not None:
                scores = scores + attn_bias
            weights = scores.softmax(dim=-1, dtype=torch.float32).to(q.dtype)
            probs = F.dropout(weights, drop, self.training)
            if head_mask is not None:
                head_mask = head_mask.to(probs.dtype)
                probs, weights = probs * head_mask, weights * head_mask
            out = probs @ v
            weights = weights if need_weights else None
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, dropout_p=drop)
        out = out.transpose(1, 2).reshape(b, m, c)
        return self.proj_drop(self.proj(out)), weights


def _pruned(layer: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A copy of ``layer`` keeping ``index`` along the weight's ``dim`` (0: outputs, 1: inputs)."""
    weight = layer.weight.detach().index_select(dim, index).clone()
    bias = layer.bias
    if bias is not None and dim == 0:
        bias = bias.detach()[index].clone()
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device, dtype=weight.dtype)
    new.weight = nn.Parameter(weight, requires_grad=layer.weight.requires_grad)
    if bias is not None:
        new.bias = nn.Parameter(bias.detach().clone(), requires_grad=layer.bias.requires_grad)
    return new
