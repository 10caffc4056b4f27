"""What ``fit`` trains: one small object per objective, which reads the data, builds the model, turns a
batch into a loss and evaluates.

- classification: labelled media, the family's classification head (:mod:`.classification`).
- pretraining: unlabelled media, the family's class that declares ``is_pretraining`` (masked
  autoencoding: VideoMAE's tube masking, TVLT's pixel + audio MAE and audio-visual matching). The
  class says what a step needs beside the media (``pretraining_inputs``); the loss is its own.
  Evaluation: the validation loss, with the same masks at every evaluation (:mod:`.pretraining`).
- contrastive: media-caption pairs, the family's class that declares ``is_contrastive`` (AltCLIP):
  CLIP's symmetric cross-entropy; a video is its frames' embeddings averaged, as zero-shot
  classification and embedding do. One module forward (``ContrastiveStep``) computes it, which DDP /
  FSDP wrap; under torchrun over the global batch. Evaluation: the loss over the validation set and
  recall@1/5/10 media->text and text->media (:mod:`.contrastive`).

Which task a family trains comes from its classes' declarations (``is_classifier``,
``is_pretraining``, ``is_contrastive``); no family is named here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ...layers.losses import clip_loss
from ..data import data_fields
from ..norm_stats import NORM_STATS_FILES, norm_stats, set_norm_stats
from ..task_names import NEEDS, TASKS
from .base import Task, choose_task, model_source, task_class, trainable
from .classification import ClassificationTask, evaluate
from .contrastive import ContrastiveStep, ContrastiveTask, gather_interleaved
from .pretraining import PretrainingTask

if TYPE_CHECKING:  # type only: the recipe runs the loop, which runs these (one direction at run time)
    from ..recipe import Recipe

__all__ = ["NEEDS", "NORM_STATS_FILES", "TASKS", "ClassificationTask", "ContrastiveStep", "ContrastiveTask",
           "PretrainingTask", "Task", "choose_task", "clip_loss", "evaluate", "gather_interleaved", "make_task",
           "model_source", "norm_stats", "set_norm_stats", "task_class", "trainable"]

OBJECTIVES: dict[str, type[Task]] = {"classification": ClassificationTask, "pretraining": PretrainingTask,
                                     "contrastive": ContrastiveTask}


def make_task(r: Recipe) -> Task:
    """The objective ``r`` trains (``r.task``, or for "auto" the one its model and data fit), checked."""
    family, folder = model_source(r)
    if folder is None and r.config:
        _check_config_keys(family, r.config)
    name = choose_task(family, r.task, data_fields(r.data) if r.task == "auto" else set())
    if r.mask_ratio is not None:
        if name != "pretraining":
            raise ValueError(f"mask_ratio: applies to pre-training; this run trains {name}")
        if isinstance(r.mask_ratio, bool) or not isinstance(r.mask_ratio, (int, float)) or not 0 < r.mask_ratio < 1:
            raise ValueError(f"mask_ratio: expected a number between 0 and 1, got {r.mask_ratio!r}")
    return OBJECTIVES[name](r, family, folder)


def _check_config_keys(family, config: dict) -> None:
    """``--config`` keywords the family's config does not model, refused by name before any data is read: the
    config class keeps unknown keywords as transformers' configs do, so a typo would otherwise train silently."""
    unknown = sorted(k for k in config if not family.config.has_field(k))
    if unknown:
        raise ValueError(f"config: expected keywords of {family.config.__name__}, got unknown {unknown}")
    try:
        family.config(**config)
    except TypeError as err:
        raise ValueError(f"config: expected keywords of {family.config.__name__}, got {err}") from None
