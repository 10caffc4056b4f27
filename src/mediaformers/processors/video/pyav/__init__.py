"""The PyAV (FFmpeg) video backend, split by job: ``container`` (opening, metadata, timing facts),
``seek`` (seek policy), ``parallel`` (parallel decode), ``skip`` (non-reference frame skipping),
``convert`` (frames to RGB arrays), ``reader`` (the decode loop that joins them)."""

from .reader import VideoReader

__all__ = ["VideoReader"]
