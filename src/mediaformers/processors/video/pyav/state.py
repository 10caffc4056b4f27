"""The state ``VideoReader``'s parts share, declared once so each part (container facts, seek policy,
parallel decode, skipping) reads as a class of its own and a type checker can follow it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import av
import numpy as np

from ..backend import VideoMetadata, VideoSource


class ReaderState:
    """Attributes and cross-part methods of ``VideoReader`` (set in ``reader.VideoReader.__init__``)."""

    name: str
    metadata: VideoMetadata
    max_pixels: int | None
    frames_decoded: int  # frames the decoder gave, all requests together (tests, benchmarks)
    packets_end: float | None  # where the last frame leaves the screen, by the packets (frame_times)
    _source: VideoSource
    _threads: bool  # frame + slice threads allowed
    _container: Any  # av.container.InputContainer while open, else None
    _stream: Any  # its video stream
    _format: str  # the demuxer's first name ("mov", "matroska", "mpeg", ...)
    _by_order: bool  # frames timed by output order (container.py: _BY_ORDER)
    _sparse: bool  # read with nofillin, timed from sparse stamps (container.py: _SPARSE_STAMPS)
    _fresh: bool  # nothing read since the last open
    _count: int  # frames yielded since the open
    _seeking: bool  # the current request seeks (slice threads only)
    _error: Exception | None  # damage that ended the last decode
    _skip_nonref: bool
    _skip_targets: list[float] | None
    _nonref_fed: list[float]
    _keyframes: list[float] | None

    def _reopen(self, thread_type: str | None = None) -> None:
        raise NotImplementedError

    def _frames(self) -> Iterator[av.VideoFrame]:
        raise NotImplementedError

    def _timed(self, frames: Iterable[av.VideoFrame]) -> Iterator[tuple[av.VideoFrame, float]]:
        raise NotImplementedError

    def _decode_sorted_once(self, targets: list[float], allow_partial: bool) -> list[np.ndarray]:
        raise NotImplementedError

    def _decode_run(self, targets: list[float], allow_partial: bool) -> list[np.ndarray]:
        raise NotImplementedError

    def _keyframe_times(self) -> list[float] | None:
        raise NotImplementedError

    def _dense(self, targets: list[float]) -> bool:
        raise NotImplementedError

    def _can_seek(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError
