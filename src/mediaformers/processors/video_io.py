"""Moved to :mod:`mediaformers.processors.video` (public functions) and its ``pyav`` backend; this module
keeps the old import path working for users' code."""

from .video import (  # noqa: F401
    MAX_PIXELS,
    VideoBackend,
    VideoDecodeError,
    VideoMetadata,
    VideoReader,
    VideoSource,
    probe_video,
    read_clip,
    read_frames_at,
    source_name,
)
