"""Media in: decoding, sampling, transforms, features, tokenization.

The processors under transformers' class names, imported lazily (importing one submodule does not
pull in video decoding or the tokenizer):

    from mediaformers.processors import VideoMAEImageProcessor, XLMRobertaTokenizer
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "VideoMAEImageProcessor": "video_processors", "VideoMAEVideoProcessor": "video_processors",
    "VideoMAECheckpointProcessor": "video_processors",
    "VivitImageProcessor": "video_processors", "VivitVideoProcessor": "video_processors",
    "TvltImageProcessor": "video_processors", "TvltVideoProcessor": "video_processors",
    "BaseVideoProcessor": "base_processor", "CLIPImageProcessor": "image.clip_image_processor",
    "ASTFeatureExtractor": "audio.ast_features", "TvltFeatureExtractor": "audio.tvlt_audio", "TvltProcessor": "tvlt_processor",
    "AltCLIPProcessor": "altclip_processor", "Tokenizer": "tokenizer", "XLMRobertaTokenizer": "tokenizer",
    "XLMRobertaTokenizerFast": "tokenizer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mediaformers.processors' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
