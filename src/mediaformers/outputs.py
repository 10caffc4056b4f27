"""Model outputs: dataclasses with transformers' field names, readable by attribute, key and index."""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch


class ModelOutput:
    """Index access skips fields that are None, as transformers' ModelOutput does (``out[0]``)."""

    def to_tuple(self) -> tuple:
        return tuple(v for v in (getattr(self, f.name) for f in fields(self)) if v is not None)

    def keys(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def __getitem__(self, key):
        if isinstance(key, str):
            if key not in self.keys():
                raise KeyError(key)
            return getattr(self, key)
        return self.to_tuple()[key]

    def __iter__(self):
        return iter(self.to_tuple())

    def __len__(self) -> int:
        return len(self.to_tuple())


Tensors = tuple[torch.Tensor, ...] | None


@dataclass
class BaseModelOutput(ModelOutput):
    last_hidden_state: torch.Tensor | None = None
    hidden_states: Tensors = None
    attentions: Tensors = None


@dataclass
class BaseModelOutputWithPooling(ModelOutput):
    last_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    hidden_states: Tensors = None
    attentions: Tensors = None


@dataclass
class ClassifierOutput(ModelOutput):
    """transformers' ImageClassifierOutput / SequenceClassifierOutput."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: Tensors = None
    attentions: Tensors = None
