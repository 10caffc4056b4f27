"""AltCLIP parity with transformers, both directions, plus checkpoint layouts, padding and input validation."""
import json

import pytest
import torch
import transformers as tf
from safetensors.torch import load_file, save_file

import mediaformers as mf
from tests.parity import assert_close, compare_outputs, hf_load, perturb

TEXT = dict(vocab_size=99, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=40, project_dim=24)
VISION = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=30,
              patch_size=10, projection_dim=16)
CONFIGS = {
    "base": (dict(), dict(), dict(projection_dim=16)),
    "deep-wide": (dict(hidden_size=48, num_hidden_layers=3, num_attention_heads=6, project_dim=40, type_vocab_size=2,
                       hidden_act="gelu_new"),
                  dict(hidden_size=40, num_hidden_layers=1, num_attention_heads=5, image_size=32, patch_size=8),
                  dict(projection_dim=20, logit_scale_init_value=1.5)),
    "p4-onelayer": (dict(num_hidden_layers=1, num_attention_heads=2, project_dim=32, layer_norm_eps=1e-6),
                    dict(image_size=16, patch_size=4, num_hidden_layers=3, hidden_act="gelu"),
                    dict(projection_dim=8)),
}
CLASSES = ["AltCLIPModel", "AltCLIPTextModel", "AltCLIPVisionModel"]
TEXT_FIELDS = ["last_hidden_state", "pooler_output", "hidden_states", "attentions"]
VISION_FIELDS = ["last_hidden_state", "pooler_output", "hidden_states", "attentions"]


def configs(name: str) -> tuple[dict, dict, dict]:
    t, v, top = CONFIGS[name]
    return {**TEXT, **t}, {**VISION, **v}, top


def hf_config(cls: str, name: str):
    t, v, top = configs(name)
    if cls == "AltCLIPTextModel":
        return tf.AltCLIPTextConfig(**t)
    if cls == "AltCLIPVisionModel":
        return tf.AltCLIPVisionConfig(**v)
    return tf.AltCLIPConfig(text_config=t, vision_config=v, **top)


def mf_config(cls: str, name: str):
    t, v, top = configs(name)
    if cls == "AltCLIPTextModel":
        return mf.AltCLIPTextConfig(**t)
    if cls == "AltCLIPVisionModel":
        return mf.AltCLIPVisionConfig(**v)
    return mf.AltCLIPConfig(text_config=t, vision_config=v, **top)


def text_inputs(cfg: dict, batch: int, padded: bool, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, cfg["vocab_size"], (batch, 9), generator=g)
    ids[:, 0], ids[:, -1] = 0, 2
    mask = torch.ones_like(ids)
    if padded:  # right padding as the tokenizer makes it: </s> then <pad>s
        for i in range(batch):
            n = 9 - 2 * i - 1
            ids[i, n - 1], ids[i, n:], mask[i, n:] = 2, 1, 0
    out = {"input_ids": ids, "attention_mask": mask}
    if cfg.get("type_vocab_size", 1) > 1:
        out["token_type_ids"] = torch.randint(0, cfg["type_vocab_size"], ids.shape, generator=g)
    return out


def image_inputs(cfg: dict, batch: int, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"pixel_values": torch.randn(batch, 3, cfg["image_size"], cfg["image_size"], generator=g)}


def inputs_for(cls: str, name: str, batch: int, padded: bool) -> dict:
    t, v, _ = configs(name)
    if cls == "AltCLIPTextModel":
        return text_inputs(t, batch, padded)
    if cls == "AltCLIPVisionModel":
        return image_inputs(v, batch)
    return {**text_inputs(t, batch, padded), **image_inputs(v, batch), "return_loss": True}


