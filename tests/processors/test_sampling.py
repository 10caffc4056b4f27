"""Frame sampling strategies: shapes, coverage, reproducibility, short videos, bad arguments."""

from __future__ import annotations

import pytest
import torch

from mediaformers.processors.sampling import (
    ClipSampler,
    indices_to_timestamps,
    multi_clip,
    segments,
    stride,
    uniform,
)


def test_uniform_covers_first_to_last():
    assert uniform(100, 5).tolist() == [0, 25, 50, 74, 99]
    assert uniform(1, 3).tolist() == [0, 0, 0]
    assert uniform(3, 6).tolist() == [0, 0, 1, 1, 2, 2]  # short: frames repeat in order


def test_stride_centred_and_random():
    assert stride(100, 16, 4).tolist() == list(range(19, 19 + 64, 4))  # span 61, slack 39 -> start 39 // 2
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = stride(100, 16, 4, random=True, generator=g1), stride(100, 16, 4, random=True, generator=g2)
    assert torch.equal(a, b)
    assert 0 <= a[0] <= 39 and torch.all(a.diff() == 4)
    starts = {int(stride(100, 16, 4, random=True, generator=g1)[0]) for _ in range(50)}
    assert len(starts) > 5


def test_stride_short_video_repeats_last_frame():
    assert stride(10, 6, 3).tolist() == [0, 3, 6, 9, 9, 9]
    with pytest.raises(ValueError, match=r"too short for stride \(6x3\) sampling: it has 10 frames, 16 are needed"):
        stride(10, 6, 3, on_short="error")


def test_segments_centred_and_random():
    assert segments(80, 8).tolist() == [5, 15, 25, 35, 45, 55, 65, 75]
    g = torch.Generator().manual_seed(0)
    idx = segments(80, 8, random=True, generator=g)
    assert all(10 * k <= int(i) < 10 * (k + 1) for k, i in enumerate(idx))
    assert segments(3, 6).tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="too short for segments sampling: it has 3 frames, 6 are needed"):
        segments(3, 6, on_short="error")


def test_multi_clip_spread():
    clips = multi_clip(100, 3, 4, 2)
    assert clips.shape == (3, 4)
    assert clips[:, 0].tolist() == [0, 46, 93] and clips[-1, -1] == 99
    assert multi_clip(100, 1, 4, 2)[0, 0] == 46  # one clip is centred
    assert multi_clip(5, 2, 4, 2).tolist() == [[0, 2, 4, 4], [0, 2, 4, 4]]


def test_timestamps_are_frame_centres():
    ts = indices_to_timestamps(torch.tensor([0, 1, 10]), 10.0)
    assert torch.allclose(ts, torch.tensor([0.05, 0.15, 1.05], dtype=torch.float64))
    with pytest.raises(ValueError, match="fps: expected a positive frame rate, got 0"):
        indices_to_timestamps(torch.tensor([0]), 0)


def test_clip_sampler_dispatch():
    assert ClipSampler("uniform", num_frames=4)(10).shape == (1, 4)
    assert ClipSampler("multi_clip", num_frames=4, num_clips=5, step=2)(100).shape == (5, 4)
    g = torch.Generator().manual_seed(1)
    assert ClipSampler("segments", num_frames=4, random=True)(40, g).shape == (1, 4)


@pytest.mark.parametrize("kwargs,message", [
    (dict(strategy="random"), r"strategy: expected one of \('uniform', 'stride', 'segments', 'multi_clip'\), got 'random'"),
    (dict(num_frames=0), "num_frames: expected a positive int, got 0"),
    (dict(step=1.5), "step: expected a positive int, got 1.5"),
    (dict(on_short="pad"), "on_short: expected 'repeat' or 'error', got 'pad'"),
])
def test_clip_sampler_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClipSampler(**kwargs)


def test_function_validation():
    with pytest.raises(ValueError, match="num_frames_in_video: expected a positive int, got 0"):
        uniform(0, 4)
    with pytest.raises(ValueError, match="num_samples: expected a positive int, got -1"):
        stride(10, -1)
