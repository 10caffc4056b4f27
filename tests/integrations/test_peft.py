"""PEFT LoRA on our VideoMAE (q/v-only biases, the case that broke): the wrapped model equals the base at
init, trains, merges to the model it was, and its adapters save and load; transformers' class behaves
the same way under the same checks."""
from __future__ import annotations

import pytest
import torch

from tests.integrations.conftest import fresh

peft = pytest.importorskip("peft")


def step(model, clips, steps: int = 2) -> None:
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for i in range(steps):
        batch = clips[2 * i: 2 * i + 2]
        out = model(pixel_values=torch.stack([c["pixel_values"] for c in batch]),
                    labels=torch.tensor([c["labels"] for c in batch]))
        out.loss.backward()
        opt.step()
        opt.zero_grad()


@pytest.mark.parametrize("side", ["ours", "transformers"])
def test_lora_init_train_merge_save(videomae_pair, clips, tmp_path, side):
    ours, theirs, _ = videomae_pair
    base = fresh(ours if side == "ours" else theirs).eval()
    # our fused projection is "qkv"; transformers' are query/key/value (docs/transformers.md)
    targets = ["qkv", "proj"] if side == "ours" else ["query", "value", "dense"]
    x = clips[0]["pixel_values"][None]
    with torch.no_grad():
        want = base(pixel_values=x).logits
    model = peft.get_peft_model(fresh(base), peft.LoraConfig(r=4, target_modules=targets, modules_to_save=["classifier"]))
    with torch.no_grad():
        torch.testing.assert_close(model(pixel_values=x).logits, want, atol=1e-6, rtol=1e-6)  # B = 0 at init
    model.train()
    step(model, clips)
    model.eval()
    with torch.no_grad():
        trained = model(pixel_values=x).logits
    assert not torch.allclose(trained, want, atol=1e-4)
    model.save_pretrained(tmp_path)
    loaded = peft.PeftModel.from_pretrained(fresh(base), tmp_path).eval()
    merged = model.merge_and_unload()
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=x).logits, trained, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(merged(pixel_values=x).logits, trained, atol=1e-5, rtol=1e-5)
    if side == "ours":
        assert type(merged.videomae.encoder.blocks[0].attn.qkv) is torch.nn.Linear


@pytest.mark.parametrize("side", ["ours", "transformers"])
def test_lora_with_reentrant_checkpointing_trains_the_adapters(videomae_pair, clips, side):
    # PEFT calls enable_input_require_grads on a model that checkpoints: without it, reentrant
    # checkpointing behind a frozen patch embedding gives the adapters no gradient at all
    base = fresh(videomae_pair[0] if side == "ours" else videomae_pair[1])
    base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    model = peft.get_peft_model(base, peft.LoraConfig(r=4, target_modules=["qkv"] if side == "ours" else ["query"]))
    model.train()
    out = model(pixel_values=torch.stack([c["pixel_values"] for c in clips[:2]]), labels=torch.tensor([0, 1]))
    out.loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if "lora_" in n}
    assert grads and all(g is not None for g in grads.values())
    assert all(g.abs().sum() > 0 for n, g in grads.items() if "lora_B" in n)  # A's is 0 while B is 0
    seen = []

    def run():  # whether the frozen embedding's output requires grad (the recorder runs after the other hooks)
        handle = base.get_input_embeddings().register_forward_hook(lambda m, i, o: seen.append(o.requires_grad))
        model(pixel_values=clips[0]["pixel_values"][None])
        handle.remove()

    base.disable_input_require_grads()  # transformers' methods, ours the same
    run()
    base.enable_input_require_grads()
    run()
    assert seen == [False, True]
