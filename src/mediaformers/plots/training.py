"""What a training run draws at each evaluation: ``curves.png`` (loss, learning rate and validation metrics
over the run, from its metrics.jsonl), ``confusion.png`` (single-label classification) and, for masked
autoencoders, ``reconstructions/step-N.png`` (see ``plots.mae``, ``plots.mae_av``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import require_matplotlib, save

# validation fields that are counts or bookkeeping, not metrics worth a curve
_NOT_CURVES = {"step", "epoch", "train_loss", "val_loss", "val_failed", "evaluated", "score", "eval_only"}


def read_metrics(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """metrics.jsonl -> (step rows, validation rows); a line cut by an interruption is skipped."""
    steps: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        (steps if "lr" in row else evals).append(row)
    return steps, evals


def plot_curves(metrics_path: str | Path, path: str | Path) -> Path:
    """Training loss per step and per epoch, validation loss, the learning rate and the other validation
    metrics (top1, top5, mAP, recall@k, ...) against the step."""
    plt = require_matplotlib("curves.png")
    steps, evals = read_metrics(metrics_path)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    loss, lr, other = axes
    if steps:
        x = [r["step"] for r in steps]
        loss.plot(x, [r["train_loss"] for r in steps], lw=0.8, alpha=0.6, label="train (step)")
        lr.plot(x, [r["lr"] for r in steps], color="tab:green")
    ex = [r.get("step", 0) for r in evals]
    for key, style in (("train_loss", "o-"), ("val_loss", "s-")):
        ys = [r.get(key) for r in evals]
        if any(isinstance(y, (int, float)) for y in ys):
            loss.plot(ex, [y if isinstance(y, (int, float)) else np.nan for y in ys], style, ms=3,
                      label="train (epoch)" if key == "train_loss" else "validation")
    names = sorted({k for r in evals for k, v in r.items()
                    if k not in _NOT_CURVES and isinstance(v, (int, float)) and not isinstance(v, bool)})
    for name in names:
        other.plot(ex, [r.get(name, np.nan) for r in evals], "o-", ms=3, label=name)
    loss.set(title="loss", xlabel="step")
    lr.set(title="learning rate", xlabel="step")
    other.set(title="validation", xlabel="step")
    for ax in (loss, other):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def plot_confusion(matrix: list[list[int]], labels: list[str], path: str | Path, title: str | None = None) -> Path:
    """Rows: the true class, columns: the predicted one; counts written in the cells (up to 30 classes)."""
    plt = require_matplotlib("confusion.png")
    m = np.asarray(matrix, dtype=np.int64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(labels):
        raise ValueError(f"confusion: expected a {len(labels)}x{len(labels)} matrix, got shape {m.shape}")
    n = len(labels)
    size = min(12.0, 2.0 + 0.45 * n)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    im = ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion (validation)")
    if n <= 30:
        high = m.max() / 2 if m.size else 0
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if m[i, j] > high else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return save(fig, path)


_warned: set[str] = set()


def epoch_pictures(run: str | Path, task: Any, model: Any, loader: Any, metrics: dict[str, Any], step: int,
                   log: Callable[[str], None], *, single_process: bool = True) -> None:
    """The pictures of one evaluation (called by the training loop on the main process). Without matplotlib
    the run goes on and says once which extra draws them."""
    run = Path(run)
    try:
        require_matplotlib()
    except ValueError:
        if str(run) not in _warned:
            _warned.add(str(run))
            log("pictures (curves.png, confusion.png, reconstructions) skipped: pip install 'mediaformers[plot]'")
        return
    plot_curves(run / "metrics.jsonl", run / "curves.png")
    if "confusion" in metrics and getattr(task, "labels", None):
        plot_confusion(metrics["confusion"], list(task.labels), run / "confusion.png", f"validation, step {step}")
    if getattr(task, "name", "") == "pretraining" and single_process:  # a forward on one rank: not under FSDP
        from .mae import reconstruction_from_loader

        reconstruction_from_loader(model, loader, run / "reconstructions" / f"step-{step}.png",
                                   getattr(task.r, "mask_ratio", None), seed=getattr(task.r, "seed", 0), log=log)
