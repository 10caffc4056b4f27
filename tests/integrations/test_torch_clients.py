"""torch's own tools on our model, against transformers' class on the same checkpoint: torch.export,
torch.compile (training step), dynamic int8 quantisation, pruning then training, DDP over gloo."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from tests.integrations.conftest import fresh

ROOT = Path(__file__).resolve().parents[2]


def _x(clips, n: int = 1) -> torch.Tensor:
    return torch.stack([c["pixel_values"] for c in clips[:n]])


def test_torch_export(videomae_pair, clips):
    ours = fresh(videomae_pair[0]).eval()
    x = _x(clips, 2)
    program = torch.export.export(ours, (), {"pixel_values": x})
    got = program.module()(pixel_values=x)
    assert type(got).__name__ == "ImageClassifierOutput"  # the output class survives as a pytree node
    with torch.no_grad():
        torch.testing.assert_close(got.logits, videomae_pair[1].eval()(pixel_values=x).logits, atol=1e-5, rtol=1e-5)


def test_compiled_training_step_matches_transformers(videomae_pair, clips):
    x, labels = _x(clips, 2), torch.tensor([0, 1])
    grads = {}
    for side, base in zip(("ours", "transformers"), videomae_pair[:2]):
        model = fresh(base).train()
        step = torch.compile(model, backend="eager") if side == "ours" else model
        step(pixel_values=x, labels=labels).loss.backward()
        grads[side] = model.classifier.weight.grad
    torch.testing.assert_close(grads["ours"], grads["transformers"], atol=1e-5, rtol=1e-5)


def test_quantize_dynamic_keeps_the_q_v_biases(videomae_pair, clips):
    # torch's quantize_dynamic swaps qkv for a quantised Linear: the q/v biases must still be added
    x = _x(clips, 4)
    err = {}
    for side, base in zip(("ours", "transformers"), videomae_pair[:2]):
        model = fresh(base).eval()
        with torch.no_grad():
            want = model(pixel_values=x).logits
            q = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
            err[side] = ((q(pixel_values=x).logits - want).abs().max() / want.abs().max()).item()
    assert err["ours"] <= 2 * err["transformers"] + 0.01, err


def _prune_and_train(model, clips, steps: int = 2):
    linears = [(m, "weight") for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv3d))]  # patch embedding too
    prune.global_unstructured(linears, pruning_method=prune.L1Unstructured, amount=0.3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    for i in range(steps):  # the weight is recomputed by prune's pre-hook on every call, so both steps run
        model(pixel_values=_x(clips[2 * i:], 2), labels=torch.tensor([0, 1])).loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval()


def test_pruning_then_training_matches_transformers(videomae_pair, clips):
    ours = _prune_and_train(fresh(videomae_pair[0]), clips)
    theirs = _prune_and_train(fresh(videomae_pair[1]), clips)
    qkv = ours.videomae.encoder.blocks[0].attn.qkv
    assert (qkv.weight[qkv.weight_mask == 0] == 0).all()
    with torch.no_grad():
        x = _x(clips, 2)
        torch.testing.assert_close(ours(pixel_values=x).logits, theirs(pixel_values=x).logits, atol=1e-5, rtol=1e-5)


@pytest.mark.timeout(120)
def test_ddp_two_processes_match_one_transformers_step(videomae_pair, clips, tmp_path):
    _, theirs, folder = videomae_pair
    out = tmp_path / "logits.pt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    ranks = [subprocess.Popen([sys.executable, "-m", "tests.integrations.ddp_worker", str(rank), str(folder), str(out)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in range(2)]
    try:
        logs = [p.communicate(timeout=100)[0] for p in ranks]  # a hung rendezvous fails here, bounded
    finally:
        for p in ranks:
            p.kill()
    assert [p.returncode for p in ranks] == [0, 0], logs
    model = fresh(theirs).train()  # one process, the whole batch: the mean of the two ranks' gradients
    model(pixel_values=_x(clips, 4), labels=torch.tensor([c["labels"] for c in clips[:4]])).loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    with torch.no_grad():
        want = model.eval()(pixel_values=_x(clips, 1)).logits
    torch.testing.assert_close(torch.load(out), want, atol=1e-5, rtol=1e-5)
