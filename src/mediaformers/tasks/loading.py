"""Load a model and the processors that go with it, from a folder, a hub id or a registry name."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from ..auto import model_class, read_config
from ..models.common import pair
from ..registry import lookup

# What each family takes from a file: (kinds accepted, task of `classify`).
FAMILIES: dict[str, tuple[set[str], str]] = {
    "videomae": ({"video"}, "video-classification"),
    "vivit": ({"video"}, "video-classification"),
    "audio-spectrogram-transformer": ({"audio", "video"}, "audio-classification"),
    "tvlt": ({"video"}, "audio-visual-classification"),
    "altclip": ({"image", "video"}, "zero-shot-classification"),
}


@dataclass
class Loaded:
    model: torch.nn.Module
    folder: str
    family: str
    runner: Any  # the (possibly compiled) callable used for forward passes

    @property
    def config(self):
        return self.model.config


def load_model(
    ref: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    compile: bool = False,
    strict: bool = True,
    **hub: Any,
) -> Loaded:
    """Resolve ``ref`` (folder, hub id, or registry name), build the class config.json names."""
    folder, config = read_config(lookup(os.fspath(ref)), **hub)
    family = config.get("model_type")
    if family not in FAMILIES:
        raise ValueError(f"{ref}: model_type {family!r} is not one mediaformers runs; expected one of {sorted(FAMILIES)}")
    model = model_class(config).from_pretrained(folder, device=device, dtype=dtype, strict=strict)
    runner = torch.compile(model) if compile else model
    return Loaded(model, folder, family, runner)


def _has_preprocessor(folder: str, part: str = "image_processor") -> bool:
    """preprocessor_config.json, or transformers 5's processor_config.json holding ``part``."""
    from ..processors._config_files import find_processor_fields

    return find_processor_fields(folder, part) is not None


def video_processor(loaded: Loaded):
    """The family's video processor: the checkpoint's settings, else defaults sized to the model."""
    from ..processors import video_processors as vp

    cls = {"videomae": vp.VideoMAECheckpointProcessor, "vivit": vp.VivitVideoProcessor,
           "tvlt": vp.TvltVideoProcessor, "altclip": vp.CLIPImageProcessor}[loaded.family]
    if _has_preprocessor(loaded.folder):
        return cls.from_pretrained(loaded.folder)
    c = loaded.config
    if loaded.family == "altclip":
        c = c.vision_config
    h, w = pair(c.image_size)
    default_crop = cls.defaults["crop_size"]["height"]
    shortest = round(min(h, w) * cls.defaults["size"]["shortest_edge"] / default_crop)
    kwargs: dict[str, Any] = dict(size={"shortest_edge": shortest}, crop_size={"height": h, "width": w})
    if hasattr(c, "num_frames"):
        kwargs["num_frames"] = c.num_frames
    if loaded.family == "tvlt":
        kwargs["patch_size"] = list(c.image_patch_size)
    return cls(**kwargs)


def audio_processor(loaded: Loaded):
    """AST's or TVLT's feature extractor: the checkpoint's settings, else sized to the model."""
    c = loaded.config
    if loaded.family == "audio-spectrogram-transformer":
        from ..processors.ast_features import ASTFeatureExtractor

        if _has_preprocessor(loaded.folder, "feature_extractor"):
            return ASTFeatureExtractor.from_pretrained(loaded.folder)
        return ASTFeatureExtractor(num_mel_bins=c.num_mel_bins, max_length=c.max_length)
    from ..processors.tvlt_audio import TvltFeatureExtractor

    if _has_preprocessor(loaded.folder, "feature_extractor"):
        return TvltFeatureExtractor.from_pretrained(loaded.folder)
    return TvltFeatureExtractor(spectrogram_length=c.spectrogram_length, feature_size=c.frequency_length,
                                patch_size=list(c.audio_patch_size))
