"""Load a model and the processors that go with it, from a folder, a hub id or a registry name."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, cast

import torch

from ..auto import model_class, read_config
from ..family import Family, get_family



@dataclass
class Loaded:
    """A loaded model, its folder and family; ``compiled`` wraps every forward when ``compile`` was asked."""

    model: Any  # a PreTrainedModel (nn.Module types its attributes as Tensor | Module)
    folder: str
    family: str  # model_type
    compile: bool = False
    inputs: dict[str, int] = field(default_factory=dict)  # frames/size the user asked for instead of the model's
    _compiled: dict[str, Callable] = field(default_factory=dict, repr=False)

    @property
    def config(self):
        return self.model.config

    @property
    def declaration(self) -> Family:
        return get_family(self.family)

    @property
    def runner(self) -> Callable:
        """The model's forward (torch.compile'd when asked); with other frames/sizes than the model's,
        position tables follow the input (``interpolate_pos_encoding``)."""
        forward = self.compiled("forward", self.model)
        if self.inputs:
            return lambda **kw: forward(**kw, interpolate_pos_encoding=True)
        return forward

    def compiled(self, name: str, fn: Callable) -> Callable:
        """``fn`` itself, or torch.compile(fn) once per ``name`` when the model was loaded with compile=True,
        so every path into the model (forward, pooled embeddings, image/text features) is compiled."""
        if not self.compile:
            return fn
        if name not in self._compiled:
            self._compiled[name] = torch.compile(fn)
        return self._compiled[name]


def load_model(
    ref: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    compile: bool = False,
    strict: bool = True,
    precision: str | None = None,
    frames: int | None = None,
    size: int | None = None,
    **hub: Any,
) -> Loaded:
    """Resolve ``ref`` (folder, hub id, or registry name), build the class config.json names.

    ``precision`` (fp32, bf16, int8, auto; see mediaformers.precision) is applied after loading;
    it and ``dtype`` are two ways to say the same thing, so only one may be given.
    ``frames``/``size``: feed video models that many frames of ``size`` x ``size`` instead of what their
    config says (position tables are recomputed or resampled for the new grid).
    """
    for name, value in (("frames", frames), ("size", size)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"{name}: expected a positive whole number, got {value!r}")
    folder, config = read_config(ref, **hub)
    family = cast(str, config.get("model_type"))  # None or unknown: get_family says so
    try:
        get_family(family)
    except ValueError as err:
        raise ValueError(f"{ref}: {err}") from None
    model = model_class(config).from_pretrained(folder, device=device, dtype=dtype, strict=strict, precision=precision)
    inputs = {k: v for k, v in (("frames", frames), ("size", size)) if v is not None}
    if inputs and not {"video", "image"} & set(get_family(family).processors):
        raise ValueError(f"frames/size: apply to video and image models; {ref} is a {family} model")
    return Loaded(model, folder, family, compile, inputs)


def processor(loaded: Loaded, kind: str):
    """The family's processor for ``kind`` ("video", "audio", "image", "text").

    The checkpoint's preprocessor_config.json decides; what it leaves out (frame count, image size,
    lengths: transformers' processors write none of the frame counts) comes from the model config, as
    transformers' pipelines take it, and a setting the model caps (``Processor.limits``) never exceeds
    the config's value. Without a file, the settings are those the model config implies.
    """
    spec = loaded.declaration.processors.get(kind)
    if spec is None:
        raise ValueError(f"{loaded.folder}: a {loaded.family} model has no {kind} processor; it has "
                         f"{sorted(loaded.declaration.processors)}")
    cls = spec.load()
    if kind == "text":  # tokenizer files, read by the processor itself
        return cls.from_pretrained(loaded.folder)
    implied = spec.settings(loaded.config)
    saved = _read_preprocessor_config(loaded.folder, kind)
    settings = {**implied, **saved}
    for key in spec.limits:
        if key in saved and key in implied:
            settings[key] = min(saved[key], implied[key])
    for key in spec.fixed:
        if key in implied:
            settings[key] = implied[key]
    if "frames" in loaded.inputs and kind == "video":
        settings["num_frames"] = loaded.inputs["frames"]
    if "size" in loaded.inputs and kind in ("video", "image"):
        s, crop = loaded.inputs["size"], settings.get("crop_size") or {}
        short = (settings.get("size") or {}).get("shortest_edge")
        ratio = short / crop["height"] if short and crop.get("height") else 1.0  # keep the resize-then-crop margin
        settings["crop_size"] = {"height": s, "width": s}
        settings["size"] = {"shortest_edge": round(s * ratio)}
    return cls(**settings)


def _read_preprocessor_config(folder: str, kind: str) -> dict[str, Any]:
    """The checkpoint's settings for ``kind``: preprocessor_config.json, or the matching part of
    transformers 5's processor_config.json; {} when there is neither."""
    from ..processors._config_files import find_processor_fields

    found = find_processor_fields(folder, "feature_extractor" if kind == "audio" else "image_processor")
    return found[0] if found is not None else {}
