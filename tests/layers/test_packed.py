"""PackedLinear: bf16 weights packed once for oneDNN give F.linear's numbers, follow weight changes,
fall back under autograd, and leave state_dict and saving alone."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mediaformers.layers import Attention
from mediaformers.layers.packed import PackedLinear, can_pack
from mediaformers.precision import apply_precision
from tests.tiny_families import tiny_cases

pytestmark = pytest.mark.skipif(not can_pack("cpu"), reason="this torch build has no oneDNN bf16 packing")
BF16 = torch.bfloat16


def _linear(k=48, n=40, bias=True):
    torch.manual_seed(0)
    return nn.Linear(k, n, bias=bias).to(BF16)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, 48), (2, 7, 48), (1, 1, 48)])
def test_same_numbers_as_f_linear(bias, shape):
    lin = _linear(bias=bias)
    packed = PackedLinear.from_linear(lin)
    x = torch.randn(shape).to(BF16)
    with torch.no_grad():
        assert torch.equal(packed(x), lin(x))
        assert torch.equal(packed(x.transpose(0, -2).contiguous().transpose(0, -2)), lin(x))  # strided input
    assert packed._packed is not None  # the packed path ran, not the fallback


def test_joined_bias_parts_and_their_changes():
    lin = _linear(bias=False)
    parts = (torch.randn(14).to(BF16), torch.zeros(13, dtype=BF16), torch.randn(13).to(BF16))  # q, zero k, v
    packed = PackedLinear(lin.weight, parts)
    x = torch.randn(3, 48).to(BF16)
    with torch.no_grad():
        assert torch.equal(packed(x), F.linear(x, lin.weight, torch.cat(parts)))
        parts[0].add_(1.0)  # an in-place change of a bias part repacks
        assert torch.equal(packed(x), F.linear(x, lin.weight, torch.cat(parts)))


def test_follows_load_state_dict():
    lin = _linear()
    packed = PackedLinear.from_linear(lin)
    x = torch.randn(4, 48).to(BF16)
    with torch.no_grad():
        before = packed(x)
        other = _linear()
        with torch.no_grad():
            other.weight.mul_(-2)
        packed.load_state_dict(other.state_dict())
        after = packed(x)
    assert not torch.equal(before, after)
    assert torch.equal(after, other(x))


def test_autograd_and_fp32_fall_back():
    lin = _linear()
    packed = PackedLinear.from_linear(lin)
    x = torch.randn(4, 48).to(BF16).requires_grad_()
    packed(x).sum().backward()  # the oneDNN op has no backward: F.linear runs
    assert lin.weight.grad is not None and x.grad is not None
    packed.float()
    with torch.no_grad():
        y = packed(torch.randn(4, 48))
    assert y.dtype == torch.float32


@pytest.mark.parametrize("num_queries", [None, 1])
def test_attention_with_packed_qkv_and_q_v_biases(num_queries):
    torch.manual_seed(0)
    attn = Attention(64, 4, qv_bias=True).eval()
    with torch.no_grad():
        attn.q_bias.normal_()
        attn.v_bias.normal_()
    attn = attn.to(BF16)
    ref = copy.deepcopy(attn)
    apply_precision(attn, "bf16", "cpu")
    assert isinstance(attn.qkv, PackedLinear) and isinstance(attn.proj, PackedLinear)
    x = torch.randn(2, 9, 64).to(BF16)
    with torch.no_grad():
        got, _ = attn(x, num_queries=num_queries)
        want, _ = ref(x, num_queries=num_queries)
    if num_queries is None:
        assert torch.equal(got, want)
    else:  # the packed path projects q for every token and keeps the leading ones: bf16 rounding apart
        torch.testing.assert_close(got.float(), want.float(), atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("name", sorted(tiny_cases()))
def test_packed_bf16_model_equals_unpacked_and_saves_the_same(name, monkeypatch):
    from mediaformers import precision

    model, inputs = tiny_cases()[name]
    packed = apply_precision(copy.deepcopy(model), "bf16", "cpu")
    monkeypatch.setattr(precision, "can_pack", lambda device: False)
    plain = apply_precision(copy.deepcopy(model), "bf16", "cpu")
    assert any(isinstance(m, PackedLinear) for m in packed.modules())
    assert not any(isinstance(m, PackedLinear) for m in plain.modules())
    with torch.inference_mode():
        a, b = packed(**inputs), plain(**inputs)
    for field in ("logits", "logits_per_image", "pooler_output", "last_hidden_state"):
        if getattr(a, field, None) is not None:
            torch.testing.assert_close(getattr(a, field).float(), getattr(b, field).float(), atol=3e-2, rtol=3e-2)
            break
    sa, sb = packed.state_dict(), plain.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_deepcopy_and_pickle_repack():
    import io

    model, inputs = tiny_cases()["videomae"]
    packed = apply_precision(copy.deepcopy(model), "bf16", "cpu")
    with torch.inference_mode():
        want = packed(**inputs).logits  # packs (an opaque oneDNN tensor that cannot be copied or pickled)
    buffer = io.BytesIO()
    torch.save(packed, buffer)
    for other in (copy.deepcopy(packed), torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)):
        with torch.inference_mode():
            assert torch.equal(other(**inputs).logits, want)
