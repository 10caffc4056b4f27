"""A masked autoencoder's reconstruction as a grid: the input, what the encoder saw (masked patches grey)
and the reconstruction (visible patches as given, masked ones as predicted), one row per frame.

Works for a pre-training model whose predictions are the masked patches in ``mae.patchify`` order (config
``tubelet_size``, ``patch_size``, ``norm_pix_loss``). Normalised-pixel predictions are put back with the
true patch's mean and std, in the input's space (per-patch normalisation cancels the processor's per-channel
normalisation, so no family constants are needed)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..models.mae import patchify
from . import require_matplotlib, save
from .mae_av import av_reconstruction, draws
from .patches import display, unpatchify


@torch.no_grad()
def reconstruct(model: Any, pixel_values: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One video ``(1, T, C, H, W)`` and its mask ``(1, tubelets)`` -> input, masked input (NaN where
    masked) and reconstruction, each ``(T, C, H, W)`` float in the input's space."""
    c = model.config
    tub, p = c.tubelet_size, c.patch_size
    _, t, ch, h, w = pixel_values.shape
    pred = model(pixel_values=pixel_values, bool_masked_pos=mask).logits.float()
    x = pixel_values.float()
    patches = patchify(x, tub, p)  # (1, N, tub*p*p, C)
    m = mask.bool()
    pred = pred.reshape(1, -1, tub * p * p, ch)
    if getattr(c, "norm_pix_loss", False):
        true = patches[m]
        pred = pred * (true.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6) + true.mean(dim=-2, keepdim=True)
    recon, hidden = patches.clone(), patches.clone()
    recon[m] = pred[0].to(recon.dtype)
    hidden[m] = float("nan")
    inp, hid, rec = (unpatchify(v, t, h, w, tub, p)[0] for v in (patches, hidden, recon))
    return inp, hid, rec


def plot_reconstruction(inp: torch.Tensor, hidden: torch.Tensor, recon: torch.Tensor, path: str | Path, *,
                        rows: int = 4, title: str | None = None) -> Path:
    plt = require_matplotlib("reconstruction grid")
    lo = inp.amin(dim=(0, 2, 3), keepdim=True)[0][None]
    hi = inp.amax(dim=(0, 2, 3), keepdim=True)[0][None]
    picks = np.unique(np.linspace(0, inp.shape[0] - 1, min(rows, inp.shape[0])).round().astype(int))
    fig, axes = plt.subplots(len(picks), 3, figsize=(6.6, 2.2 * len(picks)), squeeze=False)
    for r, k in enumerate(picks):
        for col, (name, frames) in enumerate((("input", inp), ("masked", hidden), ("reconstruction", recon))):
            ax = axes[r][col]
            ax.imshow(display(frames[k:k + 1], lo, hi)[0], cmap="gray" if inp.shape[1] == 1 else None)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
            if col == 0:
                ax.set_ylabel(f"frame {k}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save(fig, path)


def reconstruction_from_loader(model: Any, loader: Any, path: str | Path, mask_ratio: float | None, *, seed: int = 0,
                               log: Callable[[str], None] = print) -> Path | None:
    """The first validation sample's reconstruction, the same mask at every evaluation (``seed``): frames
    for a video MAE, frames and spectrogram for an audio-visual one (``plots.mae_av``)."""
    c = getattr(model, "config", None)
    video = hasattr(model, "pretraining_inputs") and hasattr(c, "tubelet_size") and hasattr(c, "patch_size")
    if not (video or draws(model)):
        log(f"reconstruction grid: not drawn for {type(model).__name__} (takes video or audio-visual MAE models "
            "with their MAE task on)")
        return None
    for batch in loader:
        if batch["inputs"] is not None:
            break
    else:
        return None
    if not video:
        return av_reconstruction(model, batch["inputs"], path, seed=seed)
    device = next(model.parameters()).device
    pv = batch["inputs"]["pixel_values"][:1].to(device)
    mask = model.pretraining_inputs({"pixel_values": pv}, mask_ratio, torch.Generator().manual_seed(seed))
    was = model.training
    model.eval()
    try:
        parts = reconstruct(model, pv.to(next(model.parameters()).dtype), mask["bool_masked_pos"])
    finally:
        model.train(was)
    return plot_reconstruction(*parts, path, title=Path(path).stem)
