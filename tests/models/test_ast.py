"""AST parity with transformers, both directions, other input lengths, and input validation."""
import pytest
import torch
import transformers as tf
from safetensors import safe_open

import mediaformers as mf
from tests.parity import assert_close, assert_parity, compare_outputs, hf_load, perturb

BASE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48)
CONFIGS = {
    # Overlapping 16x16 patches at AST's 10/10 strides: a (2, 3) grid.
    "overlap-10": dict(patch_size=16, frequency_stride=10, time_stride=10, max_length=40, num_mel_bins=32, num_labels=3),
    # Non-overlapping (stride = patch): the reshape + matmul path of PatchEmbed; multi-label (AudioSet).
    "tiled-multilabel": dict(patch_size=8, frequency_stride=8, time_stride=8, max_length=36, num_mel_bins=24,
                             qkv_bias=False, num_labels=5, problem_type="multi_label_classification"),
    # Overlap in frequency only; one label -> regression.
    "mixed-regression": dict(patch_size=12, frequency_stride=6, time_stride=12, max_length=50, num_mel_bins=30,
                             num_labels=1, hidden_act="gelu_new", layer_norm_eps=1e-6),
    # Overlap in time only, explicit single-label problem type.
    "time-overlap": dict(patch_size=10, frequency_stride=10, time_stride=4, max_length=30, num_mel_bins=20,
                         num_labels=4, problem_type="single_label_classification"),
}
CLASSES = ["ASTModel", "ASTForAudioClassification"]
FIELDS = {
    "ASTModel": ["last_hidden_state", "pooler_output", "hidden_states"],
    "ASTForAudioClassification": ["loss", "logits", "hidden_states"],
}


def make_inputs(cfg: dict, batch: int, cls: str, seed: int = 0, frames: int | None = None) -> dict:
    g = torch.Generator().manual_seed(seed)
    inputs = {"input_values": torch.randn(batch, frames or cfg["max_length"], cfg["num_mel_bins"], generator=g)}
    if cls == "ASTForAudioClassification":
        n = cfg["num_labels"]
        if cfg.get("problem_type") == "multi_label_classification":
            inputs["labels"] = (torch.rand(batch, n, generator=g) > 0.5).float()
        elif n == 1:
            inputs["labels"] = torch.randn(batch, generator=g)
        else:
            inputs["labels"] = torch.randint(0, n, (batch,), generator=g)
    return inputs


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("batch", [1, 3])
def test_from_transformers(tmp_path, name, cls, batch):
    cfg = {**BASE, **CONFIGS[name]}
    ref = perturb(getattr(tf, cls)(tf.ASTConfig(**cfg)), seed=batch)
    ref.save_pretrained(tmp_path)
    ours = getattr(mf, cls).from_pretrained(tmp_path)
    assert ours.load_report.ok
    inputs = make_inputs(cfg, batch, cls)
    assert_parity(ours, ref, inputs, FIELDS[cls], "input_values")


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("cls", CLASSES)
def test_to_transformers(tmp_path, name, cls):
    cfg = {**BASE, **CONFIGS[name]}
    ours = perturb(getattr(mf, cls)(mf.ASTConfig(**cfg)), seed=3)
    ours.save_pretrained(tmp_path)
    ref = hf_load(getattr(tf, cls), str(tmp_path))
    assert ref.config.problem_type == cfg.get("problem_type")
    inputs = make_inputs(cfg, 3, cls)
    # Without hidden states our classifier takes its pooled-only path (the last layer for 2 tokens).
    assert_parity(ours, ref, inputs, [f for f in FIELDS[cls] if f != "hidden_states"], "input_values", hidden=False)


def test_attentions_and_mask_match_eager_reference(tmp_path):
    cfg = {**BASE, **CONFIGS["overlap-10"]}
    ref = perturb(tf.ASTForAudioClassification(tf.ASTConfig(**cfg, attn_implementation="eager")))
    ref.save_pretrained(tmp_path)
    ours = mf.ASTForAudioClassification.from_pretrained(tmp_path)
    x = make_inputs(cfg, 2, "ASTModel")["input_values"]
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[0, 5:] = 0
    with torch.no_grad():
        for m in (None, mask):
            a, b = ours(x, attention_mask=m, output_attentions=True), ref(x, attention_mask=m, output_attentions=True)
            compare_outputs(a, b, ["logits", "attentions"])
            # The explicit-softmax path (weights asked for) and SDPA agree.
            assert_close(ours(x, attention_mask=m).logits, a.logits, "sdpa vs eager")


