"""The zero-shot-classification pipeline: AltCLIP over image and video files (or decoded frames)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..processors.altclip_processor import AltCLIPProcessor
from .loading import Loaded, video_processor
from .pipelines import Pipeline
from .views import ImageOrVideoFrames
from .zero_shot import ZeroShotClassifier, zero_shot_logits


class ZeroShotClassification(Pipeline):
    """Probabilities over ``candidate_labels`` (any language) per image or video.

    A video's frames are embedded one by one and averaged. Label embeddings are cached, so a long
    run over many files encodes each prompt once.
    """

    task = "zero-shot-classification"

    def __init__(self, loaded: Loaded, *, template: str | None = "{}", top_k: int | None = None, **kw: Any):
        super().__init__(loaded, **kw)
        processor = AltCLIPProcessor.from_pretrained(loaded.folder)
        if processor.tokenizer is None:
            raise ValueError(f"{loaded.folder}: zero-shot needs the checkpoint's tokenizer (tokenizer.json or "
                             "sentencepiece.bpe.model), found none")
        self.classifier = ZeroShotClassifier(loaded.model, processor, template=template)
        self.frames = ImageOrVideoFrames(video_processor(loaded))
        self.top_k = top_k

    def prepare(self):
        return self.frames

    def forward(self, batch):
        return F.normalize(self.loaded.model.get_image_features(pixel_values=batch["pixel_values"]).pooler_output.float(), dim=-1)

    def finish(self, rows: torch.Tensor, candidate_labels=(), top_k: int | None = None,
               template: str | None = None) -> dict[str, Any]:
        labels = list(candidate_labels)
        text = self.classifier.label_embeddings(labels, template)
        media = F.normalize(rows.mean(0, keepdim=True), dim=-1)
        probs = zero_shot_logits(media, text, self.loaded.model.logit_scale.detach().float()).softmax(-1)[0]
        k = min(top_k or self.top_k or len(labels), len(labels))
        scores, ids = probs.topk(k)
        return {"labels": [{"label": labels[i], "score": round(float(s), 6)} for s, i in zip(scores, ids.tolist())]}

    def iter(self, inputs: Any, candidate_labels=(), **kwargs: Any):
        if isinstance(candidate_labels, str) or not candidate_labels:
            raise ValueError(f"candidate_labels: expected a non-empty list of labels, got {candidate_labels!r}")
        self.classifier.label_embeddings(list(candidate_labels), kwargs.get("template"))  # fail early, warm the cache
        return super().iter(inputs, candidate_labels=candidate_labels, **kwargs)
