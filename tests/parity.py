"""Helpers for parity tests against transformers (the reference; a test dependency only)."""
from __future__ import annotations

import torch

ATOL = RTOL = 1e-5


def perturb(model: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> torch.nn.Module:
    """Add noise to every parameter so zero-initialised biases/norms cannot hide a mapping bug."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return model.eval()


def assert_close(ours, theirs, name: str = "", atol: float = ATOL, rtol: float = RTOL) -> None:
    if isinstance(theirs, (tuple, list)):
        assert ours is not None and len(ours) == len(theirs), f"{name}: {len(ours or ())} vs {len(theirs)} items"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_close(a, b, f"{name}[{i}]", atol, rtol)
        return
    if theirs is None:
        assert ours is None, f"{name}: expected None"
        return
    assert ours is not None, f"{name}: missing"
    torch.testing.assert_close(ours, theirs, atol=atol, rtol=rtol, msg=lambda m: f"{name}: {m}")


def compare_outputs(ours, theirs, fields: list[str], **tol) -> None:
    for f in fields:
        assert_close(getattr(ours, f), getattr(theirs, f), f, **tol)


def hf_load(cls, folder: str, **kwargs):
    """Load with transformers and insist that every key was used and found."""
    model, info = cls.from_pretrained(folder, output_loading_info=True, **kwargs)
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        assert not info.get(kind), f"transformers reports {kind}: {info[kind]}"
    return model.eval()


def scalar(out) -> torch.Tensor:
    """A scalar that depends on every output element, for gradient checks on loss-less models."""
    x = out.last_hidden_state
    w = torch.linspace(-1, 1, x.numel(), dtype=x.dtype).reshape(x.shape)
    return (x * w).sum()


def forward_backward(model, inputs: dict, key: str = "pixel_values", hidden: bool = True, **kwargs):
    """Run (with hidden states unless told); backprop the loss (or a scalar of the output) to ``inputs[key]``.

    Returns the output and the gradient w.r.t. that input.
    """
    x = inputs[key].clone().requires_grad_(True)
    out = model(**{**inputs, key: x}, output_hidden_states=hidden, **kwargs)
    (out.loss if getattr(out, "loss", None) is not None else scalar(out)).backward()
    return out, x.grad


def assert_parity(ours, ref, inputs: dict, fields: list[str], key: str = "pixel_values", hidden: bool = True) -> None:
    """Same inputs through both models: every named output field and the input gradient agree."""
    out_ref, grad_ref = forward_backward(ref, inputs, key, hidden)
    out, grad = forward_backward(ours, inputs, key, hidden)
    compare_outputs(out, out_ref, fields)
    assert_close(grad, grad_ref, f"d loss / d {key}")
