"""Build on the meta device, then one init or one load: the same model as one built in Python."""
import pytest
import torch

from mediaformers.family import families

CASES = [(fam, cls) for fam in families().values() for cls in fam.classes]


@pytest.mark.parametrize(("fam", "cls"), CASES, ids=[c.__name__ for _, c in CASES])
def test_meta_build_then_init_matches_a_python_build(fam, cls):
    config = fam.config_for(cls, fam.config(**fam.tiny))
    torch.manual_seed(0)
    direct = cls(config)
    meta = cls.build_on_meta(config)
    assert meta.is_meta and all(t.is_meta for t in meta.buffers())
    meta._materialise(init=True)
    assert not meta.is_meta
    ours = {k: v.detach() for k, v in meta.named_parameters()}
    theirs = {k: v.detach() for k, v in direct.named_parameters()}
    for name, buf in direct.named_buffers():  # computed tables (sin-cos positions, zero k bias) come back
        assert torch.equal(dict(meta.named_buffers())[name], buf), name
    for name, value in theirs.items():
        got = ours[name]
        assert torch.isfinite(got).all(), name
        if (value == 0).all() or (value == 1).all():  # zero biases, unit norms, zero-initialised tokens
            assert torch.equal(got, value), name
        elif value.numel() > 16:  # random: transformers' scheme, so the same spread
            assert 0.5 < float(got.std() / value.std()) < 2, name
        else:
            assert torch.equal(got, value), name  # constants such as AltCLIP's logit_scale


def test_a_python_build_is_initialised_and_meta_costs_nothing():
    fam = families()["videomae"]
    model = fam.backbone(fam.config(**fam.tiny))
    assert not model.is_meta and 0 < model.encoder.blocks[0].attn.qkv.weight.std() < 0.05
    huge = fam.config(**{**fam.tiny, "hidden_size": 2**20, "num_attention_heads": 2, "intermediate_size": 2**20})
    meta = fam.backbone.build_on_meta(huge)  # tens of GiB if it were real
    assert sum(p.numel() for p in meta.parameters()) > 2**40 // 2**8
