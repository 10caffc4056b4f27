"""What ``fit`` trains: one small object per task, which reads the data, builds the model, turns a
batch into a loss and evaluates.

- classification: labelled media, the family's classification head (the loop's own functions).
- pretraining: unlabelled media, the family's class that declares ``is_pretraining`` (masked
  autoencoding: VideoMAE's tube masking, TVLT's pixel + audio MAE and audio-visual matching). The
  class says what a step needs beside the media (``pretraining_inputs``); the loss is its own.
  Evaluation: the validation loss, with the same masks at every evaluation.
- contrastive: media-caption pairs, the family's class that declares ``is_contrastive`` (AltCLIP):
  CLIP's symmetric cross-entropy (the model's ``return_loss=True`` for images); a video is its frames'
  embeddings averaged, as zero-shot classification and embedding do. One module forward
  (``ContrastiveStep``) computes it, which DDP / FSDP wrap; under torchrun over the global batch (every
  rank's embeddings gathered). Evaluation: the loss over the validation set and recall@1/5/10
  media->text and text->media.

Which task a family trains comes from its classes' declarations (``is_classifier``,
``is_pretraining``, ``is_contrastive``); no family is named here.
"""
from __future__ import annotations

import math
import random
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .data import DataError, Item, MediaDataset, data_fields, label_set, read_items, split
from .metrics import confusion_matrix, mean_average_precision, recall_at_k, topk_accuracy
from .recipe import TASKS, Recipe

_FLAG = {"classification": "is_classifier", "pretraining": "is_pretraining", "contrastive": "is_contrastive"}
NEEDS = {"classification": "label", "pretraining": None, "contrastive": "caption"}  # the data field each reads
NORM_STATS_FILES = 500  # most training files read for --norm-stats-from-data (a seeded sample)


# ---- which task ----------------------------------------------------------------------------------
def model_source(r: Recipe):
    """(family, checkpoint folder) of ``r.model``; the folder is None for a family name (random weights)."""
    from ..family import families, get_family

    by_name = {f.name: f for f in families().values()}
    if r.model not in by_name or Path(r.model).exists():  # a folder named like a family is a checkpoint
        from ..auto import read_config

        folder, cfg = read_config(r.model)
        return get_family(cfg.get("model_type")), folder
    return by_name[r.model], None


def task_class(family, task: str) -> type | None:
    """The family's class that trains ``task``, or None."""
    return next((c for c in family.classes if getattr(c, _FLAG[task], False)), None)


def trainable(family) -> list[str]:
    return [t for t in TASKS if task_class(family, t) is not None]


def choose_task(family, requested: str, fields: set[str]) -> str:
    """``requested``, checked against what the family trains; "auto": the family's only task, else
    the first whose data field the data has (``fields``), else one that needs no field."""
    if requested not in ("auto", *TASKS):
        raise ValueError(f"task: expected one of {['auto', *TASKS]}, got {requested!r}")
    supported = trainable(family)
    if not supported:
        raise ValueError(f"model: expected a family with a class to train, got {family.name} (none of its classes "
                         "declares a task)")
    if requested != "auto":
        if requested not in supported:
            raise ValueError(f"task: {family.name} models train {supported}, got {requested!r}")
        return requested
    if len(supported) == 1:
        return supported[0]
    return next((t for t in supported if NEEDS[t] in fields), None) or next(
        (t for t in supported if NEEDS[t] is None), supported[0])


def make_task(r: Recipe) -> Task:
    family, folder = model_source(r)
    name = choose_task(family, r.task, data_fields(r.data) if r.task == "auto" else set())
    if r.mask_ratio is not None:
        if name != "pretraining":
            raise ValueError(f"mask_ratio: applies to pre-training; this run trains {name}")
        if isinstance(r.mask_ratio, bool) or not isinstance(r.mask_ratio, (int, float)) or not 0 < r.mask_ratio < 1:
            raise ValueError(f"mask_ratio: expected a number between 0 and 1, got {r.mask_ratio!r}")
    return {"classification": ClassificationTask, "pretraining": PretrainingTask,
            "contrastive": ContrastiveTask}[name](r, family, folder)


# ---- classification's pieces ---------------------------------------------------------------------------
def _build_model(r: Recipe, fam, folder, labels: list[str], multi_label: bool):
    """The classifier of family ``fam``, its head sized to ``labels``: from the checkpoint ``folder``, or from
    ``r.config`` when ``folder`` is None."""
    from ..tasks.loading import Loaded

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
        model = fam.head()(fam.config(**{**r.config, **extra}))
    return Loaded(model, str(folder), fam.model_type)