def _run(model, cls: str, inputs: dict):
    """Forward with every optional output, backward through a scalar of all outputs; gradient w.r.t. pixels."""
    inputs = dict(inputs)
    x = None
    if "pixel_values" in inputs:
        x = inputs["pixel_values"] = inputs["pixel_values"].clone().requires_grad_(True)
    out = model(**inputs, output_hidden_states=True, output_attentions=True)
    if cls == "AltCLIPModel":
        scalar = out.loss + (out.logits_per_image * torch.linspace(-1, 1, out.logits_per_image.numel()).view_as(out.logits_per_image)).sum()
    else:
        h = out.last_hidden_state
        scalar = (h * torch.linspace(-1, 1, h.numel()).view_as(h)).sum() + out.pooler_output.square().sum()
    scalar.backward()
    return out, (x.grad if x is not None else None)


def compare(cls: str, ours, theirs) -> None:
    if cls == "AltCLIPModel":
        compare_outputs(ours, theirs, ["loss", "logits_per_image", "logits_per_text", "text_embeds", "image_embeds"])
        compare_outputs(ours.text_model_output, theirs.text_model_output, TEXT_FIELDS)
        compare_outputs(ours.vision_model_output, theirs.vision_model_output, VISION_FIELDS)
    else:
        compare_outputs(ours, theirs, TEXT_FIELDS if cls == "AltCLIPTextModel" else VISION_FIELDS)


def hf_model(cls: str, cfg, seed: int):
    model = perturb(getattr(tf, cls)(cfg), seed=seed)
    model.set_attn_implementation("eager")  # the only transformers path that returns attentions
    return model


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("batch,padded", [(1, False), (3, True)])
def test_from_transformers(tmp_path, name, cls, batch, padded):
    ref = hf_model(cls, hf_config(cls, name), seed=batch)
    ref.save_pretrained(tmp_path)
    ours = getattr(mf, cls).from_pretrained(tmp_path)
    assert ours.load_report.ok
    inputs = inputs_for(cls, name, batch, padded)
    out_ref, grad_ref = _run(ref, cls, inputs)
    out, grad = _run(ours, cls, inputs)
    compare(cls, out, out_ref)
    assert_close(grad, grad_ref, "d scalar / d pixel_values")


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("cls", CLASSES)
def test_to_transformers(tmp_path, name, cls):
    ours = perturb(getattr(mf, cls)(mf_config(cls, name)), seed=7)
    ours.save_pretrained(tmp_path)
    ref = hf_load(getattr(tf, cls), str(tmp_path), attn_implementation="eager")
    inputs = inputs_for(cls, name, 2, True)
    out, grad = _run(ours, cls, inputs)
    out_ref, grad_ref = _run(ref, cls, inputs)
    compare(cls, out, out_ref)
    assert_close(grad, grad_ref, "d scalar / d pixel_values")


def test_text_gradients_wrt_embeddings(tmp_path):
    ref = hf_model("AltCLIPTextModel", hf_config("AltCLIPTextModel", "base"), seed=3)
    ref.save_pretrained(tmp_path)
    ours = mf.AltCLIPTextModel.from_pretrained(tmp_path)
    emb = torch.randn(2, 6, TEXT["hidden_size"])
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    grads = []
    for model in (ours, ref):
        x = emb.clone().requires_grad_(True)
        out = model(inputs_embeds=x, attention_mask=mask)
        (out.last_hidden_state * torch.linspace(-1, 1, out.last_hidden_state.numel()).view_as(out.last_hidden_state)).sum().backward()
        grads.append((out.last_hidden_state, x.grad))
    assert_close(grads[0][0], grads[1][0], "last_hidden_state")
    assert_close(grads[0][1], grads[1][1], "d / d inputs_embeds")


