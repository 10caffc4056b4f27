"""transformers.Trainer with our models, step for step against transformers' class: fp32, bf16 (CPU
autocast), gradient checkpointing; MediaformersTrainer's checkpoints load in both libraries, resume and
load_best_model_at_end read them back."""
from __future__ import annotations

import os

import pytest
import torch

from tests.integrations.conftest import fresh
from tests.parity import hf_load

transformers = pytest.importorskip("transformers")
from mediaformers.integrations.trainer import MediaformersTrainer  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _quiet():
    level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    yield
    transformers.logging.set_verbosity(level)


def train(model, data, out, trainer=MediaformersTrainer, resume=None, **kwargs):
    args = {"max_steps": 2, "per_device_train_batch_size": 2, "use_cpu": True, "report_to": [],
            "save_strategy": "no", "logging_steps": 1, "learning_rate": 1e-2, "disable_tqdm": True}
    t = trainer(model=model, args=transformers.TrainingArguments(str(out), **{**args, **kwargs}),
                train_dataset=data, eval_dataset=data[:2])
    t.train(resume_from_checkpoint=resume)
    return t, [h["loss"] for h in t.state.log_history if "loss" in h]


@pytest.fixture(scope="module")
def reference_losses(videomae_pair, clips, tmp_path_factory):
    _, theirs, _ = videomae_pair
    return train(fresh(theirs), clips, tmp_path_factory.mktemp("hf"), trainer=transformers.Trainer)[1]


@pytest.mark.parametrize("options", [{}, {"gradient_checkpointing": True,
                                      "gradient_checkpointing_kwargs": {"use_reentrant": True, "every_n_layers": 2}}],
                         ids=["fp32", "checkpointing-reentrant-every-2"])
def test_training_steps_match_transformers(videomae_pair, clips, reference_losses, tmp_path, options):
    ours = fresh(videomae_pair[0])
    _, losses = train(ours, clips, tmp_path, **options)
    assert len(losses) == 2
    torch.testing.assert_close(losses, reference_losses, atol=1e-5, rtol=1e-5)
    if options:
        blocks = ours.videomae.encoder
        assert blocks.gradient_checkpointing
        assert blocks.checkpoint_every == options.get("gradient_checkpointing_kwargs", {}).get("every_n_layers", 1)


def test_bf16_mixed_precision(videomae_pair, clips, reference_losses, tmp_path):
    # accelerate rebuilds the output as type(out)({...}) in fp32: the loss must stay a loss
    _, losses = train(fresh(videomae_pair[0]), clips, tmp_path, bf16=True)
    torch.testing.assert_close(losses, reference_losses, atol=2e-2, rtol=0)


def test_checkpoints_resume_and_best_model(videomae_pair, clips, tmp_path):
    ours, _, _ = videomae_pair
    model = fresh(ours)
    kw = {"save_strategy": "steps", "save_steps": 1, "eval_strategy": "steps", "eval_steps": 1,
          "load_best_model_at_end": True, "metric_for_best_model": "loss", "greater_is_better": False}
    trainer, _ = train(model, clips, tmp_path / "run", **kw)
    x = clips[0]["pixel_values"][None]
    ckpts = {s: tmp_path / "run" / f"checkpoint-{s}" for s in (1, 2)}
    logits = {}
    for step, folder in ckpts.items():
        assert {"config.json", "model.safetensors"} <= set(os.listdir(folder))
        theirs = hf_load(transformers.VideoMAEForVideoClassification, str(folder))
        again = type(ours).from_pretrained(folder)
        with torch.no_grad():
            logits[step] = theirs(pixel_values=x).logits
            torch.testing.assert_close(again(pixel_values=x).logits, logits[step], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(logits[1], logits[2])  # two different checkpoints
    best = int(trainer.state.best_model_checkpoint.rsplit("-", 1)[1])
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(pixel_values=x).logits, logits[best], atol=1e-5, rtol=1e-5)

    # resuming from step 1 ends where the uninterrupted run's step 2 did
    resumed = fresh(ours)
    train(resumed, clips, tmp_path / "resumed", resume=str(ckpts[1]), save_strategy="no")
    with torch.no_grad():
        torch.testing.assert_close(resumed.eval()(pixel_values=x).logits, logits[2], atol=1e-5, rtol=1e-5)

    # a checkpoint of another model is refused, not half-loaded
    other = fresh(ours)
    other.videomae.encoder.blocks[0].attn.q_bias = torch.nn.Parameter(torch.zeros(8))
    with pytest.raises(Exception, match="q_bias|does not fit"):
        MediaformersTrainer(model=other, args=transformers.TrainingArguments(
            str(tmp_path / "x"), use_cpu=True, report_to=[]))._load_from_checkpoint(str(ckpts[1]))
