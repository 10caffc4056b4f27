"""The same user script against transformers and mediaformers (import swapped): equal results."""
import types

import pytest
import torch
import transformers

import mediaformers as mf

LIBS = {"transformers": transformers, "mediaformers": mf}
FAMILIES = {
    "videomae": ("VideoMAEConfig", "VideoMAEForVideoClassification", "pixel_values",
                 dict(image_size=32, patch_size=16, num_frames=4, tubelet_size=2), (2, 4, 3, 32, 32)),
    "vivit": ("VivitConfig", "VivitForVideoClassification", "pixel_values",
              dict(image_size=32, num_frames=4, tubelet_size=[2, 16, 16]), (2, 4, 3, 32, 32)),
    "ast": ("ASTConfig", "ASTForAudioClassification", "input_values",
            dict(patch_size=16, frequency_stride=10, time_stride=10, max_length=36, num_mel_bins=26), (2, 36, 26)),
}
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, num_labels=3)


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def checkpoint(request, tmp_path_factory):
    config_name, cls_name, key, sizes, shape = FAMILIES[request.param]
    torch.manual_seed(0)
    model = getattr(transformers, cls_name)(getattr(transformers, config_name)(**sizes, **TINY)).eval()
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    return folder, cls_name, key, torch.randn(shape, generator=torch.Generator().manual_seed(1))


def user_script(lib: types.ModuleType, folder, cls_name: str, key: str, x: torch.Tensor, out_dir):
    """What a transformers user writes; only ``lib`` differs."""
    cls = getattr(lib, cls_name)
    model, info = cls.from_pretrained(folder, output_loading_info=True, output_hidden_states=True)
    results = {"info": {k: sorted(map(str, v)) for k, v in info.items()}, "num_params": model.num_parameters(),
               "prefix": model.base_model_prefix, "main": model.main_input_name}
    with torch.no_grad():
        out = model(**{key: x}, labels=torch.tensor([0, 2]))
        results["keys"] = list(out.keys())
        results["class"] = type(out).__name__
        results["tuple"] = model(**{key: x}, return_dict=False, output_hidden_states=False)
        if lib is mf:  # config.return_dict=False as the default (transformers 5.24's heads break on it:
            model.config.return_dict = False  # their inner model returns a tuple they read as an object)
            results["config_tuple"] = model(**{key: x}, output_hidden_states=False)
            model.config.return_dict = True
        results["hidden"] = out.hidden_states
        results["loss"], results["logits"] = out["loss"], out[1]
        results["in"] = "loss" in out and "attentions" not in out
    results["problem_type"] = model.config.problem_type
    model.config.num_labels = 5
    results["id2label"] = dict(model.config.id2label)
    model.config.num_labels = 3
    model.save_pretrained(out_dir, safe_serialization=False, max_shard_size="5GB")
    again = getattr(transformers, cls_name).from_pretrained(out_dir).eval()  # reload in transformers
    with torch.no_grad():
        results["reloaded"] = again(**{key: x}).logits
    return results


def test_same_script_same_results(checkpoint, tmp_path):
    folder, cls_name, key, x = checkpoint
    ref = user_script(transformers, folder, cls_name, key, x, tmp_path / "ref")
    ours = user_script(mf, folder, cls_name, key, x, tmp_path / "ours")
    torch.testing.assert_close(ours.pop("config_tuple"), ref["tuple"], atol=1e-5, rtol=1e-5)
    for name in ref:
        if isinstance(ref[name], (torch.Tensor, tuple)):
            torch.testing.assert_close(ours[name], ref[name], atol=1e-5, rtol=1e-5, msg=name)
        else:
            assert ours[name] == ref[name], name


