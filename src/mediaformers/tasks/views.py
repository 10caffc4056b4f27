"""Preparation of one input into model views: the family's processors' ``prepare`` (which decode),
with the task's options bound (picklable, so it runs in DataLoader workers). :func:`make_views` picks
one from the family declaration; only multi-view video testing (clips x crops) adds steps here."""
from __future__ import annotations

import os
from functools import partial
from typing import Any

import torch

from ..processors.base_processor import prepare_audio_visual
from ..processors.sampling import ClipSampler
from ..processors.image.transforms import rescale_normalize, resize_shortest_edge, three_crop
from .loading import processor

# Keys views add beside the model's inputs (not passed to the model).
META_KEYS = ("window_start",)


def _is_path(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike))


class VideoViews:
    """A video -> ``pixel_values (clips * crops, T, 3, H, W)``: multi-view testing when asked.

    ``num_clips`` clips spread over the video (multi_clip sampling) and ``num_crops`` 1 (centre)
    or 3 (start/centre/end of the long side after resizing the short side to the crop size).
    Decoding is the processor's (``processor.decode``); ``allow_partial`` goes to it.
    """

    def __init__(self, processor, num_clips: int = 1, num_crops: int = 1, *, allow_partial: bool = False):
        if num_crops not in (1, 3):
            raise ValueError(f"num_crops: expected 1 or 3, got {num_crops}")
        if num_clips < 1:
            raise ValueError(f"num_clips: expected a positive number, got {num_clips}")
        self.processor, self.num_crops, self.allow_partial = processor, num_crops, allow_partial
        s = processor.sampler
        self.sampler = s if num_clips == 1 else ClipSampler("multi_clip", s.num_frames, s.step, num_clips)

    def frames(self, source: Any) -> torch.Tensor:
        """uint8 ``(clips, T, 3, H, W)``."""
        if _is_path(source):
            return self.processor.decode(source, allow_partial=self.allow_partial, sampler=self.sampler)
        return torch.stack(self.processor.to_clips(source))

    def __call__(self, source: Any) -> dict[str, torch.Tensor]:
        if self.num_crops == 1 and self.sampler is self.processor.sampler:
            return self.processor.prepare(source, allow_partial=self.allow_partial)
        clips = self.frames(source)
        t = self.processor.transform
        if self.num_crops == 1:
            return {"pixel_values": t(clips)}
        crop = t.crop_size or clips.shape[-2:]
        x = three_crop(resize_shortest_edge(clips, min(crop), t.interpolation, t.antialias), crop)
        x = rescale_normalize(x.flatten(0, 1), t.rescale_factor, t.offset, t.mean, t.std)
        return {"pixel_values": x}


def make_views(loaded, *, num_clips: int = 1, num_crops: int = 1, hop: int | None = None,
               allow_partial: bool = False):
    """The preparation a model's processors imply: video alone -> clips (``num_clips`` x ``num_crops``
    views), audio alone -> spectrogram windows every ``hop`` frames, video and audio -> both tracks of
    a video file, images -> an image or a video's frames. ``allow_partial``: damaged or cut files give
    what decodes instead of an error."""
    kinds = set(loaded.declaration.processors) - {"text"}
    if (num_clips, num_crops) != (1, 1) and kinds != {"video"}:
        raise ValueError(f"num_clips/num_crops: apply to video models; this model takes {' and '.join(sorted(kinds))}")
    if hop is not None and kinds != {"audio"}:
        raise ValueError(f"hop: applies to audio models; this model takes {' and '.join(sorted(kinds))}")
    if kinds == {"video"}:
        return VideoViews(processor(loaded, "video"), num_clips, num_crops, allow_partial=allow_partial)
    if kinds == {"audio"}:  # the extractor windows long audio (``extractor.windows``) with its own framing
        if hop is not None and (isinstance(hop, bool) or not isinstance(hop, int) or hop < 1):
            raise ValueError(f"hop: expected a positive number of frames, got {hop!r}")
        extractor = processor(loaded, "audio")
        windows = partial(extractor.prepare, hop=hop, allow_partial=allow_partial)
        windows.fe = extractor  # type: ignore[attr-defined]  # read by train's set_norm_stats (i25 replaces it)
        return windows
    if kinds == {"video", "audio"}:
        return partial(prepare_audio_visual, processor(loaded, "video"), processor(loaded, "audio"),
                       allow_partial=allow_partial)
    if kinds == {"image"}:
        return partial(processor(loaded, "image").prepare, allow_partial=allow_partial)  # image or video frames
    raise ValueError(f"{loaded.family}: no view for processors {sorted(kinds)}")
