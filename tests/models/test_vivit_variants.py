"""ViViT models 2-4 (factorised): exact equalities where they exist, the paper's size relations, training."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import mediaformers as mf
from mediaformers.models import vivit_variants as V

BASE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48, image_size=32,
            num_frames=8, tubelet_size=[2, 8, 8], num_labels=3, num_temporal_layers=2)
VARIANTS = list(V.VARIANTS)


def model(variant: str, cls=mf.VivitForVideoClassification, seed: int = 0, **kw):
    torch.manual_seed(seed)
    return cls(mf.VivitConfig(**{**BASE, **kw}, vivit_variant=variant)).eval()


def video(b: int = 2, t: int = 8, size: int = 32, seed: int = 0):
    return torch.randn(b, t, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_backward_and_round_trip(variant, tmp_path):
    m = model(variant).train()
    out = m(video(), labels=torch.tensor([0, 2]))
    out.loss.backward()
    assert out.logits.shape == (2, 3)
    assert all(p.grad is not None for n, p in m.named_parameters() if "pooler" not in n), variant
    m.eval().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert ("vivit_variant" in config) == (variant != "joint")  # model 1's config.json stays transformers'
    back = mf.VivitForVideoClassification.from_pretrained(tmp_path)
    x = video(seed=1)
    torch.testing.assert_close(back(x).logits, m(x).logits, rtol=0, atol=0)


def test_dot_product_equals_masked_joint_attention():
    """Model 4 = model 1's block with a per-head mask: half the heads see their time step, half their position."""
    m4 = model("factorised_dot_product", cls=mf.VivitModel)
    t, h, w = m4.config.grid
    s = h * w
    idx = torch.arange(t * s)
    same_t = (idx[:, None] // s) == (idx[None, :] // s)
    same_s = (idx[:, None] % s) == (idx[None, :] % s)
    heads = m4.config.num_attention_heads
    mask = torch.stack([same_t] * (heads // 2) + [same_s] * (heads // 2))  # (heads, n, n)
    bias = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
    block = m4.encoder.blocks[0]
    x = torch.randn(2, t * s, 32)
    attn = block.attn
    q, k, v = F.linear(block.norm1(x), attn.qkv.weight, attn.qkv.bias).view(2, t * s, 3, heads, 8).permute(2, 0, 3, 1, 4)
    ref = attn.proj(F.scaled_dot_product_attention(q, k, v, attn_mask=bias).transpose(1, 2).reshape(2, t * s, 32))
    ref = x + ref
    ref = ref + block.mlp(block.norm2(ref))
    got, _ = block(x, (t, s))
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_factorised_encoder_one_step_is_the_joint_model():
    """Model 2's spatial stage on one time step is a ViT: model 1 on that step, same weights."""
    one = dict(num_frames=2)  # one tubelet in time
    m1 = model("joint", cls=mf.VivitModel, **one)
    m2 = model("factorised_encoder", cls=mf.VivitModel, seed=1, **one)
    missing = V.init_from_joint(m2, m1)
    assert all(k.startswith(("temporal_", "pooler")) for k in missing), missing
    x = video(t=2)
    ref = m1(x, output_hidden_states=True).hidden_states[-1]
    spatial = m2(x, output_hidden_states=True).hidden_states[m2.config.num_hidden_layers]
    torch.testing.assert_close(spatial, ref, rtol=1e-6, atol=1e-6)


def _params(m):
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_follow_the_paper():
    d, layers, mlp = BASE["hidden_size"], BASE["num_hidden_layers"], BASE["intermediate_size"]
    m1, m2, m3, m4 = (model(v, cls=mf.VivitModel) for v in VARIANTS)
    block = 4 * d * d + 4 * d + 2 * d * mlp + mlp + d + 4 * d  # qkv+proj, mlp, two norms
    t = m1.config.grid[0]
    assert _params(m4) == _params(m1) - d - d  # same blocks; no [CLS] token nor its position
    assert _params(m3) == _params(m4) + layers * (4 * d * d + 4 * d + 2 * d)  # + temporal attention and norm
    assert _params(m2) == _params(m1) + BASE["num_temporal_layers"] * block + d + (t + 1) * d


def _flops(m, x):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    # The math backend runs attention as matmuls the counter sees (it has no formula for fused CPU kernels).
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        m(x)
    return counter.get_total_flops()


def test_flops_follow_the_paper():
    """Attention over t*s tokens costs (ts)^2 in model 1; the factorised models pay t*s^2 + s*t^2."""
    kw = dict(num_frames=16, image_size=64)  # 8 x 8 x 8 tubelets: attention dominates
    x = video(b=1, t=16, size=64)
    f1, f2, f3, f4 = (_flops(model(v, cls=mf.VivitModel, **kw), x) for v in VARIANTS)
    assert f4 < f1 and f3 < f1 and f2 < f1
    assert f4 < f3  # same attention work, one qkv projection instead of two


@pytest.mark.parametrize("mode", ["central", "average"])
def test_inflated_patch_embedding_matches_the_image_kernel(mode):
    image = torch.nn.Conv2d(3, 16, 8, 8)
    w3 = V.inflate_patch_weight(image.weight.detach(), 4, mode)
    frames = torch.randn(1, 3, 4, 16, 16)
    if mode == "average":
        frames = frames[:, :, :1].expand(-1, -1, 4, -1, -1)  # a still clip: the image's response
    got = F.conv3d(frames, w3, image.bias.detach(), stride=(4, 8, 8))[:, :, 0]
    want = image(frames[:, :, 2])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_self_attention_model_starts_as_the_spatial_model():
    """Model 3 initialised from model 1: its temporal attention is zero, so each step sees only its frame."""
    m3 = model("factorised_self_attention", cls=mf.VivitModel)
    V.init_from_joint(m3, model("joint", cls=mf.VivitModel, seed=3))
    x = video(b=1)
    base = m3(x).last_hidden_state
    x2 = x.clone()
    x2[:, 2:] = torch.randn_like(x2[:, 2:])  # change later time steps only
    again = m3(x2).last_hidden_state
    s = m3.config.grid[1] * m3.config.grid[2]
    torch.testing.assert_close(again[:, :s], base[:, :s])  # step 0 unaffected: no temporal mixing yet


def test_errors_name_what_came():
    with pytest.raises(ValueError, match=r"vivit_variant: expected one of \['joint'"):
        mf.VivitConfig(vivit_variant="model2")
    with pytest.raises(ValueError, match="expected an even number, got 3"):
        mf.VivitModel(mf.VivitConfig(**{**BASE, "hidden_size": 48, "num_attention_heads": 3},
                                     vivit_variant="factorised_dot_product"))
    with pytest.raises(ValueError, match="output_attentions: not available"):
        model("factorised_self_attention")(video(), output_attentions=True)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("variant", VARIANTS[1:])
def test_each_variant_learns_a_tiny_task(variant):
    """Two classes of generated clips (brightness rising vs falling over time): the loss falls."""
    torch.manual_seed(0)
    m = model(variant, num_labels=2).train()
    g = torch.Generator().manual_seed(0)
    ramp = torch.linspace(-1, 1, 8)[None, :, None, None, None]
    labels = torch.tensor([0, 1] * 4)
    x = torch.randn(8, 8, 3, 32, 32, generator=g) * 0.3 + ramp * (1 - 2 * labels.float())[:, None, None, None, None]
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss = m(x, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradient_checkpointing_options_reach_every_encoder(variant, monkeypatch):
    """Models 3 and 4 run the shared Encoder too: checkpointing and its options reach their blocks."""
    import mediaformers.layers.blocks as blocks

    calls = []
    real = blocks.checkpoint

    def spy(fn, *args, **kwargs):
        calls.append(kwargs)
        return real(fn, *args, **kwargs)

    monkeypatch.setattr(blocks, "checkpoint", spy)
    m = model(variant).train()
    m.gradient_checkpointing_enable({"preserve_rng_state": False})
    m(video(), labels=torch.tensor([0, 2])).loss.backward()
    layers = BASE["num_hidden_layers"] + (BASE["num_temporal_layers"] if variant == "factorised_encoder" else 0)
    options = [{k: v for k, v in c.items() if k != "num_queries"} for c in calls]  # model 1's cls-only last block
    assert len(calls) == layers and all(o == {"use_reentrant": False, "preserve_rng_state": False} for o in options)
