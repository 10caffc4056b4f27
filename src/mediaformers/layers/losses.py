"""Losses shared by a model's own forward and the training loop."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def clip_loss(logits_per_text: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric cross-entropy over a (texts, media) logit matrix whose pairs are on the diagonal."""
    target = torch.arange(len(logits_per_text), device=logits_per_text.device)
    return (F.cross_entropy(logits_per_text, target) + F.cross_entropy(logits_per_text.t(), target)) / 2
