"""Image/video transforms in torch, batched over frames and videos.

Inputs are ``(..., 3, H, W)``: one image ``(3, H, W)``, a clip ``(T, 3, H, W)`` or a batch of
clips ``(B, T, 3, H, W)``; leading dims are flattened into one batch for each op, never looped
over in Python.

Speed: resizing runs on uint8 input as uint8 through torch's vectorised uint8 kernels (bilinear
and bicubic with antialias, channels-last), which round like PIL and are ~10x faster than the
float32 path on CPU. Decoded frames ``(T, H, W, 3)`` permuted to ``(T, 3, H, W)`` are already
channels-last in memory, so this costs no copy. Everything after the resize (crop is a view) is
one float32 multiply-add: ``x * (rescale / std) + (offset - mean) / std``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

Interpolation = Literal["nearest", "bilinear", "bicubic"]
# PIL's integer resample codes, as transformers' preprocessor_config.json stores them.
PIL_RESAMPLE: dict[int, Interpolation] = {0: "nearest", 2: "bilinear", 3: "bicubic"}
PIL_CODES: dict[str, int] = {v: k for k, v in PIL_RESAMPLE.items()}
_MODES = ("nearest", "bilinear", "bicubic")


def _check_image_tensor(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor (..., 3, H, W), got {type(x).__name__}")
    if x.dim() < 3 or x.shape[-3] not in (1, 3):
        raise ValueError(f"{name}: expected shape (..., 3, H, W), got {tuple(x.shape)}")


def _pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f"{name}: expected a positive int or (height, width), got {size!r}")
    return int(size[0]), int(size[1])


def shortest_edge_size(height: int, width: int, shortest_edge: int) -> tuple[int, int]:
    """Output ``(height, width)`` with the short side at ``shortest_edge``.

    The long side is ``int(shortest_edge * long / short)`` (truncated), transformers' rule, so
    outputs have exactly the reference's size.
    """
    if height <= width:
        return shortest_edge, int(shortest_edge * width / height)
    return int(shortest_edge * height / width), shortest_edge


def _pil_nearest_index(size_in: int, size_out: int, device: torch.device) -> torch.Tensor:
    """Source index of each output pixel exactly as PIL's NEAREST resize picks it.

    PIL (ImagingScaleAffine) starts at half a step and adds the step ``in / out`` in float64 once per
    pixel, truncating each sum; where a pixel centre lands exactly on a boundary, the accumulated
    rounding decides, so the closed form ``floor((i + 0.5) * step)`` differs from it at a few pixels.
    """
    step = size_in / size_out
    pos, index = step * 0.5, []
    for _ in range(size_out):
        index.append(min(int(pos), size_in - 1))
        pos += step
    return torch.tensor(index, device=device)


def resize(
    x: torch.Tensor,
    size: int | Sequence[int],
    interpolation: Interpolation = "bilinear",
    antialias: bool = True,
) -> torch.Tensor:
    """Resize ``(..., C, H, W)`` to ``size`` = ``(h, w)``; uint8 stays uint8 (rounded like PIL).

    Returns:
        ``(..., C, h, w)``, same dtype; channels-last in memory for uint8.
    """
    _check_image_tensor(x)
    h, w = _pair(size, "size")
    if interpolation not in _MODES:
        raise ValueError(f"interpolation: expected one of {_MODES}, got {interpolation!r}")
    if x.shape[-2:] == (h, w):
        return x
    lead = x.shape[:-3]
    flat = x.reshape(-1, *x.shape[-3:])
    if flat.dtype == torch.uint8:
        # The uint8 kernels are only vectorised for channels-last; a no-op for decoded frames.
        flat = flat.contiguous(memory_format=torch.channels_last)
    elif not flat.is_floating_point():
        flat = flat.float()
    if interpolation == "nearest":
        rows = _pil_nearest_index(flat.shape[-2], h, flat.device)
        cols = _pil_nearest_index(flat.shape[-1], w, flat.device)
        out = flat.index_select(-2, rows).index_select(-1, cols)
    else:
        out = F.interpolate(flat, size=(h, w), mode=interpolation, align_corners=False, antialias=antialias)
    return out.reshape(*lead, *out.shape[-3:])


def resize_shortest_edge(
    x: torch.Tensor,
    shortest_edge: int,
    interpolation: Interpolation = "bilinear",
    antialias: bool = True,
) -> torch.Tensor:
    """Resize ``(..., C, H, W)`` so the short side is ``shortest_edge``, keeping aspect ratio."""
    _check_image_tensor(x)
    if not isinstance(shortest_edge, int) or shortest_edge < 1:
        raise ValueError(f"shortest_edge: expected a positive int, got {shortest_edge!r}")
    return resize(x, shortest_edge_size(x.shape[-2], x.shape[-1], shortest_edge), interpolation, antialias)


def center_crop(x: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """Centre crop ``(..., C, H, W)`` to ``(..., C, h, w)`` (a view when it fits).

    Offsets are ``(H - h) // 2``, transformers' rule. A side smaller than the crop is zero-padded
    evenly (extra pixel after), as transformers does.
    """
    _check_image_tensor(x)
    h, w = _pair(size, "size")
    H, W = x.shape[-2:]
    if H < h or W < w:
        ph, pw = max(h - H, 0), max(w - W, 0)
        # transformers puts ceil(pad / 2) before the image.
        x = F.pad(x, ((pw + 1) // 2, pw // 2, (ph + 1) // 2, ph // 2))
        H, W = x.shape[-2:]
    top, left = (H - h) // 2, (W - w) // 2
    return x[..., top:top + h, left:left + w]


def three_crop(x: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """Three crops along the long side (start, centre, end) for multi-view testing.

    Returns:
        ``(3, ..., C, h, w)``: the views stacked in front. The short side is centre-cropped.
    """
    _check_image_tensor(x)
    h, w = _pair(size, "size")
    H, W = x.shape[-2:]
    if H < h or W < w:
        raise ValueError(f"size: three_crop needs an input at least {(h, w)}, got {(H, W)}; resize first")
    if W >= H:
        top = (H - h) // 2
        views = [x[..., top:top + h, s:s + w] for s in (0, (W - w) // 2, W - w)]
    else:
        left = (W - w) // 2
        views = [x[..., s:s + h, left:left + w] for s in (0, (H - h) // 2, H - h)]
    return torch.stack(views)


def _channel_vector(value: float | Sequence[float], channels: int, name: str) -> torch.Tensor:
    v = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
    if v.numel() == 1:
        v = v.expand(channels)
    if v.numel() != channels:
        raise ValueError(f"{name}: expected 1 or {channels} values, got {v.numel()}")
    return v


def rescale_normalize(
    x: torch.Tensor,
    rescale_factor: float | None = 1 / 255,
    offset: float = 0.0,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
) -> torch.Tensor:
    """``((x * rescale_factor + offset) - mean) / std`` in one float32 multiply-add.

    ViViT's ``offset=True`` is ``offset=-1.0`` with ``rescale_factor=1/127.5`` (values in [-1, 1]).
    ``rescale_factor=None`` skips rescaling; ``mean``/``std`` ``None`` skip normalising.

    Returns:
        ``(..., C, H, W)`` float32, contiguous.
    """
    _check_image_tensor(x)
    c = x.shape[-3]
    scale = torch.full((c,), 1.0 if rescale_factor is None else float(rescale_factor), dtype=torch.float64)
    bias = torch.full((c,), float(offset), dtype=torch.float64)
    if mean is not None or std is not None:
        m = _channel_vector(0.0 if mean is None else mean, c, "mean")
        s = _channel_vector(1.0 if std is None else std, c, "std")
        if (s == 0).any():
            raise ValueError(f"std: expected non-zero values, got {s.tolist()}")
        scale, bias = scale / s, (bias - m) / s
    shape = (c, 1, 1)
    # Back to the standard layout while still uint8 (a quarter of the bytes of float32), then a
    # contiguous, vectorised convert + multiply-add: measured faster than one strided copy_.
    out = x.contiguous().to(torch.float32)
    return out.mul_(scale.to(torch.float32).view(shape)).add_(bias.to(torch.float32).view(shape))


@dataclass
class VideoTransform:
    """Resize -> centre crop -> rescale -> normalise, configured once per model family.

    Args:
        size: ``int`` = shortest edge, ``(h, w)`` = exact size; ``None`` skips resizing.
        interpolation: ``nearest``, ``bilinear`` or ``bicubic`` (antialiased, like PIL).
        crop_size: ``(h, w)`` centre crop; ``None`` skips cropping.
        rescale_factor: ``None`` skips rescaling.
        offset: added after rescaling (ViViT: -1.0).
        mean, std: ``None`` skips normalising.
    """

    size: int | tuple[int, int] | None = 224
    interpolation: Interpolation = "bilinear"
    crop_size: tuple[int, int] | None = (224, 224)
    rescale_factor: float | None = 1 / 255
    offset: float = 0.0
    mean: tuple[float, ...] | None = (0.485, 0.456, 0.406)
    std: tuple[float, ...] | None = (0.229, 0.224, 0.225)
    antialias: bool = field(default=True)

    def __post_init__(self) -> None:
        if self.interpolation not in _MODES:
            raise ValueError(f"interpolation: expected one of {_MODES}, got {self.interpolation!r}")
        if self.size is not None and not isinstance(self.size, int):
            self.size = _pair(tuple(self.size), "size")
        if self.crop_size is not None:
            self.crop_size = _pair(self.crop_size if isinstance(self.crop_size, int) else tuple(self.crop_size),
                                   "crop_size")

    def geometry(self, x: torch.Tensor) -> torch.Tensor:
        """The resize and crop steps only: ``(..., 3, H, W)`` -> ``(..., 3, h, w)``, dtype kept."""
        if isinstance(self.size, int):
            x = resize_shortest_edge(x, self.size, self.interpolation, self.antialias)
        elif self.size is not None:
            x = resize(x, self.size, self.interpolation, self.antialias)
        if self.crop_size is not None:
            x = center_crop(x, self.crop_size)
        return x

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., 3, H, W)`` uint8 (or float in 0..255) -> ``(..., 3, h, w)`` float32."""
        _check_image_tensor(x)
        x = self.geometry(x)
        return rescale_normalize(x, self.rescale_factor, self.offset, self.mean, self.std)
