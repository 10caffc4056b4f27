"""bf16 and int8 inference agree with fp32 on every family (measured on generated inputs, not assumed)."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from mediaformers.precision import apply_precision, resolve_precision
from tests.tiny_families import tiny_cases

FIELDS = ("logits", "logits_per_image", "pooler_output", "last_hidden_state")  # what a family's model answers


@pytest.fixture(scope="module")
def cases():
    return tiny_cases()


def _run(model, inputs):
    with torch.inference_mode():
        out = model(**inputs)
    field = next(f for f in FIELDS if getattr(out, f, None) is not None)
    return getattr(out, field).float(), field


@pytest.mark.parametrize("name", sorted(tiny_cases()))
@pytest.mark.parametrize("precision, min_cos", [("bf16", 0.999), ("int8", 0.99)])
def test_agreement_with_fp32(cases, name, precision, min_cos):
    model, inputs = cases[name]
    ref, field = _run(model, inputs)
    low = apply_precision(copy.deepcopy(model), precision, "cpu")
    assert low.precision == precision
    out, _ = _run(low, inputs)  # fp32 inputs: the bf16 model casts them itself
    cos = F.cosine_similarity(out.flatten(1), ref.flatten(1)).min().item()
    assert cos >= min_cos, f"{name} {precision}: cosine {cos:.5f} < {min_cos}"
    if field == "logits":
        assert (out.softmax(-1) - ref.softmax(-1)).abs().max() < 0.05


def test_bf16_really_runs_in_bf16(cases):
    model, inputs = cases["ast"]
    low = apply_precision(copy.deepcopy(model).eval(), "bf16", "cpu")
    assert low.dtype == torch.bfloat16
    assert low(**inputs).logits.dtype == torch.bfloat16


def test_int8_swaps_block_linears_only(cases):
    model, _ = cases["videomae"]
    low = apply_precision(copy.deepcopy(model).eval(), "int8", "cpu")
    names = ("fc1", "fc2", "attn.proj", "attn.qkv")
    blocks = [m for n, m in low.named_modules() if ".blocks." in n and n.endswith(names)]
    assert len(blocks) == 4 * model.config.num_hidden_layers
    assert all(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in blocks)
    assert isinstance(low.classifier, torch.nn.Linear)  # the head stays fp32
    # VideoMAE's q and v biases are folded into the quantised q/k/v projection.
    attn = low.videomae.encoder.blocks[0].attn
    ref = model.videomae.encoder.blocks[0].attn
    torch.testing.assert_close(attn.qkv.bias(), torch.cat((ref.q_bias, ref.k_bias, ref.v_bias)))


def test_int8_attention_runs_in_bf16_where_native(cases, monkeypatch):
    import mediaformers.precision as p
    from mediaformers.layers import Attention

    model, inputs = cases["ast"]
    for native, dtype in ((True, torch.bfloat16), (False, None)):
        monkeypatch.setattr(p, "has_native_bf16", lambda device=None, native=native: native)
        low = apply_precision(copy.deepcopy(model), "int8", "cpu")
        layers = [m for m in low.modules() if isinstance(m, Attention)]
        assert layers and all(m.compute_dtype == dtype for m in layers)
        with torch.inference_mode():
            assert low(**inputs).logits.dtype == torch.float32


@pytest.mark.parametrize("bad", ["fp16", "BF16", "", 8])
def test_unknown_precision_is_refused(bad):
    with pytest.raises(ValueError, match=r"precision: expected one of \['fp32', 'bf16', 'int8', 'auto'\]"):
        resolve_precision(bad)


def test_int8_is_cpu_only():
    with pytest.raises(ValueError, match="int8 runs on the CPU only"):
        resolve_precision("int8", "cuda")


def test_auto_picks_bf16_only_with_native_support(monkeypatch):
    import mediaformers.precision as p

    monkeypatch.setattr(p, "has_native_bf16", lambda device=None: False)
    assert p.resolve_precision("auto") == "fp32"
    monkeypatch.setattr(p, "has_native_bf16", lambda device=None: True)
    assert p.resolve_precision("auto") == "bf16"


def test_bf16_without_native_support_warns(monkeypatch):
    import warnings

    import mediaformers.precision as p

    monkeypatch.setattr(p, "has_native_bf16", lambda device=None: False)
    with pytest.warns(UserWarning, match="no native bf16.*emulated"):
        assert p.resolve_precision("bf16") == "bf16"
    monkeypatch.setattr(p, "has_native_bf16", lambda device=None: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert p.resolve_precision("bf16") == "bf16"


def test_from_pretrained_takes_a_precision(tmp_path, cases):
    import mediaformers as mf

    model, inputs = cases["videomae"]
    model.save_pretrained(tmp_path)
    low = mf.from_pretrained(tmp_path, precision="bf16")
    assert low.precision == "bf16" and low.dtype == torch.bfloat16
    out = low(**inputs).logits.float()  # fp32 inputs are cast by the model
    assert F.cosine_similarity(out, model(**inputs).logits).min() > 0.999
    with pytest.raises(ValueError, match="precision/dtype: give one"):
        mf.from_pretrained(tmp_path, precision="bf16", dtype="bfloat16")


TF_CASES = {  # checkpoints transformers writes, non-default sizes; VideoMAE with its q/v biases (folded when packed)
    "videomae": ("VideoMAEForVideoClassification", "VideoMAEConfig",
                 dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=80,
                      image_size=32, patch_size=8, num_frames=4, tubelet_size=2, num_labels=5),
                 lambda g: dict(pixel_values=torch.randn(2, 4, 3, 32, 32, generator=g))),
    "ast": ("ASTForAudioClassification", "ASTConfig",
            dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=72,
                 max_length=64, num_mel_bins=32, frequency_stride=12, time_stride=12, num_labels=6),
            lambda g: dict(input_values=torch.randn(2, 64, 32, generator=g))),
}


@pytest.mark.parametrize("name", sorted(TF_CASES))
@pytest.mark.parametrize("precision, min_cos", [("bf16", 0.999), ("int8", 0.99)])
def test_transformers_checkpoint_in_low_precision_agrees_with_transformers(tmp_path, name, precision, min_cos):
    import transformers as tf

    import mediaformers as mf
    from tests.parity import perturb

    cls, config, sizes, make = TF_CASES[name]
    ref = perturb(getattr(tf, cls)(getattr(tf, config)(**sizes)))
    ref.save_pretrained(tmp_path)
    ours = mf.from_pretrained(tmp_path, precision=precision)
    inputs = make(torch.Generator().manual_seed(0))
    with torch.inference_mode():
        want = ref(**inputs).logits
        got = ours(**inputs).logits.float()
    cos = F.cosine_similarity(got, want).min().item()
    assert cos >= min_cos, f"{name} {precision}: cosine {cos:.5f} < {min_cos}"
    assert (got.softmax(-1) - want.softmax(-1)).abs().max() < 0.05
