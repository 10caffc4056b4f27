"""Processors for VideoMAE, ViViT, TVLT and CLIP/AltCLIP: media in, ``pixel_values`` out.

One pipeline (``VideoTransform``) configured per family from transformers' field names, so a
checkpoint's ``preprocessor_config.json`` loads as is and ``save_pretrained`` writes one that
transformers reads back. A family is its defaults, not its own code; only TVLT adds a step
(frame padding and ``pixel_mask``).

Inputs (``videos``): a path, a decoded clip ``(T, H, W, 3)`` or ``(T, 3, H, W)`` uint8 tensor or
ndarray, a ``(B, T, ...)`` batch, a list of frames, or a list of any of these. Paths are decoded
with the family's sampler (``num_frames`` frames; see ``frame_sampling``). Arrays whose last dim
is 3 are read as channels-last (our decoder's layout) even if dim -3 is 3 too.

Output: ``{"pixel_values": (B, T, 3, H, W) float32}`` (+ ``pixel_mask`` for TVLT); the CLIP
processor gives ``(B, 3, H, W)`` for images.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from .sampling import ClipSampler
from .transforms import PIL_CODES, PIL_RESAMPLE, VideoTransform
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


def _size_dict(value: Any, name: str, default_to_square: bool) -> dict[str, int]:
    """transformers' ``get_size_dict``: an int means shortest edge (or a square), (h, w) a size."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {"height": value, "width": value} if default_to_square else {"shortest_edge": value}
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return {"height": int(value[0]), "width": int(value[1])}
    if isinstance(value, dict):
        if set(value) == {"shortest_edge"} or set(value) == {"height", "width"}:
            return {k: int(v) for k, v in value.items()}
    raise ValueError(f"{name}: expected an int, (height, width), {{'shortest_edge'}} or "
                     f"{{'height', 'width'}}, got {value!r}")


