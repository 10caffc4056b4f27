"""The training recipe: what to train, on what data, and how (no torch import, so the CLI stays cheap)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .task_names import TASKS  # noqa: F401  (re-exported: the CLI lists them from here)


@dataclass
class Recipe:
    """Everything a run needs; ``mediaformers train`` fills one from its flags.

    model: a checkpoint (folder, hub id, registry name) whose head is re-initialised to the data's
    labels, or a family name (``mediaformers info`` lists them) with ``config`` keywords to start from
    random weights. data/val: a folder of class subfolders or a .csv/.jsonl manifest; without val,
    ``val_fraction`` of data is held out (seeded).

    task (see :mod:`mediaformers.train.objectives`): "classification" (labels), "pretraining" (masked
    autoencoding on unlabelled media: a folder of files or a manifest with ``path`` only),
    "contrastive" (media-text pairs: a manifest with ``path`` and ``caption``), or "auto": the one
    the model's family can train, and where it can train several, the one the data fits (labels:
    classification, captions: contrastive, neither: pre-training). Manifests may also give ``start``
    and ``end`` seconds: only that part of the file is decoded.
    """

    model: str
    data: str
    output: str
    config: dict[str, Any] = field(default_factory=dict)  # config keywords when ``model`` is a family name
    val: str | None = None
    task: str = "auto"  # "auto", "classification", "pretraining" or "contrastive"
    mask_ratio: float | None = None  # pre-training: share of patches masked (None: VideoMAE 0.9, TVLT its config's)
    norm_stats_from_data: bool = False  # spectrogram mean/std from (a sample of) the training data, saved with the model
    val_fraction: float = 0.2
    epochs: int = 3
    max_steps: int | None = None  # stop after this many optimizer steps
    batch_size: int = 4  # per process: the global batch is batch_size x processes (torchrun) x grad_accum
    lr: float = 1e-4
    weight_decay: float = 0.05
    layer_decay: float = 1.0  # < 1: layer-wise lr decay (VideoMAE/AST fine-tuning recipes use 0.75)
    warmup_steps: int = 0
    label_smoothing: float = 0.0
    augment: bool = False  # SpecAugment for spectrograms, random resized crop + flip for clips
    mixup: float = 0.0  # Beta(alpha, alpha) mixup weight when > 0 (AST recipe: 0.5)
    drop_path_rate: float = 0.0  # stochastic depth, rising linearly to this at the last block
    grad_accum: int = 1
    clip_grad: float | None = 1.0  # max gradient norm (0 or None: no clipping)
    seed: int = 0
    num_workers: int = 0
    save_every: int = 0  # steps between resumable checkpoints (0: at the end of each epoch only)
    keep_last: int = 2  # resumable checkpoints kept (0: all)
    bf16: bool = False  # autocast the forward in bfloat16
    compile: bool = False
    gradient_checkpointing: bool = False
    fsdp: bool = False  # under torchrun: shard parameters, gradients and optimizer state (FSDP2) instead of DDP
    max_bad_fraction: float = 0.1  # stop when more than this fraction of files fail to decode
    allow_partial: bool = False  # damaged or cut media: train on what decodes instead of skipping the file
    resume: bool = False
    eval_only: bool = False
    quiet: bool = True

    def check(self) -> None:
        """Every number in range, before any data is read or model built: a ValueError naming the field
        (the CLI names the flag), the expected and what came."""
        for name, value in (("model", self.model), ("data", self.data), ("output", self.output)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name}: expected a path or name, got {value!r}")
        for name, low, high, low_open, high_open in _RANGES:
            value = getattr(self, name)
            if value is None and name in _OPTIONAL:
                continue
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if ok and name in _WHOLE:
                ok = float(value).is_integer()
            if ok:
                ok = (value > low if low_open else value >= low) and (high is None or (value < high if high_open
                                                                                       else value <= high))
            if not ok:
                span = (f"{'>' if low_open else '>='} {low}" if high is None else
                        f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}")
                kind = "a whole number" if name in _WHOLE else "a finite number"
                raise ValueError(f"{name}: expected {kind} {span}, got {value!r}")
        if not isinstance(self.config, dict):
            raise ValueError(f"config: expected a JSON object of config keywords, got {self.config!r}")

    def fit(self) -> dict[str, Any]:
        """Run it (see :func:`mediaformers.train.loop.fit`)."""
        from .loop import fit

        return fit(self)


# (field, low, high or None, low excluded, high excluded): checked by Recipe.check
_RANGES = (("epochs", 1, None, False, False), ("max_steps", 1, None, False, False),
           ("batch_size", 1, None, False, False), ("lr", 0, None, True, False), ("weight_decay", 0, None, False, False),
           ("layer_decay", 0, 1, True, False), ("warmup_steps", 0, None, False, False),
           ("label_smoothing", 0, 1, False, True), ("mixup", 0, None, False, False),
           ("drop_path_rate", 0, 1, False, True), ("grad_accum", 1, None, False, False),
           ("clip_grad", 0, None, False, False), ("seed", 0, None, False, False),
           ("num_workers", 0, 256, False, False), ("save_every", 0, None, False, False),
           ("keep_last", 0, None, False, False),
           ("max_bad_fraction", 0, 1, False, False), ("val_fraction", 0, 1, True, True),
           ("mask_ratio", 0, 1, True, True))
_OPTIONAL = {"max_steps", "clip_grad", "mask_ratio"}
_WHOLE = {"epochs", "max_steps", "batch_size", "warmup_steps", "grad_accum", "seed", "num_workers", "save_every",
          "keep_last"}
