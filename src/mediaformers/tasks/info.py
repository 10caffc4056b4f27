"""``mediaformers info``: what a checkpoint is and what it expects."""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .embedding import pooled_embedding
from .loading import load_model


def describe(ref: str) -> dict[str, Any]:
    loaded = load_model(ref)
    model, c, fam = loaded.model, loaded.config, loaded.declaration
    inputs = fam.dummy_inputs(type(model), c, 1)
    # The encoder's pooled path: every class has one (task heads add a negligible share), and
    # image-text models count the image tower, which is what runs per input file.
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        pooled_embedding(loaded, inputs)
    return {
        "model": str(ref),
        "folder": loaded.folder,
        "family": loaded.family,
        "class": type(model).__name__,
        "task": fam.task,
        "parameters": model.num_parameters(),
        "gflops_per_input": round(counter.get_total_flops() / 1e9, 3),
        "expected_input": fam.input_doc(c),
        "labels": len(c.id2label) if getattr(model, "is_classifier", False) else None,
        "config": c.to_dict(),
    }