class _BaseProcessor:
    """Shared machinery; families are subclasses that only set ``defaults``."""

    #: transformers' class name, written as ``image_processor_type``.
    processor_type: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **kwargs: Any) -> None:
        config = copy.deepcopy(self.defaults)
        self.extra: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key in _FIELDS:
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
        c["size"] = _size_dict(c["size"], "size", default_to_square=False)
        c["crop_size"] = _size_dict(c["crop_size"], "crop_size", default_to_square=True)
        if "shortest_edge" in c["crop_size"]:
            raise ValueError(f"crop_size: expected {{'height', 'width'}}, got {c['crop_size']!r}")
        resample = c["resample"]
        if isinstance(resample, str):
            resample = PIL_CODES.get(resample.lower(), resample)
        if resample not in PIL_RESAMPLE:
            raise ValueError(f"resample: expected a PIL code in {sorted(PIL_RESAMPLE)} "
                             f"(0 nearest, 2 bilinear, 3 bicubic), got {c['resample']!r}")
        c["resample"] = int(resample)
        if c.get("offset") and not c["do_rescale"]:
            raise ValueError("offset: requires do_rescale=True (offset shifts the rescaled values), "
                             f"got offset={c['offset']!r} with do_rescale={c['do_rescale']!r}")
        for key in ("image_mean", "image_std"):
            v = c[key]
            c[key] = [float(v)] * 3 if isinstance(v, (int, float)) else [float(x) for x in v]
            if len(c[key]) != 3:
                raise ValueError(f"{key}: expected 1 or 3 values, got {v!r}")
        if c["frame_sampling"] not in _STRATEGIES:
            raise ValueError(f"frame_sampling: expected one of {_STRATEGIES}, got {c['frame_sampling']!r}")
        return c

    # -- (de)serialisation -----------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, **overrides: Any) -> "_BaseProcessor":
        """Read ``folder/preprocessor_config.json`` when present (else the family defaults)."""
        path = Path(folder)
        path = path if path.is_file() else path / CONFIG_NAME
        config: dict[str, Any] = {}
        if path.is_file():
            try:
                config = json.loads(path.read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not valid JSON ({e})") from e
        elif not Path(folder).exists():
            raise FileNotFoundError(f"folder: '{folder}' does not exist")
        config.update(overrides)
        return cls(**config)

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
    def _decode(self, source: str | os.PathLike, generator: torch.Generator | None) -> list[torch.Tensor]:
        clips = read_clip(source, self.sampler, generator=generator)  # (K, T, H, W, 3)
        return [c.permute(0, 3, 1, 2) for c in clips]

    def _to_clips(self, videos: Any, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Any accepted input -> list of ``(T, 3, H, W)`` clips (views, no copies where possible)."""
        if isinstance(videos, (str, os.PathLike)):
            return self._decode(videos, generator)
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
                clips.extend(self._to_clips(v, generator))
            return clips
        raise ValueError(f"videos: expected a path, tensor/ndarray, PIL image or a list of them, "
                         f"got {type(videos).__name__}")

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

    def __call__(self, videos: Any, *, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Return ``{"pixel_values": (B, T, 3, H, W) float32}``; ``generator`` feeds random sampling."""
        return {"pixel_values": self._process(self._to_clips(videos, generator))}


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


class VideoMAEVideoProcessor(_BaseProcessor):
    """VideoMAE: shortest edge 224 (bilinear), centre crop 224, ImageNet mean/std; 16 x 4 clips."""

    processor_type = "VideoMAEImageProcessor"
    defaults = dict(do_resize=True, size={"shortest_edge": 224}, resample=2, do_center_crop=True,
                    crop_size={"height": 224, "width": 224}, do_rescale=True, rescale_factor=1 / 255,
                    do_normalize=True, image_mean=IMAGENET_DEFAULT_MEAN, image_std=IMAGENET_DEFAULT_STD,
                    num_frames=16, frame_sampling="stride", frame_step=4)


class VivitVideoProcessor(_BaseProcessor):
    """ViViT: shortest edge 256 (bilinear), crop 224, x/127.5 - 1, then mean/std 0.5 (as transformers).

    transformers' defaults normalise the [-1, 1] values again with mean = std = 0.5 (giving
    [-3, 1]); we keep that so outputs match the checkpoints' reference preprocessing.
    """

    processor_type = "VivitImageProcessor"
    defaults = dict(do_resize=True, size={"shortest_edge": 256}, resample=2, do_center_crop=True,
                    crop_size={"height": 224, "width": 224}, do_rescale=True, rescale_factor=1 / 127.5,
                    offset=True, do_normalize=True, image_mean=IMAGENET_STANDARD_MEAN,
                    image_std=IMAGENET_STANDARD_STD, num_frames=32, frame_sampling="uniform", frame_step=1)


class TvltVideoProcessor(_BaseProcessor):
    """TVLT (transformers 4.57.1 ``TvltImageProcessor``): 224/224, mean/std 0.5, up to 8 frames.

    Clips shorter than the longest in the batch are zero-padded at the end (in output space) and
    ``pixel_mask`` ``(B, max_frames * patches_per_frame)`` int64 marks real patches with 1,
    frame-major, exactly the reference layout; ``patches_per_frame`` is
    ``(size["shortest_edge"] // patch_size[0]) ** 2`` as in the reference (crop-based when
    ``size`` is a height/width dict). More than ``num_frames`` frames is an error, as there.
    """

    processor_type = "TvltImageProcessor"
    defaults = dict(do_resize=True, size={"shortest_edge": 224}, patch_size=[16, 16], num_frames=8,
                    resample=2, do_center_crop=True, crop_size={"height": 224, "width": 224},
                    do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                    image_mean=IMAGENET_STANDARD_MEAN, image_std=IMAGENET_STANDARD_STD,
                    frame_sampling="uniform", frame_step=1)

    def _patches_per_frame(self) -> int:
        ph, pw = self.config["patch_size"]
        size, crop = self.config["size"], self.config["crop_size"]
        if "shortest_edge" in size:
            return (size["shortest_edge"] // ph) ** 2
        return (crop["height"] // ph) * (crop["width"] // pw)

    def __call__(self, videos: Any, *, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """``pixel_values`` ``(B, T_max, 3, H, W)`` float32 and ``pixel_mask`` ``(B, T_max * P)`` int64."""
        clips = self._to_clips(videos, generator)
        limit = self.config["num_frames"]
        lengths = [c.shape[0] for c in clips]
        if max(lengths) > limit:
            raise ValueError(f"videos: number of frames must not be greater than the model's maximum "
                             f"num_frames={limit}, got {max(lengths)}")
        t_max = max(lengths)
        per = self._patches_per_frame()
        processed = [self.transform(c) for c in clips] if len(set(lengths)) > 1 else list(self._process(clips))
        pixel_values = processed[0].new_zeros((len(clips), t_max, *processed[0].shape[1:]))
        mask = torch.zeros(len(clips), t_max * per, dtype=torch.long)
        for b, (p, n) in enumerate(zip(processed, lengths)):
            pixel_values[b, :n] = p
            mask[b, :n * per] = 1
        return {"pixel_values": pixel_values, "pixel_mask": mask}


class CLIPImageProcessor(_BaseProcessor):
    """CLIP / AltCLIP: shortest edge 224 (bicubic, antialiased), crop 224, OpenAI CLIP mean/std.

    ``processor(images)`` takes one image ``(H, W, 3)``, a list of images or a ``(B, H, W, 3)``
    array and gives ``(B, 3, 224, 224)``; ``processor(videos=...)`` works like the video
    processors and gives ``(B, T, 3, 224, 224)`` (8 uniform frames from a path).
    """

    processor_type = "CLIPImageProcessor"
    defaults = dict(do_resize=True, size={"shortest_edge": 224}, resample=3, do_center_crop=True,
                    crop_size={"height": 224, "width": 224}, do_rescale=True, rescale_factor=1 / 255,
                    do_normalize=True, image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD,
                    num_frames=8, frame_sampling="uniform", frame_step=1)

    def __call__(self, images: Any = None, *, videos: Any = None,
                 generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        if (images is None) == (videos is None):
            raise ValueError("images/videos: expected exactly one of them, got "
                             f"images={type(images).__name__}, videos={type(videos).__name__}")
        if videos is not None:
            return super().__call__(videos, generator=generator)
        frames = self._images(images)
        return {"pixel_values": self._process([frames])[0]}

    def _images(self, images: Any) -> torch.Tensor:
        """One image, a list of images or a ``(B, H, W, 3)`` array -> ``(B, 3, H, W)``."""
        if isinstance(images, (str, os.PathLike)):
            raise ValueError("images: expected decoded images (tensor, ndarray, PIL); "
                             f"load '{images}' first, or pass a video path as videos=")
        if isinstance(images, (list, tuple)):
            if not images:
                raise ValueError("images: expected at least one image, got an empty list")
            tensors = [_channels_first(_as_tensor(i)) for i in images]
            if len({tuple(t.shape) for t in tensors}) > 1:
                return self._stack_mixed(tensors)
            return torch.stack(tensors)
        x = _as_tensor(images) if _is_array(images) else None
        if x is None or x.dim() not in (3, 4):
            raise ValueError(f"images: expected (H, W, 3) or (B, H, W, 3), got "
                             f"{tuple(x.shape) if x is not None else type(images).__name__}")
        return _channels_first(x if x.dim() == 4 else x[None])

    def _stack_mixed(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        # Images of different sizes: bring each to the output geometry first (uint8), then stack.
        out = [self.transform.geometry(t) for t in tensors]
        if len({tuple(o.shape) for o in out}) > 1:
            raise ValueError(f"images: sizes differ after resizing {sorted({tuple(o.shape) for o in out})}; "
                             "set a crop size to batch images of different aspect ratios")
        return torch.stack(out)
