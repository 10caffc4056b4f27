"""State dicts in memory, both ways, against the installed transformers' classes: ``load_hf_state_dict``
takes ``hf_model.state_dict()`` (its module names, not its file names) and ``hf_model.load_state_dict`` takes
``ours.hf_state_dict(layout="memory")``; the two models then give the same outputs."""
from __future__ import annotations

import pytest
import torch

from mediaformers.family import families
from tests.parity import hf_load, perturb

transformers = pytest.importorskip("transformers")

CASES = [(fam, cls) for fam in sorted(families().values(), key=lambda f: f.name) for cls in fam.classes
         if hasattr(transformers, cls.__name__)]


def _first_tensor(out):
    return next(v for v in out.values() if isinstance(v, torch.Tensor))


@pytest.mark.parametrize("fam,cls", CASES, ids=[c.__name__ for _, c in CASES])
def test_state_dicts_in_memory_both_ways(tmp_path, fam, cls):
    torch.manual_seed(0)
    ours = perturb(cls(fam.config_for(cls, fam.config(**fam.tiny))))
    ours.save_pretrained(tmp_path)
    theirs = hf_load(getattr(transformers, cls.__name__), str(tmp_path))
    inputs = fam.dummy_inputs(cls, ours.config, 2)
    assert set(ours.hf_state_dict(layout="memory")) == set(theirs.state_dict()), "names differ from transformers'"

    # transformers' in-memory state into a fresh model of ours
    fresh = cls(ours.config).eval()
    report = fresh.load_hf_state_dict(theirs.state_dict())
    assert report.ok, str(report)
    # ours into a fresh transformers model, strictly
    hf_fresh = getattr(transformers, cls.__name__)(theirs.config).eval()
    hf_fresh.load_state_dict(ours.hf_state_dict(layout="memory"), strict=True)
    with torch.no_grad():
        want = _first_tensor(theirs(**inputs))
        torch.testing.assert_close(_first_tensor(fresh(**inputs)), want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(_first_tensor(hf_fresh(**inputs)), want, atol=1e-5, rtol=1e-5)


def test_unknown_layout_is_refused():
    fam, cls = CASES[0]
    with pytest.raises(ValueError, match=r"layout: expected one of \['file', 'memory'\], got 'disk'"):
        cls(fam.config_for(cls, fam.config(**fam.tiny))).hf_state_dict(layout="disk")
