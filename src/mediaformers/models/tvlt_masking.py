"""TVLT's MAE steps: masking noise drawn exactly as the reference draws it, shuffling, patchify, loss.

The reference (transformers 4.57.1) calls ``torch.rand`` once for the pixels, then once for the
audio, with these shapes; doing the same means that under one ``torch.manual_seed`` both mask the
same patches. A ``generator`` (or explicit noise tensors) makes a run reproducible without touching
the global RNG.
"""
from __future__ import annotations

import torch

AUDIO_MASK_TYPES = ("frame-level", "patch-level", "patch_level")  # "patch_level": the reference config's spelling


def pixel_noise(
    batch: int, num_patches: int, *, generator: torch.Generator | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """Uniform noise (batch, num_patches): one value per pixel patch."""
    return torch.rand((batch, num_patches), generator=generator, device=device)


def audio_noise(
    batch: int,
    num_patches: int,
    freq_patches: int,
    mask_type: str,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Uniform noise (batch, num_patches) over the (time, frequency) patch grid, time-major.

    "frame-level" draws one value per time step and repeats it over its ``freq_patches`` patches, so
    whole frames are kept or dropped together (ties break inside argsort, as in the reference).
    """
    if mask_type == "frame-level":
        frames = torch.rand(batch, num_patches // freq_patches, generator=generator, device=device)
        return frames.unsqueeze(-1).repeat(1, 1, freq_patches).view(batch, num_patches)
    if mask_type in ("patch-level", "patch_level"):
        return torch.rand(batch, num_patches, generator=generator, device=device)
    raise ValueError(f"audio_mask_type: expected one of {AUDIO_MASK_TYPES}, got {mask_type!r}")


def check_noise(noise: torch.Tensor, name: str, batch: int, num_patches: int) -> None:
    if not isinstance(noise, torch.Tensor) or noise.shape != (batch, num_patches) or not noise.is_floating_point():
        got = f"shape {tuple(noise.shape)} {noise.dtype}" if isinstance(noise, torch.Tensor) else type(noise).__name__
        raise ValueError(f"{name}: expected a float tensor of shape ({batch}, {num_patches}), got {got}")


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


def unshuffle(x: torch.Tensor, mask_token: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
    """Append mask tokens to the kept tokens (batch, kept, dim) and restore the original order."""
    b, n, d = x.shape
    x = torch.cat([x, mask_token.to(x.dtype).expand(b, ids_restore.shape[1] - n, d)], dim=1)
    return torch.gather(x, 1, ids_restore.unsqueeze(-1).expand(-1, -1, d))


def patchify_pixels(pixel_values: torch.Tensor, p: int) -> torch.Tensor:
    """(batch, frames, C, H, W) -> (batch, frames * h * w, p * p * C), patch pixels in (row, col, channel) order."""
    b, t, c, h, w = pixel_values.shape
    x = pixel_values.reshape(b, t, c, h // p, p, w // p, p).permute(0, 1, 3, 5, 4, 6, 2)
    return x.reshape(b, t * (h // p) * (w // p), p * p * c)


def patchify_audio(audio_values: torch.Tensor, pt: int, pf: int) -> torch.Tensor:
    """(batch, C, time, freq) -> (batch, time/pt * freq/pf, pt * pf * C); a ragged tail is dropped, as the conv does."""
    b, c, h, w = audio_values.shape
    x = audio_values[:, :, : h // pt * pt, : w // pf * pf]
    x = x.reshape(b, c, h // pt, pt, w // pf, pf).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // pt) * (w // pf), pt * pf * c)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error per patch, averaged over the masked (mask = 1) patches only."""
    per_patch = ((pred - target) ** 2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum()
