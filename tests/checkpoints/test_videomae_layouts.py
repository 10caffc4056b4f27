"""VideoMAE checkpoints in the layouts transformers versions have written load to the same model."""
from __future__ import annotations

import pytest
import torch
import transformers as tf
from safetensors.torch import save_file

import mediaformers as mf

CONFIG = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48, image_size=32,
              patch_size=16, num_frames=4, num_labels=3)


def _reference(tmp_path):
    torch.manual_seed(0)
    ref = tf.VideoMAEForVideoClassification(tf.VideoMAEConfig(**CONFIG)).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.02)  # non-zero biases, so a lost bias shows
    ref.save_pretrained(tmp_path)
    return ref


def _rewrite_as_named_biases(folder, key_bias: float = 0.0):
    """What transformers 5.17 wrote: query.bias / (zero) key.bias / value.bias instead of q_bias / v_bias."""
    from safetensors.torch import load_file

    state = load_file(folder / "model.safetensors")
    out = {}
    for k, v in state.items():
        if k.endswith("attention.attention.q_bias"):
            base = k.removesuffix("q_bias")
            out[base + "query.bias"] = v
            out[base + "key.bias"] = torch.full_like(v, key_bias)
        elif k.endswith("attention.attention.v_bias"):
            out[k.removesuffix("v_bias") + "value.bias"] = v
        else:
            out[k] = v
    save_file(out, folder / "model.safetensors", metadata={"format": "pt"})


def test_named_bias_layout_loads_with_the_same_outputs(tmp_path):
    ref = _reference(tmp_path)
    _rewrite_as_named_biases(tmp_path)
    ours = mf.VideoMAEForVideoClassification.from_pretrained(tmp_path)
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x).logits, ref(pixel_values=x).logits, rtol=1e-5, atol=1e-5)


def test_a_nonzero_key_bias_is_reported_not_dropped(tmp_path):
    _reference(tmp_path)
    _rewrite_as_named_biases(tmp_path, key_bias=0.5)
    with pytest.raises(mf.CheckpointError, match="key.bias"):
        mf.VideoMAEForVideoClassification.from_pretrained(tmp_path)
