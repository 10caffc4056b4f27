"""Patch/tubelet embeddings, sin-cos position tables and position-embedding resampling."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .attention import bare


def _pair(v) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


class PatchEmbed(nn.Module):
    """Cut (batch, channels, *spatial) into patches and project them: a strided conv, 2-D or 3-D.

    Non-overlapping patches run as a reshape + one matmul (the same arithmetic as the conv, several
    times faster on CPU than Conv3d); overlapping ones (AST's strides) use the conv. The parameter is
    ``proj`` with the conv's weight shape either way, so checkpoints load unchanged.
    Returns (batch, num_patches, dim) in raster order of the patch grid.
    """

    def __init__(
        self, in_chans: int, dim: int, kernel: tuple[int, ...], stride: tuple[int, ...] | None = None, *, bias: bool = True
    ):
        super().__init__()
        stride = tuple(stride) if stride is not None else tuple(kernel)
        conv = nn.Conv3d if len(kernel) == 3 else nn.Conv2d
        self.proj = conv(in_chans, dim, kernel_size=tuple(kernel), stride=stride, bias=bias)  # CLIP has no bias
        self.kernel, self.stride = tuple(kernel), stride

    def grid(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        """Patch grid for an input of the given spatial size."""
        return tuple((s - k) // st + 1 for s, k, st in zip(spatial, self.kernel, self.stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The conv is called when patches overlap or when something wraps it (pruning's weight hook).
        if self.kernel != self.stride or not bare(self.proj, nn.Conv3d if len(self.kernel) == 3 else nn.Conv2d):
            return self.proj(x).flatten(2).transpose(1, 2)
        b, c = x.shape[:2]
        g = self.grid(tuple(x.shape[2:]))
        x = x[(..., *[slice(0, n * k) for n, k in zip(g, self.kernel)])]
        if len(g) == 3:
            (t, h, w), (kt, kh, kw) = g, self.kernel
            x = x.reshape(b, c, t, kt, h, kh, w, kw).permute(0, 2, 4, 6, 1, 3, 5, 7)
        else:
            (h, w), (kh, kw) = g, self.kernel
            x = x.reshape(b, c, h, kh, w, kw).permute(0, 2, 4, 1, 3, 5)
        x = x.reshape(b, math.prod(g), -1)
        return F.linear(x, self.proj.weight.flatten(1), self.proj.bias)


def sincos_table(n_position: int, dim: int) -> torch.Tensor:
    """The 1-D sinusoid table of VideoMAE/MAE, (1, n_position, dim), computed in float64 like the reference."""
    if torch.get_default_device().type == "meta":  # a structure only (arange on meta would import torch._dynamo)
        return torch.empty(1, n_position, dim)
    pos = torch.arange(n_position, dtype=torch.float64)[:, None]
    j = torch.arange(dim)
    angles = pos / torch.pow(torch.tensor(10000.0, dtype=torch.float64), (2 * (j // 2)).double() / dim)
    table = torch.empty_like(angles)
    table[:, 0::2] = torch.sin(angles[:, 0::2])
    table[:, 1::2] = torch.cos(angles[:, 1::2])
    return table.float()[None]


def resample_grid(pos: torch.Tensor, old: tuple[int, int], new: tuple[int, int], mode: str = "bicubic") -> torch.Tensor:
    """Resize grid position embeddings (..., old_h*old_w, dim) to (..., new_h*new_w, dim).

    Leading dims are independent grids (e.g. one per time step). Interpolation runs in float32.
    """
    if tuple(old) == tuple(new):
        return pos
    lead, dim = pos.shape[:-2], pos.shape[-1]
    grid = pos.reshape(-1, old[0], old[1], dim).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=tuple(new), mode=mode, align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(*lead, new[0] * new[1], dim).to(pos.dtype)
