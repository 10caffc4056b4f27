"""Decoded frames to the arrays models take: RGB, upright, no larger than ``max_pixels``."""

from __future__ import annotations

import math

import av
import numpy as np
import torch


def to_rgb(frame: av.VideoFrame, max_pixels: int | None) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB; a frame over ``max_pixels`` is scaled inside FFmpeg (same aspect), so the
    full-size copy is never held."""
    w, h = frame.width, frame.height
    if max_pixels and w * h > max_pixels:
        scale = math.sqrt(max_pixels / (w * h))
        return frame.to_ndarray(format="rgb24", width=max(2, int(w * scale) // 2 * 2),
                                height=max(2, int(h * scale) // 2 * 2))
    return frame.to_ndarray(format="rgb24")


def normalise_rotation(degrees: float) -> int:
    # Only quarter turns are meaningful for video; round anything else to the nearest one.
    return (round(degrees / 90.0) * 90) % 360


def rotate(frames: torch.Tensor, rotation: int) -> torch.Tensor:
    """Rotate ``(frames, H, W, 3)`` counter-clockwise by ``rotation`` degrees (a multiple of 90)."""
    k = (rotation // 90) % 4
    if k == 0:
        return frames
    # rot90 over (H, W) turns counter-clockwise for k > 0; contiguous() keeps the layout a
    # permute-to-channels_last view for the transforms.
    return torch.rot90(frames, k, dims=(1, 2)).contiguous()

