"""Model outputs read as transformers' ModelOutput: built from one dict (accelerate's ``type(out)(d)``),
flattened as a pytree of the non-None fields, keys/attributes/index in step."""
from __future__ import annotations

import pytest
import torch
import torch.utils._pytree as pytree

from mediaformers.outputs import ImageClassifierOutput


def test_same_reads_as_transformers():
    transformers = pytest.importorskip("transformers")
    loss, logits = torch.tensor(1.0), torch.ones(2, 3)
    for d in ({"loss": loss, "logits": logits}, {"logits": logits}):
        ours, theirs = ImageClassifierOutput(d), transformers.modeling_outputs.ImageClassifierOutput(d)
        assert list(ours.keys()) == list(theirs.keys()) and len(ours) == len(theirs)
        assert ours.logits is theirs.logits is ours["logits"] is ours[len(d) - 1]
        assert [type(v) for v in ours.to_tuple()] == [type(v) for v in theirs.to_tuple()]
        leaves, spec = pytree.tree_flatten(ours)
        assert len(leaves) == len(pytree.tree_flatten(theirs)[0]) == len(d)
        assert pytree.tree_unflatten(leaves, spec).keys() == ours.keys()
    out = ImageClassifierOutput(logits=logits)
    out.loss = loss
    assert list(out) == ["loss", "logits"] and "loss" in out
    out["loss"] = None
    assert list(out) == ["logits"] and out.get("loss") is None


def test_bad_uses_name_the_fields():
    with pytest.raises(TypeError, match=r"ImageClassifierOutput: expected fields \['loss', 'logits', "
                                        r"'hidden_states', 'attentions'\], got \['logit'\]"):
        ImageClassifierOutput({"logit": torch.ones(1)})
    with pytest.raises(KeyError, match="has no field 'logit'"):
        ImageClassifierOutput()["logit"] = 1
    with pytest.raises(KeyError):
        ImageClassifierOutput(logits=torch.ones(1))["loss"]