def _processors(loaded) -> dict:
    from ..tasks.loading import processor

    return {k: processor(loaded, k) for k in loaded.declaration.processors if k != "text"}


def _loss(logits, labels, multi_label: bool, smoothing: float):
    if multi_label:  # 0/1 (or mixed) targets per class
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
    return F.cross_entropy(logits.float(), labels, label_smoothing=smoothing)  # soft (mixup) targets too


@torch.no_grad()
def evaluate(model, loader, multi_label: bool, labels: list[str], bf16: bool = False, dist=None) -> dict[str, Any]:
    """Validation metrics; under DDP each rank's share of the logits is gathered first (``dist``)."""
    from .distributed import SINGLE

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


# ---- the tasks -----------------------------------------------------------------------------------
class Task:
    """Data -> model -> loss -> metrics for one kind of training; ``fit`` calls these in this order."""

    name = ""
    dist = None  # the run's Dist (distributed.py), set by fit: the device, and the gathers of evaluation

    def __init__(self, r: Recipe, family, folder):
        self.r, self.family, self.folder = r, family, folder
        self.model = None

    def read_data(self) -> tuple[list[Item], list[Item]]:
        """(train, validation) items; without ``r.val``, a seeded ``val_fraction`` of the data."""
        need = NEEDS[self.name]
        items = read_items(self.r.data, need)
        if self.r.val is not None:
            return items, read_items(self.r.val, need)
        return split(items, self.r.val_fraction, self.r.seed)

    def build(self):
        """The model (pre-trained weights where the checkpoint has them, the rest initialised)."""
        from ..tasks.loading import Loaded

        cls, r = task_class(self.family, self.name), self.r
        if self.folder is None:
            model, folder = cls(self.family.config_for(cls, self.family.config(**r.config))), r.output
        else:
            model, folder = cls.from_pretrained(self.folder, strict=False), self.folder
        self.model = model
        return Loaded(model, str(folder), self.family.model_type)

    def processors(self, loaded) -> dict:
        """What is saved beside the weights."""

        return _processors(loaded)

    def views(self, loaded):
        from ..tasks.views import make_views

        return make_views(loaded)

    def before_training(self, train_items: list[Item], procs: dict, prepare, log) -> None:
        if self.r.norm_stats_from_data:
            set_norm_stats(train_items, procs, prepare, self.r.seed, log, self.family.name)

    def dataset(self, items: list[Item], prepare, augment=None):
        return _Examples(items, prepare, augment)

    def collate(self, rows: list[dict]) -> dict:
        failed = [(r["failed"], r["error"]) for r in rows if "failed" in r]
        ok = [r for r in rows if "failed" not in r]
        inputs = {k: torch.stack([r["inputs"][k] for r in ok]) for k in ok[0]["inputs"]} if ok else None
        return {"inputs": inputs, "failed": failed, "count": len(ok)}

    def count(self, batch: dict) -> int:
        return batch["count"]

    def train_module(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module whose forward a step calls, which the distributed wrapper wraps (the model itself;
        contrastive: a module computing the loss around it). Called after ``dist`` is set."""
        return model

    def autocast(self):
        return torch.autocast(self.dist.device.type if self.dist else "cpu", torch.bfloat16, enabled=self.r.bf16)


class _Examples(MediaDataset):
    """An item -> its first view (and its caption as the target, None without one)."""

    def __init__(self, items: list[Item], prepare, augment=None):
        super().__init__(items, prepare, [], False, augment)

    def target(self, item: Item):
        return item.caption


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
        loaded = _build_model(self.r, self.family, self.folder, self.labels, self.multi_label)
        self.model = loaded.model
        return loaded

    def dataset(self, items, prepare, augment=None):
        return MediaDataset(items, prepare, self.labels, self.multi_label, augment)

    def collate(self, rows):
        from .data import collate

        return collate(rows)

    def count(self, batch):
        return len(batch["labels"])

    def loss(self, forward, batch) -> torch.Tensor:
        from .augment import mixup

        inputs, target = batch["inputs"], batch["labels"]
        if self.r.mixup > 0:
            inputs, target = mixup(inputs, target, self.r.mixup, len(self.labels))
        with self.autocast():
            logits = forward(**inputs).logits
        return _loss(logits, target, self.multi_label, self.r.label_smoothing)

    def evaluate(self, model, loader) -> dict[str, Any]:

        return evaluate(model, loader, self.multi_label, self.labels, self.r.bf16, self.dist)


@contextmanager
def _loss_mode(model):
    """The top module in training mode (heads that compute their loss only when training do), every
    submodule in eval mode (no dropout, no drop path); the mode before is restored after."""
    was = model.training
    model.eval()
    model.training = True
    try:
        yield
    finally:
        model.train(was)


class PretrainingTask(Task):
    """Masked autoencoding (and what else the class's loss holds) on unlabelled media."""

    name = "pretraining"

    def loss(self, forward, batch) -> torch.Tensor:
        inputs = batch["inputs"]
        extra = self.model.pretraining_inputs(inputs, self.r.mask_ratio)
        with self.autocast():
            return forward(**inputs, **extra).loss.float()

    @torch.no_grad()
    def evaluate(self, model, loader) -> dict[str, Any]:
        generator = torch.Generator().manual_seed(self.r.seed)  # the same masks at every evaluation
        total, n, failed = 0.0, 0, []
        with _loss_mode(model):
            for batch in loader:
                failed += batch["failed"]
                if batch["inputs"] is None:
                    continue
                inputs = batch["inputs"]
                extra = model.pretraining_inputs(inputs, self.r.mask_ratio, generator)
                with self.autocast():
                    total += model(**inputs, **extra).loss.float().item() * batch["count"]
                n += batch["count"]
        if not n:
            raise ValueError("validation: expected at least one file that decodes, got none")
        return {"val_loss": total / n, "val_failed": len(failed), "evaluated": n, "score": -total / n}


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


def clip_loss(logits_per_text: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric cross-entropy over a (texts, media) logit matrix whose pairs are on the diagonal."""
    target = torch.arange(len(logits_per_text), device=logits_per_text.device)
    return (F.cross_entropy(logits_per_text, target) + F.cross_entropy(logits_per_text.t(), target)) / 2


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
        from ..tasks.loading import processor

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
        from .distributed import SINGLE

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
        recall = recall_at_k(media @ text.t(), names=("media_to_text", "text_to_media"))
        out.update(recall)
        out["score"] = sum(recall.values()) / len(recall)
        return out


# ---- AST normalisation statistics from the data --------------------------------------------------
def norm_stats(sources: list, extractor) -> tuple[float, float, int]:
    """(mean, std, files read) of the log-mel fbank values ``extractor`` computes (before it
    normalises; real frames only, no padding) over ``sources``; files that fail to decode are skipped."""
    from ..processors.audio_io import load_audio
    from ..processors.fbank import fbank

    total = squares = 0.0
    count = files = 0
    for source in sources:
        try:
            wave = load_audio(source, extractor.sampling_rate)
            feats, frames = fbank(wave, sample_frequency=extractor.sampling_rate, num_mel_bins=extractor.num_mel_bins)
        except Exception:  # a corrupt file is data: the loop names it when it reaches it
            continue
        x = feats[0, : int(frames[0])].double()
        total, squares = total + x.sum().item(), squares + (x * x).sum().item()
        count, files = count + x.numel(), files + 1
    if not count:
        raise DataError("norm_stats_from_data: expected training files with audio that decodes, got none")
    mean = total / count
    return mean, math.sqrt(max(squares / count - mean * mean, 0.0)), files


def set_norm_stats(items: list[Item], procs: dict, prepare, seed: int, log, family: str) -> None:
    """Compute the spectrogram mean/std over (a seeded sample of) ``items`` and put them in the
    extractor that is saved and in the one the views use."""
    saved, used = procs.get("audio"), getattr(prepare, "fe", None)
    if not all(hasattr(x, "mean") and hasattr(x, "std") for x in (saved, used)):
        raise ValueError(f"norm_stats_from_data: expected a model whose audio features alone are normalised with "
                         f"mean/std (AST), got {family}")
    sample = items if len(items) <= NORM_STATS_FILES else random.Random(seed).sample(items, NORM_STATS_FILES)
    mean, std, files = norm_stats([it.source for it in sample], used)
    if not std > 0:
        raise DataError(f"norm_stats_from_data: the features of {files} files are constant (std 0); "
                        "nothing to normalise with")
    for fe in (saved, used):
        fe.mean, fe.std = mean, std
    log(f"spectrogram statistics from {files} training files: mean={mean:.6g} std={std:.6g}")
