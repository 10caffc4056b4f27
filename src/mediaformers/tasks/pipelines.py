"""What users run: ``mediaformers.pipeline(task, model=...)`` for every family.

A pipeline takes one input (returns one record, raising on failure) or a list (returns a record
per input; a failed input's record holds ``error`` instead of results). Records are plain Python.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from . import runner
from .inputs import expand_inputs
from .loading import FAMILIES, Loaded, audio_processor, load_model, video_processor
from .views import ASTWindows, ImageOrVideoFrames, TvltViews, VideoViews

TASKS = ("video-classification", "audio-classification", "audio-visual-classification",
         "zero-shot-classification", "feature-extraction")
TASK_FAMILIES = {
    "video-classification": {"videomae", "vivit"},
    "audio-classification": {"audio-spectrogram-transformer"},
    "audio-visual-classification": {"tvlt"},
    "zero-shot-classification": {"altclip"},
    "feature-extraction": set(FAMILIES),
}


class Pipeline:
    task = ""

    def __init__(self, loaded: Loaded, *, batch_size: int = 4, num_workers: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch_size: expected a positive number, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers: expected 0 or more, got {num_workers}")
        self.loaded, self.model = loaded, loaded.model
        self.batch_size, self.num_workers = batch_size, num_workers
        self.accept = FAMILIES[loaded.family][0]

    # -- to be set by tasks --------------------------------------------------------------------
    def prepare(self):  # -> callable(source) -> dict of tensors with a leading views dim
        raise NotImplementedError

    def forward(self, batch: dict[str, torch.Tensor]) -> Any:
        raise NotImplementedError

    def finish(self, rows: Any, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError

    # -- running ---------------------------------------------------------------------------------
    def _to_model(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        dtype, device = self.model.dtype, self.model.device
        return {k: (v.to(device, dtype) if v.is_floating_point() else v.to(device)) for k, v in batch.items()}

    def iter(self, inputs: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """One record per input, in order, as soon as its batch is done."""
        items = expand_inputs(inputs, self.accept)

        def forward(batch):
            with torch.inference_mode():
                return self.forward(self._to_model(batch))

        for index, rows, error in runner.run(items, self.prepare(), forward, batch_size=self.batch_size,
                                             num_workers=self.num_workers):
            record: dict[str, Any] = {"input": items[index].key}
            if error is None:
                try:
                    record.update(self.finish(rows, **kwargs))
                except ValueError as err:
                    error = str(err)
            if error is not None:
                record["error"] = error
            yield record

    def __call__(self, inputs: Any, **kwargs: Any):
        single = not isinstance(inputs, (list, tuple))
        records = list(self.iter(inputs, **kwargs))
        if single and len(records) == 1:
            if "error" in records[0]:
                raise ValueError(records[0]["error"])
            return records[0]
        return records


def _scores(logits: torch.Tensor, problem_type: str | None, activation: str | None) -> torch.Tensor:
    activation = activation or ("sigmoid" if problem_type == "multi_label_classification" else "softmax")
    if activation == "sigmoid":
        return logits.float().sigmoid()
    if activation == "softmax":
        return logits.float().softmax(-1)
    if activation == "none":
        return logits.float()
    raise ValueError(f"activation: expected 'softmax', 'sigmoid' or 'none', got {activation!r}")


class _Classification(Pipeline):
    def __init__(self, loaded: Loaded, *, top_k: int = 5, aggregate: str = "mean", activation: str | None = None,
                 **kw: Any):
        super().__init__(loaded, **kw)
        if aggregate not in ("mean", "max"):
            raise ValueError(f"aggregate: expected 'mean' or 'max', got {aggregate!r}")
        if "Classification" not in type(self.model).__name__:
            raise ValueError(f"{type(self.model).__name__} has no classification head; load a fine-tuned "
                             "checkpoint, or use the feature-extraction task")
        self.top_k, self.aggregate, self.activation = top_k, aggregate, activation
        self.id2label = loaded.config.id2label

    def labels(self, scores: torch.Tensor, top_k: int | None = None) -> list[dict[str, Any]]:
        k = min(top_k or self.top_k, scores.numel())
        values, ids = scores.topk(k)
        return [{"label": self.id2label.get(int(i), str(int(i))), "score": round(float(v), 6)}
                for v, i in zip(values, ids)]

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        return _scores(logits, self.loaded.config.problem_type, self.activation)

    def finish(self, rows: Any, top_k: int | None = None, views: bool = False) -> dict[str, Any]:
        scores = rows[0] if isinstance(rows, tuple) else rows
        agg = scores.mean(0) if self.aggregate == "mean" else scores.max(0).values
        out = {"labels": self.labels(agg, top_k)}
        if views and scores.shape[0] > 1:
            starts = rows[1] if isinstance(rows, tuple) else None
            out["views"] = [{**({"start": round(float(starts[i]), 3)} if starts is not None else {}),
                             "labels": self.labels(s, top_k)} for i, s in enumerate(scores)]
        return out


class VideoClassification(_Classification):
    """VideoMAE / ViViT over video files or decoded clips; ``num_clips`` x ``num_crops`` views averaged."""

    task = "video-classification"

    def __init__(self, loaded: Loaded, *, num_clips: int = 1, num_crops: int = 1, **kw: Any):
        super().__init__(loaded, **kw)
        self.views = VideoViews(video_processor(loaded), num_clips, num_crops)

    def prepare(self):
        return self.views

    def forward(self, batch):
        return self.scores(self.loaded.runner(pixel_values=batch["pixel_values"]).logits)


class AudioClassification(_Classification):
    """AST over audio files (or the audio track of videos); long audio in overlapping windows."""

    task = "audio-classification"

    def __init__(self, loaded: Loaded, *, hop: int | None = None, **kw: Any):
        super().__init__(loaded, **kw)
        self.windows = ASTWindows(audio_processor(loaded), hop)

    def prepare(self):
        return self.windows

    def forward(self, batch):
        logits = self.loaded.runner(input_values=batch["input_values"]).logits
        return self.scores(logits), batch["window_start"]


class AudioVisualClassification(_Classification):
    """TVLT over video files: frames and the audio track of the same file."""

    task = "audio-visual-classification"

    def __init__(self, loaded: Loaded, **kw: Any):
        super().__init__(loaded, **kw)
        self.views = TvltViews(video_processor(loaded), audio_processor(loaded))

    def prepare(self):
        return self.views

    def forward(self, batch):
        return self.scores(self.loaded.runner(**batch).logits)


class FeatureExtraction(Pipeline):
    """Pooled embeddings from any family; views (clips, windows, frames) are averaged."""

    task = "feature-extraction"

    def __init__(self, loaded: Loaded, **kw: Any):
        super().__init__(loaded, **kw)
        fam = loaded.family
        if fam in ("videomae", "vivit"):
            self._prepare = VideoViews(video_processor(loaded))
        elif fam == "audio-spectrogram-transformer":
            self._prepare = ASTWindows(audio_processor(loaded))
        elif fam == "tvlt":
            self._prepare = TvltViews(video_processor(loaded), audio_processor(loaded))
        else:
            self._prepare = ImageOrVideoFrames(video_processor(loaded))

    def prepare(self):
        return self._prepare

    def forward(self, batch):
        return pooled_embedding(self.loaded, batch)

    def finish(self, rows: torch.Tensor, **_: Any) -> dict[str, Any]:
        return {"embedding": rows.float().mean(0).tolist()}


def backbone(model: torch.nn.Module) -> torch.nn.Module:
    prefix = getattr(model, "base_model_prefix", "")
    return model if getattr(model, "is_backbone", False) else getattr(model, prefix, model)


def pooled_embedding(loaded: Loaded, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(views, dim): each family's pooled representation, without a task head."""
    model, fam = loaded.model, loaded.family
    if fam == "altclip":
        return model.get_image_features(pixel_values=batch["pixel_values"]).pooler_output
    net = backbone(model)
    if fam == "audio-spectrogram-transformer":
        return net(batch["input_values"]).pooler_output
    if fam == "tvlt":
        return net(**batch).last_hidden_state[:, 0]
    hidden = net(batch["pixel_values"]).last_hidden_state
    if fam == "videomae" and loaded.config.use_mean_pooling:
        return hidden.mean(1)
    return hidden[:, 0]


