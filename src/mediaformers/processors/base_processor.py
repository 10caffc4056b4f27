"""What the image/video processors share: transformers' fields and files, input handling, one transform.

One pipeline (``VideoTransform``) configured per family from transformers' field names, so a
checkpoint's ``preprocessor_config.json`` loads as is and ``save_pretrained`` writes one that
transformers reads back. A family is its defaults, not its own code.

Inputs (``videos``): a path, a decoded clip ``(T, H, W, 3)`` or ``(T, 3, H, W)`` uint8 tensor or
ndarray, a ``(B, T, ...)`` batch, a list of frames, or a list of any of these. Paths are decoded
with the family's sampler (``num_frames`` frames; see ``frame_sampling``). Arrays whose last dim
is 3 are read as channels-last (our decoder's layout) even if dim -3 is 3 too.

Every field can be overridden for one call (``processor(videos, size=..., do_normalize=False)``), as
in transformers; ``return_tensors`` is "pt" (default here), "np" or None (one array per example).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, ClassVar, TypedDict, TypeVar

import numpy as np
import torch

from ._config_files import check_fields, find_processor_fields
from ._tensors import check_return_tensors, convert
from .sampling import ClipSampler
from .time_range import ClipPath
from .image.transforms import PIL_CODES, PIL_RESAMPLE, VideoTransform
from .video_io import read_clip

CONFIG_NAME = "preprocessor_config.json"
IMAGENET_DEFAULT_MEAN = [0.485, 0.456, 0.406]
IMAGENET_DEFAULT_STD = [0.229, 0.224, 0.225]
IMAGENET_STANDARD_MEAN = [0.5, 0.5, 0.5]
IMAGENET_STANDARD_STD = [0.5, 0.5, 0.5]
OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# Fields we read and write with transformers' meaning; anything else in a config is kept as is.
_FIELDS = ("do_resize", "size", "resample", "do_center_crop", "crop_size", "do_rescale", "rescale_factor",
           "offset", "do_normalize", "image_mean", "image_std", "num_frames", "patch_size",
           "frame_sampling", "frame_step")
_STRATEGIES = ("uniform", "stride", "segments")
_SCHEMA = {"do_resize": "bool", "do_center_crop": "bool", "do_rescale": "bool", "do_normalize": "bool",
           "offset": "bool", "rescale_factor": "number", "num_frames": "pos_int", "frame_step": "pos_int",
           "patch_size": "pos_int_pair", "frame_sampling": "str"}


_P = TypeVar("_P", bound="BaseVideoProcessor")

# Keywords of one call that choose layouts rather than the transform (transformers' names).
_LAYOUTS = ("channels_first", "channels_last")


class VideoProcessorKwargs(TypedDict, total=False):
    """The keywords a processor takes, as transformers' ``valid_kwargs`` (an ``ImagesKwargs``) lists them:
    its image-processing tests read the annotations to build a processor."""

    do_resize: bool
    size: dict[str, int]
    resample: int
    do_center_crop: bool
    crop_size: dict[str, int]
    do_rescale: bool
    rescale_factor: float
    offset: bool
    do_normalize: bool
    image_mean: list[float]
    image_std: list[float]
    do_convert_rgb: bool
    data_format: str
    input_data_format: str
    return_tensors: str


def _positive(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _size_dict(value: Any, name: str, default_to_square: bool) -> dict[str, int]:
    """transformers' ``get_size_dict``: an int means shortest edge (or a square), (h, w) a size."""
    if _positive(value):
        return {"height": value, "width": value} if default_to_square else {"shortest_edge": value}
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(map(_positive, value)):
        return {"height": value[0], "width": value[1]}
    if isinstance(value, dict) and all(map(_positive, value.values())):
        if set(value) == {"shortest_edge"} or set(value) == {"height", "width"}:
            return dict(value)
    raise ValueError(f"{name}: expected a positive int, (height, width), {{'shortest_edge'}} or "
                     f"{{'height', 'width'}} of positive ints, got {value!r}")