def test_head_mask_matches_reference_with_silenced_heads(checkpoint):
    """head_mask scales attention probabilities (the 4.57 seeds); transformers 5 ignores it, so the
    reference is transformers with those heads' output-projection columns scaled instead."""
    folder, cls_name, key, x = checkpoint
    ours = getattr(mf, cls_name).from_pretrained(folder)
    ref = getattr(transformers, cls_name).from_pretrained(folder).eval()
    mask = torch.tensor([[1.0, 0.0, 0.5, 1.0], [0.0, 1.0, 1.0, 0.25]])
    with torch.no_grad():
        dense = [m for n, m in ref.named_modules() if n.endswith(("attention.output.dense", "attention.o_proj"))]
        assert len(dense) == 2
        for i, layer in enumerate(dense):
            w = layer.weight
            w.mul_(mask[i].repeat_interleave(w.shape[1] // 4)[None])
        torch.testing.assert_close(ours(**{key: x}, head_mask=mask).logits, ref(**{key: x}).logits,
                                   atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="head_mask: expected shape"):
        ours(**{key: x}, head_mask=torch.ones(3))


def test_unknown_keyword_is_a_type_error(checkpoint):
    folder, cls_name, _, _ = checkpoint
    with pytest.raises(TypeError, match="'foo'"):
        getattr(mf, cls_name).from_pretrained(folder, foo=1)


def test_dtype_auto_and_torch_dtype(checkpoint):
    folder, cls_name, _, _ = checkpoint
    cls = getattr(mf, cls_name)
    assert cls.from_pretrained(folder, dtype="auto").dtype == torch.float32
    assert cls.from_pretrained(folder, torch_dtype=torch.bfloat16).dtype == torch.bfloat16


def test_push_to_hub_fails_fast_offline(checkpoint, tmp_path, monkeypatch):
    from huggingface_hub import constants
    folder, cls_name, _, _ = checkpoint
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConnectionError, match="push_to_hub"):
        getattr(mf, cls_name).from_pretrained(folder).save_pretrained(tmp_path, push_to_hub=True)


def test_int_bool_masked_pos_equals_bool():
    c = mf.VideoMAEConfig(image_size=32, patch_size=16, num_frames=4, tubelet_size=2, **TINY)
    model = mf.VideoMAEModel(c).eval()
    x = torch.randn(2, 4, 3, 32, 32)
    mask = torch.zeros(2, 8, dtype=torch.long)
    mask[:, :3] = 1
    with torch.no_grad():
        assert torch.equal(model(x, bool_masked_pos=mask).last_hidden_state,
                           model(x, bool_masked_pos=mask.bool()).last_hidden_state)
    assert c.qv_bias is c.qkv_bias


def test_altclip_user_script(tmp_path):
    text = dict(vocab_size=99, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=40, project_dim=24)
    vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=30,
                  patch_size=10)
    torch.manual_seed(0)
    ref = transformers.AltCLIPModel(transformers.AltCLIPConfig(text_config=text, vision_config=vision,
                                                               projection_dim=16)).eval()
    ref.save_pretrained(tmp_path)
    ours = mf.AltCLIPModel.from_pretrained(tmp_path)
    ids, px = torch.tensor([[0, 5, 6, 2], [0, 7, 2, 1]]), torch.randn(2, 3, 30, 30)
    with torch.no_grad():
        a = ref(input_ids=ids, pixel_values=px, return_dict=False, output_hidden_states=True)
        b = ours(input_ids=ids, pixel_values=px, return_dict=False, output_hidden_states=True)
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
        embeds = ours.text_model.get_input_embeddings()(ids)
        torch.testing.assert_close(ours.text_model(inputs_embeds=embeds).pooler_output,
                                   ref.text_model(inputs_embeds=embeds).pooler_output, atol=1e-5, rtol=1e-5)
    for a_, b_ in ((ours.text_model, ref.text_model), (ours.vision_model, ref.vision_model)):
        assert a_.num_parameters(exclude_embeddings=True) == b_.num_parameters(exclude_embeddings=True)
        assert a_.main_input_name == b_.main_input_name and a_.base_model_prefix == b_.base_model_prefix
    assert ours.base_model_prefix == ref.base_model_prefix
    for tower in ("text_model", "vision_model"):  # each tower loads out of the full checkpoint (ours only)
        cls = getattr(mf, type(getattr(ref, tower)).__name__)
        with torch.no_grad():
            torch.testing.assert_close(cls.from_pretrained(tmp_path, config=getattr(ours, tower).config).state_dict(),
                                       getattr(ours, tower).state_dict())
    ours.text_model.resize_token_embeddings(104)
    ref.text_model.resize_token_embeddings(104)
    assert ours.text_model.config.vocab_size == ref.text_model.config.vocab_size == 104
    assert torch.equal(ours.text_model.get_input_embeddings().weight[:99], ref.text_model.get_input_embeddings().weight[:99])
