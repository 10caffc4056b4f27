"""Moved to :mod:`mediaformers.processors.video` (public functions) and its ``pyav`` backend; this module
keeps the old import path working for users' code."""

from .video import (  # noqa: F401
    BACKENDS,
    MAX_PIXELS,
    VideoBackend,
    VideoDecodeError,
    VideoMetadata,
    VideoReader,
    VideoSource,
    open_video,
    probe_video,
    read_clip,
    read_frames_at,
    source_name,
)
