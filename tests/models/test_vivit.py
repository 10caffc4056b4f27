"""ViViT parity with transformers, both directions, interpolate_pos_encoding, input validation."""
import pytest
import torch
import transformers as tf

import mediaformers as mf
from tests.parity import assert_parity, compare_outputs, hf_load, perturb

BASE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48)
CONFIGS = {
    "base": dict(image_size=32, num_frames=4, tubelet_size=[2, 16, 16]),
    "t1-nobias": dict(image_size=32, num_frames=3, tubelet_size=[1, 8, 8], qkv_bias=False, num_labels=5,
                      hidden_act="gelu", pooler_output_size=24, pooler_act="relu"),
    "rect": dict(image_size=[32, 48], num_frames=8, tubelet_size=[4, 16, 8], num_labels=3, layer_norm_eps=1e-5),
}
CLASSES = ["VivitModel", "VivitForVideoClassification"]
FIELDS = {
    "VivitModel": ["last_hidden_state", "pooler_output", "hidden_states"],
    "VivitForVideoClassification": ["loss", "logits", "hidden_states"],
}


def make_inputs(cfg, batch, cls, size=None, frames=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    size = size or (cfg["image_size"] if isinstance(cfg["image_size"], list) else [cfg["image_size"]] * 2)
    inputs = {"pixel_values": torch.randn(batch, frames or cfg["num_frames"], 3, *size, generator=g)}
    if cls == "VivitForVideoClassification":
        inputs["labels"] = torch.randint(0, cfg.get("num_labels", 2), (batch,), generator=g)
    return inputs


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("batch", [1, 3])
def test_from_transformers(tmp_path, name, cls, batch):
    cfg = {**BASE, **CONFIGS[name]}
    ref = perturb(getattr(tf, cls)(tf.VivitConfig(**cfg)), seed=batch)
    ref.save_pretrained(tmp_path)
    ours = getattr(mf, cls).from_pretrained(tmp_path)
    inputs = make_inputs(cfg, batch, cls)
    assert_parity(ours, ref, inputs, FIELDS[cls])


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("cls", CLASSES)
def test_to_transformers(tmp_path, name, cls):
    cfg = {**BASE, **CONFIGS[name]}
    ours = perturb(getattr(mf, cls)(mf.VivitConfig(**cfg)), seed=5)
    ours.save_pretrained(tmp_path)
    ref = hf_load(getattr(tf, cls), str(tmp_path))
    inputs = make_inputs(cfg, 2, cls)
    with torch.no_grad():
        compare_outputs(ours(**inputs, output_hidden_states=True), ref(**inputs, output_hidden_states=True), FIELDS[cls])


def test_attentions_match_eager_reference(tmp_path):
    cfg = {**BASE, **CONFIGS["rect"]}
    ref = perturb(tf.VivitModel(tf.VivitConfig(**cfg, attn_implementation="eager")))
    ref.save_pretrained(tmp_path)
    ours = mf.VivitModel.from_pretrained(tmp_path)
    x = make_inputs(cfg, 2, "VivitModel")["pixel_values"]
    with torch.no_grad():
        compare_outputs(ours(x, output_attentions=True), ref(x, output_attentions=True),
                        ["last_hidden_state", "pooler_output", "attentions"])


@pytest.mark.parametrize("size", [(32, 48), (48, 16)])
def test_interpolate_pos_encoding_matches_reference(tmp_path, size):
    # transformers resamples a single square grid, so it is defined for one time step and
    # non-square inputs; there both must agree.
    cfg = {**BASE, "image_size": 32, "num_frames": 2, "tubelet_size": [2, 16, 16], "num_labels": 4}
    ref = perturb(tf.VivitForVideoClassification(tf.VivitConfig(**cfg)))
    ref.save_pretrained(tmp_path)
    ours = mf.VivitForVideoClassification.from_pretrained(tmp_path)
    inputs = make_inputs(cfg, 2, "VivitForVideoClassification", size=list(size))
    with torch.no_grad():
        compare_outputs(ours(**inputs, interpolate_pos_encoding=True),
                        ref(**inputs, interpolate_pos_encoding=True), ["loss", "logits"])


def test_interpolate_pos_encoding_other_frames_and_sizes():
    model = mf.VivitModel(mf.VivitConfig(**BASE, **CONFIGS["base"])).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 8, 3, 64, 48), interpolate_pos_encoding=True)
        same = model(torch.randn(1, 4, 3, 32, 32), interpolate_pos_encoding=True)
    assert out.last_hidden_state.shape == (1, 1 + 4 * 4 * 3, 32)
    assert same.last_hidden_state.shape == (1, 1 + 2 * 2 * 2, 32)
    assert model.positions((2, 2, 2)) is model.pos_embed  # the trained grid is used as it is


@pytest.fixture(scope="module")
def tiny():
    return mf.VivitModel(mf.VivitConfig(**BASE, **CONFIGS["base"])).eval()


@pytest.mark.parametrize(
    "shape, kw, msg",
    [
        ((1, 3, 3, 32, 32), {}, "expected 4 frames"),
        ((1, 4, 4, 32, 32), {}, "expected 3 channels"),
        ((1, 4, 3, 64, 64), {}, "expected frames of 32x32"),
        ((3, 32, 32), {}, "expected a 5-D tensor"),
        ((1, 1, 3, 32, 32), {"interpolate_pos_encoding": True}, "smaller than one tubelet"),
    ],
)
def test_bad_inputs(tiny, shape, kw, msg):
    with pytest.raises(ValueError, match=msg):
        tiny(torch.zeros(shape), **kw)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_classifier_without_hidden_states(tmp_path, name):
    """Without hidden states the last block computes [CLS] only; logits, loss and gradients still match."""
    cfg = {**BASE, **CONFIGS[name]}
    ref = perturb(tf.VivitForVideoClassification(tf.VivitConfig(**cfg)))
    ref.save_pretrained(tmp_path)
    ours = mf.VivitForVideoClassification.from_pretrained(tmp_path)
    inputs = make_inputs(cfg, 2, "VivitForVideoClassification")
    assert_parity(ours, ref, inputs, ["loss", "logits"], hidden=False)
