"""AltCLIP's processor: the XLM-R tokenizer and CLIP's image processor behind one call."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..checkpoints.hub import resolve
from .tokenizer import SPM_FILES, TOKENIZER_FILE, Tokenizer
from .video_processors import CLIPImageProcessor


class AltCLIPProcessor:
    """``processor(text=..., images=..., videos=...)`` -> the keyword arguments of ``AltCLIPModel``.

    text -> ``input_ids``, ``attention_mask`` (batch, tokens), padded to the longest text and cut to
    the tokenizer's ``model_max_length``; images -> ``pixel_values`` (batch, 3, H, W); videos ->
    ``pixel_values`` (batch, frames, 3, H, W), frames the model sees one by one (see
    ``mediaformers.tasks.zero_shot``). Images and videos are exclusive.
    """

    def __init__(self, image_processor: CLIPImageProcessor | None = None, tokenizer: Tokenizer | None = None):
        if image_processor is None and tokenizer is None:
            raise ValueError("AltCLIPProcessor: expected an image_processor, a tokenizer or both, got neither")
        self.image_processor = image_processor
        self.tokenizer = tokenizer

    @classmethod
    def from_pretrained(cls, ref: str | os.PathLike, **hub_kwargs: Any) -> "AltCLIPProcessor":
        """Read the tokenizer (tokenizer.json or sentencepiece.bpe.model + tokenizer_config.json) and
        preprocessor_config.json from a checkpoint folder or hub id; either part may be absent, not both."""
        folder = Path(resolve(ref, **hub_kwargs))
        tokenizer = None
        if any((folder / n).is_file() for n in (TOKENIZER_FILE, *SPM_FILES)):
            tokenizer = Tokenizer.from_pretrained(folder, default_class="XLMRobertaTokenizer")
        image_processor = None
        if (folder / "preprocessor_config.json").is_file():
            image_processor = CLIPImageProcessor.from_pretrained(folder)
        if tokenizer is None and image_processor is None:
            raise FileNotFoundError(f"{folder}: no tokenizer files and no preprocessor_config.json")
        return cls(image_processor, tokenizer)

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(folder)
        if self.image_processor is not None:
            self.image_processor.save_pretrained(folder)

    def __call__(
        self,
        text: str | list[str] | None = None,
        images: Any = None,
        videos: Any = None,
        *,
        padding: bool | str = True,
        truncation: bool = True,
        max_length: int | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        if text is None and images is None and videos is None:
            raise ValueError("AltCLIPProcessor: expected text, images or videos, got none of them")
        if images is not None and videos is not None:
            raise ValueError("images/videos: pass one of them; both would fill pixel_values")
        out: dict[str, torch.Tensor] = {}
        if text is not None:
            if self.tokenizer is None:
                raise ValueError("text: this processor has no tokenizer")
            out.update(self.tokenizer(text, padding=padding, truncation=truncation, max_length=max_length))
        if images is not None or videos is not None:
            if self.image_processor is None:
                raise ValueError("images/videos: this processor has no image processor")
            if images is not None:
                out.update(self.image_processor(images))
            else:
                out.update(self.image_processor(videos=videos, generator=generator))
        return out

    def batch_decode(self, ids, skip_special_tokens: bool = True) -> list[str]:
        return self.tokenizer.batch_decode(ids, skip_special_tokens=skip_special_tokens)

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tokenizer={self.tokenizer!r}, image_processor={self.image_processor!r})"