@pytest.mark.parametrize("method", ["get_text_features", "get_image_features"])
def test_features(tmp_path, method):
    ref = hf_model("AltCLIPModel", hf_config("AltCLIPModel", "deep-wide"), seed=5)
    ref.save_pretrained(tmp_path)
    ours = mf.AltCLIPModel.from_pretrained(tmp_path)
    inputs = inputs_for("AltCLIPModel", "deep-wide", 3, True)
    inputs.pop("return_loss")
    keep = ("input_ids", "attention_mask", "token_type_ids") if method == "get_text_features" else ("pixel_values",)
    inputs = {k: v for k, v in inputs.items() if k in keep}
    with torch.no_grad():
        out, out_ref = getattr(ours, method)(**inputs), getattr(ref, method)(**inputs)
    compare_outputs(out, out_ref, ["last_hidden_state", "pooler_output"])
    assert out.pooler_output.shape == (3, 20)


@pytest.mark.parametrize("size", [(40, 40), (30, 50)])
def test_interpolate_pos_encoding(tmp_path, size):
    ref = hf_model("AltCLIPVisionModel", hf_config("AltCLIPVisionModel", "base"), seed=2)
    ref.save_pretrained(tmp_path)
    ours = mf.AltCLIPVisionModel.from_pretrained(tmp_path)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        compare_outputs(ours(x, interpolate_pos_encoding=True), ref(x, interpolate_pos_encoding=True),
                        ["last_hidden_state", "pooler_output"])
    with pytest.raises(ValueError, match="interpolate_pos_encoding=True"):
        ours(x)


def test_padding_does_not_change_embeddings():
    model = perturb(mf.AltCLIPModel(mf_config("AltCLIPModel", "base")))
    ids = torch.tensor([[0, 5, 6, 7, 2]])
    padded = torch.tensor([[0, 5, 6, 7, 2, 1, 1, 1], [0, 9, 2, 1, 1, 1, 1, 1]])
    mask = (padded != 1).long()
    with torch.no_grad():
        alone = model.get_text_features(ids).pooler_output
        batch = model.get_text_features(padded, attention_mask=mask).pooler_output
        sdpa_hidden = model.text_model(padded, attention_mask=mask).last_hidden_state
        eager_hidden = model.text_model(padded, attention_mask=mask, output_attentions=True).last_hidden_state
    assert_close(batch[:1], alone, "padded vs unpadded text embedding")
    assert_close(sdpa_hidden, eager_hidden, "SDPA vs explicit attention")


def test_hub_layouts_load(tmp_path):
    """Checkpoints spell the layers `layer.N` or `layers.N`, and the towers load out of a full checkpoint."""
    ref = hf_model("AltCLIPModel", hf_config("AltCLIPModel", "base"), seed=4)
    ref.save_pretrained(tmp_path)
    ours = mf.AltCLIPModel.from_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    # What we write for the full model: the BAAI/AltCLIP hub layout.
    written = ours.hf_state_dict()
    assert "text_model.roberta.encoder.layer.0.attention.self.query.weight" in written
    assert "vision_model.encoder.layers.0.self_attn.q_proj.weight" in written
    assert "visual_projection.weight" in written and "logit_scale" in written
    # Either spelling loads, and so do the index buffers older transformers saved.
    swapped = {k.replace("encoder.layer.", "encoder.layers."): v for k, v in state.items()}
    swapped["text_model.roberta.embeddings.position_ids"] = torch.arange(40)[None]
    swapped["vision_model.embeddings.position_ids"] = torch.arange(10)[None]
    save_file(swapped, tmp_path / "model.safetensors")
    again = mf.AltCLIPModel.from_pretrained(tmp_path)
    assert again.load_report.ok
    x = image_inputs(VISION, 2)["pixel_values"]
    t = text_inputs(TEXT, 2, True)
    with torch.no_grad():
        full = ours(**t, pixel_values=x)
        text = mf.AltCLIPTextModel.from_pretrained(tmp_path)
        vision = mf.AltCLIPVisionModel.from_pretrained(tmp_path)
        assert text.load_report.ok and "logit_scale" in text.load_report.dropped_prefix
        assert_close(text(**t).last_hidden_state, full.text_model_output.last_hidden_state, "text tower")
        assert_close(vision(x).pooler_output, full.vision_model_output.pooler_output, "vision tower")


