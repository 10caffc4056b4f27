"""mediaformers: fast, lean VideoMAE, ViViT, AST, TVLT and AltCLIP that load transformers checkpoints.

Names resolve lazily (PEP 562), so ``import mediaformers`` stays cheap for the command line and a
family's module loads only when one of its names is used.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS: dict[str, list[str]] = {
    "auto": ["from_pretrained"],
    "tasks.pipelines": ["pipeline"],
    "config": ["Config"],
    "modeling": ["CheckpointError", "LoadReport", "PreTrainedModel"],
    "models.videomae": ["VideoMAEConfig", "VideoMAEModel", "VideoMAEForPreTraining",
                        "VideoMAEForVideoClassification", "make_tube_mask"],
    "models.vivit": ["VivitConfig", "VivitModel", "VivitForVideoClassification"],
    "models.ast": ["ASTConfig", "ASTModel", "ASTForAudioClassification"],
    "models.tvlt": ["TvltConfig", "TvltModel", "TvltForPreTraining", "TvltForAudioVisualClassification"],
    "models.altclip": ["AltCLIPConfig", "AltCLIPTextConfig", "AltCLIPVisionConfig", "AltCLIPTextModel",
                       "AltCLIPVisionModel", "AltCLIPModel"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'mediaformers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mediaformers.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
