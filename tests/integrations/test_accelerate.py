"""accelerate's Accelerator with our model, against transformers' class: fp32 and bf16 mixed precision
(accelerate wraps forward and rebuilds its output as ``type(out)(a_dict)`` in fp32)."""
from __future__ import annotations

import pytest
import torch

from tests.integrations.conftest import fresh

accelerate = pytest.importorskip("accelerate")


def _accelerator(precision: str):
    # one Accelerator setting per process unless reset (Trainer tests in this process make their own)
    accelerate.state.AcceleratorState._reset_state(reset_partial_state=True)
    return accelerate.Accelerator(mixed_precision=precision, cpu=True)


@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_accelerator_step_matches_transformers(videomae_pair, clips, precision):
    batch = {"pixel_values": torch.stack([c["pixel_values"] for c in clips[:2]]), "labels": torch.tensor([0, 2])}
    results = {}
    for side, base in zip(("ours", "transformers"), videomae_pair[:2]):
        acc = _accelerator(precision)
        model = acc.prepare(fresh(base))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        out = model(**batch)
        assert type(out).__name__ == "ImageClassifierOutput" and out.loss.dim() == 0
        assert out.logits.dtype == torch.float32  # converted back from bf16
        acc.backward(out.loss)
        opt.step()
        with torch.no_grad():
            results[side] = (out.loss.detach(), model(**batch).logits)
    accelerate.state.AcceleratorState._reset_state(reset_partial_state=True)
    tol = {"atol": 1e-5, "rtol": 1e-5} if precision == "no" else {"atol": 3e-2, "rtol": 0}
    torch.testing.assert_close(results["ours"], results["transformers"], **tol)