class BaseVideoProcessor:
    """Shared machinery; families are subclasses that only set ``defaults``."""

    #: transformers' class name, written as ``image_processor_type``.
    processor_type: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    valid_kwargs: ClassVar[type] = VideoProcessorKwargs

    def __init__(self, **kwargs: Any) -> None:
        config = copy.deepcopy(self.defaults)
        self.extra: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key in _FIELDS:
                if value is not None:  # None means "the default", as transformers reads its kwargs
                    config[key] = value
            else:
                self.extra[key] = value  # e.g. image_processor_type, processor_class: kept for saving
        self.config = self._validated(config)
        c = self.config
        size = c["size"] if c["do_resize"] else None
        self.transform = VideoTransform(
            size=(size["shortest_edge"] if "shortest_edge" in size else (size["height"], size["width"]))
            if size else None,
            interpolation=PIL_RESAMPLE[c["resample"]],
            crop_size=(c["crop_size"]["height"], c["crop_size"]["width"]) if c["do_center_crop"] else None,
            rescale_factor=c["rescale_factor"] if c["do_rescale"] else None,
            offset=-1.0 if c.get("offset") else 0.0,
            mean=tuple(c["image_mean"]) if c["do_normalize"] else None,
            std=tuple(c["image_std"]) if c["do_normalize"] else None,
        )
        self.sampler = ClipSampler(strategy=c["frame_sampling"], num_frames=c["num_frames"], step=c["frame_step"])

    def _validated(self, c: dict[str, Any]) -> dict[str, Any]:
        check_fields(c, _SCHEMA, type(self).__name__)
        c["size"] = _size_dict(c["size"], "size", default_to_square=False)
        c["crop_size"] = _size_dict(c["crop_size"], "crop_size", default_to_square=True)
        if "shortest_edge" in c["crop_size"]:
            raise ValueError(f"crop_size: expected {{'height', 'width'}}, got {c['crop_size']!r}")
        resample = c["resample"]
        if isinstance(resample, str):
            resample = PIL_CODES.get(resample.lower(), resample)
        if isinstance(resample, bool) or not isinstance(resample, int) or resample not in PIL_RESAMPLE:
            raise ValueError(f"resample: expected a PIL code in {sorted(PIL_RESAMPLE)} "
                             f"(0 nearest, 2 bilinear, 3 bicubic), got {c['resample']!r}")
        c["resample"] = int(resample)
        if c.get("offset") and not c["do_rescale"]:
            raise ValueError("offset: requires do_rescale=True (offset shifts the rescaled values), "
                             f"got offset={c['offset']!r} with do_rescale={c['do_rescale']!r}")
        for key in ("image_mean", "image_std"):
            v = c[key]
            values = [v] * 3 if not isinstance(v, (list, tuple)) else list(v)
            if len(values) != 3 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values):
                raise ValueError(f"{key}: expected a number or 3 numbers, got {v!r}")
            c[key] = [float(x) for x in values]
        if c["frame_sampling"] not in _STRATEGIES:
            raise ValueError(f"frame_sampling: expected one of {_STRATEGIES}, got {c['frame_sampling']!r}")
        return c

    # -- (de)serialisation -----------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, **overrides: Any) -> Any:
        """Read ``folder/preprocessor_config.json`` (or transformers 5's ``processor_config.json``)
        when present, else the family defaults; ``overrides`` replace fields."""
        found = find_processor_fields(Path(folder), "image_processor")
        if found is None and not Path(folder).exists():
            raise FileNotFoundError(f"folder: '{folder}' does not exist")
        config, path = found if found is not None else ({}, Path(folder) / CONFIG_NAME)
        try:
            return cls(**{**config, **overrides})
        except ValueError as err:  # name the file the bad value came from
            raise ValueError(f"{path}: {err}") from err

    def to_dict(self) -> dict[str, Any]:
        out = {**self.extra, **copy.deepcopy(self.config)}
        out["image_processor_type"] = self.processor_type
        return out

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write ``folder/preprocessor_config.json`` with transformers' field names."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / CONFIG_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()})"

    # -- input handling --------------------------------------------------------------------
    def decode(self, source: str | os.PathLike, *, allow_partial: bool = False,
               time_range: tuple[float, float | None] | None = None, sampler: ClipSampler | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """A video file -> uint8 ``(clips, T, 3, H, W)`` frames chosen by ``sampler`` (default: this
        processor's); ``time_range`` ``(start, end)`` seconds limits sampling to that part; ``allow_partial``
        keeps what decodes of a damaged or cut file instead of raising."""
        if time_range is not None:
            source = ClipPath(source, *time_range)
        clips = read_clip(source, sampler or self.sampler, generator=generator, allow_partial=allow_partial)
        return clips.permute(0, 1, 4, 2, 3)  # (K, T, H, W, 3) -> (K, T, 3, H, W), a view

    def prepare(self, source: Any, *, allow_partial: bool = False,
                time_range: tuple[float, float | None] | None = None,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The one route from media to model inputs: a path (decoded here) or decoded frames ->
        ``{"pixel_values": (views, T, 3, H, W)}`` float32 (one view per clip of the sampler)."""
        if _is_path(source):
            clips = list(self.decode(source, allow_partial=allow_partial, time_range=time_range, generator=generator))
        else:
            if time_range is not None:
                raise ValueError(f"time_range: applies to media files, got {type(source).__name__}")
            clips = self.to_clips(source, generator)
        return self._inputs(clips)

    def _inputs(self, clips: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Decoded ``(T, 3, H, W)`` clips -> the model's inputs (a family with masks overrides this)."""
        return {"pixel_values": self._process(clips)}

    def to_clips(self, videos: Any, generator: torch.Generator | None = None, *,
                 allow_partial: bool = False) -> list[torch.Tensor]:
        """Any accepted input -> list of ``(T, 3, H, W)`` clips (views, no copies where possible)."""
        if _is_path(videos):
            return list(self.decode(videos, allow_partial=allow_partial, generator=generator))
        if _is_array(videos):
            x = _as_tensor(videos)
            if x.dim() == 3:
                return [_channels_first(x[None])]
            if x.dim() == 4:
                return [_channels_first(x)]
            if x.dim() == 5:
                return list(_channels_first(x))
            raise ValueError(f"videos: expected (T, H, W, 3), (B, T, H, W, 3) or (H, W, 3) arrays, "
                             f"got shape {tuple(x.shape)}")
        if isinstance(videos, (list, tuple)):
            if not videos:
                raise ValueError("videos: expected at least one video, got an empty list")
            first = videos[0]
            if _is_array(first) and _as_tensor(first).dim() == 3:
                # A list of frames is one video.
                return [_channels_first(torch.stack([_as_tensor(f) for f in videos]))]
            clips: list[torch.Tensor] = []
            for v in videos:
                clips.extend(self.to_clips(v, generator, allow_partial=allow_partial))
            return clips
        raise ValueError(f"videos: expected a path, tensor/ndarray, PIL image or a list of them, "
                         f"got {type(videos).__name__}")

    _to_clips = to_clips  # the name before the split

    def _process(self, clips: list[torch.Tensor]) -> torch.Tensor:
        """Transform a list of ``(T, 3, H, W)`` clips -> ``(B, T, 3, h, w)`` float32."""
        if len({tuple(c.shape) for c in clips}) == 1:
            # One batched call: the common case of same-sized clips.
            return self.transform(torch.stack(clips) if len(clips) > 1 else clips[0][None])
        out = [self.transform(c) for c in clips]
        shapes = {tuple(o.shape) for o in out}
        if len(shapes) > 1:
            raise ValueError(f"videos: processed clips differ in shape {sorted(shapes)}; give every video "
                             "the same number of frames (and set a crop size for mixed aspect ratios)")
        return torch.stack(out)

    def for_call(self: _P, overrides: dict[str, Any]) -> _P:
        """This processor, or a copy with ``overrides`` (None values mean "as configured", as in transformers)."""
        overrides = {k: v for k, v in overrides.items() if v is not None}
        unknown = sorted(set(overrides) - set(_FIELDS))
        if unknown:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) {unknown}; "
                            f"expected any of {sorted(_FIELDS)}")
        if not overrides:
            return self
        return type(self)(**{**self.extra, **copy.deepcopy(self.config), **overrides})

    def __call__(self, videos: Any, *, return_tensors: str | None = "pt", generator: torch.Generator | None = None,
                 allow_partial: bool = False, **overrides: Any) -> dict[str, Any]:
        """Return ``{"pixel_values": (B, T, 3, H, W) float32}``; ``generator`` feeds random sampling;
        ``allow_partial`` keeps what decodes of damaged files given by path.

        ``overrides``: any field for this call only (``size``, ``crop_size``, ``do_resize``, ``image_mean``...).
        """
        check_return_tensors(return_tensors)
        layout = _call_layout(overrides)
        proc = self.for_call(overrides)
        # input_data_format is checked, not needed: the channel axis is the one of size 3 (1 for grey)
        pixels = proc._process(proc.to_clips(videos, generator, allow_partial=allow_partial))
        if layout["data_format"] == "channels_last":
            pixels = pixels.movedim(-3, -1)
        return convert({"pixel_values": pixels}, return_tensors)

    def preprocess(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """transformers' name for the call."""
        return self(*args, **kwargs)


def prepare_audio_visual(video: BaseVideoProcessor, audio: Any, source: str | os.PathLike, *,
                         allow_partial: bool = False,
                         time_range: tuple[float, float | None] | None = None) -> dict[str, torch.Tensor]:
    """A video file -> its frames (``video.prepare``) and its audio track (``audio.prepare``, one window)
    as one view, for models that take both at once; ``allow_partial`` reaches both decoders."""
    if not _is_path(source):
        raise ValueError("this model takes video files (frames and audio track of the same file), "
                         f"got {type(source).__name__}")
    sound = audio.prepare(source, allow_partial=allow_partial, time_range=time_range)
    sound.pop("window_start")
    return {**video.prepare(source, allow_partial=allow_partial, time_range=time_range), **sound}


def _is_path(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike))


