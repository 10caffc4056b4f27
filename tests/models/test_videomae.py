"""VideoMAE parity with transformers, both directions, plus input validation."""
import pytest
import torch
import transformers as tf

import mediaformers as mf
from tests.parity import assert_close, assert_parity, compare_outputs, hf_load, perturb

BASE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
            decoder_hidden_size=24, decoder_num_hidden_layers=2, decoder_num_attention_heads=2,
            decoder_intermediate_size=40, hidden_act="gelu")
CONFIGS = {
    "base": dict(image_size=32, patch_size=16, num_frames=4, tubelet_size=2),
    "t1-nobias-cls": dict(image_size=48, patch_size=16, num_frames=3, tubelet_size=1, qkv_bias=False,
                          use_mean_pooling=False, norm_pix_loss=False, num_labels=5),
    "p8-t4": dict(image_size=[32, 24], patch_size=8, num_frames=8, tubelet_size=4, num_labels=7, hidden_act="gelu_new"),
}
CLASSES = ["VideoMAEModel", "VideoMAEForPreTraining", "VideoMAEForVideoClassification"]


def make_inputs(cfg: dict, batch: int, cls: str, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    h, w = cfg["image_size"] if isinstance(cfg["image_size"], list) else (cfg["image_size"],) * 2
    x = torch.randn(batch, cfg["num_frames"], 3, h, w, generator=g)
    inputs = {"pixel_values": x}
    if cls == "VideoMAEForPreTraining":
        inputs["bool_masked_pos"] = mf.make_tube_mask(mf.VideoMAEConfig(**cfg), batch, 0.5, generator=g)
    if cls == "VideoMAEForVideoClassification":
        inputs["labels"] = torch.randint(0, cfg.get("num_labels", 2), (batch,), generator=g)
    return inputs


FIELDS = {
    "VideoMAEModel": ["last_hidden_state", "hidden_states"],
    "VideoMAEForPreTraining": ["loss", "logits", "hidden_states"],
    "VideoMAEForVideoClassification": ["loss", "logits", "hidden_states"],
}


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("batch", [1, 2])
def test_from_transformers(tmp_path, name, cls, batch):
    cfg = {**BASE, **CONFIGS[name]}
    ref = perturb(getattr(tf, cls)(tf.VideoMAEConfig(**cfg)), seed=batch)
    ref.save_pretrained(tmp_path)
    ours = getattr(mf, cls).from_pretrained(tmp_path)
    assert ours.load_report.ok
    inputs = make_inputs(cfg, batch, cls)
    assert_parity(ours, ref, inputs, FIELDS[cls])


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("cls", CLASSES)
def test_to_transformers(tmp_path, name, cls):
    cfg = {**BASE, **CONFIGS[name]}
    ours = perturb(getattr(mf, cls)(mf.VideoMAEConfig(**cfg)), seed=3)
    ours.save_pretrained(tmp_path)
    ref = hf_load(getattr(tf, cls), str(tmp_path))
    inputs = make_inputs(cfg, 2, cls)
    with torch.no_grad():
        compare_outputs(ours(**inputs, output_hidden_states=True), ref(**inputs, output_hidden_states=True), FIELDS[cls])


def test_attentions_match_eager_reference(tmp_path):
    cfg = {**BASE, **CONFIGS["base"]}
    ref = perturb(tf.VideoMAEModel(tf.VideoMAEConfig(**cfg, attn_implementation="eager")))
    ref.save_pretrained(tmp_path)
    ours = mf.VideoMAEModel.from_pretrained(tmp_path)
    x = make_inputs(cfg, 2, "VideoMAEModel")["pixel_values"]
    with torch.no_grad():
        a, b = ours(x, output_attentions=True), ref(x, output_attentions=True)
        plain = ours(x)
    compare_outputs(a, b, ["last_hidden_state", "attentions"])
    # The explicit-softmax path (weights asked for) and SDPA agree.
    assert_close(plain.last_hidden_state, a.last_hidden_state, "sdpa vs eager")


def test_tube_mask_shape_and_reproducible():
    c = mf.VideoMAEConfig(image_size=32, patch_size=16, num_frames=4, tubelet_size=2)
    m1 = mf.make_tube_mask(c, 3, 0.75, seed=1)
    m2 = mf.make_tube_mask(c, 3, 0.75, generator=torch.Generator().manual_seed(1))
    assert m1.shape == (3, 8) and m1.dtype == torch.bool and torch.equal(m1, m2)
    assert (m1.sum(1) == 2 * 3).all()  # 3 of 4 spatial patches in each of 2 tubelet slices
    assert torch.equal(m1[:, :4], m1[:, 4:])  # a tube: same positions in every slice


@pytest.fixture(scope="module")
def tiny():
    return mf.VideoMAEForPreTraining(mf.VideoMAEConfig(**BASE, image_size=32, patch_size=16, num_frames=4)).eval()


@pytest.mark.parametrize(
    "shape, msg",
    [
        ((1, 3, 3, 32, 32), "expected 4 frames"),
        ((1, 4, 1, 32, 32), "expected 3 channels"),
        ((1, 4, 3, 32, 48), "expected frames of 32x32"),
        ((4, 3, 32, 32), "expected a 5-D tensor"),
    ],
)
def test_bad_video_shapes(tiny, shape, msg):
    with pytest.raises(ValueError, match=msg):
        tiny.videomae(torch.zeros(shape))


def test_bad_dtype(tiny):
    with pytest.raises(ValueError, match="floating-point"):
        tiny.videomae(torch.zeros(1, 4, 3, 32, 32, dtype=torch.uint8))


def test_bad_masks(tiny):
    x = torch.zeros(2, 4, 3, 32, 32)
    with pytest.raises(ValueError, match=r"expected shape \(2, 8\), got \(2, 7\)"):
        tiny(x, torch.zeros(2, 7, dtype=torch.bool))
    uneven = torch.zeros(2, 8, dtype=torch.bool)
    uneven[0, :3], uneven[1, :2] = True, True
    with pytest.raises(ValueError, match=r"same number of patches, got \[3, 2\]"):
        tiny(x, uneven)
    with pytest.raises(ValueError, match="needs a mask"):
        tiny(x, None)
    with pytest.raises(ValueError, match="masks no patch"):
        tiny(x, torch.zeros(2, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        tiny(x, torch.full((2, 8), 0.5))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_classifier_without_hidden_states(tmp_path, name):
    """The first-token path (use_mean_pooling=False) computes one token in the last block; still exact."""
    cfg = {**BASE, **CONFIGS[name]}
    ref = perturb(tf.VideoMAEForVideoClassification(tf.VideoMAEConfig(**cfg)))
    ref.save_pretrained(tmp_path)
    ours = mf.VideoMAEForVideoClassification.from_pretrained(tmp_path)
    inputs = make_inputs(cfg, 2, "VideoMAEForVideoClassification")
    with torch.no_grad():
        compare_outputs(ours(**inputs), ref(**inputs), ["loss", "logits"])
