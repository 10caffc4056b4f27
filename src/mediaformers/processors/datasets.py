"""A torch ``Dataset`` over video files: decode + transform in DataLoader workers.

Decoding and transforming happen in ``__getitem__``, so with ``num_workers > 0`` they run in
worker processes and overlap the model's compute. Use ``collate_video_clips`` as the
DataLoader's ``collate_fn``.

    ds = VideoClipDataset(paths, labels, VideoMAEVideoProcessor(),
                          sampler=ClipSampler("stride", 16, step=4, random=True), seed=0)
    loader = DataLoader(ds, batch_size=8, num_workers=2, collate_fn=collate_video_clips)

Bad files: ``on_error="raise"`` (default) raises a ``ValueError`` naming the item and file;
``on_error="skip"`` turns the item into a failure record instead, which the collate function
drops from the tensors and lists under ``batch["failures"]`` as ``(path, message)``, so one bad
file never kills a long run and the caller still sees every failure.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch.utils.data import Dataset

from ..errors import bad_input
from .base_processor import BaseVideoProcessor
from .sampling import ClipSampler
from .video_io import read_clip


class VideoClipDataset(Dataset):
    """Clips from a list of video files, optionally with labels.

    Args:
        files: video paths.
        labels: one label (int) per file, or ``None``.
        processor: a family processor (``VideoMAEVideoProcessor()`` ...): its transform is applied
            and its sampler used unless ``sampler`` is given.
        sampler: how to pick frames (e.g. random stride clips for training).
        on_error: ``"raise"`` or ``"skip"`` (see the module docstring).
        allow_partial: keep the frames before the damage of truncated files (see ``read_clip``).
        seed: with a random sampler, item ``i`` of epoch ``e`` draws from a generator seeded with
            ``(seed, e, i)``: the same clips whatever the worker count. ``None`` uses torch's
            global RNG (seeded per worker by the DataLoader).

    Items: ``{"pixel_values": (T, 3, H, W) float32 (or (K, T, 3, H, W) for multi_clip),
    "label": int (if labels), "path": str, "index": int}`` (+ ``pixel_mask`` for TVLT), or a
    failure record ``{"error": str, "path": str, "index": int}`` when skipping.
    """

    def __init__(
        self,
        files: Sequence[str | os.PathLike],
        labels: Sequence[int] | None = None,
        processor: BaseVideoProcessor | None = None,
        *,
        sampler: ClipSampler | None = None,
        on_error: Literal["raise", "skip"] = "raise",
        allow_partial: bool = False,
        seed: int | None = None,
    ) -> None:
        if labels is not None and len(labels) != len(files):
            raise ValueError(f"labels: expected one per file ({len(files)}), got {len(labels)}")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error: expected 'raise' or 'skip', got {on_error!r}")
        if processor is None and sampler is None:
            raise ValueError("processor/sampler: expected a processor or a sampler, got neither")
        self.files = [os.fspath(f) for f in files]
        self.labels = list(labels) if labels is not None else None
        self.processor = processor
        self.sampler = sampler if sampler is not None else processor.sampler  # type: ignore[union-attr]
        self.on_error = on_error
        self.allow_partial = allow_partial
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the random clips drawn (call before creating the epoch's iterator)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.files)

    def _generator(self, index: int) -> torch.Generator | None:
        if self.seed is None:
            return None
        # Distinct, stable seeds per (seed, epoch, index); independent of worker assignment.
        return torch.Generator().manual_seed(hash((self.seed, self.epoch, index)) & 0x7FFF_FFFF_FFFF_FFFF)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.files[index]
        try:
            if self.processor is not None:  # the processor decodes (with this dataset's sampler)
                clips = self.processor.decode(path, sampler=self.sampler, generator=self._generator(index),
                                              allow_partial=self.allow_partial)  # (K, T, 3, H, W) uint8
                out = self.processor._inputs(list(clips))
            else:  # raw uint8 frames, channels first
                out = {"pixel_values": read_clip(path, self.sampler, generator=self._generator(index),
                                                 allow_partial=self.allow_partial).permute(0, 1, 4, 2, 3)}
        except (ValueError, OSError) as e:  # VideoDecodeError is a ValueError
            message = f"dataset item {index} ('{path}'): {e}"
            if self.on_error == "raise":
                raise type(e)(message) if isinstance(e, ValueError) else ValueError(message) from e
            return bad_input(index, path, message)
        item: dict[str, Any] = {k: (v[0] if v.shape[0] == 1 else v) for k, v in out.items()}
        item.update(path=path, index=index)
        if self.labels is not None:
            item["label"] = self.labels[index]
        return item


def collate_video_clips(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack dataset items into a batch; failure records go to ``batch["failures"]``.

    Returns:
        ``pixel_values`` ``(B, T, 3, H, W)`` (``None`` if every item failed), ``labels`` ``(B,)``
        long when present, ``pixel_mask`` when present, ``paths``, ``indices`` ``(B,)`` and
        ``failures``: ``[(path, message), ...]``.
    """
    good = [it for it in items if "error" not in it]
    batch: dict[str, Any] = {
        "pixel_values": torch.stack([it["pixel_values"] for it in good]) if good else None,
        "paths": [it["path"] for it in good],
        "indices": torch.tensor([it["index"] for it in good], dtype=torch.long),
        "failures": [(it["path"], it["error"]) for it in items if "error" in it],
    }
    if good and "pixel_mask" in good[0]:
        batch["pixel_mask"] = torch.stack([it["pixel_mask"] for it in good])
    if good and "label" in good[0]:
        batch["labels"] = torch.tensor([it["label"] for it in good], dtype=torch.long)
    return batch
