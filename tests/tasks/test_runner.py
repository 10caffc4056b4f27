"""The batch runner: workers prepare single items, the main process groups them into batches."""
from __future__ import annotations

import os

import pytest
import torch

from mediaformers.tasks import runner
from mediaformers.tasks.inputs import Item


def _prepare(n: int) -> dict[str, torch.Tensor]:
    if n == 3:
        raise ValueError("three is refused")
    return {"x": torch.full((n % 2 + 1, 2), float(n)), "pid": torch.tensor([os.getpid()] * (n % 2 + 1))}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [0, 2])
def test_items_come_back_in_order_in_batches_of_items(workers):
    items = [Item(f"i{n}", n) for n in range(9)] + [Item("bad", 0, error="unreadable")]
    seen = []

    def forward(batch):
        seen.append(batch["x"].shape[0])
        return batch["x"].sum(-1)

    out = list(runner.run(items, _prepare, forward, batch_size=4, num_workers=workers))
    assert [i for i, _, _ in out] == list(range(10))
    for n, (_, rows, error) in enumerate(out[:9]):
        if n == 3:
            assert rows is None and error == "i3: three is refused"
        else:
            assert error is None and rows.tolist() == [2.0 * n] * (n % 2 + 1)
    assert out[9][1:] == (None, "unreadable")
    # batches of 4 items (i0-i3: 4 views, i3 failed; i4-i7: 6 views, run as 4 + 2; i8 and bad: 1)
    assert seen == [4, 4, 2, 1]


@pytest.mark.timeout(120)
def test_both_workers_prepare_the_first_batch():
    items = [Item(f"i{n}", n) for n in (0, 2, 4, 6)]
    pids = []
    list(runner.run(items, _prepare, lambda b: pids.extend(b["pid"].tolist()) or b["x"][:, 0],
                    batch_size=4, num_workers=2))
    assert len(set(pids)) == 2 and os.getpid() not in pids
