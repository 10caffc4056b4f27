"""Pooled embeddings of any family, through the compiled model when it was loaded with compile=True."""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F

from .loading import Loaded
from .views import META_KEYS


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's keyword inputs of a prepared batch (without what views add beside them)."""
    return {k: v for k, v in batch.items() if k not in META_KEYS}


def pooled_embedding(loaded: Loaded, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(views, dim): the family's pooled representation (its declaration's ``pooled``), without a task head."""
    pooled = loaded.compiled("pooled", partial(loaded.declaration.pooled, loaded.model))
    return pooled(model_inputs(batch))


def unit_embedding(loaded: Loaded, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(views, dim) float32 unit vectors of :func:`pooled_embedding`."""
    return F.normalize(pooled_embedding(loaded, batch).float(), dim=-1)
