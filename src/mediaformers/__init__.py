"""mediaformers: fast, lean VideoMAE, ViViT, AST, TVLT and AltCLIP that load transformers checkpoints.

Names resolve lazily (PEP 562), so ``import mediaformers`` stays cheap for the command line. The
models' names (configs, classes, extras) come from the family declarations: the first such name
asked for imports ``mediaformers.models`` (see ``mediaformers.family``).
"""
from __future__ import annotations

import importlib
import importlib.util

__version__ = "0.1.0"

# The core API; every family's public names are added from its declaration.
_EXPORTS: dict[str, list[str]] = {
    "auto": ["from_pretrained"],
    "tasks.pipelines": ["pipeline"],
    "registry": ["list_models"],
    "family": ["Family", "Pretrained", "Processor", "families", "register_family"],
    "config": ["Config"],
    "modeling": ["CheckpointError", "LoadReport", "PreTrainedModel"],
    "library": ["Library"],
    "precision": ["apply_precision"],
    "export": ["export_model"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}


def _family_names() -> dict:
    from .family import families

    return {name: obj for fam in families().values() for name, obj in fam.names().items()}


def __getattr__(name: str):
    if name == "__all__":  # `from mediaformers import *`
        return sorted(set(_WHERE) | set(_family_names()))
    if name.startswith("__"):  # other dunder probes (copy, pickle, doctest) never import the models
        raise AttributeError(name)
    if name in _WHERE:
        value = getattr(importlib.import_module(f"mediaformers.{_WHERE[name]}"), name)
    elif importlib.util.find_spec(f"mediaformers.{name}") is not None:  # a subpackage, e.g. `from . import models`
        return importlib.import_module(f"mediaformers.{name}")
    else:
        value = _family_names().get(name)
        if value is None:
            raise AttributeError(f"module 'mediaformers' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE) | set(_family_names()))
