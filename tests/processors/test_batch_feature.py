"""Processors return a BatchFeature: a dict whose ``.to`` casts and moves as transformers' BatchFeature.to."""
from __future__ import annotations

import pickle

import pytest
import torch

from mediaformers.processors.batch_feature import BatchFeature


def _features():
    return {"pixel_values": torch.ones(2, 3), "pixel_mask": torch.ones(2, dtype=torch.long), "n": 3}


@pytest.mark.parametrize("args", [(torch.float16,), ("cpu",), ("cpu", torch.bfloat16)])
def test_to_as_transformers(args):
    transformers = pytest.importorskip("transformers")
    ours, theirs = BatchFeature(_features()).to(*args), transformers.BatchFeature(_features()).to(*args)
    assert isinstance(ours, dict) and ours.keys() == theirs.keys()
    for key in ("pixel_values", "pixel_mask"):
        assert ours[key].dtype == theirs[key].dtype and ours[key].device == theirs[key].device
    again = pickle.loads(pickle.dumps(ours))  # DataLoader workers send it between processes
    assert type(again) is BatchFeature and ours.n == again.n == 3
    assert torch.equal(again.pixel_values, ours.pixel_values)


def test_bad_uses_say_what_was_expected():
    with pytest.raises(ValueError, match=r"BatchFeature.to: expected a device or a dtype, got \[1\]"):
        BatchFeature(_features()).to([1])
    with pytest.raises(AttributeError, match=r"BatchFeature has no key 'nope'; keys: \['n', 'pixel_mask', 'pixel_values'\]"):
        BatchFeature(_features()).nope  # noqa: B018 (the access is the test)
