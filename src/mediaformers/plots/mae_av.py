"""An audio-visual masked autoencoder's reconstruction (TVLT's) as a grid: rows of frames and a row of the
audio spectrogram, each as the input, what the encoder saw (masked patches grey) and the reconstruction
(visible patches as given, masked ones as the decoder predicted them).

TVLT draws its masks inside its forward (transformers' ``TvltForPreTraining`` returns neither masks nor
takes them), so the grid runs the forward's own MAE steps, ``encode`` then ``decode`` per stream, with noise
from a seeded generator, and reads what was masked from the encoder's output (``pixel_label_masks``,
``audio_label_masks``: 1 = a masked real patch; padding is never masked). TVLT regresses the raw patches
(no ``norm_pix_loss``), so the predictions are already in the input's space."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.common import pair
from ..models.mae import patchify, patchify_2d
from . import require_matplotlib, save
from .patches import display, unpatchify, unpatchify_2d


def draws(model: Any) -> bool:
    """Whether ``model`` is an audio-visual MAE this module draws (TVLT's pre-training class, MAE on)."""
    c = getattr(model, "config", None)
    return (all(hasattr(model, k) for k in ("encode", "decode", "pixel_head", "audio_head"))
            and hasattr(c, "audio_patch_size") and bool(getattr(c, "task_mae", False)))


def _fill(patches: torch.Tensor, pred: torch.Tensor, masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, N, ...) patches, predictions of the same shape and the (1, N) label mask -> the masked input
    (NaN where masked) and the reconstruction (predictions where masked)."""
    m = masked.bool()
    hidden, recon = patches.clone(), patches.clone()
    hidden[m] = float("nan")
    recon[m] = pred[m].to(recon.dtype)
    return hidden, recon


@torch.no_grad()
def reconstruct_av(model: Any, pixel_values: torch.Tensor, audio_values: torch.Tensor,
                   pixel_mask: torch.Tensor | None = None, audio_mask: torch.Tensor | None = None, *,
                   generator: torch.Generator | None = None, sample: int = 0) -> dict[str, tuple[torch.Tensor, ...]]:
    """A batch, ``pixel_values (batch, T, C, H, W)``, ``audio_values (batch, C, time, freq)`` and their
    padding masks, masked as the model's forward masks it (noise from ``generator``, else the global RNG in
    the reference's order) -> for one ``sample``: ``{"frames": (input, masked, reconstruction) each
    (T, C, H, W), "spectrogram": the same each (C, time, freq)}``, float, in the input's space, masked
    patches NaN in ``masked``. Padding frames and padding time steps are cut off."""
    c = model.config
    b = pixel_values.shape[0] if isinstance(pixel_values, torch.Tensor) and pixel_values.dim() else 0
    if isinstance(sample, bool) or not isinstance(sample, int) or not 0 <= sample < max(b, 1):
        raise ValueError(f"sample: expected a sample of the batch, 0 to {b - 1}, got {sample!r}")
    p, (pt, pf) = pair(c.image_patch_size)[0], pair(c.audio_patch_size)
    out = model.encode(pixel_values, audio_values, pixel_mask, audio_mask, generator=generator)
    pixel_logits = model.decode(out.last_pixel_hidden_state, out.pixel_ids_restore, model.pixel_mask_token,
                                model.decoder_pixel_pos, model.pixel_head).float()
    audio_logits = model.decode(out.last_audio_hidden_state, out.audio_ids_restore, model.audio_mask_token,
                                model.decoder_audio_pos, model.audio_head).float()
    i = slice(sample, sample + 1)
    _, t, _, h, w = pixel_values.shape
    pixels = patchify(pixel_values[i].float(), 1, p)  # (1, N, p*p, C): the order the pixel head predicts in
    frames = tuple(unpatchify(v, t, h, w, 1, p)[0] for v in
                   (pixels, *_fill(pixels, pixel_logits[i].reshape(pixels.shape), out.pixel_label_masks[i])))
    audio = patchify_2d(audio_values[i].float(), pt, pf)
    time, freq = audio_values.shape[2:]
    spec = tuple(unpatchify_2d(v, time, freq, pt, pf)[0] for v in
                 (audio, *_fill(audio, audio_logits[i], out.audio_label_masks[i])))
    real_frames = t if pixel_mask is None else int(pixel_mask[sample].reshape(t, -1).any(-1).sum())
    real_time = spec[0].shape[1] if audio_mask is None else int(
        audio_mask[sample].reshape(-1, c.freq_patches).any(-1).sum()) * pt
    return {"frames": tuple(v[:real_frames] for v in frames), "spectrogram": tuple(v[:, :real_time] for v in spec)}


def plot_av_reconstruction(parts: dict[str, tuple[torch.Tensor, ...]], path: str | Path, *, rows: int = 3,
                           title: str | None = None) -> Path:
    """Up to ``rows`` frames (first to last, evenly) and the spectrogram (its first channel; time across,
    mel bins up), in three columns: input, masked, reconstruction."""
    plt = require_matplotlib("reconstruction grid")
    inp, _, _ = parts["frames"]
    lo = inp.amin(dim=(0, 2, 3), keepdim=True)[0][None]
    hi = inp.amax(dim=(0, 2, 3), keepdim=True)[0][None]
    picks = np.unique(np.linspace(0, inp.shape[0] - 1, min(rows, inp.shape[0])).round().astype(int))
    spec = [v[0].T.cpu().numpy() for v in parts["spectrogram"]]  # (mel bins, time)
    s_lo, s_hi = float(np.nanmin(spec[0])), float(np.nanmax(spec[0]))
    cmap = plt.get_cmap("magma").with_extremes(bad="0.5")  # masked patches grey, as on the frames
    fig, axes = plt.subplots(len(picks) + 1, 3, figsize=(6.6, 2.2 * len(picks) + 1.8), squeeze=False,
                             gridspec_kw={"height_ratios": [2.2] * len(picks) + [1.6]})
    names = ("input", "masked", "reconstruction")
    for r, k in enumerate(picks):
        for col, frames in enumerate(parts["frames"]):
            ax = axes[r][col]
            ax.imshow(display(frames[k:k + 1], lo, hi)[0], cmap="gray" if inp.shape[1] == 1 else None)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(names[col], fontsize=9)
            if col == 0:
                ax.set_ylabel(f"frame {k}", fontsize=8)
    for col, image in enumerate(spec):
        ax = axes[-1][col]
        ax.imshow(np.ma.masked_invalid(image), origin="lower", aspect="auto", cmap=cmap, vmin=s_lo, vmax=s_hi,
                  interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        if col == 0:
            ax.set_ylabel("spectrogram", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save(fig, path)


def av_reconstruction(model: Any, inputs: dict[str, torch.Tensor], path: str | Path, *, seed: int = 0) -> Path:
    """The first sample of a batch of ``inputs`` (pixel_values, audio_values and their masks) drawn to
    ``path``, masked with noise from ``seed`` (the same masks at every evaluation), the model in eval mode
    (no dropout) while it draws."""
    device = next(model.parameters()).device
    one = {k: inputs[k][:1].to(device) for k in ("pixel_values", "audio_values", "pixel_mask", "audio_mask")
           if inputs.get(k) is not None}
    was = model.training
    model.eval()
    try:
        parts = reconstruct_av(model, one["pixel_values"], one["audio_values"], one.get("pixel_mask"),
                               one.get("audio_mask"), generator=torch.Generator().manual_seed(seed))
    finally:
        model.train(was)
    return plot_av_reconstruction(parts, path, title=Path(path).stem)
