"""Distributed training on torch's own engine: DDP (gloo on CPU, NCCL on GPU) or FSDP2, under torchrun.

``torchrun --nproc-per-node N -m mediaformers train ...`` (or ``python -m torch.distributed.run``)
sets RANK, WORLD_SIZE, LOCAL_RANK and MASTER_ADDR/PORT; :func:`setup` initialises the process group
from them (``env://``). A single process gets the same :class:`Dist` object with ``world == 1``,
whose every method reduces to the plain single-process behaviour, so the loop reads the same either way.

- Data: rank r takes every world-th index of one seeded permutation per epoch (``EpochSampler``),
  so the union of the ranks' k-th batches is exactly the k-th global batch of a 1-process run with
  ``batch_size x world``; ``batch_size`` is per process (global batch = batch_size x world x grad_accum).
- Only rank 0 writes checkpoints, logs, metrics and model folders; every rank takes part in the
  gathers (FSDP full state dicts, RNG states) that precede a write.
- Validation: classification and contrastive under DDP: each rank evaluates every world-th file and
  the logits (embeddings) are gathered, so every rank computes the metrics of the whole set;
  otherwise (FSDP, whose every forward is collective; pre-training) every rank evaluates the whole
  set in lockstep.
- Tasks: every one; what is wrapped is the task's ``train_module`` (the model, or for contrastive a
  module whose one forward computes both towers and the loss over the global batch).
- FSDP2 shards no scalar parameter (AltCLIP's ``logit_scale``): those are left whole on every rank
  (``ignored_params``) and their gradients averaged by :meth:`Dist.sync_whole_grads`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed as td

from .checkpointing import rng_state, save_model_folder, set_rng_state


def transformer_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The blocks of every encoder stack (the units FSDP shards one by one)."""
    from ..layers.blocks import Encoder

    return [b for m in model.modules() if isinstance(m, Encoder) for b in m.blocks]


def _full_options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


