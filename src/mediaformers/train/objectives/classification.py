"""Classification: labels from class folders or a ``label`` field; cross-entropy (or BCE for several
labels a file), mixup, top-k accuracy / mAP."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ...tasks.loading import Loaded
from ..augment import mixup
from ..data import MediaDataset, collate, label_set, read_items, split
from ..distributed import SINGLE
from ..metrics import confusion_matrix, mean_average_precision, topk_accuracy
from .base import Task

if TYPE_CHECKING:  # type only (see base.py)
    from ..recipe import Recipe


def _build_model(r: Recipe, fam, folder, labels: list[str], multi_label: bool, derived: dict | None = None):
    """The classifier of family ``fam``, its head sized to ``labels``: from the checkpoint ``folder``, or from
    ``r.config`` when ``folder`` is None."""
    id2label = dict(enumerate(labels))
    extra = {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}
    if multi_label:
        extra["problem_type"] = "multi_label_classification"
    if fam.head() is None:
        raise ValueError(f"model: expected a checkpoint of a family with a classification head, got {fam.name}")
    if folder is not None:
        model = fam.head().from_pretrained(folder, ignore_mismatched_sizes=True, strict=False, **extra)
    else:  # a family name: random weights from a config
        folder = r.output
        model = fam.head()(fam.config(**{**r.config, **(derived or {}), **extra}))
    return Loaded(model, str(folder), fam.model_type)


def _loss(logits, labels, multi_label: bool, smoothing: float):
    if multi_label:  # 0/1 (or mixed) targets per class
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
    return F.cross_entropy(logits.float(), labels, label_smoothing=smoothing)  # soft (mixup) targets too


@torch.no_grad()
def evaluate(model, loader, multi_label: bool, labels: list[str], bf16: bool = False, dist=None) -> dict[str, Any]:
    """Validation metrics; under DDP each rank's share of the logits is gathered first (``dist``)."""
    dist = dist or SINGLE
    model.eval()
    all_logits, all_targets, failed = [], [], []
    for batch in loader:
        failed += batch["failed"]
        if batch["inputs"] is None:
            continue
        with torch.autocast(dist.device.type, torch.bfloat16, enabled=bf16):
            all_logits.append(model(**batch["inputs"]).logits.float().cpu())
        all_targets.append(batch["labels"].cpu())
    all_logits, all_targets, failed = dist.gather_eval(all_logits, all_targets, failed)
    if not all_logits:
        raise ValueError("validation: expected at least one file that decodes, got none")
    logits, target = torch.cat(all_logits), torch.cat(all_targets)
    out: dict[str, Any] = {"val_loss": _loss(logits, target, multi_label, 0.0).item(), "val_failed": len(failed),
                           "evaluated": len(target)}
    if multi_label:
        out.update(mean_average_precision(torch.sigmoid(logits), target))
        out["score"] = out["mAP"]
    else:
        out.update(topk_accuracy(logits, target))
        out["confusion"] = confusion_matrix(logits.argmax(-1), target, len(labels))
        out["score"] = out["top1"]
    return out



class ClassificationTask(Task):
    """Labels from class folders or a ``label`` field; the loop's loss, evaluation and mixup."""

    name = "classification"

    def read_data(self):
        r = self.r
        items = read_items(r.data)
        label_set(items, [])  # classes counted before any split, so one class is named as such
        if r.val is not None:
            train, val = items, read_items(r.val)
        else:
            train, val = split(items, r.val_fraction, r.seed)
        self.labels = label_set(train, val)
        self.multi_label = any(len(it.labels) > 1 for it in items + val)
        return train, val

    def build(self):
        loaded = _build_model(self.r, self.family, self.folder, self.labels, self.multi_label, self.derived)
        self.model = loaded.model
        return loaded

    def dataset(self, items, prepare, augment=None):
        return MediaDataset(items, prepare, self.labels, self.multi_label, augment)

    def collate(self, rows):
        return collate(rows)

    def count(self, batch):
        return len(batch["labels"])

    def loss(self, forward, batch) -> torch.Tensor:
        inputs, target = batch["inputs"], batch["labels"]
        if self.r.mixup > 0:
            inputs, target = mixup(inputs, target, self.r.mixup, len(self.labels))
        with self.autocast():
            logits = forward(**inputs).logits
        return _loss(logits, target, self.multi_label, self.r.label_smoothing)

    def evaluate(self, model, loader) -> dict[str, Any]:

        return evaluate(model, loader, self.multi_label, self.labels, self.r.bf16, self.dist)