_CLASSES = {
    "video-classification": VideoClassification,
    "audio-classification": AudioClassification,
    "audio-visual-classification": AudioVisualClassification,
    "feature-extraction": FeatureExtraction,
}


def pipeline(
    task: str | None = None,
    model: Any = None,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    compile: bool = False,
    batch_size: int = 4,
    num_workers: int = 0,
    **options: Any,
) -> Pipeline:
    """Build a task pipeline over a checkpoint folder, a hub id or a registry name.

    ``task`` None picks the family's natural task (what ``mediaformers classify`` runs).
    ``options`` go to the task: ``top_k``, ``aggregate`` ('mean'/'max'), ``activation``,
    ``num_clips``/``num_crops`` (video), ``hop`` (AST windows, in frames), ``template`` (zero-shot).
    """
    if model is None:
        raise ValueError("model: expected a checkpoint folder, hub id or registry name, got None")
    loaded = model if isinstance(model, Loaded) else load_model(model, device=device, dtype=dtype, compile=compile)
    task = task or FAMILIES[loaded.family][1]
    if task not in TASKS:
        raise ValueError(f"task: expected one of {TASKS}, got {task!r}")
    if loaded.family not in TASK_FAMILIES[task]:
        raise ValueError(f"task {task!r} does not fit a {loaded.family} model; it takes "
                         f"{sorted(TASK_FAMILIES[task])} (this model's task is {FAMILIES[loaded.family][1]!r})")
    if task == "zero-shot-classification":
        from .zero_shot_pipeline import ZeroShotClassification

        return ZeroShotClassification(loaded, batch_size=batch_size, num_workers=num_workers, **options)
    return _CLASSES[task](loaded, batch_size=batch_size, num_workers=num_workers, **options)
