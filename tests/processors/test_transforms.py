"""Torch transforms: sizes as transformers computes them, batching, uint8 path, crops, normalising."""

from __future__ import annotations

import pytest
import torch

from mediaformers.processors.transforms import (
    VideoTransform,
    center_crop,
    rescale_normalize,
    resize,
    resize_shortest_edge,
    shortest_edge_size,
    three_crop,
)
from tests.media import natural_frames


def clip(t: int = 4, size=(48, 64)) -> torch.Tensor:
    """``(T, 3, H, W)`` uint8, channels-last in memory like decoded frames."""
    return torch.from_numpy(natural_frames(t, size)).permute(0, 3, 1, 2)


def test_shortest_edge_rule():
    assert shortest_edge_size(240, 320, 224) == (224, 298)  # int(224 * 320 / 240) = 298
    assert shortest_edge_size(320, 240, 224) == (298, 224)
    assert shortest_edge_size(17, 31, 224) == (224, 408)


def test_resize_shapes_dtype_and_batching():
    x = clip()
    y = resize_shortest_edge(x, 32)
    assert y.shape == (4, 3, 32, 42) and y.dtype == torch.uint8
    assert resize(x[0], (10, 20)).shape == (3, 10, 20)
    batch = torch.stack([x, x.flip(0)])
    yb = resize(batch, (24, 30), "bicubic")
    assert yb.shape == (2, 4, 3, 24, 30)
    # batched == one clip at a time: no mixing across frames or videos
    assert torch.equal(yb[1], resize(x.flip(0), (24, 30), "bicubic"))


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_uint8_path_matches_float_path(mode):
    x = clip(2, (60, 80))
    fast = resize(x, (45, 60), mode).float()
    slow = resize(x.float(), (45, 60), mode).clamp(0, 255)
    diff = (fast - slow).abs()
    # uint8 rounds (and, for bicubic, clamps between the two separable passes like PIL), so hard
    # 0/255 edges can differ by a few levels; elsewhere the paths agree to rounding.
    assert diff.mean() < 0.5 and diff.max() <= (1.0 if mode == "bilinear" else 10.0)


def test_center_crop_offsets_and_padding():
    x = torch.arange(5 * 7).reshape(1, 5, 7).expand(3, 5, 7)
    c = center_crop(x, (3, 4))
    assert torch.equal(c[0], x[0, 1:4, 1:5])  # (5-3)//2, (7-4)//2
    p = center_crop(x, (8, 7))  # pad 3 rows: ceil(3/2)=2 before, 1 after, as transformers
    assert p.shape == (3, 8, 7)
    assert (p[:, :2] == 0).all() and (p[:, -1] == 0).all() and torch.equal(p[0, 2:7], x[0])


def test_three_crop_along_long_side():
    x = torch.arange(6 * 10).reshape(1, 1, 6, 10).expand(2, 3, 6, 10)
    v = three_crop(x, 4)
    assert v.shape == (3, 2, 3, 4, 4)
    assert [int(v[i, 0, 0, 0, 0]) for i in range(3)] == [10, 13, 16]  # top = 1; left = 0, 3, 6
    portrait = three_crop(x.transpose(-1, -2), 4)
    assert [int(portrait[i, 0, 0, 0, 0]) for i in range(3)] == [10, 13, 16]  # left = 1; top = 0, 3, 6 (value = 10 * col + row)
    with pytest.raises(ValueError, match=r"size: three_crop needs an input at least \(8, 8\), got \(6, 10\); resize first"):
        three_crop(x, 8)


def test_rescale_normalize_formula_and_vivit_offset():
    x = torch.tensor([0, 127, 255], dtype=torch.uint8).view(1, 1, 3).expand(3, 1, 3)
    y = rescale_normalize(x, 1 / 255, 0.0, [0.5, 0.4, 0.3], [0.2, 0.25, 0.5])
    ref = (x.double() / 255 - torch.tensor([0.5, 0.4, 0.3]).view(3, 1, 1).double()) / torch.tensor([0.2, 0.25, 0.5]).view(3, 1, 1)
    assert y.dtype == torch.float32 and y.is_contiguous()
    assert torch.allclose(y.double(), ref, atol=1e-6)
    v = rescale_normalize(x, 1 / 127.5, -1.0)
    assert v.min() == -1 and v.max() == pytest.approx(1.0)


def test_video_transform_pipeline():
    t = VideoTransform(size=32, crop_size=(32, 32))
    y = t(clip(3))
    assert y.shape == (3, 3, 32, 32) and y.dtype == torch.float32
    yb = t(torch.stack([clip(3)] * 2))
    assert yb.shape == (2, 3, 3, 32, 32) and torch.allclose(yb[0], y)
    odd = torch.from_numpy(natural_frames(2, (17, 31))).permute(0, 3, 1, 2)
    assert t(odd).shape == (2, 3, 32, 32)
    exact = VideoTransform(size=(20, 30), crop_size=None, mean=None, std=None)
    assert exact(clip(1)).shape == (1, 3, 20, 30)


@pytest.mark.parametrize("call,message", [
    (lambda: resize(torch.zeros(4, 4), 2), r"x: expected shape \(\.\.\., 3, H, W\), got \(4, 4\)"),
    (lambda: resize(torch.zeros(3, 4, 4), 2, "lanczos"), r"interpolation: expected one of \('nearest', 'bilinear', 'bicubic'\), got 'lanczos'"),
    (lambda: resize(torch.zeros(3, 4, 4), (0, 2)), r"size: expected a positive int or \(height, width\), got \(0, 2\)"),
    (lambda: resize_shortest_edge(torch.zeros(3, 4, 4), 0), "shortest_edge: expected a positive int, got 0"),
    (lambda: rescale_normalize(torch.zeros(3, 2, 2), std=[1, 0, 1]), r"std: expected non-zero values, got \[1.0, 0.0, 1.0\]"),
    (lambda: rescale_normalize(torch.zeros(3, 2, 2), mean=[1, 2]), "mean: expected 1 or 3 values, got 2"),
    (lambda: resize([1, 2], 2), "x: expected a torch.Tensor"),
])
def test_validation_messages(call, message):
    with pytest.raises(ValueError, match=message):
        call()
