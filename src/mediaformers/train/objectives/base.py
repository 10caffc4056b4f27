"""Which objective a run trains and the base every objective shares: data -> model -> loss -> metrics."""
from __future__ import annotations

import math
import random
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ...auto import read_config
from ...family import families, get_family
from ...processors.audio_io import load_audio
from ...tasks.loading import Loaded, processor
from ...tasks.views import make_views
from ..data import Item, MediaDataset, read_items, split
from ..norm_stats import set_norm_stats
from ..task_names import NEEDS, TASKS

if TYPE_CHECKING:  # type only: the recipe runs the loop, which runs these (one direction at run time)
    from ..recipe import Recipe

WINDOW_SAMPLE = 16  # training clips measured to size an audio window from the data
FRAMES_PER_SECOND = 100  # audio families' spectrogram frames: a 10 ms hop
_FLAG = {"classification": "is_classifier", "pretraining": "is_pretraining", "contrastive": "is_contrastive"}


# ---- which task ----------------------------------------------------------------------------------
def model_source(r: Recipe):
    """(family, checkpoint folder) of ``r.model``; the folder is None for a family name (random weights)."""
    by_name = {f.name: f for f in families().values()}
    if r.model not in by_name or Path(r.model).exists():  # a folder named like a family is a checkpoint
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


def _processors(loaded) -> dict:
    return {k: processor(loaded, k) for k in loaded.declaration.processors if k != "text"}



class Task:
    """Data -> model -> loss -> metrics for one kind of training; ``fit`` calls these in this order."""

    name = ""
    dist = None  # the run's Dist (distributed.py), set by fit: the device, and the gathers of evaluation

    def __init__(self, r: Recipe, family, folder):
        self.r, self.family, self.folder = r, family, folder
        self.derived: dict = {}  # config keywords derived from the data (derive_config)
        self.model = None

    def read_data(self) -> tuple[list[Item], list[Item]]:
        """(train, validation) items; without ``r.val``, a seeded ``val_fraction`` of the data."""
        need = NEEDS[self.name]
        items = read_items(self.r.data, need)
        if self.r.val is not None:
            return items, read_items(self.r.val, need)
        return split(items, self.r.val_fraction, self.r.seed)

    def derive_config(self, items: list[Item], log) -> None:
        """From a family name (random weights): an audio window (``max_length`` frames) the user's config
        leaves at the family's default is fitted to the longest of a seeded sample of the training clips,
        so one-second clips are not padded to a 10-second window (slow, and mostly padding)."""
        default = getattr(self.family.config(**self.r.config), "max_length", None)
        if (self.folder is not None or "max_length" in self.r.config or not isinstance(default, int)
                or "audio" not in self.family.processors):
            return
        sample = items if len(items) <= WINDOW_SAMPLE else random.Random(self.r.seed).sample(items, WINDOW_SAMPLE)
        longest = 0.0
        for it in sample:
            try:
                longest = max(longest, len(load_audio(it.source, 16000, return_numpy=True)) / 16000)
            except Exception:  # noqa: BLE001  a corrupt file is data: the loop names it when it reaches it
                continue
        frames = max(16, math.ceil(longest * FRAMES_PER_SECOND))
        if longest and frames < default:
            self.derived["max_length"] = frames
            log(f"max_length: {frames} frames ({frames / FRAMES_PER_SECOND:g} s, the longest of {len(sample)} "
                f"training clips) instead of the family's {default} ({default / FRAMES_PER_SECOND:g} s); "
                "--config '{\"max_length\": N}' sets another")

    def build(self):
        """The model (pre-trained weights where the checkpoint has them, the rest initialised)."""
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
        return make_views(loaded, allow_partial=self.r.allow_partial)

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


