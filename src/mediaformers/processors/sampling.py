"""Frame sampling: which frames of a video a clip is made of.

Each strategy is a small function of the video's frame count that returns frame indices
(``torch.long``); ``indices_to_timestamps`` turns them into the seconds the decoder asks for
(frame centres, so float error can never pick the neighbour). Random variants take a
``torch.Generator`` so training runs are reproducible.

Short videos: when a strategy needs more frames than the video has, the clip is repeat-padded by
default (indices clamp to the last frame, so the last frame repeats: VideoMAE's own recipe);
``on_short="error"`` raises instead.

    uniform      N frames spread over the whole video (ViViT, TVLT)
    stride       N frames, one every ``step``, from a random or centred start (VideoMAE 16x4)
    segments     one frame per equal segment, random or centred (TSN)
    multi_clip   K stride clips spread evenly over the video (multi-view testing)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

OnShort = Literal["repeat", "error"]
_STRATEGIES = ("uniform", "stride", "segments", "multi_clip")


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")


def _check_on_short(on_short: str) -> None:
    if on_short not in ("repeat", "error"):
        raise ValueError(f"on_short: expected 'repeat' or 'error', got {on_short!r}")


def _short(strategy: str, total: int, needed: int, on_short: str) -> None:
    if total < needed and on_short == "error":
        raise ValueError(
            f"video too short for {strategy} sampling: it has {total} frames, {needed} are needed "
            "(pass on_short='repeat' to repeat the last frame instead)"
        )


def uniform(num_frames_in_video: int, num_samples: int, *, on_short: OnShort = "repeat") -> torch.Tensor:
    """``num_samples`` indices spread evenly from the first frame to the last, inclusive.

    Returns:
        ``(num_samples,)`` long. With fewer frames than samples, frames repeat in order.
    """
    _check_positive("num_frames_in_video", num_frames_in_video)
    _check_positive("num_samples", num_samples)
    _check_on_short(on_short)
    _short("uniform", num_frames_in_video, num_samples, on_short)
    return torch.linspace(0, num_frames_in_video - 1, num_samples, dtype=torch.float64).round().long()


def stride(
    num_frames_in_video: int,
    num_samples: int,
    step: int = 1,
    *,
    random: bool = False,
    generator: torch.Generator | None = None,
    on_short: OnShort = "repeat",
) -> torch.Tensor:
    """``num_samples`` indices ``step`` frames apart (VideoMAE's Kinetics recipe is 16 x 4).

    The clip spans ``(num_samples - 1) * step + 1`` frames and starts at a uniformly random frame
    (``random=True``, drawn from ``generator``) or is centred in the video.

    Returns:
        ``(num_samples,)`` long. A video shorter than the span starts at 0 and repeats its last
        frame (``on_short="repeat"``).
    """
    _check_positive("num_frames_in_video", num_frames_in_video)
    _check_positive("num_samples", num_samples)
    _check_positive("step", step)
    _check_on_short(on_short)
    span = (num_samples - 1) * step + 1
    _short(f"stride ({num_samples}x{step})", num_frames_in_video, span, on_short)
    slack = max(num_frames_in_video - span, 0)
    if random:
        start = int(torch.randint(0, slack + 1, (1,), generator=generator))
    else:
        start = slack // 2
    return (start + torch.arange(num_samples) * step).clamp_max(num_frames_in_video - 1)


def segments(
    num_frames_in_video: int,
    num_segments: int,
    *,
    random: bool = False,
    generator: torch.Generator | None = None,
    on_short: OnShort = "repeat",
) -> torch.Tensor:
    """One index per equal segment of the video (TSN): a random frame in each, or its centre.

    Returns:
        ``(num_segments,)`` long, non-decreasing. With fewer frames than segments, segments share
        frames (frames repeat in order).
    """
    _check_positive("num_frames_in_video", num_frames_in_video)
    _check_positive("num_segments", num_segments)
    _check_on_short(on_short)
    _short("segments", num_frames_in_video, num_segments, on_short)
    length = num_frames_in_video / num_segments
    starts = torch.arange(num_segments, dtype=torch.float64) * length
    if random:
        offsets = torch.rand(num_segments, generator=generator, dtype=torch.float64) * length
    else:
        offsets = torch.full((num_segments,), length / 2, dtype=torch.float64)
    return (starts + offsets).floor().long().clamp(0, num_frames_in_video - 1)


def multi_clip(
    num_frames_in_video: int,
    num_clips: int,
    num_samples: int,
    step: int = 1,
    *,
    on_short: OnShort = "repeat",
) -> torch.Tensor:
    """``num_clips`` stride clips whose starts are spread evenly over the video (multi-view test).

    Returns:
        ``(num_clips, num_samples)`` long. If the video is shorter than one clip span all clips
        start at 0 and repeat the last frame.
    """
    _check_positive("num_clips", num_clips)
    base = stride(num_frames_in_video, num_samples, step, on_short=on_short)
    base = base - base[0]
    span = (num_samples - 1) * step + 1
    slack = max(num_frames_in_video - span, 0)
    starts = torch.linspace(0, slack, num_clips, dtype=torch.float64).round().long()
    if num_clips == 1:
        starts = torch.tensor([slack // 2])
    return (starts[:, None] + base[None, :]).clamp_max(num_frames_in_video - 1)


def indices_to_timestamps(indices: torch.Tensor, fps: float) -> torch.Tensor:
    """Seconds (from the start of the video) at the centre of frames ``indices`` at ``fps``.

    Centres, not starts, so the frame on screen at each time is the indexed one despite float
    rounding. On variable-frame-rate video this is the frame on screen at the nominal time.
    """
    if not fps or fps <= 0:
        raise ValueError(f"fps: expected a positive frame rate, got {fps!r}")
    return (indices.to(torch.float64) + 0.5) / float(fps)


@dataclass(frozen=True)
class ClipSampler:
    """A sampling strategy with its settings, for processors and datasets.

    Args:
        strategy: one of ``uniform``, ``stride``, ``segments``, ``multi_clip``.
        num_frames: frames per clip.
        step: frame step for ``stride`` and ``multi_clip``.
        num_clips: clips for ``multi_clip`` (the others make one clip).
        random: random start/offsets (training) instead of centred (evaluation).
        on_short: ``"repeat"`` (default) pads short videos by repeating the last frame;
            ``"error"`` raises ``ValueError``.
    """

    strategy: str = "uniform"
    num_frames: int = 16
    step: int = 1
    num_clips: int = 1
    random: bool = False
    on_short: OnShort = "repeat"

    def __post_init__(self) -> None:
        if self.strategy not in _STRATEGIES:
            raise ValueError(f"strategy: expected one of {_STRATEGIES}, got {self.strategy!r}")
        for name in ("num_frames", "step", "num_clips"):
            _check_positive(name, getattr(self, name))
        _check_on_short(self.on_short)

    def __call__(self, num_frames_in_video: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Indices: ``(num_clips, num_frames)`` long (``num_clips`` is 1 except for multi_clip)."""
        n, s = num_frames_in_video, self.num_frames
        if self.strategy == "uniform":
            idx = uniform(n, s, on_short=self.on_short)
        elif self.strategy == "stride":
            idx = stride(n, s, self.step, random=self.random, generator=generator, on_short=self.on_short)
        elif self.strategy == "segments":
            idx = segments(n, s, random=self.random, generator=generator, on_short=self.on_short)
        else:
            return multi_clip(n, self.num_clips, s, self.step, on_short=self.on_short)
        return idx[None]
