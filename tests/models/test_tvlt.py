"""TVLT parity with transformers 4.57.1 (via golden files: transformers 5 has no TVLT), round trips, bad inputs.

Goldens: tools/make_tvlt_goldens.py under tools/.venv-tvlt. The reverse direction (our checkpoint
run by 4.57.1) needs that venv and is skipped without it.
"""
import json
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import mediaformers as mf
from tests.parity import assert_close, perturb

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "tvlt_models"
REF_PYTHON = ROOT / "tools" / ".venv-tvlt" / "bin" / "python"
CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
CLASSES = ["TvltModel", "TvltForPreTraining", "TvltForAudioVisualClassification"]
FLOAT_INPUTS = ("pixel_values", "audio_values", "pixel_values_mixed")


def golden(case: str, cls: str) -> tuple[Path, dict, dict[str, torch.Tensor], dict]:
    folder = FIXTURES / case / cls
    io = load_file(folder / "io.safetensors")
    meta = json.loads((folder / "meta.json").read_text())
    return folder, {k[3:]: v for k, v in io.items() if k.startswith("in.")}, io, meta


def run(model, inputs: dict, kwargs: dict, train: bool, seed: int) -> dict[str, torch.Tensor]:
    """Forward under ``seed`` and backward, flattened like the goldens (``out.*``, ``grad.*``)."""
    model.train(train)
    leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items() if k in FLOAT_INPUTS}
    torch.manual_seed(seed)
    attn = isinstance(model, mf.TvltModel)
    out = model(**{**inputs, **leaves}, **kwargs, output_hidden_states=True, output_attentions=attn)
    loss = getattr(out, "loss", None)
    x = out.last_hidden_state if loss is None else None
    (loss if loss is not None else (x * torch.linspace(-1, 1, x.numel()).reshape(x.shape)).sum()).backward()
    flat = {}
    for key in out.keys():
        value = getattr(out, key)
        if isinstance(value, tuple):
            flat.update({f"out.{key}.{i}": v.detach() for i, v in enumerate(value)})
        else:
            flat[f"out.{key}"] = value.detach()
    flat.update({f"grad.{k}": v.grad for k, v in leaves.items() if v.grad is not None})
    return flat


def compare(ours: dict, io: dict, prefix: str) -> None:
    expected = {k[len(prefix) + 1:]: v for k, v in io.items() if k.startswith(prefix + ".")}
    assert sorted(ours) == sorted(expected), f"{prefix}: fields {sorted(ours)} vs reference {sorted(expected)}"
    for key, ref in expected.items():
        if ref.dtype == torch.int64:  # ids_restore: exact
            assert torch.equal(ours[key], ref), f"{prefix}.{key} differs"
        else:
            assert_close(ours[key].float(), ref, f"{prefix}.{key}")


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("case", CASES)
def test_matches_reference_goldens(case, cls):
    folder, inputs, io, meta = golden(case, cls)
    model = getattr(mf, cls).from_pretrained(folder)
    assert model.load_report.ok, str(model.load_report)
    for r in meta["runs"]:
        compare(run(model, inputs, r["kwargs"], r["train"], meta["seed"]), io, r["name"])


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("case", CASES)
def test_save_round_trip_key_set(tmp_path, case, cls):
    folder, _, _, meta = golden(case, cls)
    model = getattr(mf, cls).from_pretrained(folder)
    model.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        assert sorted(f.keys()) == meta["keys"]  # exactly the reference's key set
    ref = load_file(folder / "model.safetensors")
    ours = load_file(tmp_path / "model.safetensors")
    assert all(torch.equal(ours[k], ref[k]) for k in ref)
    cfg = json.loads((tmp_path / "config.json").read_text())
    ref_cfg = json.loads((folder / "config.json").read_text())
    assert {k: cfg.get(k) for k in ref_cfg if k != "transformers_version"} == {
        k: v for k, v in ref_cfg.items() if k != "transformers_version"}
    assert set(cfg) - set(ref_cfg) <= {"id2label", "label2id"}  # 4.57.1 leaves out the default labels
    again = getattr(mf, cls).from_pretrained(tmp_path)
    assert again.load_report.ok


def test_backbone_loads_task_checkpoints():
    model = mf.TvltModel.from_pretrained(FIXTURES / "base" / "TvltForPreTraining")
    assert model.load_report.ok and "matching_head.fc.weight" in model.load_report.dropped_prefix
    head = mf.TvltForAudioVisualClassification.from_pretrained(FIXTURES / "base" / "TvltModel", strict=False)
    assert sorted(head.load_report.missing) == ["classifier.0.bias", "classifier.0.weight", "classifier.1.bias",
                                        "classifier.1.weight", "classifier.3.bias", "classifier.3.weight"]


