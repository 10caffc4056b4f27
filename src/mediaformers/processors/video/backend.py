"""What every video backend shares: the source type, the error, the metadata, and the interface a
decoder implements (``VideoBackend``). PyAV is the one backend (``pyav/``); another decoder (decord,
torchcodec, a hardware decoder) would be a class with these methods in ``video/<name>/``, registered in
``video.BACKENDS``. Nothing here imports a decoder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Protocol, Self, Union

import numpy as np
import torch

VideoSource = Union[str, os.PathLike, IO[bytes]]  # noqa: UP007 (a runtime alias)

# A request left unanswered at end of stream counts as truncation only when it lies this far past the
# end of the last frame (its own duration, or two nominal ones): headers round durations a little.
TRUNCATION_SLACK_S = 0.25
# A frame larger than this is scaled down inside FFmpeg (same aspect): models take a few hundred pixels,
# and a 16000x16000 picture would otherwise take gigabytes per copy.
MAX_PIXELS = 3840 * 2160
class VideoDecodeError(ValueError):
    """A video could not be opened or decoded; the message names the file and the cause."""


@dataclass(frozen=True)
class VideoMetadata:
    """What the container says about the first video stream.

    ``width``/``height`` are the size of the frames as returned, i.e. after rotation;
    ``rotation`` is the counter-clockwise rotation (0, 90, 180, 270) that was needed to
    make them upright (FFmpeg's display matrix, as ``av.VideoFrame.rotation`` reads it).
    ``duration`` and ``num_frames`` are ``None`` when the container does not know them;
    ``num_frames`` is the header's count, a hint only (see ``estimated_num_frames``).
    """

    source: str
    duration: float | None
    fps: float | None
    num_frames: int | None
    width: int
    height: int
    rotation: int
    has_audio: bool
    codec: str
    start_time: float

    @property
    def estimated_num_frames(self) -> int | None:
        """Frames in the video as ``duration * fps`` (VFR-safe), else the header's count."""
        if self.duration is not None and self.fps:
            return max(1, round(self.duration * self.fps))
        return self.num_frames


def source_name(source: VideoSource) -> str:
    """A printable name for a path or file-like object, for error messages."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return str(name) if isinstance(name, str) else f"<{type(source).__name__} object>"




class VideoBackend(Protocol):
    """An open video that answers "which frames are on screen at these times?" (``pyav.VideoReader``).

    Times are seconds from the first frame; the answer for ``t`` is the last frame, in display order,
    whose time is ``<= t`` (the first frame before it, the last frame past the end).
    """

    name: str
    metadata: VideoMetadata
    packets_end: float | None  # set by frame_times(): where the last frame leaves the screen, if known

    def get_frames_at(self, timestamps: Sequence[float] | torch.Tensor | np.ndarray, *,
                      allow_partial: bool = False, seek_mode: str = "exact") -> torch.Tensor:
        """``(n, H, W, 3)`` uint8 upright frames, in the order asked."""
        ...

    def frame_times(self) -> torch.Tensor:
        """``(n,)`` float64 times of every frame, from the packets (no decoding where possible)."""
        ...

    def reliable_duration(self) -> bool:
        """Whether ``metadata.duration`` can be believed (not a bit-rate estimate): truncation checks."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc) -> None: ...
