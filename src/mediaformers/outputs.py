"""Model outputs that behave as transformers' ModelOutput, and the forward options every model shares.

An output is a dataclass *and* a mapping of its non-None fields, in order, as in transformers: ``out.logits``,
``out["logits"]``, ``out[0]``, ``"loss" in out``, ``out.keys()``, iteration over the keys, ``to_tuple()``.
"""
from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import Field, dataclass, fields
from typing import Any

import torch
import torch.utils._pytree as pytree


def _fields(output: Any) -> tuple[Field, ...]:
    """The fields of an output (its subclasses are dataclasses; ModelOutput itself is not)."""
    return fields(output)


class ModelOutput(Mapping):
    """A mapping of the fields that are not None, read from the dataclass fields (so attributes and keys
    cannot drift apart).

    Not a ``dict`` subclass, unlike transformers' ModelOutput: transformers' pipelines rebuild any dict
    that is not their own ModelOutput as a plain dict on each device move, which loses ``out.logits``;
    a Mapping passes through them unchanged. Every other client reads it as transformers' (keys, index,
    ``type(out)(a_dict)`` as accelerate rebuilds outputs, a pytree node for torch.export).
    """

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        _register_pytree(cls)

    def __post_init__(self) -> None:
        # transformers' convention: one mapping (or the other fields all None) fills the fields by name,
        # as ``type(out)({"loss": l, "logits": x})`` does in accelerate's output conversion.
        names = [f.name for f in _fields(self)]
        first = getattr(self, names[0])
        if isinstance(first, Mapping) and all(getattr(self, n) is None for n in names[1:]):
            unknown = sorted(set(first) - set(names))
            if unknown:
                raise TypeError(f"{type(self).__name__}: expected fields {names}, got {unknown}")
            object.__setattr__(self, names[0], None)
            for key, value in first.items():
                object.__setattr__(self, key, value)

    def _present(self) -> list[str]:
        return [f.name for f in _fields(self) if getattr(self, f.name) is not None]

    def __getitem__(self, key):
        if isinstance(key, str):
            if key not in {f.name for f in _fields(self)} or getattr(self, key) is None:
                raise KeyError(key)
            return getattr(self, key)
        return self.to_tuple()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in {f.name for f in _fields(self)}:
            raise KeyError(f"{type(self).__name__} has no field {key!r}; fields: {[f.name for f in _fields(self)]}")
        setattr(self, key, value)

    def __delitem__(self, key) -> None:
        raise TypeError(f"{type(self).__name__}: fields cannot be deleted; set them to None")

    def __iter__(self) -> Iterator[str]:
        return iter(self._present())

    def __len__(self) -> int:
        return len(self._present())

    def to_tuple(self) -> tuple:
        """The non-None fields in declaration order."""
        return tuple(getattr(self, k) for k in self._present())


def _register_pytree(cls: type) -> None:
    """Flatten an output to its non-None fields (as transformers registers its ModelOutput subclasses), so
    torch.export, DDP and torch.compile see the tensors inside."""
    def unflatten(values, keys, cls=cls):
        return cls(**dict(zip(keys, values)))

    pytree.register_pytree_node(
        cls, lambda out: (list(out.values()), list(out.keys())), unflatten,
        serialized_type_name=f"{cls.__module__}.{cls.__qualname__}",
        flatten_with_keys_fn=lambda out: ([(pytree.MappingKey(k), v) for k, v in out.items()], list(out.keys())),
    )


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
