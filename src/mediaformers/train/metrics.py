"""Evaluation metrics: top-k accuracy and confusion matrix (single label), mAP and per-class AP
(multi-label), recall@k both ways (retrieval)."""
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


def recall_at_k(sim: torch.Tensor, ks=(1, 5, 10), names=("a2b", "b2a")) -> dict[str, float]:
    """Recall@k both ways from a similarity matrix ``sim`` (n, n) whose row i matches column i:
    ``{names[0]}_R@k`` ranks the columns of each row (e.g. media -> text), ``{names[1]}_R@k`` the rows
    of each column. A tie with the match counts in its favour."""
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"sim: expected a square (n, n) similarity matrix, got shape {tuple(sim.shape)}")
    idx = torch.arange(len(sim))
    out = {}
    for name, s in zip(names, (sim, sim.T)):
        rank = (s > s[idx, idx][:, None]).sum(-1)
        for k in ks:
            out[f"{name}_R@{k}"] = (rank < k).float().mean().item()
    return out


def retrieval_recall(a: torch.Tensor, b: torch.Tensor, ks=(1, 5, 10)) -> dict[str, float]:
    """Pair i of ``a`` matches pair i of ``b``; recall@k a->b and b->a over cosine similarities."""
    sim = torch.nn.functional.normalize(a, dim=-1) @ torch.nn.functional.normalize(b, dim=-1).T
    return recall_at_k(sim, ks)
