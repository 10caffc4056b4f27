"""Pre-training: masked autoencoding (and what else the class's loss holds) on unlabelled media."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch

from .base import Task


@contextmanager
def _loss_mode(model):
    """The top module in training mode (heads that compute their loss only when training do), every
    submodule in eval mode (no dropout, no drop path); the mode before is restored after."""
    was = model.training
    model.eval()
    model.training = True
    try:
        yield
    finally:
        model.train(was)


class PretrainingTask(Task):
    """Masked autoencoding (and what else the class's loss holds) on unlabelled media."""

    name = "pretraining"

    def loss(self, forward, batch) -> torch.Tensor:
        inputs = batch["inputs"]
        extra = self.model.pretraining_inputs(inputs, self.r.mask_ratio)
        with self.autocast():
            return forward(**inputs, **extra).loss.float()

    @torch.no_grad()
    def evaluate(self, model, loader) -> dict[str, Any]:
        generator = torch.Generator().manual_seed(self.r.seed)  # the same masks at every evaluation
        total, n, failed = 0.0, 0, []
        with _loss_mode(model):
            for batch in loader:
                failed += batch["failed"]
                if batch["inputs"] is None:
                    continue
                inputs = batch["inputs"]
                extra = model.pretraining_inputs(inputs, self.r.mask_ratio, generator)
                with self.autocast():
                    total += model(**inputs, **extra).loss.float().item() * batch["count"]
                n += batch["count"]
        if not n:
            raise ValueError("validation: expected at least one file that decodes, got none")
        return {"val_loss": total / n, "val_failed": len(failed), "evaluated": n, "score": -total / n}