class Dist:
    """This process's place in the run (rank, world, device) and the collectives the loop needs."""

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0, device: torch.device | None = None,
                 fsdp: bool = False, owns_group: bool = False):
        self.rank, self.world, self.local_rank, self.fsdp = rank, world, local_rank, fsdp
        self.device = device or torch.device("cpu")
        self.owns_group = owns_group
        self._ddp = None  # the DDP wrapper, whose gradient sync grad_sync switches
        self._sharded = None  # the FSDP root module
        self._whole: list[torch.nn.Parameter] = []  # parameters FSDP leaves unsharded (scalars)
        self.val_sharded = False  # each rank evaluates its share of the validation set

    @property
    def main(self) -> bool:
        return self.rank == 0

    # --- collectives (no-ops in one process) ---
    def barrier(self) -> None:
        if self.world > 1:
            td.barrier()

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one (all ranks then skip the same micro-batch, so
        their collectives keep matching)."""
        if self.world == 1:
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        td.all_reduce(t, op=td.ReduceOp.MAX)
        return bool(t.item())

    def reduce_step(self, loss: float, seen: int) -> tuple[float, int]:
        """(loss averaged over ranks, samples seen by all ranks)."""
        if self.world == 1:
            return loss, seen
        t = torch.tensor([loss, float(seen)], dtype=torch.float64, device=self.device)
        td.all_reduce(t)
        return t[0].item() / self.world, int(t[1].item())

    def _gather(self, obj: Any) -> list[Any]:
        out: list[Any] = [None] * self.world
        td.all_gather_object(out, obj)
        return out

    # --- model ---
    def on_device(self, loader):
        """The loader's batches with their model inputs and tensor labels on this process's device."""
        if self.device.type == "cpu":
            return loader
        return (self._moved(batch) for batch in loader)

    def _moved(self, batch: dict) -> dict:
        out = dict(batch)
        if batch["inputs"] is not None:
            out["inputs"] = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v
                             for k, v in batch["inputs"].items()}
        if torch.is_tensor(batch.get("labels")):
            out["labels"] = batch["labels"].to(self.device, non_blocking=True)
        return out

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module to call for training (the task's ``train_module``: the model, or a module around
        it): FSDP2 shards it in place (each transformer block, then the root) and returns it; DDP
        returns a wrapper sharing its parameters; one process, the module itself."""
        if self.fsdp:
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.fsdp import fully_shard

            mesh = init_device_mesh(self.device.type, (self.world,))
            for block in transformer_blocks(model):
                fully_shard(block, mesh=mesh)
            # FSDP2 shards no scalar (AltCLIP's logit_scale): those stay whole on every rank, their
            # gradients averaged by ``sync_whole_grads`` as DDP would
            self._whole = [p for p in model.parameters() if p.dim() == 0]
            self._sharded = fully_shard(model, mesh=mesh, ignored_params=set(self._whole) or None)
            return model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self._ddp = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            return self._ddp
        return model

    def sync_whole_grads(self) -> None:
        """FSDP: average over the ranks the gradients of the parameters it left unsharded (before the
        optimizer step, after the last micro-batch)."""
        for p in self._whole:
            if p.grad is not None:
                td.all_reduce(p.grad)
                p.grad.div_(self.world)

    def grad_sync(self, on: bool) -> None:
        """Gradient accumulation: reduce gradients only on the last micro-batch of a step."""
        if self._ddp is not None:
            self._ddp.require_backward_grad_sync = on
        elif self._sharded is not None:
            self._sharded.set_requires_gradient_sync(on)

    # --- checkpoints ---
    def train_state(self, model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
        """Model, optimizer and RNG state for a resumable checkpoint; collective (every rank calls it,
        rank 0 writes it). FSDP gathers full state dicts (on rank 0, in CPU memory); the RNG state of
        every rank is gathered into a list indexed by rank."""
        rng = rng_state()
        if self.world > 1:
            rng = self._gather(rng)
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

            m = get_model_state_dict(model, options=_full_options())
            o = get_optimizer_state_dict(model, opt, options=_full_options())
        else:
            m, o = model.state_dict(), opt.state_dict()
        return {"model": m, "optimizer": o, "rng": rng, "world": self.world, "fsdp": self.fsdp}

    def load_train_state(self, model: torch.nn.Module, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        """Undo :meth:`train_state` on every rank (each reads the same checkpoint file)."""
        world, fsdp = state.get("world", 1), state.get("fsdp", False)
        if (world, fsdp) != (self.world, self.fsdp):
            raise ValueError(f"resume: expected {world} process(es) with fsdp={fsdp} as the checkpoint was written, "
                             f"got {self.world} with fsdp={self.fsdp}")
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                                 set_optimizer_state_dict)

            opts = StateDictOptions(full_state_dict=True)
            set_model_state_dict(model, state["model"], options=opts)
            set_optimizer_state_dict(model, opt, state["optimizer"], options=opts)
        else:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"][self.rank] if self.world > 1 else state["rng"])

    def save_model_folder(self, model: torch.nn.Module, processors: dict, folder: Path) -> None:
        """A transformers-format folder written by rank 0; with FSDP the full weights are gathered
        first, so the folder loads in one process with ``from_pretrained``."""
        state = None
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import get_model_state_dict

            state = get_model_state_dict(model, options=_full_options())
        if self.main:
            save_model_folder(model, processors, folder, state_dict=state)

    # --- validation ---
    def val_sampler(self, n: int, task) -> list[int] | None:
        """Rank r's share of the validation set (every world-th file), or None for all of it; shared
        out for classification under DDP (whose evaluation gathers the logits)."""
        self.val_sharded = self.world > 1 and not self.fsdp and task.name in ("classification", "contrastive")
        return list(range(n))[self.rank::self.world] if self.val_sharded else None

    def gather_eval(self, logits: list[torch.Tensor], targets: list[torch.Tensor], failed: list) -> tuple[list, list, list]:
        """Every rank's validation logits, targets and failures (the metrics are order-free)."""
        if not self.val_sharded:
            return logits, targets, failed
        mine = (torch.cat(logits).cpu() if logits else None, torch.cat(targets).cpu() if targets else None, failed)
        parts = self._gather(mine)
        return ([p[0] for p in parts if p[0] is not None], [p[1] for p in parts if p[1] is not None],
                [f for p in parts for f in p[2]])

    def seed(self, seed: int) -> None:
        """Give each rank its own random stream for dropout and augmentation (after the model is
        built from the common seed, so every rank starts from the same weights)."""
        if self.world > 1:
            torch.manual_seed(seed + 1_000_003 * self.rank)

    def close(self) -> None:
        if self.owns_group and td.is_initialized():
            td.destroy_process_group()


SINGLE = Dist()


def setup(fsdp: bool = False) -> Dist:
    """This process's :class:`Dist`: from an initialised process group, else from torchrun's
    environment (initialising the group: NCCL when CUDA is available, else gloo), else one process."""
    env = os.environ
    launched = td.is_available() and (td.is_initialized() or ("RANK" in env and "WORLD_SIZE" in env))
    cuda = torch.cuda.is_available()
    if not launched:
        if fsdp:
            raise ValueError("fsdp: expected a run started by torchrun (RANK and WORLD_SIZE set), got a single process")
        return Dist(device=torch.device("cuda") if cuda else None, fsdp=False)
    local_rank = int(env.get("LOCAL_RANK", 0))
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    owns = not td.is_initialized()
    if owns:
        td.init_process_group(backend="nccl" if cuda else "gloo")
    return Dist(td.get_rank(), td.get_world_size(), local_rank, device, fsdp, owns)
