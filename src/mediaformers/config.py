"""Config base: dataclasses that read and write transformers' config.json, field for field."""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch

from .config_schema import check_config
from .errors import CheckpointError

CONFIG_NAME = "config.json"
# Old names of common fields transformers still reads.
COMMON_ALIASES = {"torch_dtype": "dtype"}
# Common fields left out of config.json at these values, as transformers' diff-based save does.
SAVED_IF_SET: dict[str, Any] = {"output_hidden_states": False, "output_attentions": False, "return_dict": True,
                                "chunk_size_feed_forward": 0, "is_encoder_decoder": False, "architectures": None,
                                "problem_type": None, "dtype": None, "pruned_heads": {},
                                "transformers_version": None}
# Keywords transformers' configs take that choose runtime behaviour and are never written to config.json.
RUNTIME_KEYWORDS = {"attn_implementation": "_attn_implementation",
                    "experts_implementation": "_experts_implementation"}


def to_torch_dtype(value: Any) -> torch.dtype | None:
    """config.dtype as transformers holds it (a torch.dtype); a name ("float16", "torch.float16") is read."""
    if value is None or isinstance(value, torch.dtype):
        return value
    dtype = getattr(torch, str(value).removeprefix("torch."), None) if isinstance(value, str) else None
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"dtype: expected a torch dtype or its name (\"float32\"), got {value!r}")
    return dtype


