"""bf16 and int8 inference agree with fp32 on every family (measured on generated inputs, not assumed)."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import mediaformers as mf
from mediaformers.precision import apply_precision, resolve_precision

ENC = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)


def _cases():
    g = torch.Generator().manual_seed(0)
    video = torch.randn(2, 4, 3, 32, 32, generator=g)
    return {
        "videomae": (mf.VideoMAEForVideoClassification(mf.VideoMAEConfig(**ENC, image_size=32, patch_size=8,
                                                                          num_frames=4, num_labels=10)),
                     dict(pixel_values=video), "logits"),
        "vivit": (mf.VivitForVideoClassification(mf.VivitConfig(**ENC, image_size=32, num_frames=4,
                                                                  tubelet_size=[2, 8, 8], num_labels=10)),
                  dict(pixel_values=video), "logits"),
        "ast": (mf.ASTForAudioClassification(mf.ASTConfig(**ENC, max_length=64, num_mel_bins=32, num_labels=10)),
                dict(input_values=torch.randn(2, 64, 32, generator=g)), "logits"),
        "altclip-image": (mf.AltCLIPVisionModel(mf.AltCLIPVisionConfig(**ENC, image_size=32, patch_size=8)),
                          dict(pixel_values=torch.randn(2, 3, 32, 32, generator=g)), "pooler_output"),
    }


@pytest.fixture(scope="module")
def cases():
    torch.manual_seed(0)
    return _cases()


def _run(model, inputs, field):
    with torch.inference_mode():
        return getattr(model(**inputs), field).float()


@pytest.mark.parametrize("name", ["videomae", "vivit", "ast", "altclip-image"])
@pytest.mark.parametrize("precision, min_cos", [("bf16", 0.999), ("int8", 0.99)])
def test_agreement_with_fp32(cases, name, precision, min_cos):
    model, inputs, field = cases[name]
    model = model.eval()
    ref = _run(model, inputs, field)
    low = apply_precision(copy.deepcopy(model), precision, "cpu")
    assert low.precision == precision
    out = _run(low, inputs, field)  # fp32 inputs: the bf16 model casts them itself
    cos = F.cosine_similarity(out.flatten(1), ref.flatten(1)).min().item()
    assert cos >= min_cos, f"{name} {precision}: cosine {cos:.5f} < {min_cos}"
    if field == "logits":
        assert (out.softmax(-1) - ref.softmax(-1)).abs().max() < 0.05


def test_bf16_really_runs_in_bf16(cases):
    model, inputs, _ = cases["ast"]
    low = apply_precision(copy.deepcopy(model).eval(), "bf16", "cpu")
    assert low.dtype == torch.bfloat16
    assert low(**inputs).logits.dtype == torch.bfloat16


def test_int8_swaps_block_linears_only(cases):
    model, _, _ = cases["videomae"]
    low = apply_precision(copy.deepcopy(model).eval(), "int8", "cpu")
    blocks = [m for n, m in low.named_modules() if ".blocks." in n and n.endswith(("fc1", "fc2", "attn.proj"))]
    assert len(blocks) == 6 and all(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in blocks)
    assert isinstance(low.classifier, torch.nn.Linear)  # the head stays fp32


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
