"""Patches back into pictures, and pictures into what matplotlib shows: shared by the MAE grids."""
from __future__ import annotations

import numpy as np
import torch


def unpatchify(patches: torch.Tensor, frames: int, height: int, width: int, tubelet: int, patch: int) -> torch.Tensor:
    """Inverse of :func:`~mediaformers.models.mae.patchify`: (batch, tubelets, tubelet*patch*patch, C) ->
    (batch, frames, C, H, W)."""
    b, _, _, c = patches.shape
    x = patches.reshape(b, frames // tubelet, height // patch, width // patch, tubelet, patch, patch, c)
    return x.permute(0, 1, 4, 7, 2, 5, 3, 6).reshape(b, frames, c, height, width)



def unpatchify_2d(patches: torch.Tensor, height: int, width: int, ph: int, pw: int) -> torch.Tensor:
    """Inverse of :func:`~mediaformers.models.mae.patchify_2d` over its whole patches: (batch, patches,
    ph*pw*C) -> (batch, C, height // ph * ph, width // pw * pw)."""
    b, _, d = patches.shape
    gh, gw, c = height // ph, width // pw, d // (ph * pw)
    x = patches.reshape(b, gh, gw, ph, pw, c).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, c, gh * ph, gw * pw)



def display(frames: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> np.ndarray:
    """(T, C, H, W) -> (T, H, W, C or no C) in [0, 1] with the input's per-channel range; NaN -> grey."""
    scaled = torch.nan_to_num(((frames - lo) / (hi - lo + 1e-8)).clamp(0, 1), nan=0.5)
    out = scaled.permute(0, 2, 3, 1).cpu().numpy()
    return out[..., 0] if out.shape[-1] == 1 else out
