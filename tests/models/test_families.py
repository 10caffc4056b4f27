"""One suite over every declared family and class (as timm's test_models.py runs over list_models()).

Tiny configs come from the declarations, so a new family is tested here without editing this file.
Parity with transformers lives in the per-family test files.
"""
import os

import pytest
import torch

import mediaformers as mf
from mediaformers.family import families
from tests.parity import assert_close, perturb

FAMILIES = sorted(families().values(), key=lambda f: f.name)
# Every class at the tiny config, and at each declared variant of it.
CASES = [pytest.param(fam, cls, variant, id="-".join(filter(None, (fam.name, cls.__name__, variant))))
         for fam in FAMILIES for cls in fam.classes for variant in (None, *fam.variants)]


def build(fam, cls, variant=None, seed: int = 0):
    torch.manual_seed(seed)
    config = fam.config_for(cls, fam.config(**{**fam.tiny, **fam.variants.get(variant, {})}))
    return perturb(cls(config), seed), config


def inputs_for(fam, cls, config, batch: int = 2):
    torch.manual_seed(1)
    return fam.dummy_inputs(cls, config, batch)


def tensors(out) -> list[torch.Tensor]:
    """Every floating tensor of an output, nested outputs and tuples included, in order."""
    found = []
    for value in out.to_tuple() if hasattr(out, "to_tuple") else out:
        if isinstance(value, torch.Tensor):
            if value.is_floating_point():
                found.append(value)
        elif value is not None:
            found.extend(tensors(value))
    return found


def scalar(out) -> torch.Tensor:
    """Depends on every output element with unequal weights (a plain sum hides LayerNorm outputs)."""
    return sum((t.float() * torch.linspace(-1, 1, t.numel()).reshape(t.shape)).sum() for t in tensors(out))


@pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: f.name)
def test_declaration_is_consistent(fam):
    assert fam.config.model_type == fam.model_type and fam.backbone.is_backbone
    for cls in fam.classes:
        assert cls.converter is fam.converter and getattr(mf, cls.__name__) is cls
    assert getattr(mf, fam.config.__name__) is fam.config
    assert fam.accepts and fam.processors and fam.task in fam.tasks
    for spec in fam.processors.values():
        spec.load()  # names a class that exists
        assert set(spec.limits) <= set(spec.settings(fam.config(**fam.tiny)))
    for name, change in fam.variants.items():
        assert set(change) <= set(fam.config.__dataclass_fields__), name  # config fields, not typos
    for name, entry in fam.pretrained.items():
        assert entry.task in fam.tasks and name in mf.list_models() and "/" in entry.hub_id
    if fam.task not in ("zero-shot-classification", "feature-extraction"):
        assert fam.head() is not None, "a classification task needs a class with is_classifier"


@pytest.mark.parametrize("fam, cls, variant", CASES)
def test_save_load_round_trip(fam, cls, variant, tmp_path):
    model, config = build(fam, cls, variant)
    model.save_pretrained(tmp_path)
    back = mf.from_pretrained(tmp_path)
    assert type(back) is cls
    inputs = inputs_for(fam, cls, config)
    with torch.no_grad():
        for a, b in zip(tensors(model(**inputs)), tensors(back(**inputs))):
            assert_close(b, a)


@pytest.mark.parametrize("fam, cls, variant", CASES)
def test_dummy_inputs_forward_backward(fam, cls, variant):
    model, config = build(fam, cls, variant)
    model.train()  # pre-training heads run every stream only in training mode
    torch.manual_seed(2)
    inputs = inputs_for(fam, cls, config)
    leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items() if v.is_floating_point() and k != "labels"}
    scalar(model(**{**inputs, **leaves})).backward()
    for name, x in leaves.items():
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0, name
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("fam, cls, variant", CASES)
def test_pooled_embedding(fam, cls, variant):
    """What feature-extraction and `mediaformers info` run, from any class of the family."""
    model, config = build(fam, cls, variant)
    with torch.no_grad():
        pooled = fam.pooled(model, inputs_for(fam, cls, config))
    assert pooled.dim() == 2 and pooled.shape[0] == 2 and torch.isfinite(pooled).all()


