"""One schema for every config: a field's type is its dataclass annotation, its range follows from its
name (sizes and counts are positive, ids non-negative, probabilities in [0, 1], eps positive).

Types and ranges are checked when a config is built, so a config.json of wrong types or ranges is
refused with the field named; how sizes agree (heads divide the width) when a model is built, as
transformers does. Upper bounds keep absurd values (``hidden_size: 1e9``,
``num_hidden_layers: 1000000``) from ever reaching a constructor; what a config can still ask for
within them is checked against memory before anything is allocated (modeling.py builds on meta).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from typing import Any

MAX_SIZE = 2**24  # widths, lengths, vocabularies: far above any real checkpoint's
MAX_COUNT = 1024  # layers and heads: each is a module built in Python, even on the meta device
PAIRS = ("image_size", "patch_size", "image_patch_size", "audio_patch_size")  # an int or [height, width]

_KINDS = {  # JSON kinds: a bool is no number, a number must be finite
    type(None): lambda v: v is None,
    bool: lambda v: isinstance(v, bool),
    str: lambda v: isinstance(v, str),
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
}


def _range(name: str, kind: type) -> tuple[float, float, bool]:
    """(low, high, whether low is excluded) of a number field, by its name."""
    if kind is int:
        if name.endswith("_id") or name in ("num_labels", "label2id", "pruned_heads"):  # indices from 0
            return 0, MAX_SIZE, False
        return 1, MAX_COUNT if "layers" in name or "heads" in name else MAX_SIZE, False
    if "dropout" in name or name.endswith(("_prob", "_ratio")):
        return 0.0, 1.0, False
    if name.endswith("eps"):
        return 0.0, math.inf, True
    if name.startswith("initializer"):
        return 0.0, math.inf, False
    return -math.inf, math.inf, False


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_field(name: str, value: Any, hint: Any, default: Any = None) -> Any:
    """``value`` converted as config.json allows (string keys of id2label, a tuple for a list), or a
    ValueError ``name: expected ..., got ...``. A field's own ``default`` is always in range."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        # The option of the value's own kind decides, so its message (e.g. "[height, width]") is the one shown.
        for option in args:
            if _same_kind(value, option):
                return check_field(name, value, option, default)
        raise ValueError(f"{name}: expected {' or '.join(map(_type_name, args))}, got {_describe(value)}")
    if hint is Any:
        return value
    if hint in _KINDS:
        if not _KINDS[hint](value):
            raise ValueError(f"{name}: expected {_type_name(hint)}, got {_describe(value)}")
        if hint in (int, float):
            low, high, open_low = _range(name.rpartition(".")[2].split("[")[0], hint)
            if _KINDS[float](default):
                low, high, open_low = min(low, default), max(high, default), open_low and default > low
            if not (low < value if open_low else low <= value) or value > high:
                raise ValueError(f"{name}: expected {_type_name(hint)} in {'(' if open_low else '['}{low}, {high}], "
                                 f"got {value}")
        return value
    if origin is list or hint is list:
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"{name}: expected a non-empty list, got {_describe(value)}")
        if name in PAIRS and len(value) != 2:
            raise ValueError(f"{name}: expected [height, width], got {_describe(value)}")
        return [check_field(f"{name}[{i}]", v, args[0]) for i, v in enumerate(value)] if args else list(value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{name}: expected an object {{key: value}}, got {_describe(value)}")
        if not args:
            return value
        return {_key(name, k, args[0]): check_field(f"{name}[{k!r}]", v, args[1]) for k, v in value.items()}
    if isinstance(hint, type) and hasattr(hint, "from_dict"):  # a nested config
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise ValueError(f"{name}: expected an object of {hint.__name__} fields, got {_describe(value)}")
        try:
            return hint.from_dict(value)
        except ValueError as err:
            raise ValueError(f"{name}.{err}") from None
    return value


def _key(name: str, key: Any, hint: Any) -> Any:
    if hint is int:  # JSON object keys are strings: id2label's "0"
        try:
            return int(key)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: expected integer keys, got {_describe(key)}") from None
    return check_field(f"{name} key", key, hint)


def _type_name(hint: Any) -> str:
    if hint is type(None):
        return "null"
    return str(hint) if typing.get_origin(hint) else {int: "an integer", float: "a finite number", str: "a string",
                                                      bool: "true or false"}.get(hint, hint.__name__)


def _same_kind(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of the JSON kind ``hint`` takes (a nested config's kind is an object)."""
    origin = typing.get_origin(hint) or hint
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin is list:
        return isinstance(value, (list, tuple))
    if origin is dict or hasattr(hint, "from_dict"):
        return isinstance(value, dict) or (isinstance(hint, type) and isinstance(value, hint))
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, (int, float)) and not isinstance(value, bool)  # 1e9 gets int's message
    return isinstance(value, hint)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_config(config: Any) -> None:
    """Check and normalise every annotated field of a config dataclass in place (types and ranges).
    How sizes agree with each other is checked when a model is built (``check_sizes``), as in transformers,
    whose configs take any sizes."""
    hints = _hints(type(config))  # type: ignore[arg-type]
    for f in dataclasses.fields(config):
        if f.name != "extra":
            setattr(config, f.name, check_field(f.name, getattr(config, f.name), hints[f.name], f.default))


def check_sizes(config: Any) -> None:
    """The sizes that must agree for a model to be built: heads divide the width, a patch grid of at least
    one patch; a ValueError naming the field otherwise (nested configs included)."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_sizes(value)
        if f.name.endswith("num_attention_heads"):
            width_name = f.name.replace("num_attention_heads", "hidden_size")
            heads, width = value, getattr(config, width_name, None)
            if isinstance(width, int) and isinstance(heads, int) and width % heads:
                raise ValueError(f"{width_name}: expected a multiple of {f.name} ({heads}), got {width}")
    try:
        grid = getattr(config, "grid", None)
    except (TypeError, ValueError, IndexError, ZeroDivisionError) as err:
        raise ValueError(f"patch grid: expected input and patch sizes that make one, got {err}") from None
    if isinstance(grid, tuple) and min(grid) < 1:
        raise ValueError(f"patch grid: expected at least one patch per axis from the input sizes and patch "
                         f"sizes, got grid {grid}")
