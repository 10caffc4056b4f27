"""The model-side API transformers' own tests and tooling read, against transformers' classes on tiny configs:
class attributes, attention implementation switching, from_pretrained(None, config=, state_dict=), and
the inputs transformers takes (0/1 integer bool_masked_pos, AltCLIP's 4-D mask, AST's per-frame mask)."""
import pytest
import torch
import transformers as tf
from safetensors.torch import load_file

import mediaformers as mf
from tests.parity import assert_close, perturb

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
VIDEOMAE = dict(image_size=16, patch_size=8, num_frames=4, tubelet_size=2, decoder_hidden_size=16,
                decoder_num_hidden_layers=1, decoder_num_attention_heads=2, decoder_intermediate_size=24, **TINY)
AST = dict(patch_size=4, frequency_stride=4, time_stride=4, max_length=24, num_mel_bins=16, **TINY)
TEXT = dict(vocab_size=99, max_position_embeddings=20, project_dim=24, **TINY)
VISION = dict(image_size=16, patch_size=8, **TINY)


def pair(cls_name: str, config_name: str, sizes: dict, tmp_path, seed: int = 0):
    """transformers' model (perturbed) and ours loaded from its checkpoint."""
    torch.manual_seed(seed)
    ref = perturb(getattr(tf, cls_name)(getattr(tf, config_name)(**sizes)), seed)
    ref.save_pretrained(tmp_path)
    return getattr(mf, cls_name).from_pretrained(tmp_path), ref


@pytest.mark.parametrize("name", ["VideoMAEForVideoClassification", "VivitModel", "ASTForAudioClassification",
                                  "AltCLIPModel", "AltCLIPTextModel"])
def test_class_attributes_as_transformers(name):
    ours, theirs = getattr(mf, name), getattr(tf, name)
    for attr in ("main_input_name", "base_model_prefix", "supports_gradient_checkpointing", "_supports_sdpa"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    assert ours.can_generate() is theirs.can_generate() is False
    # Truthful, not copied: no flash/flex kernels and no attention-function registry here.
    assert not (ours._supports_flash_attn or ours._supports_flex_attn or ours._supports_attention_backend)
    assert ours._can_set_attn_implementation() and not ours._can_set_experts_implementation()


def test_instance_api_after_post_init():
    model = mf.VideoMAEForPreTraining(mf.VideoMAEConfig(**VIDEOMAE))
    assert model.get_output_embeddings() is None and model.all_tied_weights_keys == {}
    assert model._keys_to_ignore_on_load_missing == set() and model._keep_in_fp32_modules == set()
    model.tie_weights()  # nothing to tie; must not fail
    assert model.config._attn_implementation == "sdpa"  # what an unset choice resolves to, as transformers
    assert model.get_memory_footprint() == sum(t.numel() * 4 for t in (*model.parameters(), *model.buffers()))
    assert model.name_or_path == ""
    with pytest.raises(NotImplementedError, match="resize_position_embeddings is not implemented, as in transformers"):
        model.resize_position_embeddings(10)


def test_int_bool_masked_pos_masks_as_transformers_bool(tmp_path):
    ours, ref = pair("VideoMAEModel", "VideoMAEConfig", VIDEOMAE, tmp_path)
    x = torch.randn(2, 4, 3, 16, 16)
    mask = torch.tensor([[1, 0, 0, 1, 1, 0, 0, 1], [0, 1, 1, 0, 0, 1, 1, 0]])
    with torch.no_grad():
        want = ref(x, bool_masked_pos=mask.bool()).last_hidden_state
        for m in (mask, mask.to(torch.int32), mask.to(torch.uint8), mask.bool()):
            got = ours(x, bool_masked_pos=m).last_hidden_state
            assert got.shape == (2, 4, 32)  # the masked half is dropped
            assert_close(got, want, f"bool_masked_pos {m.dtype}")
    with pytest.raises(ValueError, match="bool_masked_pos: expected a bool"):
        ours(x, bool_masked_pos=mask * 2)


def test_altclip_4d_attention_mask_as_transformers(tmp_path):
    ours, ref = pair("AltCLIPTextModel", "AltCLIPTextConfig", TEXT, tmp_path)
    ids = torch.randint(3, 99, (2, 7))
    ids[1, 5:] = 1  # padding
    mask = (ids != 1).long()
    extended = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    with torch.no_grad():
        want = ref(input_ids=ids, attention_mask=mask).last_hidden_state
        for m in (extended, mask[:, None, None, :].bool(), mask[:, None, None, :].expand(2, 1, 7, 7)):
            assert_close(ours(input_ids=ids, attention_mask=m).last_hidden_state, want, f"4-D {m.dtype}")
        assert_close(ref(input_ids=ids, attention_mask=extended).last_hidden_state, want, "transformers 4-D")
    with pytest.raises(ValueError, match=r"attention_mask: expected shape \(2, 7\) like the tokens, or 4-D"):
        ours(input_ids=ids, attention_mask=torch.ones(2, 1, 1, 6))


def test_ast_per_frame_attention_mask(tmp_path):
    ours, ref = pair("ASTModel", "ASTConfig", AST, tmp_path)
    x = torch.randn(2, 24, 16)
    frames = torch.ones(2, 24, dtype=torch.long)
    with torch.no_grad():
        # transformers drops an all-ones mask; ours agrees.
        assert_close(ours(x, attention_mask=frames).last_hidden_state, ref(x, attention_mask=frames).last_hidden_state)
        frames[1, 12:] = 0  # time patches 3..5 (frames 12..23) are all padding in sample 1
        tokens = torch.ones(2, 2 + 4 * 6, dtype=torch.long)
        tokens[1, 2:].view(4, 6)[:, 3:] = 0
        got = ours(x, attention_mask=frames).last_hidden_state
        assert_close(got, ref(x, attention_mask=tokens).last_hidden_state, "frame mask = its token mask")
        assert_close(got[0], ref(x[:1]).last_hidden_state[0], "unpadded sample unchanged")
    with pytest.raises(ValueError, match=r"attention_mask: expected shape \(2, 26\).*or \(2, 24\) \(batch, frames\)"):
        ours(x, attention_mask=torch.ones(2, 25))


def test_from_pretrained_none_with_state_dict(tmp_path):
    ours, ref = pair("ASTForAudioClassification", "ASTConfig", AST, tmp_path)
    x = torch.randn(2, 24, 16)
    config = mf.ASTConfig.from_pretrained(tmp_path)
    hf_state = load_file(tmp_path / "model.safetensors")  # transformers' checkpoint names
    for state in (hf_state, ours.state_dict()):  # transformers' names or ours
        model = mf.ASTForAudioClassification.from_pretrained(None, config=config, state_dict=state)
        assert model.load_report.ok and not model.training
        with torch.no_grad():
            assert_close(model(x).logits, ref(x).logits)
    # A folder with an explicit config, and a folder whose files a state_dict replaces.
    assert_close(mf.ASTForAudioClassification.from_pretrained(tmp_path, config=config)(x).logits, ref(x).logits)
    with torch.device("meta"), pytest.raises(RuntimeError, match="with a meta device context manager"):
        mf.ASTForAudioClassification.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="None needs both config= and state_dict="):
        mf.ASTForAudioClassification.from_pretrained(None, config=config)
    bad = {k: v for k, v in hf_state.items() if "classifier" not in k}
    with pytest.raises(mf.CheckpointError, match="missing"):
        mf.ASTForAudioClassification.from_pretrained(None, config=config, state_dict=bad)


