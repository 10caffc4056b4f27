"""Zero-shot classification with an image-text model: images (or videos) against labels in any language.

probabilities = softmax(exp(logit_scale) * cosine(image, "template.format(label)")) over the labels,
which is the model's ``logits_per_image.softmax(-1)``. A video is its frames' embeddings
averaged (each frame's unit vector, mean, re-normalised), the usual mean pooling of CLIP for video.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

DEFAULT_TEMPLATE = "a photo of {}"


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def mean_unit(embeddings: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """A video's embedding from its frames': each frame's unit vector, their mean, re-normalised (CLIP's
    mean pooling for video), over ``dim``; the one place every command averages frames."""
    return F.normalize(F.normalize(embeddings.float(), dim=-1).mean(dim), dim=-1)


@torch.inference_mode()
def image_embeddings(model, pixel_values: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """(N, 3, H, W) images or (N, T, 3, H, W) videos -> unit-length embeddings (N, projection_dim), float32.

    A video's T frames are embedded one by one, averaged and re-normalised.
    """
    if not isinstance(pixel_values, torch.Tensor) or pixel_values.dim() not in (4, 5):
        got = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values).__name__
        raise ValueError(f"pixel_values: expected (N, 3, H, W) images or (N, T, 3, H, W) videos, got {got}")
    frames = pixel_values.flatten(0, 1) if pixel_values.dim() == 5 else pixel_values
    frames = frames.to(model.device)
    parts = [model.get_image_features(pixel_values=frames[s]).pooler_output for s in _batches(len(frames), batch_size)]
    emb = torch.cat(parts)
    if pixel_values.dim() == 5:
        return mean_unit(emb.view(*pixel_values.shape[:2], -1), dim=1)
    return F.normalize(emb.float(), dim=-1)


def media_embeddings(model, processor=None, images: Any = None, *, videos: Any = None,
                     pixel_values: torch.Tensor | None = None, batch_size: int = 32) -> torch.Tensor:
    """(N, projection_dim) unit embeddings of raw images or videos (through ``processor``, an image-text
    processor) or of ``pixel_values``; exactly one of the three."""
    if sum(x is not None for x in (images, videos, pixel_values)) != 1:
        raise ValueError("images / videos / pixel_values: pass exactly one of them")
    if pixel_values is None:
        if processor is None or getattr(processor, "image_processor", None) is None:
            raise ValueError("images/videos: preprocessing needs a processor with an image processor; "
                             "or pass pixel_values")
        pixel_values = processor(images=images, videos=videos)["pixel_values"]
    return image_embeddings(model, pixel_values, batch_size)


@torch.inference_mode()
def text_embeddings(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                    batch_size: int = 64, encode: Callable[..., torch.Tensor] | None = None) -> torch.Tensor:
    """Tokenised texts (N, tokens) -> unit-length embeddings (N, projection_dim), float32.

    ``encode(input_ids=, attention_mask=)`` -> (n, projection_dim) replaces the model's
    ``get_text_features`` (e.g. a compiled one)."""
    if encode is None:
        encode = lambda **t: model.get_text_features(**t).pooler_output  # noqa: E731
    input_ids = input_ids.to(model.device)
    attention_mask = attention_mask.to(model.device) if attention_mask is not None else None
    parts = []
    for s in _batches(len(input_ids), batch_size):
        mask = attention_mask[s] if attention_mask is not None else None
        parts.append(encode(input_ids=input_ids[s], attention_mask=mask))
    return F.normalize(torch.cat(parts).float(), dim=-1)


def zero_shot_logits(image_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """Unit embeddings (N, D) and (L, D) -> logits (N, L) = exp(logit_scale) * cosine."""
    scale = torch.as_tensor(logit_scale, dtype=torch.float32).exp()
    return scale * image_embeds.float() @ text_embeds.float().t()


class ZeroShotClassifier:
    """Classify images or videos among candidate labels; label embeddings are cached by prompt text.

    ``processor`` (the family's text processor, e.g. one with ``tokenizer`` and ``image_processor``) is needed for label strings and raw images; already
    preprocessed ``pixel_values`` need only the model. The cache holds embeddings of this model:
    call ``clear_cache()`` after changing its weights.
    """

    def __init__(self, model, processor=None, *, template: str | None = DEFAULT_TEMPLATE,
                 batch_size: int = 32, encode_text: Callable[..., torch.Tensor] | None = None):
        if template is not None and "{}" not in template:
            raise ValueError(f"template: expected a format string with '{{}}' for the label, got {template!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size: expected a positive number, got {batch_size}")
        self.model, self.processor = model.eval(), processor
        self.template, self.batch_size = template, batch_size
        self.encode_text = encode_text  # see text_embeddings
        self.cache: dict[str, torch.Tensor] = {}
        self.cache_hits = self.cache_misses = 0

    def clear_cache(self) -> None:
        self.cache.clear()

    def prompts(self, labels: Sequence[str], template: str | None = None) -> list[str]:
        template = template if template is not None else self.template
        return [template.format(label) if template else label for label in labels]

    def label_embeddings(self, labels: Sequence[str], template: str | None = None) -> torch.Tensor:
        """(L, projection_dim) unit embeddings of the prompts; only prompts not cached are encoded."""
        if isinstance(labels, str) or not labels or not all(isinstance(label, str) for label in labels):
            raise ValueError(f"labels: expected a non-empty list of strings, got {labels!r}")
        prompts = self.prompts(labels, template)
        missing = list(dict.fromkeys(p for p in prompts if p not in self.cache))
        self.cache_hits += len(prompts) - len(missing)
        self.cache_misses += len(missing)
        if missing:
            if self.processor is None or self.processor.tokenizer is None:
                raise ValueError("labels: encoding label text needs a processor with a tokenizer")
            tokens = self.processor(text=missing, padding=True, truncation=True)
            emb = text_embeddings(self.model, tokens["input_ids"], tokens["attention_mask"], self.batch_size,
                                  self.encode_text)
            self.cache.update(zip(missing, emb.cpu()))
        return torch.stack([self.cache[p] for p in prompts])

    def media_embeddings(self, images: Any = None, *, videos: Any = None,
                         pixel_values: torch.Tensor | None = None) -> torch.Tensor:
        """(N, projection_dim) from raw images, videos (through the processor) or pixel_values."""
        return media_embeddings(self.model, self.processor, images, videos=videos, pixel_values=pixel_values,
                                batch_size=self.batch_size)

    def __call__(self, images: Any = None, labels: Sequence[str] = (), *, videos: Any = None,
                 pixel_values: torch.Tensor | None = None, template: str | None = None) -> torch.Tensor:
        """Probabilities (N, L): row n sums to 1 over the L labels."""
        text = self.label_embeddings(labels, template)
        media = self.media_embeddings(images, videos=videos, pixel_values=pixel_values)
        logits = zero_shot_logits(media, text.to(media.device), self.model.logit_scale.detach().float())
        return logits.softmax(dim=-1).cpu()

    def predict(self, images: Any = None, labels: Sequence[str] = (), *, top_k: int | None = None,
                **kwargs: Any) -> list[list[dict[str, Any]]]:
        """Per input, ``[{"label", "score"}]`` best first (``top_k`` of them, default all)."""
        probs = self(images, labels, **kwargs)
        k = min(top_k or len(labels), len(labels))
        scores, idx = probs.topk(k, dim=-1)
        return [[{"label": labels[i], "score": float(s)} for s, i in zip(row_s.tolist(), row_i.tolist())]
                for row_s, row_i in zip(scores, idx)]
