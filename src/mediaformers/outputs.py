"""Model outputs that behave as transformers' ModelOutput, and the forward options every model shares.

An output is a dataclass *and* an ordered dict of its non-None fields, as in transformers: ``out.logits``,
``out["logits"]``, ``out[0]``, ``"loss" in out``, ``out.keys()``, iteration over the keys, ``to_tuple()``.
"""
from __future__ import annotations

import contextvars
import functools
import inspect
from collections import OrderedDict
from dataclasses import Field, dataclass, fields
from typing import Any, Callable

import torch


def _fields(output: Any) -> tuple[Field, ...]:
    """The fields of an output (its subclasses are dataclasses; ModelOutput itself is not)."""
    return fields(output)


class ModelOutput(OrderedDict):
    """Ordered dict of the fields that are not None; attributes and keys stay in step."""

    def __post_init__(self) -> None:
        for f in _fields(self):
            value = getattr(self, f.name)
            if value is not None:
                super().__setitem__(f.name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in {f.name for f in _fields(self)}:
            if value is None:
                super().pop(name, None)
            else:
                super().__setitem__(name, value)
        super().__setattr__(name, value)

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in {f.name for f in _fields(self)}:
            raise KeyError(f"{type(self).__name__} has no field {key!r}; fields: {[f.name for f in _fields(self)]}")
        setattr(self, key, value)

    def __getitem__(self, key):
        if isinstance(key, str):
            return dict(self.items())[key]
        return self.to_tuple()[key]

    def __delitem__(self, key) -> None:
        raise TypeError(f"{type(self).__name__}: fields cannot be deleted; set them to None")

    def to_tuple(self) -> tuple:
        """The non-None fields in declaration order."""
        return tuple(self[k] for k in self.keys())

    # A dataclass with eq=True would drop the dict's hash anyway; equality compares the fields.
    def __reduce__(self):
        return type(self), tuple(getattr(self, f.name) for f in _fields(self))


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
    """The fields of transformers' classifier outputs; heads return one of the named subclasses below."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: Tensors = None
    attentions: Tensors = None


@dataclass
class ImageClassifierOutput(ClassifierOutput):
    """transformers' name for image and video classifiers (VideoMAE, ViViT)."""


@dataclass
class SequenceClassifierOutput(ClassifierOutput):
    """transformers' name for sequence (audio, audio-visual) classifiers."""


# ---- forward options (transformers' return_dict / output_* / head_mask conventions) ---------------------
_NESTED = contextvars.ContextVar("mediaformers_forward_depth", default=0)
_TRACED_DEPTH = [0]  # the same depth while torch.compile traces (see forward_options)


def forward_options(fn: Callable) -> Callable:
    """Give a model forward transformers' option handling.

    ``output_hidden_states`` / ``output_attentions`` left as None take the config's value, and the
    result becomes a tuple when ``return_dict`` is False (given, or ``config.return_dict`` at the
    outermost call: a model called inside another forward returns its output object, as transformers'
    models pass ``return_dict=True`` to their sub-models). ``type(self).as_tuple`` builds the tuple.
    """
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        bound = sig.bind(self, *args, **kwargs)
        config = self.config
        for name in ("output_hidden_states", "output_attentions"):
            if name in sig.parameters and bound.arguments.get(name) is None:
                bound.arguments[name] = bool(getattr(config, name, False))
        return_dict = bound.arguments.pop("return_dict", None) if "return_dict" in sig.parameters else None
        if torch.compiler.is_compiling():
            # dynamo cannot trace a ContextVar (a graph break, and a recompile per call as the token
            # changes); a traced forward runs in one thread, so a plain counter does.
            outermost = _TRACED_DEPTH[0] == 0
            _TRACED_DEPTH[0] += 1
            try:
                out = fn(*bound.args, **bound.kwargs)
            finally:
                _TRACED_DEPTH[0] -= 1
        else:
            outermost = _NESTED.get() == 0
            token = _NESTED.set(_NESTED.get() + 1)
            try:
                out = fn(*bound.args, **bound.kwargs)
            finally:
                _NESTED.reset(token)
        if return_dict is None:
            return_dict = getattr(config, "return_dict", True) if outermost else True
        return out if return_dict else type(self).as_tuple(out)

    return wrapper
