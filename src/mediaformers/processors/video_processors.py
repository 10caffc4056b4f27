"""VideoMAE, ViViT and TVLT video processors: transformers' classes and defaults over one pipeline
(base_processor.py); only TVLT adds a step (frame padding and ``pixel_mask``).

Output: ``{"pixel_values": (B, T, 3, H, W) float32}`` (+ ``pixel_mask`` for TVLT).
"""

from __future__ import annotations

from typing import Any

import torch

from ._tensors import check_return_tensors, convert
from .base_processor import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    IMAGENET_STANDARD_MEAN,
    IMAGENET_STANDARD_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    BaseVideoProcessor,
    _BaseProcessor,
)
from .image.clip_image_processor import (
    CLIPImageProcessor,  # re-exported: it lived here before the split
)


class VideoMAEImageProcessor(BaseVideoProcessor):
    """VideoMAE with transformers' class defaults: shortest edge 224 (bilinear), centre crop 224,
    mean/std 0.5 (IMAGENET_STANDARD); 16 x 4 clips from paths."""

    processor_type = "VideoMAEImageProcessor"
    defaults = dict(do_resize=True, size={"shortest_edge": 224}, resample=2, do_center_crop=True,
                    crop_size={"height": 224, "width": 224}, do_rescale=True, rescale_factor=1 / 255,
                    do_normalize=True, image_mean=IMAGENET_STANDARD_MEAN, image_std=IMAGENET_STANDARD_STD,
                    num_frames=16, frame_sampling="stride", frame_step=4)


class VideoMAECheckpointProcessor(VideoMAEImageProcessor):
    """VideoMAE as its checkpoints ship it: ImageNet mean/std (every MCG-NJU preprocessor_config.json
    says so; transformers' class default of 0.5 is not what the models were trained with). What a
    checkpoint without preprocessor_config.json gets."""

    defaults = {**VideoMAEImageProcessor.defaults, "image_mean": IMAGENET_DEFAULT_MEAN,
                "image_std": IMAGENET_DEFAULT_STD}


class VivitImageProcessor(BaseVideoProcessor):
    """ViViT: shortest edge 256 (bilinear), crop 224, x/127.5 - 1, then mean/std 0.5 (as transformers).

    transformers' defaults normalise the [-1, 1] values again with mean = std = 0.5 (giving
    [-3, 1]); we keep that so outputs match the checkpoints' reference preprocessing.
    """

    processor_type = "VivitImageProcessor"
    defaults = dict(do_resize=True, size={"shortest_edge": 256}, resample=2, do_center_crop=True,
                    crop_size={"height": 224, "width": 224}, do_rescale=True, rescale_factor=1 / 127.5,
                    offset=True, do_normalize=True, image_mean=IMAGENET_STANDARD_MEAN,
                    image_std=IMAGENET_STANDARD_STD, num_frames=32, frame_sampling="uniform", frame_step=1)


class TvltImageProcessor(BaseVideoProcessor):
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

    def __call__(self, videos: Any, *, is_mixed: bool = False, mask_pixel: bool = False,
                 return_tensors: str | None = "pt", generator: torch.Generator | None = None,
                 allow_partial: bool = False, **overrides: Any) -> dict[str, Any]:
        """``pixel_values`` ``(B, T_max, 3, H, W)`` float32 and ``pixel_mask`` ``(B, T_max * P)`` int64.

        ``is_mixed``: name them ``pixel_values_mixed`` / ``pixel_mask_mixed`` (video-audio matching
        negatives), as transformers 4.57 does. ``mask_pixel`` is accepted and, as there, changes
        nothing (masking happens in the pre-training forward). ``overrides``: fields for this call.
        """
        check_return_tensors(return_tensors)
        self = self.for_call(overrides)
        out = self._inputs(self.to_clips(videos, generator, allow_partial=allow_partial))
        suffix = "_mixed" if is_mixed else ""
        return convert({k + suffix: v for k, v in out.items()}, return_tensors)

    def _inputs(self, clips: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Clips, each ``(T, 3, H, W)`` (T may differ) -> padded ``pixel_values`` and their ``pixel_mask``."""
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


# transformers 5's video-processor names (same defaults, same output) and our earlier names.
VideoMAEVideoProcessor = VideoMAEImageProcessor
VivitVideoProcessor = VivitImageProcessor
TvltVideoProcessor = TvltImageProcessor

__all__ = ["BaseVideoProcessor", "CLIPImageProcessor", "TvltImageProcessor", "TvltVideoProcessor",
           "VideoMAECheckpointProcessor", "VideoMAEImageProcessor", "VideoMAEVideoProcessor", "VivitImageProcessor", "VivitVideoProcessor",
           "_BaseProcessor", "OPENAI_CLIP_MEAN", "OPENAI_CLIP_STD"]
