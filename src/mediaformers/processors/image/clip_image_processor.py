"""CLIP's image processor (AltCLIP's image side): images -> ``(B, 3, H, W)``, videos -> ``(B, T, 3, H, W)``."""

from __future__ import annotations

import os
from typing import Any

import torch

from .._tensors import check_return_tensors, convert
from ..base_processor import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    BaseVideoProcessor,
    _call_layout,
    _as_tensor,
    _channels_first,
    _is_array,
    _is_path,
)
from ..kinds import media_kind
from ..sampling import ClipSampler
from .transforms import rescale_normalize


class CLIPImageProcessor(BaseVideoProcessor):
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

    def __call__(  # type: ignore[override]  # transformers' signature: images first, videos by keyword
            self, images: Any = None, *, videos: Any = None, return_tensors: str | None = "pt",
            generator: torch.Generator | None = None, **overrides: Any) -> dict[str, Any]:
        """``overrides``: any field for this call only (``size``, ``crop_size``, ``do_normalize``...)."""
        if (images is None) == (videos is None):
            raise ValueError("images/videos: expected exactly one of them, got "
                             f"images={type(images).__name__}, videos={type(videos).__name__}")
        if videos is not None:
            return super().__call__(videos, return_tensors=return_tensors, generator=generator, **overrides)
        check_return_tensors(return_tensors)
        layout = _call_layout(overrides)
        proc = self.for_call(overrides)
        frames = proc._images(images)
        if isinstance(frames, list):  # sizes differ: resized and cropped one by one (uint8), then stacked
            frames = [proc.transform.geometry(f) for f in frames]
            t = proc.transform
            if len({tuple(f.shape) for f in frames}) > 1 and return_tensors is None:  # ragged, as transformers
                return {"pixel_values": [rescale_normalize(f, t.rescale_factor, t.offset, t.mean, t.std).numpy()
                                         for f in frames]}
            if len({tuple(f.shape) for f in frames}) > 1:
                raise ValueError(f"images: sizes differ after resizing {sorted({tuple(f.shape) for f in frames})}; "
                                 "set a crop size (or return_tensors=None) for images of different aspect ratios")
            pixels = rescale_normalize(torch.stack(frames), t.rescale_factor, t.offset, t.mean, t.std)
        else:
            pixels = proc._process([frames])[0]
        if layout["data_format"] == "channels_last":
            pixels = pixels.movedim(-3, -1)
        return convert({"pixel_values": pixels}, return_tensors)

    def prepare(self, source: Any, *, allow_partial: bool = False,
                time_range: tuple[float, float | None] | None = None,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """An image file (one frame), a video file (``num_frames`` frames) or decoded images ->
        ``{"pixel_values": (frames, 3, H, W)}``: each frame is one view of an image tower."""
        if _is_path(source):
            still = media_kind(source) == "image"  # PyAV decodes stills too, as one frame
            sampler = ClipSampler("uniform", 1) if still else None
            clip = self.decode(source, allow_partial=allow_partial, time_range=None if still else time_range,
                               sampler=sampler, generator=generator)[0]
            return {"pixel_values": self._process([clip])[0]}
        if time_range is not None:
            raise ValueError(f"time_range: applies to media files, got {type(source).__name__}")
        return {"pixel_values": self(source)["pixel_values"]}

    def _images(self, images: Any) -> torch.Tensor | list[torch.Tensor]:
        """One image, a list of images or a ``(B, H, W, 3)`` array -> ``(B, 3, H, W)`` (a list of
        ``(3, H, W)`` when their sizes differ)."""
        if isinstance(images, (str, os.PathLike)):
            raise ValueError("images: expected decoded images (tensor, ndarray, PIL); "
                             f"load '{images}' first, or pass a video path as videos=")
        if isinstance(images, (list, tuple)):
            if not images:
                raise ValueError("images: expected at least one image, got an empty list")
            tensors = [_channels_first(_as_tensor(i)) for i in images]
            if len({tuple(t.shape) for t in tensors}) > 1:
                return tensors
            return torch.stack(tensors)
        x = _as_tensor(images) if _is_array(images) else None
        if x is None or x.dim() not in (3, 4):
            raise ValueError(f"images: expected (H, W, 3) or (B, H, W, 3), got "
                             f"{tuple(x.shape) if x is not None else type(images).__name__}")
        return _channels_first(x if x.dim() == 4 else x[None])
