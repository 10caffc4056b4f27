"""torch.compile traces every family's forward as one graph: no graph breaks (each one splits the
graph and, with per-call guards, recompiled until dynamo's limit), same outputs as eager."""
from __future__ import annotations

import pytest

from tests.tiny_families import tiny_cases

FIELDS = ("logits", "logits_per_image", "pooler_output", "last_hidden_state")


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", sorted(tiny_cases()))
def test_one_graph_and_eager_outputs(name):
    import torch._dynamo  # imported here: the rest of the suite runs without dynamo

    model, inputs = tiny_cases()[name]
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model)(**inputs)
    assert explained.graph_break_count == 0, [str(b.reason) for b in explained.break_reasons]
    assert explained.graph_count == 1
    with torch.no_grad():
        want = model(**inputs)
        got = torch.compile(model, backend="eager")(**inputs)
    field = next(f for f in FIELDS if getattr(want, f, None) is not None)
    torch.testing.assert_close(getattr(got, field), getattr(want, field))
