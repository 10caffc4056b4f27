"""The zero-shot-classification pipeline: image and video files (or decoded frames) against labels in any language."""
from __future__ import annotations

from typing import Any

import torch

from .embedding import unit_embedding
from .loading import Loaded, processor
from .pipeline_base import Pipeline
from .views import make_views
from .zero_shot import ZeroShotClassifier, mean_unit, zero_shot_logits


class ZeroShotClassification(Pipeline):
    """Probabilities over ``candidate_labels`` (any language) per image or video.

    A video's frames are embedded one by one and averaged. Label embeddings are cached, so a long
    run over many files encodes each prompt once. Image and text features go through the compiled
    model when the pipeline was built with ``compile=True``.
    """

    task = "zero-shot-classification"

    def __init__(self, loaded: Loaded, *, template: str | None = "{}", top_k: int | None = None,
                 allow_partial: bool = False, **kw: Any):
        super().__init__(loaded, **kw)
        text_processor = processor(loaded, "text")
        if text_processor.tokenizer is None:
            raise ValueError(f"{loaded.folder}: zero-shot needs the checkpoint's tokenizer (tokenizer.json or "
                             "sentencepiece.bpe.model), found none")
        model = loaded.model
        encode_text = loaded.compiled("text_features", lambda **t: model.get_text_features(**t).pooler_output)
        self.classifier = ZeroShotClassifier(model, text_processor, template=template, encode_text=encode_text)
        self.frames = make_views(loaded, allow_partial=allow_partial)
        self.top_k = top_k

    def prepare(self):
        return self.frames

    def forward(self, batch):
        return unit_embedding(self.loaded, batch)

    def finish(self, rows: torch.Tensor, candidate_labels=(), top_k: int | None = None,
               template: str | None = None) -> dict[str, Any]:
        labels = list(candidate_labels)
        text = self.classifier.label_embeddings(labels, template)
        media = mean_unit(rows)[None]
        probs = zero_shot_logits(media, text, self.loaded.model.logit_scale.detach().float()).softmax(-1)[0]
        k = min(top_k or self.top_k or len(labels), len(labels))
        scores, ids = probs.topk(k)
        return {"labels": [{"label": labels[i], "score": round(float(s), 6)} for s, i in zip(scores, ids.tolist())]}

    def iter(self, inputs: Any, candidate_labels=(), **kwargs: Any):
        if isinstance(candidate_labels, str) or not candidate_labels:
            raise ValueError(f"candidate_labels: expected a non-empty list of labels, got {candidate_labels!r}")
        self.classifier.label_embeddings(list(candidate_labels), kwargs.get("template"))  # fail early, warm the cache
        return super().iter(inputs, candidate_labels=candidate_labels, **kwargs)
