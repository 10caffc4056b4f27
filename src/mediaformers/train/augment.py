"""Training augmentations where the references use them, by model input: spectrograms
(``input_values (time, mel)``) get SpecAugment time/frequency masks; clips (``pixel_values
(T, 3, H, W)``) get a random resized crop (same box for every frame) and a horizontal flip.
Random draws use torch's global generator, so seeded runs and resumes repeat them."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def spec_augment(x: torch.Tensor, freq_mask: int = 24, time_mask: int = 96) -> torch.Tensor:
    """(time, mel) -> a copy with one frequency band and one time span set to 0 (AST's recipe widths)."""
    x = x.clone()
    t, m = x.shape[-2:]
    for size, dim, width in ((m, -1, min(freq_mask, m)), (t, -2, min(time_mask, t))):
        w = int(torch.randint(0, width + 1, ()))
        s = int(torch.randint(0, size - w + 1, ()))
        x.narrow(dim, s, w).zero_()
    return x


def random_resized_crop_flip(x: torch.Tensor, scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """(T, C, H, W) -> same shape: a random box of ``scale`` of the area, resized back, flipped half the time."""
    _, _, h, w = x.shape
    area = h * w * float(torch.empty(()).uniform_(*scale))
    r = math.exp(float(torch.empty(()).uniform_(math.log(ratio[0]), math.log(ratio[1]))))
    ch, cw = min(h, max(1, round(math.sqrt(area / r)))), min(w, max(1, round(math.sqrt(area * r))))
    top, left = int(torch.randint(0, h - ch + 1, ())), int(torch.randint(0, w - cw + 1, ()))
    x = F.interpolate(x[..., top:top + ch, left:left + cw], size=(h, w), mode="bilinear", align_corners=False)
    return x.flip(-1) if bool(torch.rand(()) < 0.5) else x


def train_augment(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = dict(inputs)
    if "input_values" in out:
        out["input_values"] = spec_augment(out["input_values"])
    if "pixel_values" in out and out["pixel_values"].ndim == 4:
        out["pixel_values"] = random_resized_crop_flip(out["pixel_values"])
    return out


def mixup(inputs: dict[str, torch.Tensor], target: torch.Tensor, alpha: float, num_labels: int):
    """Mix each sample with another of the batch (Beta(alpha, alpha) weight); targets become soft."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(len(target))
    soft = target.float() if target.ndim == 2 else F.one_hot(target, num_labels).float()
    mixed = {k: lam * v + (1 - lam) * v[perm] if v.is_floating_point() else v for k, v in inputs.items()}
    return mixed, lam * soft + (1 - lam) * soft[perm]