@pytest.mark.parametrize("fam, cls, variant", CASES)
def test_bfloat16_forward(fam, cls, variant):
    model, config = build(fam, cls, variant)
    inputs = inputs_for(fam, cls, config)
    with torch.no_grad():
        ref = tensors(model(**inputs))
        model = model.to(torch.bfloat16)
        half = {k: v.bfloat16() if v.is_floating_point() and k != "labels" else v for k, v in inputs.items()}
        out = tensors(model(**half))
    assert len(out) == len(ref)
    for a, b in zip(out, ref):
        assert a.dtype == torch.bfloat16 and torch.isfinite(a).all()
        # bf16 keeps 8 bits of mantissa: a loose bound, scaled to the values.
        assert (a.float() - b).abs().max() <= 0.1 + 0.05 * b.abs().max()


@pytest.mark.parametrize("fam, cls, variant", CASES)
def test_gradient_checkpointing_same_loss_and_gradients(fam, cls, variant):
    model, config = build(fam, cls, variant)
    model.train()
    inputs = inputs_for(fam, cls, config)

    def run():
        model.zero_grad()
        torch.manual_seed(2)  # the same MAE masks (and dropout, if any) both times
        loss = scalar(model(**inputs))
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    loss, grads = run()
    model.gradient_checkpointing_enable()
    assert any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
    loss_ckpt, grads_ckpt = run()
    assert_close(loss_ckpt, loss)
    assert sorted(grads_ckpt) == sorted(grads)
    for name, g in grads.items():
        assert_close(grads_ckpt[name], g, name)


@pytest.mark.parametrize("fam, cls, variant", CASES)
def test_outputs_by_index_key_and_attribute(fam, cls, variant):
    model, config = build(fam, cls, variant)
    with torch.no_grad():
        out = model(**inputs_for(fam, cls, config))
    values = out.to_tuple()
    assert len(out) == len(values) == len(out.keys()) > 0
    for i, key in enumerate(out.keys()):
        assert out[key] is getattr(out, key)
        assert out[i] is values[i] or out[i] == values[i]
    with pytest.raises(KeyError):
        out["no_such_field"]


@pytest.mark.parametrize("fam, cls, variant", CASES)
def test_bad_shapes_name_the_input(fam, cls, variant):
    model, config = build(fam, cls, variant)
    inputs = inputs_for(fam, cls, config)
    for key, value in inputs.items():
        with pytest.raises(ValueError, match=key):
            model(**{**inputs, key: value[0]})  # the batch dim left out


def test_registry_name_local_folder_and_missing_path(tmp_path, monkeypatch):
    fam = FAMILIES[0]
    name = next(n for f in FAMILIES for n in f.pretrained)

    def no_network(*args, **kwargs):
        raise AssertionError("the hub was asked")

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    # A folder named like a registry entry is loaded, not downloaded.
    model, _ = build(fam, fam.backbone)
    monkeypatch.chdir(tmp_path)
    model.save_pretrained(tmp_path / name)
    assert type(mf.from_pretrained(name)) is fam.backbone
    assert mf.pipeline("feature-extraction", model=name).task == "feature-extraction"
    # Elsewhere the name is its hub id, for from_pretrained as for pipeline().
    asked = []
    monkeypatch.chdir(tmp_path / name)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda ref, **kw: asked.append(ref) or str(tmp_path / name))
    assert type(mf.from_pretrained(name)) is fam.backbone
    mf.pipeline("feature-extraction", model=name)
    hub_id = next(f.pretrained[name].hub_id for f in FAMILIES if name in f.pretrained)
    assert asked == [hub_id, hub_id]
    # A path that does not exist is "no such folder", before any network call.
    for missing in (f"./{name}-missing", os.path.join("nested", "dir", name)):
        with pytest.raises(FileNotFoundError, match="no such checkpoint folder"):
            mf.from_pretrained(missing)
