"""`fit`: the training loop that runs a :class:`~mediaformers.train.recipe.Recipe`."""
from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from . import checkpointing as ck  # module attribute: tests patch ck.save_state to kill a run mid-write
from .data import DataError
from .objectives import make_task
from .optim import build_optimizer, warmup_cosine
from .report import Reporter

if TYPE_CHECKING:  # the recipe imports this module in fit(); a type-only import keeps one direction
    from .recipe import Recipe


class EpochSampler(torch.utils.data.Sampler):
    """A permutation seeded by (seed, epoch), starting at ``start`` (resume mid-epoch without decoding
    what was already seen); with ``world`` > 1 each rank takes every world-th index."""

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.seed, self.rank, self.world, self.epoch, self.start = n, seed, rank, world, 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def order(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1000003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        perm += perm[: (-len(perm)) % self.world]  # equal shares
        return perm[self.rank::self.world]

    def __iter__(self):
        return iter(self.order()[self.start:])

    def __len__(self) -> int:
        return len(self.order()) - self.start


class _BadFiles:
    def __init__(self, limit: float, log):
        self.limit, self.log, self.seen, self.bad = limit, log, 0, []

    def add(self, batch: dict, n_ok: int) -> None:
        self.seen += n_ok + len(batch["failed"])
        for path, err in batch["failed"]:
            self.bad.append(path)
            self.log(f"skipped {path}: {err}")
            print(f"mediaformers train: skipped {path}: {err}", flush=True)
        if self.bad and len(self.bad) / self.seen > self.limit:
            raise RuntimeError(f"data: expected at most {self.limit:.0%} of files to fail decoding, got "
                               f"{len(self.bad)} of {self.seen} (first: {self.bad[0]})")


def fit(r: Recipe) -> dict[str, Any]:
    """Train (or with ``eval_only`` evaluate) as ``r`` says; returns the last validation metrics.

    Writes ``r.output``: metrics.jsonl, checkpoints/step-*.pt (resumable), best/ and final/ (model
    folders in transformers format with their preprocessor_config.json). Under torchrun every
    process runs this; see :mod:`mediaformers.train.distributed`.
    """
    from ..allocator import keep_freed_memory
    from .distributed import setup

    keep_freed_memory()  # each step reuses the last one's activation memory instead of faulting it in again
    dist = setup(r.fsdp)
    try:
        metrics = _fit(r, dist)
        dist.barrier()
        return metrics
    finally:
        dist.close()


def _fit(r: Recipe, dist) -> dict[str, Any]:
    run = Path(r.output)
    if run.exists() and any(run.iterdir()) and not (r.resume or r.eval_only):
        raise DataError(f"output: {run} exists and is not empty; pass resume=True (--resume) to continue that "
                        "run, or name a new folder")
    dist.barrier()  # every rank has looked before rank 0 writes
    if dist.main:
        run.mkdir(parents=True, exist_ok=True)
    rep = Reporter(run, r.quiet, dist.main)
    log = rep.log

    # data first: every check before any model is built or step runs
    task = make_task(r)  # classification, pre-training or contrastive (objectives/)
    train_items, val_items = task.read_data()

    torch.manual_seed(r.seed)
    loaded = task.build()
    model = loaded.model.to(dist.device)
    task.dist = dist
    dist.seed(r.seed)
    procs = task.processors(loaded)
    prepare = task.views(loaded)
    task.before_training(train_items, procs, prepare, log)
    from .augment import train_augment

    train_ds = task.dataset(train_items, prepare, train_augment if r.augment else None)
    val_ds = task.dataset(val_items, prepare)
    sampler = EpochSampler(len(train_ds), r.seed, dist.rank, dist.world)
    loader_kw = dict(batch_size=r.batch_size, num_workers=r.num_workers, collate_fn=task.collate)
    val_loader = torch.utils.data.DataLoader(val_ds, sampler=dist.val_sampler(len(val_ds), task),
                                             generator=torch.Generator().manual_seed(r.seed), **loader_kw)
    steps_per_epoch = max(1, math.ceil(len(sampler) / r.batch_size) // r.grad_accum)
    total = r.max_steps or steps_per_epoch * r.epochs

    if r.eval_only:
        metrics = task.evaluate(model, dist.on_device(val_loader))
        rep.row({"eval_only": True, **metrics})
        rep.close()
        return metrics

    if r.drop_path_rate:
        from ..layers.blocks import Encoder

        for m in model.modules():
            if isinstance(m, Encoder):
                m.set_drop_path(r.drop_path_rate)
    if r.gradient_checkpointing and hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable()
    forward = dist.wrap(task.train_module(model))  # DDP wrapper, or sharded in place by FSDP
    opt = build_optimizer(model, r.lr, r.weight_decay, r.layer_decay)
    sched = warmup_cosine(opt, r.warmup_steps, total)
    step, epoch, batch_in_epoch, best = 0, 0, 0, -math.inf
    if r.resume:
        state = ck.latest_state(run)
        if state is not None:
            dist.load_train_state(model, opt, state)
            sched.load_state_dict(state["scheduler"])
            step, epoch, batch_in_epoch, best = state["step"], state["epoch"], state["batch"], state["best"]
            log(f"resumed at step {step} (epoch {epoch}, batch {batch_in_epoch})")
    forward = torch.compile(forward) if r.compile else forward
    bad = _BadFiles(r.max_bad_fraction, log)
    metrics: dict[str, Any] = {}

    def save_state() -> None:  # every rank gathers, rank 0 writes
        state = {**dist.train_state(model, opt), "scheduler": sched.state_dict(), "step": step, "epoch": epoch,
                 "batch": batch_in_epoch, "best": best, "recipe": asdict(r)}
        if dist.main:
            ck.save_state(run, state, step, r.keep_last)

    t0, seen = time.perf_counter(), 0
    rep.start(total, step)
    while step < total:
        sampler.set_epoch(epoch, batch_in_epoch * r.batch_size)
        # its own generator: workers' seeds by (seed, epoch, rank), and making an iterator does not draw
        # from the global RNG (a mid-epoch resume would otherwise shift augmentation and dropout)
        workers_rng = torch.Generator().manual_seed(r.seed * 1000003 + epoch * 1009 + dist.rank)
        loader = torch.utils.data.DataLoader(train_ds, sampler=sampler, generator=workers_rng, **loader_kw)
        model.train()
        accum, epoch_losses = 0, []
        for batch in dist.on_device(loader):
            batch_in_epoch += 1
            bad.add(batch, 0 if batch["inputs"] is None else task.count(batch))
            if dist.any(batch["inputs"] is None):  # all ranks skip together
                continue
            dist.grad_sync(accum + 1 == r.grad_accum)
            loss = task.loss(forward, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss: expected a finite value, got {loss.item()} at step {step + 1}; "
                                         f"the last good checkpoint in {run / 'checkpoints'} is kept")
            (loss / r.grad_accum).backward()
            accum += 1
            seen += task.count(batch)
            if accum < r.grad_accum:
                continue
            accum = 0
            dist.sync_whole_grads()
            if r.clip_grad:
                torch.nn.utils.clip_grad_norm_(model.parameters(), r.clip_grad)
            opt.step()
            opt.zero_grad(set_to_none=True)
            sched.step()
            step += 1
            step_loss, all_seen = dist.reduce_step(loss.item(), seen)  # mean over ranks, samples of all ranks
            epoch_losses.append(step_loss)
            rep.row({"step": step, "epoch": epoch, "train_loss": step_loss, "lr": opt.param_groups[0]["lr"],
                     "samples_per_s": all_seen / (time.perf_counter() - t0)})
            if r.save_every and step % r.save_every == 0:
                save_state()
            if step >= total:
                break
        else:
            epoch, batch_in_epoch = epoch + 1, 0
        metrics = task.evaluate(model, dist.on_device(val_loader))
        model.train()
        mean = sum(epoch_losses) / len(epoch_losses) if epoch_losses else None
        rep.row({"step": step, "epoch": epoch, "train_loss": mean, **metrics})
        log(f"step {step}: " + " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float)))
        if metrics["score"] > best:
            best = metrics["score"]
            dist.save_model_folder(model, procs, run / "best")
        save_state()
    model.eval()
    dist.save_model_folder(model, procs, run / "final")
    if bad.bad:
        log(f"{len(bad.bad)} files skipped: {', '.join(bad.bad[:10])}")
    metrics["skipped"] = bad.bad
    rep.close()
    return metrics
