"""Pick the model class from a checkpoint's config.json, by the family declarations."""
from __future__ import annotations

import json
import os
from typing import Any

from .checkpoints.hub import resolve
from .config import CONFIG_NAME
from .family import families, find_class
from .registry import lookup


def model_class(config: dict[str, Any]):
    """The mediaformers class for a config.json dict ("architectures" first, then "model_type")."""
    for arch in config.get("architectures") or []:
        found = find_class(arch)
        if found is not None:
            return found[1]
    mt = config.get("model_type")
    fams = families()
    if mt in fams:
        return fams[mt].backbone
    raise ValueError(
        f"config.json: architectures {config.get('architectures')} / model_type {mt!r} is not one mediaformers "
        f"knows; expected a model_type in {sorted(fams)}"
    )


def read_config(ref: str | os.PathLike, **hub_kwargs: Any) -> tuple[str, dict[str, Any]]:
    """The local folder of ``ref`` (folder, hub id or registry name) and its config.json."""
    folder = resolve(lookup(ref), **hub_kwargs)
    path = os.path.join(folder, CONFIG_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{folder}: no {CONFIG_NAME}; expected a transformers-style checkpoint folder")
    with open(path, encoding="utf-8") as fh:
        return folder, json.load(fh)


def from_pretrained(ref: str | os.PathLike, **kwargs: Any):
    """Load any supported checkpoint (folder, hub id or registry name) with the class its config.json names."""
    hub = {k: kwargs[k] for k in ("revision", "cache_dir", "local_files_only", "token") if k in kwargs}
    folder, config = read_config(ref, **hub)
    rest = {k: v for k, v in kwargs.items() if k not in hub}
    return model_class(config).from_pretrained(folder, **rest)
