"""One of two gloo processes that train our model under DistributedDataParallel for one SGD step on half the
batch each; rank 0 then writes the logits of the first clip: ``python -m tests.integrations.ddp_worker RANK
FOLDER OUT`` (one process per rank: a spawning parent would be a third torch start-up)."""
from __future__ import annotations

import sys
from datetime import timedelta

import torch
import torch.distributed as dist

from mediaformers.auto import from_pretrained
from tests.integrations.conftest import make_clips


def run(rank: int, world: int, folder: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{out}.store", rank=rank, world_size=world,
                            timeout=timedelta(seconds=60))
    try:
        torch.manual_seed(0)
        model = torch.nn.parallel.DistributedDataParallel(from_pretrained(folder).train())
        clips = make_clips()[:4][rank::world]
        out_ = model(pixel_values=torch.stack([c["pixel_values"] for c in clips]),
                     labels=torch.tensor([c["labels"] for c in clips]))
        out_.loss.backward()
        torch.optim.SGD(model.parameters(), lr=0.1).step()
        if rank == 0:
            with torch.no_grad():
                torch.save(model.module.eval()(pixel_values=make_clips()[0]["pixel_values"][None]).logits, out)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    run(int(sys.argv[1]), 2, sys.argv[2], sys.argv[3])
