"""Moved to ``processors/audio/`` (``audio_io`` and ``windows``); this path keeps existing imports working."""
from .audio.audio_io import (
    AudioDecodeError,
    AudioInfo,
    AudioSource,
    decode_audio,
    load_audio,
    resample,
    to_mono,
)
from .audio.windows import AudioWindows

__all__ = ["AudioDecodeError", "AudioInfo", "AudioSource", "AudioWindows", "decode_audio", "load_audio", "resample",
           "to_mono"]
