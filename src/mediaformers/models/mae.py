"""Masked-autoencoder steps shared by the pre-training heads (VideoMAE's, TVLT's): patchify, mask,
unshuffle, loss -- the pieces facebookresearch/mae's ``models_mae.py`` names, with shapes.

Noise is drawn with one ``torch.rand`` call of the reference's shape, so under one
``torch.manual_seed`` the same patches are masked as in the reference implementations.
"""
from __future__ import annotations

import torch


# ---- patchify: the regression targets ------------------------------------------------------------
def patchify(videos: torch.Tensor, tubelet: int, patch: int) -> torch.Tensor:
    """(batch, frames, C, H, W) -> (batch, tubelets, tubelet*patch*patch, C): tubelets in (time, row,
    column) order, pixels inside one in (frame, row, column) order. ``tubelet=1`` patchifies frames."""
    b, t, c, h, w = videos.shape
    x = videos.reshape(b, t // tubelet, tubelet, c, h // patch, patch, w // patch, patch)
    x = x.permute(0, 1, 4, 6, 2, 5, 7, 3)
    return x.reshape(b, -1, tubelet * patch * patch, c)


def patchify_2d(x: torch.Tensor, ph: int, pw: int) -> torch.Tensor:
    """(batch, C, H, W) -> (batch, H/ph * W/pw, ph*pw*C), row-major; a ragged edge is dropped, as a
    stride-``(ph, pw)`` conv drops it."""
    b, c, h, w = x.shape
    x = x[:, :, : h // ph * ph, : w // pw * pw]
    x = x.reshape(b, c, h // ph, ph, w // pw, pw).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // ph) * (w // pw), ph * pw * c)


# ---- mask -----------------------------------------------------------------------------------------
def uniform_noise(batch: int, tokens: int, *, generator: torch.Generator | None = None,
                  device: torch.device | None = None) -> torch.Tensor:
    """(batch, tokens) uniform noise: one value per token (MAE's random masking)."""
    return _rand((batch, tokens), generator, device)


def _rand(shape: tuple[int, int], generator: torch.Generator | None, device: torch.device | None) -> torch.Tensor:
    """``torch.rand`` on ``device``; with a ``generator``, drawn where the generator lives and moved (a CPU
    generator, as the training loop's seeded evaluation passes, cannot draw on a GPU)."""
    if generator is None:
        return torch.rand(shape, device=device)
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def grouped_noise(batch: int, tokens: int, group: int, *, generator: torch.Generator | None = None,
                  device: torch.device | None = None) -> torch.Tensor:
    """(batch, tokens) noise with one value per run of ``group`` consecutive tokens, so a group (e.g.
    the frequency patches of one time step) is kept or dropped whole; ties break inside argsort."""
    values = _rand((batch, tokens // group), generator, device)
    return values.unsqueeze(-1).repeat(1, 1, group).view(batch, tokens)


def check_noise(noise: torch.Tensor, name: str, batch: int, tokens: int) -> None:
    if not isinstance(noise, torch.Tensor) or noise.shape != (batch, tokens) or not noise.is_floating_point():
        got = f"shape {tuple(noise.shape)} {noise.dtype}" if isinstance(noise, torch.Tensor) else type(noise).__name__
        raise ValueError(f"{name}: expected a float tensor of shape ({batch}, {tokens}), got {got}")


def random_masking(
    x: torch.Tensor, noise: torch.Tensor, len_keep: int, keep_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Keep the ``len_keep`` tokens with the smallest noise in each sample (MAE's shuffle).

    x: (batch, tokens, dim); noise: (batch, tokens); keep_mask: optional padding mask (batch, tokens),
    1 = real token. Returns the kept tokens (batch, len_keep, dim), the padding mask of the kept
    tokens, ``label_masks`` (batch, tokens) float, 1 = dropped real token (padding never counts),
    and ``ids_restore`` (batch, tokens) that puts a shuffled sequence back in order.
    """
    ids_shuffle = torch.argsort(noise, dim=1)  # the reference's call: same tie-breaking
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    # A token is dropped when its rank in the shuffle is past len_keep.
    label_masks = (ids_restore >= len_keep).to(torch.float32)
    if keep_mask is not None:
        label_masks = label_masks * keep_mask.to(torch.float32)
        keep_mask = torch.gather(keep_mask, 1, ids_keep)
    return kept, keep_mask, label_masks, ids_restore


def visible(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The tokens a boolean ``mask`` (batch, tokens), True = masked, leaves: (batch, visible, dim), in
    order. Every sample must mask as many tokens."""
    return x[~mask].reshape(x.shape[0], -1, x.shape[-1])


# ---- decode ---------------------------------------------------------------------------------------
def unshuffle(x: torch.Tensor, mask_token: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
    """Append mask tokens to the kept tokens (batch, kept, dim) and restore the original order."""
    b, n, d = x.shape
    x = torch.cat([x, mask_token.to(x.dtype).expand(b, ids_restore.shape[1] - n, d)], dim=1)
    return torch.gather(x, 1, ids_restore.unsqueeze(-1).expand(-1, -1, d))


# ---- loss -----------------------------------------------------------------------------------------
def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error per patch, averaged over the masked (mask = 1) patches only."""
    per_patch = ((pred - target) ** 2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum()
