"""AdamW with layer-wise learning-rate decay, and warmup + cosine."""
from __future__ import annotations

import math
import re

import torch


def layer_id(name: str, num_layers: int) -> int:
    """0 for embeddings, i+1 for block i, num_layers+1 for the rest (norm, head) -- BEiT/VideoMAE's rule."""
    m = re.search(r"(?:^|\.)blocks\.(\d+)\.", name)
    if m:
        return int(m.group(1)) + 1
    if "embed" in name or name.endswith(("cls_token", "dist_token", "pos_embed")):
        return 0
    return num_layers + 1


def param_groups(model: torch.nn.Module, lr: float, weight_decay: float, layer_decay: float = 1.0):
    """Groups of (lr scale, decay): no weight decay on biases and norms (1-d tensors); with
    ``layer_decay`` < 1 block i gets ``lr * layer_decay ** (L + 1 - (i + 1))``."""
    if not 0 < layer_decay <= 1:
        raise ValueError(f"layer_decay: expected a number in (0, 1], got {layer_decay}")
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    ids = [int(m.group(1)) for n in names for m in [re.search(r"(?:^|\.)blocks\.(\d+)\.", n)] if m]
    num_layers = max(ids) + 1 if ids else 0
    groups: dict[tuple[int, bool], dict] = {}
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = p.ndim > 1 and not n.endswith(("cls_token", "pos_embed", "mask_token"))
        lid = layer_id(n, num_layers)
        scale = layer_decay ** (num_layers + 1 - lid)
        g = groups.setdefault((lid, decay), {"params": [], "lr": lr * scale, "lr_scale": scale,
                                              "weight_decay": weight_decay if decay else 0.0})
        g["params"].append(p)
    return list(groups.values())


def build_optimizer(model, lr: float, weight_decay: float = 0.05, layer_decay: float = 1.0,
                    betas=(0.9, 0.999)) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, lr, weight_decay, layer_decay), lr=lr, betas=betas)


def warmup_cosine(optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.0):
    """Linear warmup from 0 then cosine down to ``min_ratio`` of each group's lr."""
    if total_steps < 1 or warmup_steps < 0:
        raise ValueError(f"steps: expected total >= 1 and warmup >= 0, got {total_steps}, {warmup_steps}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