class ConfigMeta(type):
    """Lets a config take every keyword transformers' configs take, as they do: a field is set, a
    keyword the class does not model (``is_decoder``, a custom one) is kept as an attribute and written
    to config.json, and ``attn_implementation`` is kept for the model without being saved."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if args:
            raise TypeError(f"{cls.__name__} accepts only keyword arguments, got {len(args)} positional")
        known: dict[str, Any] = {}
        extra = dict(kwargs.pop("extra", None) or {})
        later: dict[str, Any] = {}
        aliases = {**COMMON_ALIASES, **cls.aliases}  # type: ignore[attr-defined]
        names = {f.name for f in fields(cls)} - {"extra"}  # type: ignore[arg-type]
        for key, value in kwargs.items():
            name = aliases.get(key, key)
            if name in names:
                if not (key != name and name in kwargs):  # both spellings given: the current name wins
                    known[name] = value
            elif key in RUNTIME_KEYWORDS:
                later[RUNTIME_KEYWORDS[key]] = value
            elif cls.has_field(name):  # type: ignore[attr-defined]
                later[name] = value  # a settable property (name_or_path)
            else:
                extra[key] = value
        obj = super().__call__(**known, extra=extra)
        for key, value in later.items():
            setattr(obj, key, value)
        return obj


def read_json_object(file: str) -> dict[str, Any]:
    """A JSON file that must hold an object (config.json); anything else is a CheckpointError naming it."""
    with open(file, encoding="utf-8") as fh:
        try:
            data = json.load(fh)
        except ValueError as err:
            raise CheckpointError(f"{file}: expected a JSON object, got unreadable JSON ({err})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{file}: expected a JSON object of config fields, got {json.dumps(data)[:40]}")
    return data


@dataclass(kw_only=True)
class Config(metaclass=ConfigMeta):
    """Fields every family shares. Subclasses add theirs with transformers' names.

    Keys of config.json (and constructor keywords) we do not model are kept in ``extra``, read as
    attributes (``config.is_decoder``) and written back unchanged, so a round trip through mediaformers
    loses nothing. Sizes that must agree are checked when a model is built (``check_sizes``).
    """

    model_type: ClassVar[str] = ""
    # Old names transformers still accepts for a field: {old: new}.
    aliases: ClassVar[dict[str, str]] = {}
    # Our own fields that transformers' class lacks: written only when they differ from the default,
    # so a config that transformers can express keeps exactly transformers' keys.
    own_fields: ClassVar[tuple[str, ...]] = ()
    # Nested configs by attribute name (AltCLIP's towers), as transformers' ``sub_configs``.
    sub_configs: ClassVar[dict[str, type]] = {}
    _attn_implementation: ClassVar[str | None] = None  # set per instance by the attn_implementation keyword

    num_labels: int | None = None  # derived from id2label when that is given
    id2label: dict[int, str] | None = None  # class index -> name
    label2id: dict[str, Any] | None = None  # name -> class index (kept as given, as transformers does)
    problem_type: str | None = None  # "single_label_classification", "multi_label_classification" or "regression"
    architectures: list[str] | None = None  # class names the weights belong to, read by mf.from_pretrained
    # transformers' PretrainedConfig fields every model reads; written to config.json only when not the default.
    output_hidden_states: bool = False  # forward's default for output_hidden_states
    output_attentions: bool = False  # forward's default for output_attentions
    return_dict: bool = True  # forward's default: an output object (True) or a tuple
    dtype: Any = None  # torch.dtype of the saved weights (config.json: "float32"); old name torch_dtype
    chunk_size_feed_forward: int = 0  # transformers' MLP chunking (memory only); ours runs unchunked, same result
    pruned_heads: dict[int, list[int]] = field(default_factory=dict)  # {layer: [head, ...]} removed by prune_heads
    is_encoder_decoder: bool = False  # always False for these encoders; kept for transformers' code that reads it
    transformers_version: str | None = None  # as read from config.json; written back only when set
    _name_or_path: str = ""  # what from_pretrained was given; never written to config.json
    extra: dict[str, Any] = field(default_factory=dict)  # every other key of config.json, kept verbatim

    def __post_init__(self) -> None:
        check_config(self)
        if self.id2label is not None:
            self.id2label = {int(k): v for k, v in self.id2label.items()}
            if self.num_labels is not None and self.num_labels != len(self.id2label):
                raise ValueError(
                    f"num_labels={self.num_labels} disagrees with id2label, which has {len(self.id2label)} entries"
                )
            self.num_labels = len(self.id2label)
        else:
            self.num_labels = 2 if self.num_labels is None else self.num_labels
            self.id2label = {i: f"LABEL_{i}" for i in range(self.num_labels)}
        if self.label2id is None or len(self.label2id) != len(self.id2label):
            self.label2id = {v: k for k, v in self.id2label.items()}
        allowed = (None, "single_label_classification", "multi_label_classification", "regression")
        if self.problem_type not in allowed:
            raise ValueError(f"problem_type: expected one of {allowed}, got {self.problem_type!r}")
        self.dtype = to_torch_dtype(self.dtype)
        object.__setattr__(self, "_ready", True)

    def __setattr__(self, name: str, value: Any) -> None:
        name = COMMON_ALIASES.get(name, name)
        if getattr(self, "_ready", False):
            if name == "num_labels" and value != self.num_labels:
                # As transformers: a new count means new generic names.
                super().__setattr__("id2label", {i: f"LABEL_{i}" for i in range(value)})
                super().__setattr__("label2id", {f"LABEL_{i}": i for i in range(value)})
            elif name == "id2label" and value is not None:
                value = {int(k): v for k, v in value.items()}
                super().__setattr__("num_labels", len(value))
            elif name == "dtype":
                value = to_torch_dtype(value)
            elif not name.startswith("_") and not self.has_field(name) and not hasattr(type(self), name):
                self.extra[name] = value  # as transformers: a new attribute is part of the config
                return
        super().__setattr__(name, value)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal look-up fails: the keys kept in ``extra`` read as attributes.
        extra = self.__dict__.get("extra")
        if extra is not None and name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __iter__(self):
        """The attribute names, as iterating a transformers config gives them."""
        yield from (f.name for f in fields(self) if f.name != "extra")
        yield from self.extra

    # ---- transformers' PretrainedConfig API ------------------------------------------------------
    @classmethod
    def has_field(cls, name: str) -> bool:
        """Whether ``name`` is a field (or an accepted old name) of this config."""
        name = {**COMMON_ALIASES, **cls.aliases}.get(name, name)
        prop = getattr(cls, name, None)
        return name in {f.name for f in fields(cls)} - {"extra"} or (isinstance(prop, property) and prop.fset is not None)

    @property
    def use_return_dict(self) -> bool:
        return self.return_dict

    @property
    def torch_dtype(self) -> str | None:
        return self.dtype

    @torch_dtype.setter
    def torch_dtype(self, value: Any) -> None:
        self.dtype = value

    @property
    def name_or_path(self) -> str:
        return self._name_or_path

    @name_or_path.setter
    def name_or_path(self, value: Any) -> None:
        self._name_or_path = str(value)

    def update(self, values: dict[str, Any]) -> None:
        """Set fields from a dict; keys that are not fields are kept in ``extra`` (written to config.json,
        as transformers writes every attribute)."""
        for key, value in values.items():
            key = self.aliases.get(key, key)
            if self.has_field(key):
                setattr(self, key, value)
            else:
                self.extra[key] = value

    def to_diff_dict(self) -> dict[str, Any]:
        """What config.json holds: ``to_dict`` less the common fields at transformers' defaults."""
        return _strip_defaults(self.to_dict())

    def get_text_config(self, decoder: Any = None, encoder: Any = None) -> "Config":
        """The text part of a composite config (AltCLIP's ``text_config``), else the config itself."""
        text = getattr(self, "text_config", None)
        return text if isinstance(text, Config) else self

    def to_json_string(self, use_diff: bool = True) -> str:
        """config.json's text; with ``use_diff`` the common fields at their defaults are left out, as saved."""
        data = self.to_diff_dict() if use_diff else self.to_dict()
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> "Config":
        """Read a config.json file (transformers' name for it)."""
        return cls.from_pretrained(path)

    def to_json_file(self, path: str | os.PathLike, use_diff: bool = True) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(self.to_json_string(use_diff))

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides: Any) -> Any:
        """Build from a config.json dict; ``overrides`` win (e.g. ``num_labels=10`` for fine-tuning), a dict
        for a nested config updates it. With ``return_unused_kwargs=True`` (transformers' flag), overrides
        that name nothing of the config are returned beside it instead of being kept: ``(config, unused)``."""
        unused: dict[str, Any] = {}
        if overrides.pop("return_unused_kwargs", False):
            unused = {k: v for k, v in overrides.items()
                      if k not in data and k not in RUNTIME_KEYWORDS and not cls.has_field(k)}
            overrides = {k: v for k, v in overrides.items() if k not in unused}
            return cls.from_dict(data, **overrides), unused
        for key, value in overrides.items():
            if key in cls.sub_configs and isinstance(value, dict) and isinstance(data.get(key), dict):
                overrides[key] = {**data[key], **value}
        data = {**data, **overrides}
        if "num_labels" in overrides and "id2label" not in overrides:
            data.pop("id2label", None)
            data.pop("label2id", None)
        mt = data.get("model_type")
        if mt is not None and cls.model_type and mt != cls.model_type:
            raise ValueError(f"model_type: expected {cls.model_type!r}, got {mt!r}")
        data.pop("model_type", None)
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            if f.name == "id2label":
                value = {str(k): v for k, v in value.items()}
            if f.name == "num_labels":
                continue  # transformers derives num_labels from id2label
            if f.name in self.own_fields and value == f.default:
                continue
            if f.name == "dtype" and value is not None:
                value = str(value).removeprefix("torch.")
            if isinstance(value, Config):
                value = value.to_dict()
            out[f.name] = value
        out["model_type"] = self.model_type
        return dict(sorted(out.items()))

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **overrides: Any) -> "Config":
        """Read config.json from a folder (or the file itself); a malformed file is a CheckpointError
        naming it and the field."""
        path = os.path.join(os.fspath(path), overrides.pop("subfolder", "") or "")
        file = os.path.join(path, CONFIG_NAME) if os.path.isdir(path) else path.rstrip(os.sep)
        data = read_json_object(file)
        try:
            return cls.from_dict(data, **overrides)
        except CheckpointError:
            raise
        except ValueError as err:
            if str(err).split(":")[0].split(".")[0].split("[")[0] in overrides:
                raise  # the caller's keyword, not the file, is wrong
            raise CheckpointError(f"{file}: {err}") from None

    def save_pretrained(self, folder: str | os.PathLike, **additions: Any) -> None:
        """Write config.json; ``additions`` are extra keys for this file only (e.g. dtype)."""
        os.makedirs(folder, exist_ok=True)
        data = {**_strip_defaults(self.to_dict()), **additions}
        with open(os.path.join(folder, CONFIG_NAME), "w", encoding="utf-8") as fh:
            json.dump(dict(sorted(data.items())), fh, indent=2, ensure_ascii=False)
            fh.write("\n")


