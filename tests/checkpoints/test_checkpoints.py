"""Config and checkpoint I/O: formats, hub cache, strictness, dtype, the auto loader."""
import json
import os

import pytest
import torch
import transformers as tf
from safetensors.torch import load_file

import mediaformers as mf
from mediaformers.checkpoints.io import load_state_dict, save_state_dict
from tests.parity import assert_close, perturb

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
            image_size=32, num_frames=4, tubelet_size=[2, 16, 16], num_labels=3)


@pytest.fixture
def vivit_ckpt(tmp_path):
    """A transformers-saved ViViT classifier with perturbed weights."""
    ref = perturb(tf.VivitForVideoClassification(tf.VivitConfig(**TINY)))
    ref.save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt"


def video(batch=2):
    return torch.randn(batch, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_config_round_trip_keeps_unknown_fields(tmp_path):
    data = {"model_type": "vivit", "hidden_size": 64, "some_future_field": {"a": [1, 2]},
            "id2label": {"0": "cat", "1": "dog"}, "label2id": {"cat": 0, "dog": 1}, "tubelet_size": [2, 16, 16]}
    (tmp_path / "config.json").write_text(json.dumps(data))
    cfg = mf.VivitConfig.from_pretrained(tmp_path)
    assert cfg.num_labels == 2 and cfg.id2label == {0: "cat", 1: "dog"} and cfg.hidden_size == 64
    cfg.save_pretrained(tmp_path / "out")
    back = json.loads((tmp_path / "out" / "config.json").read_text())
    assert back["some_future_field"] == {"a": [1, 2]}
    assert back["id2label"] == {"0": "cat", "1": "dog"} and back["label2id"] == {"cat": 0, "dog": 1}
    assert tf.VivitConfig.from_pretrained(tmp_path / "out").id2label == {0: "cat", 1: "dog"}


def test_config_alias_and_errors(tmp_path):
    assert mf.VideoMAEConfig.from_dict({"qv_bias": False}).qkv_bias is False
    with pytest.raises(ValueError, match="expected model_type 'vivit', got 'videomae'"):
        mf.VivitConfig.from_dict({"model_type": "videomae"})
    with pytest.raises(ValueError, match="num_labels=3 disagrees with id2label"):
        mf.VivitConfig(num_labels=3, id2label={0: "a"})
    with pytest.raises(ValueError, match="problem_type"):
        mf.VivitConfig(problem_type="ranking")


def test_sharded_and_bin_checkpoints(tmp_path, vivit_ckpt):
    model = mf.VivitForVideoClassification.from_pretrained(vivit_ckpt)
    state = model.hf_state_dict()
    save_state_dict(state, tmp_path / "sharded", max_shard_bytes=20_000)
    assert len([f for f in os.listdir(tmp_path / "sharded") if f.endswith(".safetensors")]) > 1
    assert set(load_state_dict(str(tmp_path / "sharded"))) == set(state)
    (tmp_path / "bin").mkdir()
    torch.save(state, tmp_path / "bin" / "pytorch_model.bin")
    for folder in ("sharded", "bin"):
        model.config.save_pretrained(tmp_path / folder)
        other = mf.VivitForVideoClassification.from_pretrained(tmp_path / folder)
        with torch.no_grad():
            assert torch.equal(other(video()).logits, model(video()).logits)
    # transformers reads our shards too.
    model.save_pretrained(tmp_path / "ours", max_shard_size=20_000)
    ref = tf.VivitForVideoClassification.from_pretrained(tmp_path / "ours").eval()
    with torch.no_grad():
        assert_close(model(video()).logits, ref(video()).logits)


def test_bin_is_loaded_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"x": Evil()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match="weights-only"):
        load_state_dict(str(tmp_path))


