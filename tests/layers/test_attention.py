"""The shared attention: the SDPA path and the explicit softmax path (taken when weights are asked for)
agree, with and without a padding bias, and a reference written out by hand agrees with both."""
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