def _call_layout(overrides: dict[str, Any]) -> dict[str, Any]:
    """Pop transformers' layout keywords of one call (``data_format``, ``input_data_format``,
    ``do_convert_rgb``), each checked; frames are always read as RGB (1 channel is repeated)."""
    out = {}
    for key in ("data_format", "input_data_format"):
        value = overrides.pop(key, None)
        value = getattr(value, "value", value)  # transformers' ChannelDimension enum
        if value not in (None, *_LAYOUTS):
            raise ValueError(f"{key}: expected one of {_LAYOUTS} or None, got {value!r}")
        out[key] = value
    rgb = overrides.pop("do_convert_rgb", None)
    if rgb not in (None, True):
        raise ValueError(f"do_convert_rgb: frames are always converted to RGB; expected True or None, got {rgb!r}")
    return out


def _is_array(x: Any) -> bool:
    return isinstance(x, (torch.Tensor, np.ndarray)) or type(x).__module__.startswith("PIL.")


def _as_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    arr = np.asarray(x.convert("RGB") if type(x).__module__.startswith("PIL.") else x)
    if not arr.flags.writeable or any(s < 0 for s in arr.strides):
        arr = arr.copy()  # torch cannot wrap read-only (PIL) or negatively strided (x[::-1]) arrays
    return torch.from_numpy(arr)


def _channels_first(x: torch.Tensor) -> torch.Tensor:
    """``(..., H, W, 3)`` or ``(..., 3, H, W)`` -> ``(..., 3, H, W)`` (a view)."""
    if x.shape[-1] in (1, 3):
        x = x.movedim(-1, -3)
    elif x.shape[-3] not in (1, 3):
        raise ValueError(f"videos: expected 3 channels in the last or third-last dim, got shape {tuple(x.shape)}")
    if x.shape[-3] == 1:
        x = x.expand(*x.shape[:-3], 3, *x.shape[-2:])  # grey -> RGB
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise ValueError(f"videos: expected uint8 (or float 0..255) pixels, got dtype {x.dtype}")
    return x


# The name used before the split (tasks/ and user code); the same class.
_BaseProcessor = BaseVideoProcessor
