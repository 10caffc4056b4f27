"""transformers' Trainer for mediaformers models: every checkpoint in transformers' format.

``transformers.Trainer`` saves a model that is not its own ``PreTrainedModel`` as a bare ``state_dict()``
(our internal names, no config.json), which neither library can load, and it has no hook to change that.
:class:`MediaformersTrainer` is a drop-in Trainer that saves through our ``save_pretrained`` (config.json and
model.safetensors in transformers' names, loadable by both libraries) and loads checkpoints back (resume,
``load_best_model_at_end``) through ``load_hf_state_dict``, loudly. Other models (transformers' own, PEFT
wrappers, which save their adapters) go through Trainer's own code.

    from mediaformers.integrations.trainer import MediaformersTrainer
    trainer = MediaformersTrainer(model=model, args=TrainingArguments(...), train_dataset=..., eval_dataset=...)

Needs transformers (``pip install transformers``).
"""
from __future__ import annotations

import os

import torch
from torch import nn
from transformers import Trainer
from transformers.trainer import TRAINING_ARGS_NAME

from ..checkpoints.io import load_state_dict
from ..modeling import PreTrainedModel

__all__ = ["MediaformersTrainer"]


class MediaformersTrainer(Trainer):
    """``transformers.Trainer`` whose checkpoints of mediaformers models are transformers checkpoints."""

    def _ours(self, model: nn.Module | None = None) -> PreTrainedModel | None:
        model = self.accelerator.unwrap_model(self.model if model is None else model, keep_torch_compile=False)
        return model if isinstance(model, PreTrainedModel) else None

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        model = self._ours()
        if model is None:
            return super()._save(output_dir, state_dict)
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        assert output_dir is not None  # TrainingArguments fills output_dir
        if not self.args.should_save:
            return None
        os.makedirs(output_dir, exist_ok=True)
        model.save_pretrained(output_dir, state_dict=state_dict)  # our names or transformers': both taken
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))  # as Trainer does
        return None

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        ours = self._ours(model)
        if ours is None:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        ours.load_hf_state_dict(load_state_dict(resume_from_checkpoint))  # strict: a misfit is an error
        return None

    def _load_best_model(self) -> None:
        ours = self._ours()
        if ours is None:
            return super()._load_best_model()
        best = self.state.best_model_checkpoint
        assert best is not None  # Trainer calls this only once a best checkpoint exists
        ours.load_hf_state_dict(load_state_dict(best))
        return None
