"""The shared attention: the SDPA path and the explicit softmax path (taken when weights are asked for)
agree, with and without a padding bias, and a reference written out by hand agrees with both."""
import time

import pytest
import torch

from mediaformers.layers import Attention, padding_mask_to_bias
from tests.parity import assert_close, perturb


def reference(attn: Attention, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Attention as the papers write it: separate q, k, v, softmax(q k^T / sqrt(d) + bias) v."""
    b, n, c = x.shape
    qkv_bias = attn.qkv.bias if attn.q_bias is None else torch.cat((attn.q_bias, torch.zeros_like(attn.q_bias),
                                                                    attn.v_bias))
    q, k, v = (x @ attn.qkv.weight.t() + (qkv_bias if qkv_bias is not None else 0)).split(c, -1)
    heads = lambda t: t.view(b, n, attn.num_heads, -1).transpose(1, 2)  # noqa: E731
    scores = heads(q) @ heads(k).transpose(-2, -1) / attn.head_dim**0.5
    if bias is not None:
        scores = scores + bias
    out = (scores.softmax(-1) @ heads(v)).transpose(1, 2).reshape(b, n, c)
    return attn.proj(out)


@pytest.mark.parametrize("qv_bias", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_sdpa_and_explicit_paths_agree(qv_bias, padded):
    torch.manual_seed(0)
    attn = perturb(Attention(32, 4, qv_bias=qv_bias))
    x = torch.randn(2, 7, 32)
    bias = None
    if padded:
        mask = torch.ones(2, 7, dtype=torch.long)
        mask[1, 5:] = 0
        bias = padding_mask_to_bias(mask, x.dtype)
    fast, none = attn(x, bias)
    slow, weights = attn(x, bias, need_weights=True)
    assert none is None and weights.shape == (2, 4, 7, 7)
    assert_close(fast, slow)
    assert_close(fast, reference(attn, x, bias))
    if padded:
        assert weights[1, :, :, 5:].abs().max() == 0  # padded keys get no weight


def test_first_queries_only():
    torch.manual_seed(0)
    attn = perturb(Attention(32, 4))
    x = torch.randn(2, 7, 32)
    full, _ = attn(x)
    first, _ = attn(x, num_queries=2)
    assert_close(first, full[:, :2])


def test_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="hidden size 30 is not a multiple of the number of heads 4"):
        Attention(30, 4)


# ---- the attention kernel selector ("auto" | "sdpa" | "math") -------------------------------------------------
import mediaformers.layers.attention as A  # noqa: E402


def _qkv(dtype, n=33, heads=3, d=16, batch=2):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(batch, heads, n, d, generator=g).to(dtype) for _ in range(3)]


@pytest.mark.parametrize("masked", [False, True])
def test_math_and_sdpa_kernels_agree(masked):
    q, k, v = _qkv(torch.float32)
    bias = None
    if masked:
        mask = torch.ones(2, 33, dtype=torch.long)
        mask[1, 20:] = 0
        bias = padding_mask_to_bias(mask, torch.float32)
    assert_close(A.math_attention(q, k, v, bias), A._sdpa(q, k, v, bias), atol=1e-5, rtol=1e-5)
    q16, k16, v16 = (t.bfloat16() for t in (q, k, v))
    b16 = None if bias is None else padding_mask_to_bias(mask, torch.bfloat16)
    exact = A._sdpa(q16.float(), k16.float(), v16.float(), None if bias is None else b16.float())
    for kernel in (A.math_attention, A._sdpa):  # each within bf16 rounding of the exact product of its inputs
        out = kernel(q16, k16, v16, b16)
        assert out.dtype == torch.bfloat16
        assert_close(out.float(), exact, atol=2e-2, rtol=2e-2)
    assert_close(A.math_attention(q16, k16, v16, b16).float(), A._sdpa(q16, k16, v16, b16).float(), atol=2e-2, rtol=2e-2)


def _count_kernels(monkeypatch):
    calls = {"sdpa": 0, "math": 0}

    def counting(name, fn):
        def run(*args):
            calls[name] += 1
            return fn(*args)
        return run

    monkeypatch.setattr(A, "KERNELS", {name: counting(name, fn) for name, fn in A.KERNELS.items()})
    return calls


@pytest.mark.parametrize("mode", ["sdpa", "math"])
def test_a_forced_kernel_is_honoured(monkeypatch, mode):
    monkeypatch.delenv(A.ATTENTION_ENV, raising=False)
    calls = _count_kernels(monkeypatch)
    torch.manual_seed(0)
    attn = perturb(Attention(32, 4)).bfloat16()
    x = torch.randn(2, 7, 32, dtype=torch.bfloat16)
    ref, _ = attn(x, need_weights=True)  # the explicit path, which returns weights
    A.set_attention(attn, mode)
    out, _ = attn(x)
    assert calls == {"sdpa": int(mode == "sdpa"), "math": int(mode == "math")}
    assert_close(out.float(), ref.float(), atol=2e-2, rtol=2e-2)
    A.set_attention(attn, None)  # the environment variable applies to modules left at the default
    monkeypatch.setenv(A.ATTENTION_ENV, mode)
    attn(x)
    assert calls[mode] == 2


def test_auto_measures_once_per_shape_and_keeps_the_faster(monkeypatch):
    monkeypatch.delenv(A.ATTENTION_ENV, raising=False)
    A.clear_attention_choices()
    timed = []

    def fake_time(fn, args, iters, give_up=None):  # math "measures" faster: the selector must pick it
        timed.append(fn)
        return 1.0 if fn is A.KERNELS["sdpa"] else 0.5

    monkeypatch.setattr(A, "_time_kernel", fake_time)
    calls = _count_kernels(monkeypatch)
    attn = perturb(Attention(32, 4)).bfloat16()  # default mode: auto for bf16 on the CPU
    x = torch.randn(2, 7, 32, dtype=torch.bfloat16)
    for _ in range(3):
        attn(x)
    assert calls == {"sdpa": 0, "math": 3} and len(timed) == 2  # measured once, then cached
    (key, choice), = A.attention_choices().items()
    assert choice == "math" and key[1:6] == (torch.bfloat16, 7, 7, 8, 4)
    attn(torch.randn(2, 9, 32, dtype=torch.bfloat16))  # a new sequence length measures again
    assert len(timed) == 4 and len(A.attention_choices()) == 2
    attn.float()(x.float())  # fp32 on the CPU defaults to sdpa, unmeasured
    assert calls["sdpa"] == 1 and len(timed) == 4
    A.clear_attention_choices()


def test_attention_mode_is_validated(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"attention: expected one of \['auto', 'sdpa', 'math'\], got 'flash'"):
        A.set_attention(Attention(32, 4), "flash")
    monkeypatch.setenv(A.ATTENTION_ENV, "fast")
    with pytest.raises(ValueError, match=r"MEDIAFORMERS_ATTENTION: expected one of"):
        Attention(32, 4)(torch.randn(1, 3, 32))


@pytest.mark.parametrize("name", ["videomae", "altclip"])
def test_from_pretrained_takes_an_attention_kernel(tmp_path, name):
    import mediaformers as mf
    from tests.tiny_families import tiny_cases

    model, inputs = tiny_cases()[name]
    perturb(model).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="attention: expected one of"):
        mf.from_pretrained(tmp_path, attention="eager")
    ours = mf.from_pretrained(tmp_path, attention="math")
    assert {m.attention_mode for m in ours.modules() if isinstance(m, Attention)} == {"math"}
    with torch.inference_mode():
        for kw in ({}, {"output_attentions": True}):
            a, b = ours(**inputs, **kw), model(**inputs, **kw)
            for field in ("logits", "logits_per_image", "attentions"):
                if getattr(b, field, None) is not None:
                    assert_close(getattr(a, field), getattr(b, field), field, atol=1e-5, rtol=1e-5)
        if name == "videomae":  # head masks take the explicit path under every kernel choice
            heads = model.config.num_attention_heads
            mask = torch.ones(model.config.num_hidden_layers, heads)
            mask[0, 0] = 0
            assert_close(ours(**inputs, head_mask=mask).logits, model(**inputs, head_mask=mask).logits,
                         atol=1e-5, rtol=1e-5)


def test_a_clear_loser_is_timed_once(monkeypatch):
    calls = []
    slow = lambda *a: (calls.append(1), time.sleep(0.01))  # noqa: E731
    q = torch.zeros(1, 1, 2, 2)
    A._time_kernel(slow, (q,), iters=3, give_up=0.001)
    assert len(calls) == 2  # warm-up and one timed call
    calls.clear()
    A._time_kernel(slow, (q,), iters=3)
    assert len(calls) >= 4


def test_no_timing_while_compiling(monkeypatch):
    """Inside torch.compile / export "auto" is "sdpa" (timing a traced call means nothing); a forced
    kernel is still honoured."""
    monkeypatch.delenv(A.ATTENTION_ENV, raising=False)
    monkeypatch.setattr(A, "_compiling", lambda: True)
    monkeypatch.setattr(A, "_time_kernel", lambda *a, **k: pytest.fail("timed while compiling"))
    q, k, v = _qkv(torch.bfloat16)
    assert A.resolve_kernel(None, q, k, v) == A.resolve_kernel("auto", q, k, v) == "sdpa"
    assert A.resolve_kernel("math", q, k, v) == "math"