def _strip_defaults(data: dict[str, Any], nested: bool = False) -> dict[str, Any]:
    """What config.json holds: the common fields only where they differ from transformers' defaults
    (nested configs too, which also leave out the two default labels, as transformers writes them),
    never private keys (``_name_or_path``)."""
    out = {}
    for key, value in data.items():
        if key.startswith("_") or (key in SAVED_IF_SET and value == SAVED_IF_SET[key]):
            continue
        if nested and key in ("id2label", "label2id") and data.get("id2label") == _DEFAULT_LABELS:
            continue
        out[key] = _strip_defaults(value, True) if isinstance(value, dict) and "model_type" in value else value
    return out


_DEFAULT_LABELS = {"0": "LABEL_0", "1": "LABEL_1"}


@dataclass(kw_only=True)
class ViTEncoderConfig(Config):
    """The transformer-encoder fields the ViT-style families share, declared once under transformers'
    names; a family overrides a default by declaring the field again with its own."""

    hidden_size: int = 768  # token width
    num_hidden_layers: int = 12  # encoder blocks
    num_attention_heads: int = 12  # heads per block; divides hidden_size
    intermediate_size: int = 3072  # width of the MLP inside each block
    hidden_act: str = "gelu"  # the MLP's activation
    hidden_dropout_prob: float = 0.0  # dropout on embeddings and block outputs
    attention_probs_dropout_prob: float = 0.0  # dropout on attention weights
    initializer_range: float = 0.02  # std of transformers' normal init of linear layers
    layer_norm_eps: float = 1e-12
    qkv_bias: bool = True  # biases on the attention's q, k, v projections
