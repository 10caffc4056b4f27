"""What users run: ``mediaformers.pipeline(task, model=...)`` for every family.

Which tasks a model serves, how a file becomes its views and how it pools an embedding come from
its family declaration (``mediaformers.family``); this module names no family.
"""
from __future__ import annotations

from typing import Any

import torch

from ..family import TASKS, families
from .embedding import model_inputs, pooled_embedding
from .loading import Loaded, load_model
from .pipeline_base import Pipeline
from .timeline import Timeline
from .views import make_views
from .zero_shot_pipeline import ZeroShotClassification

__all__ = ["TASKS", "Pipeline", "Classification", "FeatureExtraction", "ZeroShotClassification", "pipeline",
           "pooled_embedding"]


def _scores(logits: torch.Tensor, problem_type: str | None, activation: str | None) -> torch.Tensor:
    activation = activation or ("sigmoid" if problem_type == "multi_label_classification" else "softmax")
    if activation == "sigmoid":
        return logits.float().sigmoid()
    if activation == "softmax":
        return logits.float().softmax(-1)
    if activation == "none":
        return logits.float()
    raise ValueError(f"activation: expected 'softmax', 'sigmoid' or 'none', got {activation!r}")


class Classification(Pipeline):
    """Labels from a classification head over the family's views (video clips x crops, audio windows,
    audio + video), averaged (``aggregate="mean"``) or max-pooled over the views of an input.

    ``num_clips``/``num_crops`` (video) and ``hop`` (audio windows, in frames) shape the views.
    """

    def __init__(self, loaded: Loaded, *, top_k: int = 5, aggregate: str = "mean", activation: str | None = None,
                 num_clips: int = 1, num_crops: int = 1, hop: int | None = None, allow_partial: bool = False,
                 **kw: Any):
        super().__init__(loaded, **kw)
        self.task = loaded.declaration.task
        if aggregate not in ("mean", "max"):
            raise ValueError(f"aggregate: expected 'mean' or 'max', got {aggregate!r}")
        if not getattr(self.model, "is_classifier", False):
            raise ValueError(f"{type(self.model).__name__} has no classification head; load a fine-tuned "
                             "checkpoint, or use the feature-extraction task")
        self.top_k, self.aggregate, self.activation = top_k, aggregate, activation
        self.id2label = loaded.config.id2label
        self.views = make_views(loaded, num_clips=num_clips, num_crops=num_crops, hop=hop, allow_partial=allow_partial)

    def prepare(self):
        return self.views

    def forward(self, batch):
        scores = _scores(self.loaded.runner(**model_inputs(batch)).logits, self.loaded.config.problem_type,
                         self.activation)
        return (scores, batch["window_start"]) if "window_start" in batch else scores

    def labels(self, scores: torch.Tensor, top_k: int | None = None) -> list[dict[str, Any]]:
        k = min(top_k or self.top_k, scores.numel())
        values, ids = scores.topk(k)
        return [{"label": self.id2label.get(int(i), str(int(i))), "score": round(float(v), 6)}
                for v, i in zip(values, ids)]

    def finish(self, rows: Any, top_k: int | None = None, views: bool = False) -> dict[str, Any]:
        scores = rows[0] if isinstance(rows, tuple) else rows
        agg = scores.mean(0) if self.aggregate == "mean" else scores.max(0).values
        out = {"labels": self.labels(agg, top_k)}
        if views and scores.shape[0] > 1:
            starts = rows[1] if isinstance(rows, tuple) else None
            out["views"] = [{**({"start": round(float(starts[i]), 3)} if starts is not None else {}),
                             "labels": self.labels(s, top_k)} for i, s in enumerate(scores)]
        return out


class FeatureExtraction(Pipeline):
    """Pooled embeddings from any family (its declaration's ``pooled``); views are averaged."""

    task = "feature-extraction"

    def __init__(self, loaded: Loaded, allow_partial: bool = False, **kw: Any):
        super().__init__(loaded, **kw)
        self.views = make_views(loaded, allow_partial=allow_partial)

    def prepare(self):
        return self.views

    def forward(self, batch):
        return pooled_embedding(self.loaded, batch)

    def finish(self, rows: torch.Tensor, **_: Any) -> dict[str, Any]:
        return {"embedding": rows.float().mean(0).tolist()}


def _pipeline_class(task: str) -> type[Pipeline]:
    if task == "zero-shot-classification":
        return ZeroShotClassification
    if task == "feature-extraction":
        return FeatureExtraction
    return Classification


def pipeline(
    task: str | None = None,
    model: Any = None,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    compile: bool = False,
    precision: str | None = None,
    frames: int | None = None,
    size: int | None = None,
    batch_size: int = 4,
    num_workers: int = 0,
    **options: Any,
) -> Pipeline | Timeline:
    """Build a task pipeline over a checkpoint folder, a hub id or a registry name.

    ``task`` None picks the family's natural task (what ``mediaformers classify`` runs).
    ``options`` go to the task: ``top_k``, ``aggregate`` ('mean'/'max'), ``activation``,
    ``num_clips``/``num_crops`` (video), ``hop`` (audio windows, in frames), ``template`` (zero-shot).
    ``timeline=True``: long media as labelled segments (``Timeline``, with its options ``stride``, ...).
    ``precision``: fp32, bf16, int8 or auto (bf16 where the hardware has it); see mediaformers.precision.
    ``frames``/``size``: video models take that many frames of that size instead of their config's.
    """
    if model is None:
        raise ValueError("model: expected a checkpoint folder, hub id or registry name, got None")
    if isinstance(model, Loaded):
        loaded = model
        if precision is not None or frames is not None or size is not None:
            raise ValueError("precision/frames/size: set them when loading the model (load_model(...)), got an "
                             "already loaded model")
    else:
        loaded = load_model(model, device=device, dtype=dtype, compile=compile, precision=precision, frames=frames,
                            size=size)
    fam = loaded.declaration
    task = task or fam.task
    if task not in TASKS:
        raise ValueError(f"task: expected one of {TASKS}, got {task!r}")
    if task not in fam.tasks:
        fits = sorted(f.model_type for f in families().values() if task in f.tasks)
        raise ValueError(f"task {task!r} does not fit a {loaded.family} model; it takes {fits} "
                         f"(this model's task is {fam.task!r})")
    timeline = {k: options.pop(k) for k in Timeline.OPTIONS if k in options} if options.pop("timeline", False) else None
    if timeline is None and set(options) & set(Timeline.OPTIONS):
        raise ValueError(f"{sorted(set(options) & set(Timeline.OPTIONS))[0]}: applies with timeline=True")
    pipe = _pipeline_class(task)(loaded, batch_size=batch_size, num_workers=num_workers, **options)
    return Timeline(pipe, **timeline) if timeline is not None else pipe
