"""`fit`: the training loop that runs a :class:`~mediaformers.train.recipe.Recipe`."""
from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..plots.training import epoch_pictures
from ..errors import NonFiniteLossError, ResumeError, TrainingError
from . import checkpointing as ck  # module attribute: tests patch ck.save_state to kill a run mid-write
from . import run_record
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
    """Files that failed to decode, judged against a whole epoch: the run stops once more distinct files
    have failed than ``limit`` of the files an epoch holds (a bad file early in an epoch alone does not
    stop it; the same bad file in every epoch counts once)."""

    def __init__(self, limit: float, epoch_files: int, log):
        self.limit, self.epoch_files, self.log, self.bad = limit, epoch_files, log, []

    def add(self, batch: dict) -> None:
        for path, err in batch["failed"]:
            if path in self.bad:
                continue
            self.bad.append(path)
            self.log(f"skipped {path}: {err}")
            print(f"mediaformers train: skipped {path}: {err}", flush=True)
        if len(self.bad) > self.limit * self.epoch_files:
            raise TrainingError(f"data: expected at most {self.limit:.0%} of the {self.epoch_files} training files to "
                                f"fail decoding (max_bad_fraction, --max-bad-fraction), got {len(self.bad)} "
                                f"(first: {self.bad[0]})")


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
    r.check()  # every number in range before anything is read, built or written
    run = Path(r.output)
    if run.exists() and not run.is_dir():
        raise DataError(f"output: expected a run folder, got a file {run}")
    existed = run.exists()
    lock = ck.lock_run(run) if existed and dist.main else None  # before it looks: another run may be writing
    try:
        return _fit_locked(r, dist, run, existed, lock)
    finally:
        if lock is not None:
            os.close(lock)


def _fit_locked(r: Recipe, dist, run: Path, existed: bool, lock: int | None) -> dict[str, Any]:
    fresh = not existed or not any(run.iterdir())
    if not fresh and not (r.resume or r.eval_only):
        raise DataError(f"output: {run} exists and is not empty; pass resume=True (--resume) to continue that "
                        "run, or name a new folder")
    # data first: every check before any model is built, step runs or file is written
    task = make_task(r)  # classification, pre-training or contrastive (objectives/)
    train_items, val_items = task.read_data()
    record = run_record.describe(r, task, train_items, val_items)
    recorded = run_record.read(run) if r.resume else None
    if recorded is not None:
        run_record.check(recorded, record, run)
    elif r.resume and not fresh and not ck.list_states(run) and not any(
            (run / n).exists() for n in ("train.log", "metrics.jsonl")):
        raise ResumeError(f"resume: expected a run folder made by `mediaformers train`, got {run} (no "
                          f"{run_record.FILE}, checkpoints or metrics.jsonl); name the run's -o folder or a new one")
    dist.barrier()  # every rank has looked before rank 0 writes
    if dist.main:
        run.mkdir(parents=True, exist_ok=True)
        lock = lock if lock is not None else ck.lock_run(run)  # a new folder: locked once made
    try:
        rep = Reporter(run, r.quiet, dist.main)
        try:
            return _train(r, dist, run, rep, task, train_items, val_items, record, recorded)
        except BaseException:
            rows = rep.rows
            rep.close()
            if fresh and dist.main and rows == 0 and not ck.list_states(run):
                _clear(run, existed)  # rejected before its first checkpoint: nothing to resume or block a rerun
            raise
    finally:
        if not existed and lock is not None:
            os.close(lock)  # _fit closes the one it took


def _clear(run: Path, keep_folder: bool) -> None:
    """Remove what a run wrote into ``run`` (empty or new when it started), and ``run`` itself unless the
    user made it."""
    for p in run.iterdir():
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    if not keep_folder:
        run.rmdir()


def _train(r: Recipe, dist, run: Path, rep: Reporter, task, train_items, val_items, record: dict,
           recorded: dict | None) -> dict[str, Any]:
    log = rep.log
    task.derive_config(train_items, log)
    torch.manual_seed(r.seed)
    loaded = task.build()
    record["model_config"] = run_record.model_config(loaded.model)
    if recorded is not None:
        run_record.check(recorded, record, run)
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
    state = None
    if r.resume:
        if dist.main:
            for stale in ck.clean_stale(run):
                log(f"removed {stale.name}, left by a run killed while writing it")
        dist.barrier()
        state = ck.latest_state(run, log)
    if state is not None:
        if recorded is None and "run" in state:  # a run folder without run.json (written before it existed)
            run_record.check(state["run"], record, run)
        try:
            dist.load_train_state(model, opt, state)
        except RuntimeError as err:  # tensors of another shape: the model is not the one the run trained
            first = str(err).strip().splitlines()
            raise ResumeError(f"resume: the checkpoint in {run / 'checkpoints'} does not fit this model "
                              f"({first[-1].strip()[:200] if first else err}); resume with the model the run "
                              "trained, or train into a new -o folder") from None
        sched.load_state_dict(state["scheduler"])
        # the optimizer's saved lr is the old schedule's: with --max-steps/--epochs changed on resume (a finished
        # run extended) the next step would run at the old end's lr (0 after a cosine); LambdaLR's own formula
        for g, base, factor in zip(opt.param_groups, sched.base_lrs, sched.lr_lambdas):
            g["lr"] = base * factor(sched.last_epoch)
        step, epoch, batch_in_epoch, best = state["step"], state["epoch"], state["batch"], state["best"]
        rep.keep_rows(state.get("metrics_rows"), step)
        log(f"resumed at step {step} (epoch {epoch}, batch {batch_in_epoch})")
    elif r.resume:
        rep.keep_rows(0, 0)  # a run that died before its first checkpoint starts again from nothing
        log(f"resume: no checkpoint in {run} yet; starting the run from step 0")  # a requeued job's first start
    if dist.main and state is None:
        run_record.write(run, record)
    forward = torch.compile(forward) if r.compile else forward
    bad = _BadFiles(r.max_bad_fraction, len(sampler.order()), log)
    metrics: dict[str, Any] = {}

    def save_state() -> None:  # every rank gathers, rank 0 writes
        state = {**dist.train_state(model, opt), "scheduler": sched.state_dict(), "step": step, "epoch": epoch,
                 "batch": batch_in_epoch, "best": best, "recipe": asdict(r), "run": record,
                 "metrics_rows": rep.rows}
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
            bad.add(batch)
            if dist.any(batch["inputs"] is None):  # all ranks skip together
                continue
            dist.grad_sync(accum + 1 == r.grad_accum)
            loss = task.loss(forward, batch)
            if not torch.isfinite(loss):
                kept = ck.list_states(run)
                where = (f"the last good checkpoint {kept[-1]} is kept (continue from it with --resume and a lower "
                         "--lr)" if kept else "no checkpoint was written yet (try a lower --lr)")
                raise NonFiniteLossError(f"loss: expected a finite value, got {loss.item()} at step {step + 1}; "
                                         f"{where}")
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
        if dist.main:  # curves.png, confusion.png, MAE reconstructions (plots.training)
            epoch_pictures(run, task, model, val_loader, metrics, step, log, single_process=dist.world == 1)
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
