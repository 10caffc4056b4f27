"""Evaluation metrics: top-k accuracy and confusion matrix (single label), mAP and per-class AP
(multi-label). Recall@k (contrastive training) is :func:`mediaformers.tasks.retrieval.recall_at_k`."""
from __future__ import annotations

import torch


def topk_accuracy(logits: torch.Tensor, target: torch.Tensor, ks=(1, 5)) -> dict[str, float]:
    out = {}
    for k in ks:
        k_ = min(k, logits.shape[-1])
        hit = (logits.topk(k_, -1).indices == target[:, None]).any(-1).float().mean().item()
        out[f"top{k}"] = hit
    return out


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, n: int) -> list[list[int]]:
    """rows: true class, columns: predicted class."""
    m = torch.zeros(n, n, dtype=torch.long)
    m.index_put_((target, pred), torch.ones_like(target), accumulate=True)
    return m.tolist()


def average_precision(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-class AP ``(classes,)`` from ``scores`` and 0/1 ``target`` ``(n, classes)``; NaN for a class
    with no positive."""
    order = scores.argsort(0, descending=True)
    t = target.gather(0, order).float()
    hits = t.cumsum(0)
    precision = hits / torch.arange(1, len(t) + 1, dtype=torch.float32)[:, None]
    pos = t.sum(0)
    return (precision * t).sum(0) / pos.where(pos > 0, torch.tensor(float("nan")))


def mean_average_precision(scores, target) -> dict:
    ap = average_precision(scores, target)
    return {"mAP": ap.nanmean().item(), "per_class_AP": [None if v != v else round(v, 6) for v in ap.tolist()]}
