"""Which medium a file holds, by its extension: what processors decode (a still image is one frame,
not a video) and what the command line collects from folders."""
from __future__ import annotations

import os
from pathlib import Path

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".3gp", ".gif")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aiff", ".aif")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
KINDS = {"video": VIDEO_EXTENSIONS, "audio": AUDIO_EXTENSIONS, "image": IMAGE_EXTENSIONS}


def media_kind(path: str | os.PathLike) -> str | None:
    """'video', 'audio', 'image' by extension, or None."""
    ext = Path(path).suffix.lower()
    return next((kind for kind, exts in KINDS.items() if ext in exts), None)
