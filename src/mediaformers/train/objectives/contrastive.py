"""Contrastive media-text training: CLIP's symmetric loss over the global batch, recall@k evaluation."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ...layers.losses import clip_loss
from ...tasks.loading import processor
from ...tasks.retrieval import recall_at_k
from ..distributed import SINGLE
from .base import Task


class _OneView:
    """All frames of a file as its one view: ``(1, frames, 3, H, W)`` (picklable for DataLoader workers)."""

    def __init__(self, prepare):
        self.prepare = prepare

    def __call__(self, source) -> dict[str, torch.Tensor]:
        return {k: v[None] for k, v in self.prepare(source).items()}


class _PairCollate:
    """Rows -> every item's frames one after another, how many each has, and the captions tokenised
    (padded to the longest, cut to the tokenizer's length)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, rows: list[dict]) -> dict:
        failed = [(r["failed"], r["error"]) for r in rows if "failed" in r]
        ok = [r for r in rows if "failed" not in r]
        if not ok:
            return {"inputs": None, "failed": failed, "count": 0}
        frames = [r["inputs"]["pixel_values"] for r in ok]
        text = self.tokenizer([r["labels"] for r in ok], padding=True, truncation=True, return_tensors="pt")
        inputs = {"pixel_values": torch.cat(frames), "input_ids": text["input_ids"],
                  "attention_mask": text["attention_mask"]}
        return {"inputs": inputs, "frames": [len(f) for f in frames], "failed": failed, "count": len(ok)}


def gather_interleaved(rows: torch.Tensor, world: int) -> torch.Tensor:
    """Every rank's ``rows`` (this rank's keeping their gradient) in the order of one process: rank r's
    j-th row is row ``j * world + r`` of the global batch, as the sampler deals the items. A rank with
    fewer rows (files that failed to decode) is padded for the gather and its padding dropped after.
    Collective: every rank calls it."""
    import torch.distributed as td
    import torch.distributed._functional_collectives as funcol

    n = torch.tensor([len(rows)], device=rows.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    td.all_gather(sizes, n)
    sizes = [int(s) for s in sizes]
    most = max(sizes)
    padded = F.pad(rows, (0, 0, 0, most - len(rows)))
    if hasattr(funcol, "all_gather_single"):  # newer torch: the functional collective (with autograd)
        parts = funcol.all_gather_single(padded, 0, td.group.WORLD).view(world, most, *rows.shape[1:])
    else:
        from torch.distributed.nn.functional import all_gather

        parts = torch.stack(all_gather(padded))
    out = parts.transpose(0, 1).reshape(most * world, *rows.shape[1:])  # (row j, rank r) -> j * world + r
    keep = torch.tensor([j < s for j in range(most) for s in sizes], device=rows.device)
    return out if bool(keep.all()) else out[keep]


class ContrastiveStep(torch.nn.Module):
    """A contrastive step as one module forward: what DDP wraps and FSDP2 shards as the root (the
    towers' blocks first), so that ``logit_scale``, the projections and the towers' embeddings take
    part in the wrapper's forward and backward.

    ``forward(inputs, frames)``: unit-length media and text embeddings (a video's frames averaged,
    re-normalised), then CLIP's loss. With ``world`` > 1 every rank's embeddings are gathered (with
    their gradient, in the one-process order) and each rank computes the loss of the whole global
    batch: the backward of the gather sums the ranks' identical gradients (x world), which the
    wrapper's mean over ranks undoes, so the gradients are the one process's. ``loss=False``: the
    rank's own (media, text, exp(logit_scale)), for evaluation. The model keeps its own parameter
    names: checkpoints are written from the model, not from this module.
    """

    def __init__(self, model: torch.nn.Module, world: int = 1):
        super().__init__()
        self.model, self.world = model, world

    def embeddings(self, inputs: dict, frames: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        model = self.model
        media = F.normalize(model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output.float(), dim=-1)
        media = F.normalize(torch.stack([m.mean(0) for m in media.split(frames)]), dim=-1)
        text = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        return media, F.normalize(text.pooler_output.float(), dim=-1)

    def forward(self, inputs: dict, frames: list[int], loss: bool = True):
        media, text = self.embeddings(inputs, frames)
        scale = self.model.logit_scale.exp().float()
        if not loss:
            return media, text, scale
        if self.world > 1:  # one gather for both: (rows, 2 x projection_dim)
            media, text = gather_interleaved(torch.cat([media, text], 1), self.world).split(media.shape[1], 1)
        return clip_loss(text @ media.t() * scale)


class ContrastiveTask(Task):
    """Media-caption pairs through :class:`ContrastiveStep` (images are one-frame videos: the same
    loss as the model's own ``return_loss=True``), over the global batch under torchrun."""

    name = "contrastive"
    step = None  # the ContrastiveStep the loop wraps

    def build(self):
        if self.folder is None:
            raise ValueError(f"model: contrastive training needs a checkpoint folder with its tokenizer files; "
                             f"a family name ({self.r.model!r}) starts from random weights without one")
        loaded = super().build()
        try:
            self.tokenizer = processor(loaded, "text").tokenizer
        except (OSError, ValueError) as err:
            raise ValueError(f"model: contrastive training needs the checkpoint's tokenizer files, got {err}") from None
        if self.tokenizer is None:
            raise ValueError(f"model: contrastive training needs the checkpoint's tokenizer files; {loaded.folder} "
                             "has none")
        return loaded

    def processors(self, loaded):
        return {**super().processors(loaded), "text": self.tokenizer}

    def views(self, loaded):
        return _OneView(super().views(loaded))

    def collate(self, rows):
        return _PairCollate(self.tokenizer)(rows)

    def train_module(self, model):
        self.step = ContrastiveStep(model, self.dist.world if self.dist else 1)
        return self.step

    def loss(self, forward, batch) -> torch.Tensor:
        with self.autocast():
            return forward(batch["inputs"], batch["frames"]).float()

    @torch.no_grad()
    def evaluate(self, model, loader) -> dict[str, Any]:
        """Under DDP each rank embeds its share of the set and the embeddings are gathered; under FSDP
        every rank embeds all of it in lockstep through the sharded step."""
        model.eval()
        step = self.step if self.step is not None and self.step.model is model else ContrastiveStep(model)
        media, text, failed, scale = [], [], [], None
        for batch in loader:
            failed += batch["failed"]
            if batch["inputs"] is not None:
                with self.autocast():
                    m, t, scale = step(batch["inputs"], batch["frames"], loss=False)
                media.append(m.cpu())
                text.append(t.cpu())
        media, text, failed = (self.dist or SINGLE).gather_eval(media, text, failed)
        if not media:
            raise ValueError("validation: expected at least one file that decodes, got none")
        if scale is None:  # (DDP) this rank's share held no file that decodes; its parameters are whole
            scale = model.logit_scale.exp().float()
        media, text = torch.cat(media), torch.cat(text)
        out: dict[str, Any] = {"val_loss": clip_loss(text @ media.t() * scale.cpu()).item(),
                               "val_failed": len(failed), "evaluated": len(media)}
        recall = _recall(media @ text.t())
        out.update(recall)
        out["score"] = sum(recall.values()) / len(recall)
        return out




def _recall(sim: torch.Tensor, ks=(1, 5, 10)) -> dict[str, float]:
    """Recall@k both ways of a (media, text) similarity whose pair i is media i with text i, as flat
    metrics (``media_to_text_R@1``, ``text_to_media_R@1``, ...)."""
    r = recall_at_k(sim, torch.arange(len(sim)), ks)
    return {f"{a}_R@{k}": r[b][k] for a, b in (("media_to_text", "image_to_text"), ("text_to_media", "text_to_image"))
            for k in ks}
