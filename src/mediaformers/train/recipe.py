"""The training recipe: what to train, on what data, and how (no torch import, so the CLI stays cheap)."""
from __future__ import annotations

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
    clip_grad: float | None = 1.0
    seed: int = 0
    num_workers: int = 0
    save_every: int = 0  # steps between resumable checkpoints (0: at the end of each epoch only)
    keep_last: int = 2
    bf16: bool = False  # autocast the forward in bfloat16
    compile: bool = False
    gradient_checkpointing: bool = False
    fsdp: bool = False  # under torchrun: shard parameters, gradients and optimizer state (FSDP2) instead of DDP
    max_bad_fraction: float = 0.1  # stop when more than this fraction of files fail to decode
    resume: bool = False
    eval_only: bool = False
    quiet: bool = True

    def fit(self) -> dict[str, Any]:
        """Run it (see :func:`mediaformers.train.loop.fit`)."""
        from .loop import fit

        return fit(self)
