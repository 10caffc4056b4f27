"""AltCLIP's processor: the XLM-R tokenizer and CLIP's image processor behind one call."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..checkpoints.hub import resolve
from ._config_files import find_processor_fields
from ._tensors import check_return_tensors
from .batch_feature import BatchFeature
from .image.clip_image_processor import CLIPImageProcessor
from .tokenizer import SPM_FILES, TOKENIZER_FILE, Tokenizer

_TEXT_OPTIONS = ("add_special_tokens", "padding", "truncation", "max_length", "pad_to_multiple_of",
                 "return_attention_mask", "return_length", "padding_side", "return_token_type_ids",
                 "return_special_tokens_mask", "return_offsets_mapping", "verbose")


class AltCLIPProcessor:
    """``processor(images=..., text=..., videos=...)`` -> the keyword arguments of ``AltCLIPModel``.

    Positional order and text options as transformers 5 (``padding=False`` by default; pass
    ``padding=True`` for a batch of texts of different lengths). text -> ``input_ids``,
    ``attention_mask`` (batch, tokens); images -> ``pixel_values`` (batch, 3, H, W); videos ->
    ``pixel_values`` (batch, frames, 3, H, W), frames the model sees one by one (see
    ``mediaformers.tasks.zero_shot``). Images and videos are exclusive. Image-processor fields
    (``size``, ``do_normalize``...) can be overridden per call.
    """

    attributes = ["image_processor", "tokenizer"]

    def __init__(self, image_processor: CLIPImageProcessor | None = None, tokenizer: Tokenizer | None = None):
        if image_processor is None and tokenizer is None:
            raise ValueError("AltCLIPProcessor: expected an image_processor, a tokenizer or both, got neither")
        self.image_processor = image_processor
        self.tokenizer = tokenizer

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values"]

    @classmethod
    def from_pretrained(cls, ref: str | os.PathLike, **hub_kwargs: Any) -> AltCLIPProcessor:
        """Read the tokenizer (tokenizer.json or sentencepiece.bpe.model + tokenizer_config.json) and the
        image settings (preprocessor_config.json, or transformers 5's processor_config.json) from a
        checkpoint folder or hub id; either part may be absent, not both."""
        folder = Path(resolve(ref, **hub_kwargs))
        tokenizer = None
        if any((folder / n).is_file() for n in (TOKENIZER_FILE, *SPM_FILES)):
            tokenizer = Tokenizer.from_pretrained(folder, default_class="XLMRobertaTokenizer")
        image_processor = None
        if folder.is_dir() and find_processor_fields(folder, "image_processor") is not None:
            image_processor = CLIPImageProcessor.from_pretrained(folder)
        if tokenizer is None and image_processor is None:
            raise FileNotFoundError(f"{folder}: no tokenizer files and no preprocessor_config.json / processor_config.json")
        return cls(image_processor, tokenizer)

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """Tokenizer files and preprocessor_config.json (transformers 4.x and 5 both read it)."""
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(folder)
        if self.image_processor is not None:
            self.image_processor.save_pretrained(folder)

    def __call__(
        self,
        images: Any = None,
        text: str | list[str] | None = None,
        videos: Any = None,
        *,
        return_tensors: str | None = "pt",
        generator: torch.Generator | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """``kwargs``: tokenizer options (padding, truncation, max_length, ...) and image-processor fields."""
        if text is None and (isinstance(images, str) or (
                isinstance(images, list) and images and all(isinstance(t, str) for t in images))):
            # transformers' old order was (text, images): strings in the images slot are text
            images, text = None, images
        if text is None and images is None and videos is None:
            raise ValueError("AltCLIPProcessor: expected text, images or videos, got none of them")
        if images is not None and videos is not None:
            raise ValueError("images/videos: pass one of them; both would fill pixel_values")
        check_return_tensors(return_tensors)
        text_kwargs = {k: kwargs.pop(k) for k in _TEXT_OPTIONS if k in kwargs}
        out = BatchFeature()
        if text is not None:
            if self.tokenizer is None:
                raise ValueError("text: this processor has no tokenizer")
            out.update(self.tokenizer(text, return_tensors=return_tensors, **text_kwargs))
        if images is not None or videos is not None:
            if self.image_processor is None:
                raise ValueError("images/videos: this processor has no image processor")
            out.update(self.image_processor(images, videos=videos, return_tensors=return_tensors,
                                            generator=generator, **kwargs))
        elif kwargs:
            raise TypeError(f"AltCLIPProcessor: unexpected keyword argument(s) {sorted(kwargs)}")
        return out

    def _tokens(self) -> Tokenizer:
        if self.tokenizer is None:
            raise ValueError("ids: decoding needs a tokenizer; this processor has none")
        return self.tokenizer

    def batch_decode(self, ids, skip_special_tokens: bool = False) -> list[str]:
        return self._tokens().batch_decode(ids, skip_special_tokens=skip_special_tokens)

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self._tokens().decode(ids, skip_special_tokens=skip_special_tokens)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tokenizer={self.tokenizer!r}, image_processor={self.image_processor!r})"
