"""An attention heat map over what the model saw: frames (video) or the spectrogram (audio)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import require_matplotlib, save


def _upsample(heat: torch.Tensor, size: tuple[int, ...]) -> np.ndarray:
    mode = "bilinear" if heat.dim() == 2 else "trilinear"
    return F.interpolate(heat[None, None].float(), size=size, mode=mode, align_corners=False)[0, 0].numpy()


def plot_explanation(result: dict[str, Any], path: str | Path, *, frames: int = 8, title: str | None = None) -> Path:
    """Draw :func:`~mediaformers.tasks.explain.explain`'s result: the heat map over the input, with the label."""
    plt = require_matplotlib("explain")
    x, heat = result["input"], result["heat"]
    head = title or f"{result['label']} ({result['score']:.3f})"
    if x.dim() == 3:  # (1, mel, time): a spectrogram, low frequencies at the bottom
        fig, ax = plt.subplots(figsize=(10, 3.2))
        ax.imshow(x[0].numpy(), origin="lower", aspect="auto", cmap="gray")
        ax.imshow(_upsample(heat, tuple(x.shape[1:])), origin="lower", aspect="auto", cmap="jet", alpha=0.45)
        ax.set(xlabel="frame", ylabel="mel bin", title=head)
        return save(fig, path)
    if x.dim() != 4:
        raise ValueError(f"explain: expected a spectrogram (1, mel, time) or frames (C, T, H, W), got {tuple(x.shape)}")
    c, t = x.shape[:2]
    up = _upsample(heat, tuple(x.shape[1:]))  # (T, H, W)
    picks = np.unique(np.linspace(0, t - 1, min(frames, t)).round().astype(int))
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    shown = ((x - lo) / (hi - lo + 1e-8)).permute(1, 2, 3, 0).numpy()  # (T, H, W, C) in [0, 1]
    fig, axes = plt.subplots(1, len(picks), figsize=(2.2 * len(picks), 2.6), squeeze=False)
    for ax, k in zip(axes[0], picks):
        ax.imshow(shown[k] if c == 3 else shown[k, ..., 0], cmap=None if c == 3 else "gray")
        ax.imshow(up[k], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"frame {k}", fontsize=8)
    fig.suptitle(head, fontsize=10)
    return save(fig, path)