def test_attn_implementation_switch(tmp_path):
    ours, ref = pair("VivitModel", "VivitConfig", dict(image_size=16, num_frames=4, tubelet_size=[2, 8, 8], **TINY),
                     tmp_path)
    x = torch.randn(2, 4, 3, 16, 16)
    eager = mf.VivitModel.from_pretrained(tmp_path, attn_implementation="eager")
    assert eager.config._attn_implementation == "eager"
    assert {m.attention_mode for m in eager.modules() if hasattr(m, "attention_mode")} == {"math"}
    ours.set_attn_implementation("eager")
    assert ours.config._attn_implementation == "eager"
    ours.set_attn_implementation("sdpa")
    assert {m.attention_mode for m in ours.modules() if hasattr(m, "attention_mode")} == {None}
    with torch.no_grad():
        want = ref(x).last_hidden_state
        assert_close(eager(x).last_hidden_state, want, atol=1e-5)
        assert_close(ours(x).last_hidden_state, want, atol=1e-5)
    built = mf.VivitModel._from_config(eager.config, attn_implementation="eager", dtype=torch.bfloat16)
    assert built.dtype == torch.bfloat16 and built.config._attn_implementation == "eager"
    assert eager.config is not built.config
    for bad in ("flash_attention_2", "flex_attention"):
        with pytest.raises(ValueError, match=f"attn_implementation: Specified `attn_implementation=\"{bad}\"` is not "
                                             "supported; expected one of \\['eager', 'sdpa'\\]"):
            ours.set_attn_implementation(bad)
        with pytest.raises(ValueError, match="attn_implementation"):
            mf.VivitModel.from_pretrained(tmp_path, attn_implementation=bad)


def test_composite_attn_implementation():
    config = mf.AltCLIPConfig(text_config=TEXT, vision_config=VISION, projection_dim=16)
    model = mf.AltCLIPModel(config)
    model.set_attn_implementation({"text_config": "eager", "vision_config": "sdpa"})
    modes = {name.split(".")[0]: m.attention_mode for name, m in model.named_modules() if hasattr(m, "attention_mode")}
    assert modes == {"text_model": "math", "vision_model": None}
    assert model.config.text_config._attn_implementation == "eager"
    with pytest.raises(ValueError, match="attn_implementation: expected keys among"):
        model.set_attn_implementation({"audio_config": "eager"})