def test_missing_weights_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no weights found"):
        load_state_dict(str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_state_dict(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no such checkpoint folder"):
        mf.VivitModel.from_pretrained(tmp_path / "nope")


def test_strict_report_lists_every_problem(tmp_path, vivit_ckpt):
    state = load_file(vivit_ckpt / "model.safetensors")
    state.pop("vivit.layernorm.weight")
    state["vivit.extra.weight"] = torch.zeros(1)
    state["classifier.weight"] = torch.zeros(7, 32)
    with pytest.raises(mf.CheckpointError) as err:
        mf.VivitForVideoClassification(mf.VivitConfig(**{k: v for k, v in TINY.items()})).load_hf_state_dict(state)
    msg = str(err.value)
    assert "missing (1): vivit.layernorm.weight" in msg
    assert "unexpected (1): vivit.extra.weight" in msg
    assert "classifier.weight checkpoint [7, 32] vs model [3, 32]" in msg


def test_new_head_needs_consent(vivit_ckpt):
    with pytest.raises(mf.CheckpointError, match="mis-shaped"):
        mf.VivitForVideoClassification.from_pretrained(vivit_ckpt, num_labels=5)
    loose = mf.VivitForVideoClassification.from_pretrained(vivit_ckpt, num_labels=5, strict=False)
    assert [k for k, _, _ in loose.load_report.mismatched] == ["classifier.weight", "classifier.bias"]
    assert loose.classifier.out_features == 5  # loaded what fits, kept its own head
    model = mf.VivitForVideoClassification.from_pretrained(vivit_ckpt, num_labels=5, ignore_mismatched_sizes=True)
    assert model.config.num_labels == 5 and model.classifier.out_features == 5
    assert model.load_report.reinitialised == ["classifier.weight", "classifier.bias"]
    ref = tf.VivitForVideoClassification.from_pretrained(vivit_ckpt).eval()
    with torch.no_grad():  # the backbone still loaded
        assert_close(model.vivit(video()).last_hidden_state, ref.vivit(video()).last_hidden_state)


def test_backbone_and_head_prefixes(tmp_path, vivit_ckpt):
    backbone = mf.VivitModel.from_pretrained(vivit_ckpt, strict=False)
    assert backbone.load_report.dropped_prefix == ["classifier.bias", "classifier.weight"]
    assert backbone.load_report.missing == ["pooler.dense.weight", "pooler.dense.bias"]  # the classifier has none
    with pytest.raises(mf.CheckpointError, match="missing"):
        mf.VivitModel.from_pretrained(vivit_ckpt)
    backbone.save_pretrained(tmp_path / "bb")
    with pytest.raises(mf.CheckpointError, match="missing .*classifier.weight"):
        mf.VivitForVideoClassification.from_pretrained(tmp_path / "bb")
    task = mf.VivitForVideoClassification.from_pretrained(tmp_path / "bb", strict=False)
    assert torch.equal(task.vivit.pos_embed, backbone.pos_embed)
    # from_pretrained skips random init, so what the checkpoint lacks must still get transformers' init.
    assert torch.equal(task.classifier.bias, torch.zeros(3)) and 0 < task.classifier.weight.std() < 0.05


def test_auto_picks_the_class(vivit_ckpt, tmp_path):
    model = mf.from_pretrained(vivit_ckpt)
    assert type(model) is mf.VivitForVideoClassification
    cfg = json.loads((vivit_ckpt / "config.json").read_text())
    cfg.pop("architectures")
    (vivit_ckpt / "config.json").write_text(json.dumps(cfg))
    assert type(mf.from_pretrained(vivit_ckpt, strict=False)) is mf.VivitModel
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="'bert' is not one mediaformers knows"):
        mf.from_pretrained(tmp_path / "x")


def test_hub_cache(tmp_path, vivit_ckpt, monkeypatch):
    """A hub id resolves from huggingface_hub's cache layout without the network."""
    snap = tmp_path / "hub" / "models--someorg--tiny-vivit" / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    for f in os.listdir(vivit_ckpt):
        (snap / f).write_bytes((vivit_ckpt / f).read_bytes())
    refs = tmp_path / "hub" / "models--someorg--tiny-vivit" / "refs"
    refs.mkdir()
    (refs / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = mf.from_pretrained("someorg/tiny-vivit", cache_dir=str(tmp_path / "hub"))
    assert type(model) is mf.VivitForVideoClassification
    model = mf.VivitForVideoClassification.from_pretrained("someorg/tiny-vivit", cache_dir=str(tmp_path / "hub"),
                                                          local_files_only=True)
    with pytest.raises(FileNotFoundError, match="not in the hub cache"):
        mf.from_pretrained("someorg/absent", cache_dir=str(tmp_path / "hub"))


def test_bfloat16_end_to_end(vivit_ckpt):
    fp32 = mf.VivitForVideoClassification.from_pretrained(vivit_ckpt)
    bf16 = mf.VivitForVideoClassification.from_pretrained(vivit_ckpt, dtype="bfloat16", device="cpu")
    assert bf16.dtype == torch.bfloat16
    with torch.no_grad():
        a, b = fp32(video()).logits, bf16(video().bfloat16()).logits
    assert b.dtype == torch.bfloat16
    assert_close(b.float(), a, atol=0.1, rtol=0.05)
    vm = mf.VideoMAEForPreTraining(mf.VideoMAEConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                     intermediate_size=32, decoder_hidden_size=16,
                                                     decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
                                                     decoder_intermediate_size=16, image_size=32, num_frames=4))
    vm = vm.to(torch.bfloat16)
    out = vm(video().bfloat16(), vm.make_mask(2, 0.5, seed=0))
    assert out.loss.dtype == torch.bfloat16 and torch.isfinite(out.loss)
    with pytest.raises(ValueError, match="dtype: expected one of"):
        mf.VivitModel.from_pretrained(vivit_ckpt, dtype="float8", strict=False)


def test_gradient_checkpointing_same_grads(vivit_ckpt):
    model = mf.VivitForVideoClassification.from_pretrained(vivit_ckpt).train()
    labels = torch.tensor([0, 2])
    model(video(), labels=labels).loss.backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.gradient_checkpointing_enable()
    model(video(), labels=labels).loss.backward()
    for a, b in zip(plain, [p.grad for p in model.parameters()]):
        assert_close(b, a)


def test_outputs_by_attribute_key_and_index(vivit_ckpt):
    model = mf.VivitForVideoClassification.from_pretrained(vivit_ckpt)
    with torch.no_grad():
        out = model(video(), labels=torch.tensor([1, 0]))
    assert out[0] is out.loss and out[1] is out.logits and out["logits"] is out.logits
    loss, logits = out.to_tuple()
    assert len(out) == 2 and list(out.keys()) == ["loss", "logits"]
    with pytest.raises(KeyError):
        out["hidden_states"]


def test_multilabel_and_regression_losses(vivit_ckpt):
    model = mf.VivitForVideoClassification.from_pretrained(vivit_ckpt)
    ref = tf.VivitForVideoClassification.from_pretrained(vivit_ckpt).eval()
    multi = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    with torch.no_grad():
        assert_close(model(video(), labels=multi).loss, ref(video(), labels=multi).loss)
    with pytest.raises(ValueError, match="multi-label classification needs shape"):
        model(video(), labels=torch.ones(2, 5))


def test_unavailable_device_is_a_clear_error(vivit_ckpt):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="no CUDA device; use 'cpu'"):
        mf.VivitForVideoClassification.from_pretrained(vivit_ckpt, device="cuda")
    with pytest.raises(ValueError, match="device: expected"):
        mf.VivitForVideoClassification.from_pretrained(vivit_ckpt, device="gpu0")
