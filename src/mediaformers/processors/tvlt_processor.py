"""TVLT's processor (transformers 4.57.1 ``TvltProcessor``): video frames and audio behind one call."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from .audio._audio_features import CONFIG_NAME
from .audio.tvlt_audio import TvltFeatureExtractor
from .base_processor import prepare_audio_visual
from .batch_feature import BatchFeature
from .video_processors import TvltImageProcessor

_AUDIO_OPTIONS = ("return_attention_mask", "resample", "device")


class TvltProcessor:
    """``processor(images=..., audio=..., images_mixed=...)`` -> ``pixel_values``/``pixel_mask``,
    ``audio_values``/``audio_mask`` (and ``pixel_values_mixed``/``pixel_mask_mixed``).

    Argument order as transformers 4.57 (TVLT left transformers after it). ``mask_audio`` and
    ``mask_pixel`` are accepted and, as there, change nothing. Other keyword arguments go to the
    image processor (its fields, per call) or the feature extractor (``return_attention_mask``,
    ``resample``).
    """

    attributes = ["image_processor", "feature_extractor"]

    def __init__(self, image_processor: TvltImageProcessor, feature_extractor: TvltFeatureExtractor):
        self.image_processor = image_processor
        self.feature_extractor = feature_extractor

    @property
    def model_input_names(self) -> list[str]:
        return ["pixel_values", "pixel_mask", "audio_values", "audio_mask"]

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> TvltProcessor:
        """Both parts from one preprocessor_config.json (4.57 writes them into the same file)."""
        return cls(TvltImageProcessor.from_pretrained(folder), TvltFeatureExtractor.from_pretrained(folder))

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """One preprocessor_config.json holding both parts' fields (4.57 would let the second part's
        save overwrite the first's; merging keeps every setting). Shared names must agree."""
        image, audio = self.image_processor.to_dict(), self.feature_extractor.to_dict()
        clash = {k for k in image.keys() & audio.keys() if image[k] != audio[k]}
        if clash:
            raise ValueError(f"{sorted(clash)}: the image processor and the feature extractor disagree "
                             f"({[image[k] for k in sorted(clash)]} vs {[audio[k] for k in sorted(clash)]}); "
                             "one preprocessor_config.json cannot hold both")
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        path = path / CONFIG_NAME
        merged = {**image, **audio, "processor_class": "TvltProcessor"}
        path.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return path

    def prepare(self, source: str | os.PathLike, *, allow_partial: bool = False,
                time_range: tuple[float, float | None] | None = None) -> dict[str, torch.Tensor]:
        """A video file -> its frames and its audio track (one view): ``pixel_values``, ``pixel_mask``,
        ``audio_values``, ``audio_mask``; ``allow_partial`` reaches both decoders."""
        return prepare_audio_visual(self.image_processor, self.feature_extractor, source,
                                    allow_partial=allow_partial, time_range=time_range)

    def __call__(
        self,
        images: Any = None,
        audio: Any = None,
        images_mixed: Any = None,
        sampling_rate: int | None = None,
        mask_audio: bool = False,
        mask_pixel: bool = False,
        *,
        return_tensors: str | None = "pt",
        generator: torch.Generator | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        if images is None and audio is None:
            raise ValueError("images/audio: expected at least one of them, got neither")
        audio_kwargs = {k: kwargs.pop(k) for k in _AUDIO_OPTIONS if k in kwargs}
        out = BatchFeature()
        if audio is not None:
            out.update(self.feature_extractor(audio, return_tensors=return_tensors, sampling_rate=sampling_rate,
                                              mask_audio=mask_audio, **audio_kwargs))
        if images is not None:
            out.update(self.image_processor(images, mask_pixel=mask_pixel, return_tensors=return_tensors,
                                            generator=generator, **kwargs))
        if images_mixed is not None:
            out.update(self.image_processor(images_mixed, is_mixed=True, return_tensors=return_tensors,
                                            generator=generator, **kwargs))
        return out
