"""What several families' heads and input checks share."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, config) -> torch.Tensor:
    """transformers' loss for sequence/image/video/audio classification.

    Without a ``config.problem_type`` it is inferred as transformers does (one label -> regression,
    integer labels -> single-label cross-entropy, float labels -> multi-label BCE) and written into
    the config, so later calls and save_pretrained keep it, as in transformers.
    """
    num_labels = logits.shape[-1]
    problem_type = config.problem_type
    if problem_type is None:
        if num_labels == 1:
            problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            problem_type = "single_label_classification"
        else:
            problem_type = "multi_label_classification"
        config.problem_type = problem_type
    labels = labels.to(logits.device)
    if problem_type == "regression":
        if num_labels == 1:
            return F.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
        return F.mse_loss(logits, labels.to(logits.dtype))
    if problem_type == "single_label_classification":
        if labels.dtype.is_floating_point:
            raise ValueError(f"labels: single-label classification needs integer class ids, got {labels.dtype}")
        if labels.numel() != logits.shape[0]:
            raise ValueError(f"labels: expected {logits.shape[0]} class ids (one per sample), got shape {tuple(labels.shape)}")
        return F.cross_entropy(logits.view(-1, num_labels), labels.view(-1))
    if labels.shape != logits.shape:
        raise ValueError(f"labels: multi-label classification needs shape {tuple(logits.shape)}, got {tuple(labels.shape)}")
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def check_float(x: torch.Tensor, name: str, dims: int, want: str, what: str) -> tuple[int, ...]:
    """The shape of ``x``, or a ValueError naming what was expected unless it is a floating-point tensor
    of ``dims`` dimensions (``want``: its layout, ``what``: what the values are)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() != dims:
        raise ValueError(f"{name}: expected a {dims}-D tensor {want}, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor ({what}), got {x.dtype}")
    return tuple(x.shape)


def check_video(pixel_values: torch.Tensor, *, frames: int | None, size: tuple[int, int] | None, channels: int,
                name: str = "pixel_values") -> None:
    """Raise a ValueError naming what was expected when a video batch has the wrong layout.

    ``pixel_values`` must be (batch, frames, channels, height, width) floating point; ``frames`` or
    ``size`` of None skip that check (models that interpolate).
    """
    want = f"(batch, {frames if frames else 'frames'}, {channels}, {size[0] if size else 'H'}, {size[1] if size else 'W'})"
    _, t, c, h, w = check_float(pixel_values, name, 5, want, "normalised pixels")
    if c != channels:
        raise ValueError(f"{name}: expected {channels} channels in dim 2, shape {want}, got shape {tuple(pixel_values.shape)}")
    if frames is not None and t != frames:
        raise ValueError(f"{name}: expected {frames} frames in dim 1, shape {want}, got shape {tuple(pixel_values.shape)}")
    if size is not None and (h, w) != tuple(size):
        raise ValueError(f"{name}: expected frames of {size[0]}x{size[1]}, shape {want}, got shape {tuple(pixel_values.shape)}")


def pair(v) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (list, tuple)) else (int(v), int(v))


def backbone(model: torch.nn.Module) -> torch.nn.Module:
    """The bare encoder of a task model (the model itself when it is one)."""
    if getattr(model, "is_backbone", False):
        return model
    return getattr(model, getattr(model, "base_model_prefix", ""), model)


def frame_settings(image_size, resize_ratio: float = 1.0) -> dict:
    """Processor settings for frames of ``image_size``: centre crop to it, after resizing the short
    side to ``resize_ratio`` times the crop's (each family's default ratio, e.g. ViViT's 256/224)."""
    h, w = pair(image_size)
    return {"size": {"shortest_edge": round(min(h, w) * resize_ratio)}, "crop_size": {"height": h, "width": w}}


def random_video(batch: int, frames: int, channels: int, image_size, generator=None) -> torch.Tensor:
    """Normalised-looking random frames (batch, frames, channels, H, W): dummy inputs."""
    h, w = pair(image_size)
    return torch.randn(batch, frames, channels, h, w, generator=generator)


def video_input_doc(frames, channels: int, image_size) -> str:
    """``mediaformers info``'s line for models that take normalised clips."""
    h, w = pair(image_size)
    return f"pixel_values (batch, {frames}, {channels}, {h}, {w}) float: normalised video frames"