def test_checkpoint_key_names_and_prefixes(tmp_path):
    cfg = {**BASE, **CONFIGS["overlap-10"]}
    cls_model = perturb(mf.ASTForAudioClassification(mf.ASTConfig(**cfg)))
    cls_model.save_pretrained(tmp_path / "cls")
    with safe_open(str(tmp_path / "cls" / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert {"classifier.layernorm.weight", "classifier.layernorm.bias", "classifier.dense.weight",
            "classifier.dense.bias", "audio_spectrogram_transformer.layernorm.weight",
            "audio_spectrogram_transformer.embeddings.distillation_token",
            "audio_spectrogram_transformer.encoder.layer.1.attention.attention.query.weight"} <= keys
    # A classifier checkpoint into the bare model: the head is dropped on purpose, the rest matches.
    base = mf.ASTModel.from_pretrained(tmp_path / "cls")
    assert base.load_report.ok and base.load_report.dropped_prefix
    x = make_inputs(cfg, 2, "ASTModel")["input_values"]
    with torch.no_grad():
        assert_close(base(x).pooler_output, cls_model.audio_spectrogram_transformer(x).pooler_output, "backbone")
    # A bare-model checkpoint into the classifier: the head is missing, and strict loading says so.
    base.save_pretrained(tmp_path / "base")
    with pytest.raises(mf.CheckpointError, match="classifier.dense.weight"):
        mf.ASTForAudioClassification.from_pretrained(tmp_path / "base")
    # The auto loader picks the class from config.json.
    assert type(mf.from_pretrained(tmp_path / "cls")).__name__ == "ASTForAudioClassification"


def test_config_round_trip(tmp_path):
    ref = tf.ASTConfig(**BASE, **CONFIGS["mixed-regression"])
    ref.save_pretrained(tmp_path)
    c = mf.ASTConfig.from_pretrained(tmp_path)
    for k in ("patch_size", "frequency_stride", "time_stride", "max_length", "num_mel_bins", "qkv_bias",
              "layer_norm_eps", "hidden_act", "num_labels"):
        assert getattr(c, k) == getattr(ref, k), k
    assert c.grid == (4, 4)


# ---- other lengths than max_length -------------------------------------------------------------

LEN_CFG = {**BASE, **CONFIGS["overlap-10"], "max_length": 96}  # time grid of 9


@pytest.fixture(scope="module")
def len_model():
    return perturb(mf.ASTForAudioClassification(mf.ASTConfig(**LEN_CFG)))


@pytest.mark.parametrize("frames, mode, time_patches", [
    (16, "crop", 1), (50, "crop", 4), (50, "interpolate", 4), (50, "auto", 4), (200, "interpolate", 19),
    (200, "auto", 19), (96, "crop", 9),
])
def test_other_lengths_shapes(len_model, frames, mode, time_patches):
    x = torch.randn(2, frames, LEN_CFG["num_mel_bins"])
    with torch.no_grad():
        out = len_model(x, pos_mode=mode, output_hidden_states=True)
    assert out.logits.shape == (2, LEN_CFG["num_labels"])
    assert out.hidden_states[-1].shape == (2, 2 + 2 * time_patches, LEN_CFG["hidden_size"])


def test_crop_equals_a_model_trained_at_the_shorter_length(tmp_path, len_model):
    """Cropping = the reference at max_length=frames with the first time columns of the table."""
    frames = 50
    state = dict(len_model.state_dict())
    key = "audio_spectrogram_transformer.pos_embed"
    pos, d = state[key], LEN_CFG["hidden_size"]
    grid = pos[:, 2:].reshape(1, 2, 9, d)[:, :, :4].reshape(1, -1, d)  # (freq, time) raster, first 4 columns
    cut = mf.ASTForAudioClassification(mf.ASTConfig(**{**LEN_CFG, "max_length": frames}))
    cut.load_state_dict({**state, key: torch.cat([pos[:, :2], grid], dim=1)})
    cut.save_pretrained(tmp_path)
    short = hf_load(tf.ASTForAudioClassification, str(tmp_path))
    x = make_inputs(LEN_CFG, 2, "ASTForAudioClassification", frames=frames)
    with torch.no_grad():
        compare_outputs(len_model(**x, pos_mode="crop"), short(**x), ["loss", "logits"])
        compare_outputs(len_model(**x, pos_mode="auto"), short(**x), ["loss", "logits"])


def test_interpolation_identity_and_time_only():
    m = mf.ASTModel(mf.ASTConfig(**{**LEN_CFG, "num_labels": 2}))
    f, t = m.config.grid
    assert m.positions(t, "interpolate") is m.pos_embed  # the trained length: the table itself
    x = torch.randn(1, LEN_CFG["max_length"], LEN_CFG["num_mel_bins"])
    with torch.no_grad():
        assert_close(m(x, pos_mode="interpolate").last_hidden_state, m(x).last_hidden_state, "identity")
        # Rows of constant value per frequency stay constant: frequency is never mixed.
        rows = torch.arange(f, dtype=torch.float32)[:, None, None].expand(f, t, m.config.hidden_size)
        m.pos_embed[:, 2:] = rows.reshape(1, -1, m.config.hidden_size)
        pos = m.positions(2 * t + 3, "interpolate")[:, 2:].reshape(f, 2 * t + 3, -1)
    assert_close(pos, torch.arange(f, dtype=torch.float32)[:, None, None].expand_as(pos), "frequency rows")


def test_bad_pos_mode(len_model):
    x = torch.randn(1, 200, LEN_CFG["num_mel_bins"])
    with pytest.raises(ValueError, match=r"19 time patches, more than the 9.*pos_mode='interpolate'"):
        len_model(x, pos_mode="crop")
    with pytest.raises(ValueError, match=r"pos_mode: expected one of \('auto', 'crop', 'interpolate'\), got 'nearest'"):
        len_model(x, pos_mode="nearest")


@pytest.mark.parametrize("shape, dtype, msg", [
    ((96, 32), torch.float32, r"expected a 3-D tensor \(batch, frames, 32\), got shape \(96, 32\)"),
    ((1, 1, 96, 32), torch.float32, r"expected a 3-D tensor"),
    ((1, 96, 40), torch.float32, r"expected 32 mel bins in dim 2, shape \(batch, frames, 32\), got shape \(1, 96, 40\)"),
    ((1, 32, 96), torch.float32, r"expected 32 mel bins.*got shape \(1, 32, 96\)"),
    ((1, 96, 32), torch.long, r"expected a floating-point tensor .*got torch.int64"),
    ((1, 15, 32), torch.float32, r"expected at least 16 frames \(one patch\) in dim 1, got shape \(1, 15, 32\)"),
])
def test_bad_input_values(len_model, shape, dtype, msg):
    with pytest.raises(ValueError, match=msg):
        len_model(torch.zeros(shape, dtype=dtype))


def test_bad_attention_mask(len_model):
    # (1, 96), per frame, is the feature extractor's mask: accepted (tests/models/test_transformers_api.py)
    with pytest.raises(ValueError, match=r"attention_mask: expected shape \(1, 20\).* or \(1, 96\) \(batch, frames\), got \(1, 95\)"):
        len_model(torch.zeros(1, 96, 32), attention_mask=torch.ones(1, 95))


def test_bfloat16_takes_float32_input(len_model):
    m = mf.ASTForAudioClassification(mf.ASTConfig(**LEN_CFG)).to(torch.bfloat16)
    with torch.no_grad():
        assert m(torch.randn(1, 96, 32)).logits.dtype == torch.bfloat16


def test_pooled_only_matches_the_full_last_layer():
    m = perturb(mf.ASTModel(mf.ASTConfig(**LEN_CFG)))
    x = torch.randn(2, 70, LEN_CFG["num_mel_bins"])
    mask = torch.ones(2, 2 + 2 * 6)
    mask[1, 9:] = 0
    with torch.no_grad():
        full, short = m(x, attention_mask=mask), m(x, attention_mask=mask, pooled_only=True)
    assert short.last_hidden_state.shape == (2, 2, LEN_CFG["hidden_size"])
    assert_close(short.last_hidden_state, full.last_hidden_state[:, :2], "cls tokens")
    assert_close(short.pooler_output, full.pooler_output, "pooler_output")
