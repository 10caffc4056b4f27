"""The MLP's activation at inference computes in fc1's own buffer: the same numbers, bit for bit, and
never in a tensor that someone else holds (hooks, autograd)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mediaformers.layers.activations import _ACTS, _INPLACE, Activation
from mediaformers.layers.blocks import Mlp


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", sorted(_ACTS))
def test_overwrite_gives_the_same_numbers(name, dtype):
    x = (torch.randn(4, 33, generator=torch.Generator().manual_seed(0)) * 4).to(dtype)
    want = _ACTS[name](x.clone())
    with torch.no_grad():
        scratch = x.clone()
        got = Activation(name)(scratch, overwrite=True)
    assert torch.equal(got, want)
    if name in _INPLACE:
        assert got.data_ptr() == scratch.data_ptr()  # the in-place path ran


def test_default_never_overwrites():
    x = torch.randn(8)
    keep = x.clone()
    with torch.no_grad():
        Activation("gelu")(x)
    assert torch.equal(x, keep)


def _mlp(act="gelu"):
    torch.manual_seed(0)
    return Mlp(12, 30, act=act).eval()


def test_mlp_output_unchanged():
    mlp, x = _mlp(), torch.randn(2, 5, 12)
    want = mlp.fc2(F.gelu(mlp.fc1(x)))
    with torch.no_grad():
        assert torch.equal(mlp(x), want)


def test_fc1_hook_sees_fc1_output_not_the_activation():
    mlp, x = _mlp(), torch.randn(2, 5, 12)
    seen = []
    mlp.fc1.register_forward_hook(lambda m, args, out: seen.append(out))
    with torch.no_grad():
        mlp(x)
        assert torch.equal(seen[0], mlp.fc1(x))


def test_global_hooks_and_act_hook_see_the_activation_input():
    mlp, x = _mlp(), torch.randn(2, 5, 12)
    with torch.no_grad():
        want = mlp.fc1(x)
    seen = []
    handle = mlp.act.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    with torch.no_grad():
        mlp(x)
    handle.remove()
    assert torch.equal(seen[0], want)
    seen.clear()
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda m, args, out: seen.append(out) if m is mlp.fc1 else None)
    try:
        with torch.no_grad():
            mlp(x)
    finally:
        handle.remove()
    assert torch.equal(seen[0], want)
    seen.clear()
    handle = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda m, args: seen.append(args[0]) if m is mlp.act else None)
    try:
        with torch.no_grad():
            mlp(x)
    finally:
        handle.remove()
    assert torch.equal(seen[0], want)


def test_training_keeps_autograd_correct():
    mlp, x = _mlp(), torch.randn(2, 5, 12, dtype=torch.float64)
    mlp = mlp.double().train()
    assert torch.autograd.gradcheck(lambda t: mlp(t), (x.requires_grad_(),))
