"""What processors return: a dict of model inputs with transformers' BatchFeature methods.

A ``dict`` subclass (code that treats the result as a dict keeps working) with ``.to(device or dtype)``,
which transformers' pipelines call on what a processor returns, and attribute access to the keys.
"""
from __future__ import annotations

from typing import Any

import torch


class BatchFeature(dict):
    """Model inputs by name (``pixel_values``, ``input_values``, masks), as transformers' BatchFeature."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no key {name!r}; keys: {sorted(self)}") from None

    def to(self, *args: Any, **kwargs: Any) -> BatchFeature:
        """Floating tensors go through ``tensor.to(*args, **kwargs)`` (device and/or dtype); other tensors
        (masks, ids) only move to the device, as transformers' BatchFeature.to does. In place; returns self."""
        device = kwargs.get("device")
        if device is None and args:
            first = args[0]
            if isinstance(first, (str, int, torch.device)):
                device = first
            elif not isinstance(first, torch.dtype):
                raise ValueError(f"BatchFeature.to: expected a device or a dtype, got {first!r}")

        def move(v: Any) -> Any:
            if isinstance(v, torch.Tensor):
                if v.is_floating_point():
                    return v.to(*args, **kwargs)
                return v.to(device=device, non_blocking=kwargs.get("non_blocking", False)) if device is not None else v
            if isinstance(v, (list, tuple)):
                return type(v)(move(x) for x in v)
            return v

        for key, value in list(self.items()):
            self[key] = move(value)
        return self