def test_tower_checkpoints_written_as_transformers_writes(tmp_path):
    vision = perturb(mf.AltCLIPVisionModel(mf_config("AltCLIPVisionModel", "base")))
    assert "encoder.layers.0.self_attn.q_proj.weight" in vision.hf_state_dict()
    text = perturb(mf.AltCLIPTextModel(mf_config("AltCLIPTextModel", "base")))
    assert "roberta.encoder.layers.0.attention.self.query.weight" in text.hf_state_dict()
    # An older standalone vision checkpoint nests everything under `vision_model.`
    vision.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    save_file({"vision_model." + k: v for k, v in state.items()}, tmp_path / "model.safetensors")
    assert mf.AltCLIPVisionModel.from_pretrained(tmp_path).load_report.ok


def test_config_round_trip(tmp_path):
    ref = tf.AltCLIPConfig(text_config=TEXT, vision_config=VISION, projection_dim=16)
    ref.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    data["custom_key"] = {"kept": True}
    data["text_config"]["another"] = 3
    data["text_config_dict"] = {"project_dim": 12}  # older checkpoints; overrides text_config
    (tmp_path / "config.json").write_text(json.dumps(data))
    c = mf.AltCLIPConfig.from_pretrained(tmp_path)
    assert isinstance(c.text_config, mf.AltCLIPTextConfig) and isinstance(c.vision_config, mf.AltCLIPVisionConfig)
    assert c.text_config.project_dim == 12 and c.vision_config.patch_size == 10 and c.projection_dim == 16
    out = c.to_dict()
    assert out["custom_key"] == {"kept": True} and out["text_config"]["another"] == 3
    assert out["text_config"]["model_type"] == "altclip_text_model" and "id2label" in out["vision_config"]
    saved = c.to_diff_dict()  # config.json leaves the default labels out of nested configs, as transformers
    assert "id2label" not in saved["vision_config"] and saved["custom_key"] == {"kept": True}
    assert set(saved["vision_config"]) <= set(ref.to_diff_dict()["vision_config"]) | {"transformers_version"}
    assert mf.AltCLIPConfig.from_dict(out).to_dict() == out
    # The tower configs read a full config.json.
    assert mf.AltCLIPVisionConfig.from_pretrained(tmp_path).image_size == 30
    assert mf.AltCLIPTextConfig.from_pretrained(tmp_path).project_dim == 12
    defaults = mf.AltCLIPConfig()
    assert defaults.text_config.hidden_size == 1024 and defaults.vision_config.patch_size == 32


def test_bad_inputs():
    model = mf.AltCLIPModel(mf_config("AltCLIPModel", "base")).eval()
    ids = torch.tensor([[0, 5, 2]])
    x = torch.randn(1, 3, 30, 30)
    with pytest.raises(ValueError, match="needs both"):
        model(input_ids=ids)
    with pytest.raises(ValueError, match=r"pixel_values: expected a 4-D tensor \(batch, 3, 30, 30\), got shape \(3, 30, 30\)"):
        model(input_ids=ids, pixel_values=x[0])
    with pytest.raises(ValueError, match="pixel_values: expected shape .* got \\(1, 3, 32, 32\\)"):
        model.get_image_features(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="floating-point"):
        model.get_image_features(torch.zeros(1, 3, 30, 30, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"input_ids: expected an integer tensor \(batch, tokens\), got shape \(3,\)"):
        model.get_text_features(ids[0])
    with pytest.raises(ValueError, match=r"attention_mask: expected shape \(1, 3\)"):
        model.get_text_features(ids, attention_mask=torch.ones(1, 4))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model.get_text_features(torch.full((1, 50), 5))
    with pytest.raises(ValueError, match="2 texts and 1 images"):
        model(input_ids=ids.repeat(2, 1), pixel_values=x, return_loss=True)
    with pytest.raises(ValueError, match="config: expected AltCLIPTextConfig"):
        mf.AltCLIPTextModel(mf.AltCLIPVisionConfig())
