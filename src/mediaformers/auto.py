"""Pick the model class from a checkpoint's config.json."""
from __future__ import annotations

import importlib
import json
import os
from typing import Any

from .checkpoints.hub import resolve
from .config import CONFIG_NAME

# class name -> module under mediaformers.models; the families register here, nowhere else.
ARCHITECTURES: dict[str, str] = {
    "VideoMAEModel": "videomae",
    "VideoMAEForPreTraining": "videomae",
    "VideoMAEForVideoClassification": "videomae",
    "VivitModel": "vivit",
    "VivitForVideoClassification": "vivit",
    "ASTModel": "ast",
    "ASTForAudioClassification": "ast",
    "TvltModel": "tvlt",
    "TvltForPreTraining": "tvlt",
    "TvltForAudioVisualClassification": "tvlt",
    "AltCLIPModel": "altclip",
    "AltCLIPTextModel": "altclip",
    "AltCLIPVisionModel": "altclip",
}
# model_type -> (module, backbone class, config class), for configs without "architectures".
MODEL_TYPES: dict[str, tuple[str, str, str]] = {
    "videomae": ("videomae", "VideoMAEModel", "VideoMAEConfig"),
    "vivit": ("vivit", "VivitModel", "VivitConfig"),
    "audio-spectrogram-transformer": ("ast", "ASTModel", "ASTConfig"),
    "tvlt": ("tvlt", "TvltModel", "TvltConfig"),
    "altclip": ("altclip", "AltCLIPModel", "AltCLIPConfig"),
}


def _get(module: str, name: str):
    return getattr(importlib.import_module(f"mediaformers.models.{module}"), name)


def model_class(config: dict[str, Any]):
    """The mediaformers class for a config.json dict ("architectures" first, then "model_type")."""
    for arch in config.get("architectures") or []:
        if arch in ARCHITECTURES:
            return _get(ARCHITECTURES[arch], arch)
    mt = config.get("model_type")
    if mt in MODEL_TYPES:
        module, cls, _ = MODEL_TYPES[mt]
        return _get(module, cls)
    raise ValueError(
        f"config.json: architectures {config.get('architectures')} / model_type {mt!r} is not one mediaformers "
        f"knows; expected a model_type in {sorted(MODEL_TYPES)}"
    )


def read_config(ref: str | os.PathLike, **hub_kwargs: Any) -> tuple[str, dict[str, Any]]:
    folder = resolve(ref, **hub_kwargs)
    path = os.path.join(folder, CONFIG_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{folder}: no {CONFIG_NAME}; expected a transformers-style checkpoint folder")
    with open(path, encoding="utf-8") as fh:
        return folder, json.load(fh)


def from_pretrained(ref: str | os.PathLike, **kwargs: Any):
    """Load any supported checkpoint with the class its config.json names."""
    hub = {k: kwargs[k] for k in ("revision", "cache_dir", "local_files_only", "token") if k in kwargs}
    folder, config = read_config(ref, **hub)
    rest = {k: v for k, v in kwargs.items() if k not in hub}
    return model_class(config).from_pretrained(folder, **rest)
