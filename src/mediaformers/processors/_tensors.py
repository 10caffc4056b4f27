"""``return_tensors`` as transformers takes it: "pt", "np" or None (per-example numpy arrays)."""
from __future__ import annotations

from typing import Any

import torch

from .batch_feature import BatchFeature

RETURN_TENSORS = ("pt", "np", None)


def check_return_tensors(return_tensors: Any) -> None:
    if return_tensors not in RETURN_TENSORS:
        raise ValueError(f"return_tensors: expected 'pt', 'np' or None, got {return_tensors!r}")


def convert(out: dict[str, torch.Tensor], return_tensors: str | None) -> BatchFeature:
    """Batched tensors -> ``return_tensors``: tensors, arrays, or (None) a list of one array per example,
    in a BatchFeature (a dict with ``.to(device/dtype)``)."""
    check_return_tensors(return_tensors)
    if return_tensors == "pt":
        return BatchFeature(out)
    arrays = {k: v.detach().cpu().numpy() for k, v in out.items()}
    if return_tensors == "np":
        return BatchFeature(arrays)
    return BatchFeature({k: list(v) for k, v in arrays.items()})
