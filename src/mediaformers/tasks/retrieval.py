"""Image-text retrieval with an image-text model: rank texts for every image and images for every text; recall@k.

Scores are cosine similarities of the unit embeddings (the logit scale does not change a ranking).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .zero_shot import media_embeddings, text_embeddings


def similarity(image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
    """Unit embeddings (I, D) and (T, D) -> cosine similarities (I, T)."""
    if image_embeds.dim() != 2 or text_embeds.dim() != 2 or image_embeds.shape[1] != text_embeds.shape[1]:
        raise ValueError(f"image_embeds / text_embeds: expected (images, D) and (texts, D), got "
                         f"{tuple(image_embeds.shape)} and {tuple(text_embeds.shape)}")
    return image_embeds.float() @ text_embeds.float().t()


def rank(scores: torch.Tensor, k: int | None = None) -> dict[str, torch.Tensor]:
    """Indices best first: ``texts_for_image`` (I, k) and ``images_for_text`` (T, k); ties keep index order."""
    i, t = scores.shape
    kt, ki = min(k or t, t), min(k or i, i)
    return {
        "texts_for_image": scores.argsort(dim=1, descending=True, stable=True)[:, :kt],
        "images_for_text": scores.t().argsort(dim=1, descending=True, stable=True)[:, :ki],
    }


def recall_at_k(scores: torch.Tensor, text_to_image: Sequence[int] | torch.Tensor,
                ks: Sequence[int] = (1, 5, 10)) -> dict[str, dict[int, float]]:
    """Recall@k both ways for a labelled set; ``text_to_image[j]`` is the image text j describes.

    image_to_text: an image counts when any of its texts is among its top k (COCO/Flickr protocol);
    text_to_image: a text counts when its image is among its top k.
    """
    n_img, n_txt = scores.shape
    gt = torch.as_tensor(text_to_image, dtype=torch.long)
    if gt.shape != (n_txt,):
        raise ValueError(f"text_to_image: expected {n_txt} image indices (one per text), got shape {tuple(gt.shape)}")
    if n_txt and (gt.min() < 0 or gt.max() >= n_img):
        raise ValueError(f"text_to_image: expected indices in [0, {n_img}), got {gt.min().item()}..{gt.max().item()}")
    if any(k < 1 for k in ks):
        raise ValueError(f"ks: expected positive k, got {list(ks)}")
    order = rank(scores)
    t2i = order["images_for_text"].cpu()
    i2t = order["texts_for_image"].cpu()
    owns = gt[i2t] == torch.arange(n_img)[:, None]  # (I, T): the ranked text belongs to the image
    has_text = torch.zeros(n_img, dtype=torch.bool).index_fill_(0, gt, True)
    out: dict[str, dict[int, float]] = {"image_to_text": {}, "text_to_image": {}}
    for k in ks:
        out["text_to_image"][k] = (t2i[:, :k] == gt[:, None]).any(1).float().mean().item()
        hits = owns[:, :k].any(1)[has_text]
        out["image_to_text"][k] = hits.float().mean().item() if len(hits) else 0.0
    return out


class Retriever:
    """Embed images and texts with an image-text model (``get_image_features`` / ``get_text_features``),
    then rank or score a labelled set.

    Inputs are raw (through ``processor``, the family's text processor) or already preprocessed tensors.
    """

    def __init__(self, model, processor=None, *, batch_size: int = 32):
        if batch_size < 1:
            raise ValueError(f"batch_size: expected a positive number, got {batch_size}")
        self.model, self.processor, self.batch_size = model.eval(), processor, batch_size

    def embed_images(self, images: Any = None, *, pixel_values: torch.Tensor | None = None,
                     videos: Any = None) -> torch.Tensor:
        return media_embeddings(self.model, self.processor, images, videos=videos, pixel_values=pixel_values,
                                batch_size=self.batch_size)

    def embed_texts(self, texts: Sequence[str] | None = None, *, input_ids: torch.Tensor | None = None,
                    attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if (texts is None) == (input_ids is None):
            raise ValueError("texts / input_ids: pass exactly one of them")
        if texts is not None:
            if self.processor is None:
                raise ValueError("texts: tokenising needs a processor; or pass input_ids")
            tokens = self.processor(text=list(texts), padding=True, truncation=True)
            input_ids, attention_mask = tokens["input_ids"], tokens["attention_mask"]
        assert input_ids is not None  # given, or just tokenised
        return text_embeddings(self.model, input_ids, attention_mask, self.batch_size)

    def search(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, k: int | None = None) -> dict[str, Any]:
        """Scores (I, T) and both rankings (see :func:`rank`)."""
        scores = similarity(image_embeds, text_embeds)
        return {"scores": scores, **rank(scores, k)}

    def evaluate(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor,
                 text_to_image: Sequence[int] | torch.Tensor, ks: Sequence[int] = (1, 5, 10)) -> dict[str, dict[int, float]]:
        return recall_at_k(similarity(image_embeds, text_embeds), text_to_image, ks)
