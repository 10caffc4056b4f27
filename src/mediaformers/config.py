"""Config base: dataclasses that read and write transformers' config.json, field for field."""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

CONFIG_NAME = "config.json"


@dataclass(kw_only=True)
class Config:
    """Fields every family shares. Subclasses add theirs with transformers' names.

    Keys of config.json we do not model are kept in ``extra`` and written back unchanged, so a
    round trip through mediaformers loses nothing.
    """

    model_type: ClassVar[str] = ""
    # Old names transformers still accepts for a field: {old: new}.
    aliases: ClassVar[dict[str, str]] = {}
    # Our own fields that transformers' class lacks: written only when they differ from the default,
    # so a config that transformers can express keeps exactly transformers' keys.
    own_fields: ClassVar[tuple[str, ...]] = ()

    num_labels: int | None = None  # derived from id2label when that is given
    id2label: dict[int, str] | None = None  # class index -> name
    label2id: dict[str, int] | None = None  # name -> class index
    problem_type: str | None = None  # "single_label_classification", "multi_label_classification" or "regression"
    architectures: list[str] | None = None  # class names the weights belong to, read by mf.from_pretrained
    extra: dict[str, Any] = field(default_factory=dict)  # every other key of config.json, kept verbatim

    def __post_init__(self) -> None:
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
        self.label2id = {k: int(v) for k, v in self.label2id.items()}
        allowed = (None, "single_label_classification", "multi_label_classification", "regression")
        if self.problem_type not in allowed:
            raise ValueError(f"problem_type: expected one of {allowed}, got {self.problem_type!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides: Any) -> "Config":
        """Build from a config.json dict; ``overrides`` win (e.g. ``num_labels=10`` for fine-tuning)."""
        data = {**data, **overrides}
        if "num_labels" in overrides and "id2label" not in overrides:
            data.pop("id2label", None)
            data.pop("label2id", None)
        mt = data.get("model_type")
        if mt is not None and cls.model_type and mt != cls.model_type:
            raise ValueError(f"config.json: expected model_type {cls.model_type!r}, got {mt!r}")
        names = {f.name for f in fields(cls)} - {"extra"}
        known, extra = {}, dict(data.pop("extra", {}) or {})
        for key, value in data.items():
            key = cls.aliases.get(key, key)
            if key in names:
                known[key] = value
            elif key != "model_type":
                extra[key] = value
        return cls(**known, extra=extra)

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
            if f.name == "num_labels" or (f.name in ("architectures", "problem_type") and value is None):
                continue  # transformers derives num_labels from id2label
            if f.name in self.own_fields and value == f.default:
                continue
            out[f.name] = value
        out["model_type"] = self.model_type
        return dict(sorted(out.items()))

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **overrides: Any) -> "Config":
        """Read config.json from a folder (or the file itself)."""
        path = os.fspath(path)
        file = os.path.join(path, CONFIG_NAME) if os.path.isdir(path) else path
        with open(file, encoding="utf-8") as fh:
            return cls.from_dict(json.load(fh), **overrides)

    def save_pretrained(self, folder: str | os.PathLike, **additions: Any) -> None:
        """Write config.json; ``additions`` are extra keys for this file only (e.g. dtype)."""
        os.makedirs(folder, exist_ok=True)
        data = {**self.to_dict(), **additions}
        with open(os.path.join(folder, CONFIG_NAME), "w", encoding="utf-8") as fh:
            json.dump(dict(sorted(data.items())), fh, indent=2, ensure_ascii=False)
            fh.write("\n")