@pytest.mark.skipif(not REF_PYTHON.exists(), reason="reference venv tools/.venv-tvlt not built")
def test_reference_runs_our_checkpoints(tmp_path):
    """Reverse direction: checkpoints we save (perturbed again) load in 4.57.1 with every key used."""
    jobs, expected = [], {}
    for case, cls in [("padded-patchlevel", c) for c in CLASSES] + [("rect-regression", "TvltForPreTraining"),
                                                                     ("base", "TvltForPreTraining")]:
        folder, inputs, _, meta = golden(case, cls)
        model = perturb(getattr(mf, cls).from_pretrained(folder), seed=7)
        out_dir = tmp_path / f"{case}-{cls}"
        model.save_pretrained(out_dir)
        expected[str(out_dir / "out.safetensors")] = {
            r["name"]: run(model, inputs, r["kwargs"], r["train"], meta["seed"]) for r in meta["runs"]}
        jobs.append(dict(folder=str(out_dir), case=case, cls=cls, out=str(out_dir / "out.safetensors")))
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    proc = subprocess.run([str(REF_PYTHON), str(ROOT / "tools" / "make_tvlt_goldens.py"), "--jobs",
                           str(tmp_path / "jobs.json")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for file, runs in expected.items():
        ref = load_file(file)
        for name, ours in runs.items():
            compare(ours, ref, name)


# ---- masking ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base():
    folder, inputs, io, meta = golden("base", "TvltModel")
    return mf.TvltModel.from_pretrained(folder), inputs, io, meta


def test_generator_and_explicit_noise_reproduce_reference_masks(base):
    model, inputs, io, meta = base
    x = {k: inputs[k] for k in ("pixel_values", "audio_values")}
    b, n_v, n_a = 2, io["masked.out.pixel_ids_restore"].shape[1], io["masked.out.audio_ids_restore"].shape[1]
    # The reference draws pixel noise, then frame-level audio noise, from the global RNG.
    torch.manual_seed(meta["seed"])
    noise_v = torch.rand(b, n_v)
    noise_a = torch.rand(b, n_a // 2).unsqueeze(-1).repeat(1, 1, 2).view(b, n_a)
    with torch.no_grad():
        out = model(**x, mask_pixel=True, mask_audio=True, pixel_noise=noise_v, audio_noise=noise_a)
        g1 = model(**x, mask_pixel=True, mask_audio=True, generator=torch.Generator().manual_seed(meta["seed"]))
        state = torch.get_rng_state()
        g2 = model(**x, mask_pixel=True, mask_audio=True, generator=torch.Generator().manual_seed(meta["seed"]))
        assert torch.equal(state, torch.get_rng_state())  # a generator leaves the global RNG alone
    for key in ("pixel_ids_restore", "audio_ids_restore", "pixel_label_masks", "audio_label_masks"):
        assert torch.equal(getattr(out, key).float(), io[f"masked.out.{key}"].float()), key
        assert torch.equal(getattr(g1, key), getattr(g2, key)), key
        assert torch.equal(getattr(g1, key), getattr(out, key)), key  # same stream as seeding the global RNG
    assert_close(out.last_hidden_state, io["masked.out.last_hidden_state"], "last_hidden_state")
    # 50% of 16 pixel patches and 30% of 16 audio patches (whole time steps) are masked.
    assert out.pixel_label_masks.sum(1).tolist() == [8.0, 8.0]
    # Frame-level: 5 of 16 audio patches masked, whole time steps first (so at most one split step).
    assert out.audio_label_masks.sum(1).tolist() == [5.0, 5.0]
    steps = out.audio_label_masks.view(b, -1, 2)
    assert ((steps[..., 0] != steps[..., 1]).sum(1) <= 1).all()


def test_sdpa_and_explicit_attention_agree(base):
    model, inputs, _, _ = base
    x = {k: inputs[k] for k in ("pixel_values", "audio_values")}
    mask = {"pixel_mask": torch.ones(2, 16), "audio_mask": torch.ones(2, 16)}
    mask["audio_mask"][1, 5:] = 0
    with torch.no_grad():
        a = model(**x, **mask).last_hidden_state
        b = model(**x, **mask, output_attentions=True)
    assert_close(a, b.last_hidden_state, "sdpa vs eager")
    assert b.attentions[0][1, :, :, 1 + 16 + 5:].abs().max() == 0  # padded audio keys get no weight


def test_lone_mask_is_honoured(base):
    model, inputs, _, _ = base
    x = {k: inputs[k] for k in ("pixel_values", "audio_values")}
    am = torch.ones(2, 16)
    am[:, 8:] = 0
    with torch.no_grad():
        lone = model(**x, audio_mask=am).last_hidden_state
        both = model(**x, pixel_mask=torch.ones(2, 16), audio_mask=am).last_hidden_state
        none = model(**x).last_hidden_state
    assert torch.equal(lone, both) and not torch.allclose(lone, none)


def test_tuple_outputs(base):
    model, inputs, _, _ = base
    with torch.no_grad():
        out = model(inputs["pixel_values"], inputs["audio_values"], return_dict=False)
    # transformers 4.57's seven slots: three hidden states, then the four masking ones (None: nothing masked).
    assert isinstance(out, tuple) and len(out) == 7 and out[3:] == (None, None, None, None)


@pytest.mark.parametrize("cls", CLASSES)
def test_prune_heads_equals_silenced_heads_and_survives_a_round_trip(tmp_path, cls):
    """transformers 4.57's prune_heads: a removed head contributes nothing, the same as zeroing its
    columns of the output projection; config.pruned_heads rebuilds the pruned shapes on reload."""
    folder, inputs, _, _ = golden("base", cls)
    model = getattr(mf, cls).from_pretrained(folder).eval()
    x = {k: inputs[k] for k in (*FLOAT_INPUTS, "labels") if k in inputs}
    layers, heads = model.config.num_hidden_layers, model.config.num_attention_heads
    width = model.config.hidden_size // heads
    first = lambda out: out[0] if cls != "TvltForPreTraining" else out.matching_logits  # noqa: E731
    silenced = getattr(mf, cls).from_pretrained(folder).eval()
    with torch.no_grad():
        for layer, head in ((0, 1), (layers - 1, 0), (layers - 1, heads - 1)):
            silenced.base_model.encoder.blocks[layer].attn.proj.weight[:, head * width:(head + 1) * width] = 0
        silenced = first(silenced(**x))
        before = model.num_parameters()
        model.prune_heads({0: [1], layers - 1: [0]})
        model.prune_heads({layers - 1: [heads - 1, 0]})  # 0 again: ignored, as in transformers
        pruned = first(model(**x))
    assert_close(pruned, silenced, "pruned vs silenced heads")
    assert model.config.pruned_heads == {0: [1], layers - 1: [0, heads - 1]}
    assert before - model.num_parameters() == 3 * width * (4 * model.config.hidden_size + 3)
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["pruned_heads"] == {"0": [1], str(layers - 1): [0, heads - 1]}
    again = getattr(mf, cls).from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(first(again(**x)), pruned)
    with pytest.raises(ValueError, match="heads_to_prune: expected layer indices"):
        model.prune_heads({layers: [0]})


def test_prune_heads_after_apply_precision():
    """bf16 (weights packed for oneDNN): pruning then packing and packing then pruning agree, bit for
    bit, and stay packed; int8: a clear error, since its quantised projections cannot be cut."""
    from mediaformers.layers.packed import PackedLinear, can_pack
    from mediaformers.precision import apply_precision

    cls = "TvltForAudioVisualClassification"
    folder, inputs, _, _ = golden("base", cls)
    x = {k: inputs[k] for k in FLOAT_INPUTS if k in inputs}
    prune = {0: [1], 1: [0, 2]}
    first = getattr(mf, cls).from_pretrained(folder).eval()
    first.prune_heads(prune)
    apply_precision(first, "bf16", "cpu")
    after = apply_precision(getattr(mf, cls).from_pretrained(folder).eval(), "bf16", "cpu")
    after.prune_heads(prune)
    attn = after.base_model.encoder.blocks[1].attn
    if can_pack("cpu"):
        assert isinstance(attn.qkv, PackedLinear) and isinstance(attn.proj, PackedLinear)
    with torch.inference_mode():
        assert torch.equal(after(**x)[0], first(**x)[0])
    int8 = apply_precision(getattr(mf, cls).from_pretrained(folder).eval(), "int8", "cpu")
    with pytest.raises(NotImplementedError, match="prune the fp32 model, then apply the precision"):
        int8.prune_heads(prune)


def test_prune_heads_only_where_the_reference_has_it():
    with pytest.raises(NotImplementedError, match="TVLT"):
        mf.ASTModel(mf.ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=8,
                                 max_length=32, num_mel_bins=16)).prune_heads({0: [0]})


# ---- bad input ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pre():
    return mf.TvltForPreTraining.from_pretrained(FIXTURES / "base" / "TvltForPreTraining")


def _x(b=2, t=4, audio_t=64):
    return dict(pixel_values=torch.zeros(b, t, 3, 16, 16), audio_values=torch.zeros(b, 1, audio_t, 16))


@pytest.mark.parametrize(
    "change, msg",
    [
        (dict(pixel_values=torch.zeros(2, 5, 3, 16, 16)), r"pixel_values: expected at most 4 frames"),
        (dict(pixel_values=torch.zeros(2, 4, 1, 16, 16)), r"pixel_values: expected 3 channels"),
        (dict(pixel_values=torch.zeros(2, 4, 3, 16, 24)), r"pixel_values: expected frames of 16x16"),
        (dict(pixel_values=torch.zeros(2, 3, 16, 16)), r"pixel_values: expected a 5-D tensor"),
        (dict(audio_values=torch.zeros(2, 1, 64, 32)), r"audio_values: expected shape \(batch, 1, time <= 64, 16\)"),
        (dict(audio_values=torch.zeros(2, 1, 72, 16)), r"got shape \(2, 1, 72, 16\)"),
        (dict(audio_values=torch.zeros(2, 64, 16)), r"audio_values: expected a 4-D tensor"),
        (dict(audio_values=torch.zeros(3, 1, 64, 16)), r"audio_values: expected batch 2"),
        (dict(pixel_mask=torch.ones(2, 12)), r"pixel_mask: expected shape \(2, 16\) \(batch, patches\), got \(2, 12\)"),
        (dict(audio_mask=torch.ones(2, 16)), r"audio_mask: expected shape \(2, 12\)"),  # 48 time steps -> 12
        (dict(pixel_mask=torch.full((2, 16), 0.5)), r"pixel_mask: expected 0/1 values"),
    ],
)
def test_bad_inputs(base, change, msg):
    model = base[0]
    x = _x(audio_t=48) if "audio_mask" in change else _x()
    with pytest.raises(ValueError, match=msg):
        model(**{**x, **change})


def test_bad_noise(base):
    with pytest.raises(ValueError, match=r"pixel_noise: expected a float tensor of shape \(2, 16\), got shape \(2, 15\)"):
        base[0](**_x(), mask_pixel=True, pixel_noise=torch.rand(2, 15))


def test_bad_pretraining_inputs(pre):
    x = _x()
    pre.eval()
    with pytest.raises(ValueError, match="pixel_values_mixed: the matching task"):
        pre(**x, labels=torch.ones(2, 1))
    with pytest.raises(ValueError, match="labels: the matching task"):
        pre(**x, pixel_values_mixed=x["pixel_values"])
    with pytest.raises(ValueError, match=r"labels: expected shape \(2,\) or \(2, 1\), got \(3,\)"):
        pre(**x, pixel_values_mixed=x["pixel_values"], labels=torch.ones(3))
    with pytest.raises(ValueError, match=r"pixel_values_mixed: expected frames of 16x16"):
        pre(**x, pixel_values_mixed=torch.zeros(2, 4, 3, 8, 8), labels=torch.ones(2))
    with pytest.raises(ValueError, match=r"pixel_mask_mixed: expected shape \(2, 16\)"):
        pre(**x, pixel_values_mixed=x["pixel_values"], pixel_mask_mixed=torch.ones(2, 4), labels=torch.ones(2))
    only_mae = mf.TvltForPreTraining(pre.config.replace(task_matching=False)).eval()
    with pytest.raises(ValueError, match="call model.train"):
        only_mae(**x)
    out = only_mae.train()(**x)  # MAE only: no matching logits (the reference fails here)
    assert out.matching_logits is None and out.pixel_logits.shape == (2, 16, 192)


def test_bad_configs():
    with pytest.raises(ValueError, match="audio_mask_type: expected one of"):
        mf.TvltConfig(audio_mask_type="frame")
    with pytest.raises(ValueError, match="task_matching or task_mae"):
        mf.TvltForPreTraining(mf.TvltConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                            task_matching=False, task_mae=False))
    with pytest.raises(ValueError, match=r"square patches, got \[16, 8\]"):
        mf.TvltForPreTraining(mf.TvltConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                            image_patch_size=[16, 8], decoder_num_hidden_layers=1))


def test_bad_classification_labels():
    model = mf.TvltForAudioVisualClassification.from_pretrained(FIXTURES / "base" / "TvltForAudioVisualClassification")
    with pytest.raises(ValueError, match=r"class ids of shape \(2,\), got \(2, 1\)"):
        model(**_x(), labels=torch.zeros(2, 1, dtype=torch.long))
    reg = mf.TvltForAudioVisualClassification(model.config.replace(loss_type="regression"))
    with pytest.raises(ValueError, match=r"regression needs shape \(2, 2\), got \(2,\)"):
        reg(**_x(), labels=torch.zeros(2))
