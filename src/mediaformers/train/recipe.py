"""Fine-tune a classifier of any family on labelled media: ``Recipe(...).fit()``.

AdamW with linear warm-up then cosine decay, gradient clipping and accumulation, optional bf16
autocast, seeded data order; a checkpoint (model, optimizer, scheduler, RNG states, step) written
atomically at each epoch end, ``resume=True`` continuing from it exactly; the best model by
validation top-1 saved in transformers' format with its preprocessor config, so
``mediaformers classify RUN/best FILE`` works at once. Metrics go to ``RUN/metrics.jsonl``.
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..tasks.loading import load_model, processor
from ..tasks.views import make_views
from .data import DataError, MediaDataset, collate, load_split


@dataclass
class Recipe:
    model: str  # a checkpoint (folder, hub id, registry name) of a family with a classification head
    data: str  # a folder of class subfolders, or a .csv/.jsonl manifest
    output: str  # the run folder
    val: str | None = None  # a validation folder/manifest, else ``val_fraction`` of the data, by ``seed``
    val_fraction: float = 0.2
    epochs: int = 3
    batch_size: int = 4
    lr: float = 1e-4
    weight_decay: float = 0.05
    warmup_steps: int = 0
    grad_accum: int = 1
    clip_grad: float | None = 1.0
    label_smoothing: float = 0.0
    bf16: bool = False  # autocast the forward in bfloat16
    gradient_checkpointing: bool = False
    num_workers: int = 0
    seed: int = 0
    max_bad_fraction: float = 0.1  # stop when more of a split than this cannot be read
    resume: bool = False

    def fit(self) -> dict[str, Any]:
        return Trainer(self).fit()


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a failed save (disk full) leaves the previous checkpoint whole


class Trainer:
    def __init__(self, recipe: Recipe):
        r = self.r = recipe
        for name in ("epochs", "batch_size", "grad_accum"):
            if getattr(r, name) < 1:
                raise DataError(f"{name}: expected a positive number, got {getattr(r, name)}")
        self.run = Path(r.output)
        if self.run.exists() and any(self.run.iterdir()) and not r.resume:
            raise DataError(f"output: {self.run} exists and is not empty; pass resume=True (--resume) to "
                            "continue that run, or name a new folder")
        _seed_all(r.seed)
        probe = load_model(r.model)
        fam = probe.declaration
        head = fam.head()
        if head is None:
            raise DataError(f"model: the {fam.name} family has no classification head to train")
        self.kinds = set(fam.accepts)
        self.train_ex, self.val_ex, self.classes = load_split(r.data, self.kinds, r.val, r.val_fraction, r.seed)
        id2label = dict(enumerate(self.classes))
        model = head.from_pretrained(probe.folder, num_labels=len(self.classes), id2label=id2label,
                                     ignore_mismatched_sizes=True, strict=False)
        self.loaded = probe
        self.loaded.model = model
        self.model = model.train()
        if r.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        views = make_views(self.loaded)
        self.processors = {k: processor(self.loaded, k) for k in fam.processors if k != "text"}
        self.train_ds, self.val_ds = MediaDataset(self.train_ex, views), MediaDataset(self.val_ex, views)
        decay = [p for n, p in model.named_parameters() if p.ndim > 1]
        no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": r.weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}], lr=r.lr)
        steps_per_epoch = math.ceil(len(self.train_ds) / (r.batch_size * r.grad_accum))
        self.total_steps = steps_per_epoch * r.epochs

        def schedule(step: int) -> float:  # linear warm-up, then cosine to zero
            if step < r.warmup_steps:
                return (step + 1) / (r.warmup_steps + 1)
            progress = (step - r.warmup_steps) / max(1, self.total_steps - r.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, schedule)
        self.step, self.epoch, self.best = 0, 0, -1.0

    # ---- state ------------------------------------------------------------------------------------
    def _checkpoint(self) -> None:
        state = {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "sched": self.sched.state_dict(),
                 "step": self.step, "epoch": self.epoch, "best": self.best, "rng": _rng_state(),
                 "recipe": asdict(self.r), "classes": self.classes}
        _atomic_save(state, self.run / "last.pt")

    def _restore(self) -> None:
        path = self.run / "last.pt"
        if not path.is_file():
            raise DataError(f"--resume: {self.run} has no checkpoint (last.pt) to continue")
        state = torch.load(path, weights_only=False)
        if state["classes"] != self.classes:
            raise DataError(f"--resume: the run was trained on classes {state['classes']}, the data now has "
                            f"{self.classes}")
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.step, self.epoch, self.best = state["step"], state["epoch"], state["best"]
        _set_rng_state(state["rng"])

    def _save_model(self, folder: Path) -> None:
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(tmp)
        for proc in self.processors.values():
            if hasattr(proc, "save_pretrained"):
                proc.save_pretrained(tmp)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)

    # ---- loops ------------------------------------------------------------------------------------
    def _loader(self, ds, shuffle: bool) -> DataLoader:
        g = torch.Generator().manual_seed(self.r.seed + self.epoch)  # per-epoch order, reproducible on resume
        return DataLoader(ds, batch_size=self.r.batch_size, shuffle=shuffle, generator=g, collate_fn=collate,
                          num_workers=self.r.num_workers)

    def _forward(self, inputs, labels):
        with torch.autocast("cpu" if self.model.device.type == "cpu" else self.model.device.type,
                            dtype=torch.bfloat16, enabled=self.r.bf16):
            logits = self.model(**inputs).logits.float()
        return logits, torch.nn.functional.cross_entropy(logits, labels, label_smoothing=self.r.label_smoothing)

    def _bad(self, bad: list[str], seen: int, name: str) -> None:
        self.bad.extend(bad)
        for b in bad:
            print(f"mediaformers train: skipped {b}")
        if len(self.bad) > self.r.max_bad_fraction * max(seen, 1) and len(self.bad) > 1:
            raise DataError(f"{name}: {len(self.bad)} of {seen} files could not be read (more than "
                            f"{self.r.max_bad_fraction:.0%}): {self.bad[:3]}")

    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        correct = top5 = n = 0
        confusion = torch.zeros(len(self.classes), len(self.classes), dtype=torch.long)
        self.bad = []
        with torch.inference_mode():
            for inputs, labels, bad in self._loader(self.val_ds, shuffle=False):
                self._bad(bad, len(self.val_ds), "validation")
                if inputs is None:
                    continue
                logits, _ = self._forward(inputs, labels)
                pred = logits.argmax(-1)
                correct += int((pred == labels).sum())
                k = min(5, logits.shape[-1])
                top5 += int((logits.topk(k).indices == labels[:, None]).any(-1).sum())
                n += len(labels)
                for t, p in zip(labels.tolist(), pred.tolist()):
                    confusion[t, p] += 1
        self.model.train()
        return {"top1": correct / max(n, 1), "top5": top5 / max(n, 1), "evaluated": n,
                "confusion": confusion.tolist()}

    def fit(self) -> dict[str, Any]:
        self.run.mkdir(parents=True, exist_ok=True)
        if self.r.resume and (self.run / "last.pt").is_file():
            self._restore()
        log = open(self.run / "metrics.jsonl", "a", encoding="utf-8")
        result: dict[str, Any] = {}
        try:
            while self.epoch < self.r.epochs:
                self.bad, losses = [], []
                self.opt.zero_grad()
                for i, (inputs, labels, bad) in enumerate(self._loader(self.train_ds, shuffle=True)):
                    self._bad(bad, len(self.train_ds), "training")
                    if inputs is None:
                        continue
                    _, loss = self._forward(inputs, labels)
                    if not torch.isfinite(loss):
                        raise DataError(f"loss is {loss.item()} at step {self.step} (epoch {self.epoch}); the last "
                                        f"good checkpoint is {self.run / 'last.pt'}: lower the learning rate")
                    (loss / self.r.grad_accum).backward()
                    losses.append(loss.item())
                    if (i + 1) % self.r.grad_accum == 0:
                        if self.r.clip_grad:
                            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.r.clip_grad)
                        self.opt.step()
                        self.sched.step()
                        self.opt.zero_grad()
                        self.step += 1
                self.epoch += 1
                metrics = self.evaluate()
                result = {"epoch": self.epoch, "step": self.step, "train_loss": float(np.mean(losses)) if losses else None,
                          "lr": self.sched.get_last_lr()[0], **metrics}
                log.write(json.dumps(result) + "\n")
                log.flush()
                if metrics["top1"] > self.best:
                    self.best = metrics["top1"]
                    self._save_model(self.run / "best")
                self._checkpoint()
                print(f"mediaformers train: epoch {self.epoch}/{self.r.epochs} loss {result['train_loss']:.4f} "
                      f"val top-1 {metrics['top1']:.3f}")
        finally:
            log.close()
        self._save_model(self.run / "final")
        return result
