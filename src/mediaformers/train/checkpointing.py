"""Training checkpoints: written atomically (temporary file, fsync, rename), so a crash or a full
disk mid-write leaves the previous one intact; the last N kept plus the best."""
from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, ResumeError, TrainingError
from ..locks import exclusive


def lock_run(run: Path) -> int:
    """An exclusive, non-blocking flock on the run folder itself (nothing is written into a folder that may
    turn out not to be a run; the kernel releases it however the process ends): a second training into
    the same -o is refused instead of interleaving checkpoints. ``os.close`` the descriptor to release."""
    return exclusive(os.open(run, os.O_RDONLY), DataError(
        f"output: expected a run folder no other process trains, got {run}, which another mediaformers train "
        "is writing; wait for it to end or name another -o"))


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()  # this process's device
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # a full disk reaches torch.save as "inline_container.cc: unexpected pos"
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err).splitlines()[0][:200]
        full = " (is the disk full?)" if isinstance(err, RuntimeError) or getattr(err, "errno", None) == 28 else ""
        raise TrainingError(f"checkpoint: could not write {path}: {reason}{full}; the previous checkpoints are "
                            "kept: free space and continue with resume=True (--resume)") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_state(run: Path, state: dict, step: int, keep: int) -> Path:
    """run/checkpoints/step-<step>.pt; older ones beyond ``keep`` removed after the new one is whole."""
    path = run / "checkpoints" / f"step-{step:08d}.pt"
    atomic_save(state, path)
    for old in list_states(run)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def clean_stale(run: Path) -> list[Path]:
    """Remove what a run killed mid-write left: checkpoint temp files, and model folders caught between
    their old and new copy (the whole old or new one is put back first). Returns what was removed."""
    removed = sorted((run / "checkpoints").glob(".step-*.pt.*.tmp")) if (run / "checkpoints").is_dir() else []
    for f in removed:
        f.unlink(missing_ok=True)
    for name in ("best", "final"):
        folder, tmp, old = run / name, run / f".{name}.tmp", run / f".{name}.old"
        if not folder.exists() and old.is_dir():  # killed between the two renames: the old copy is whole
            os.replace(old, folder)
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
                removed.append(leftover)
    return removed


def list_states(run: Path) -> list[Path]:
    return sorted((run / "checkpoints").glob("step-*.pt"))


def latest_state(run: Path, log=print) -> dict | None:
    """The newest checkpoint that reads back; a damaged newer one (writes are atomic, so a disk or a copy
    damaged it) is named in the log and the one before it used; none readable is one clear error."""
    states = list_states(run)
    for path in reversed(states):
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
            log(f"resume: {path.name} is unreadable ({reason}); trying the checkpoint before it")
    if states:
        raise ResumeError(f"resume: expected a readable checkpoint in {run / 'checkpoints'}, got "
                          f"{len(states)} unreadable ({states[-1].name}, ...); train into a new -o folder")
    return None


def save_model_folder(model, processors: dict, folder: Path, state_dict: dict | None = None) -> None:
    """A transformers-format folder (config, weights -- ``state_dict`` when given, e.g. gathered from
    FSDP shards --, preprocessor_config.json), replaced atomically."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, state_dict=state_dict)
    # Several processors (TVLT's image processor and feature extractor) share one preprocessor_config.json,
    # as transformers' TvltProcessor writes it: merge their fields instead of letting the last one win.
    merged, file = {}, tmp / "preprocessor_config.json"
    for proc in processors.values():
        if hasattr(proc, "save_pretrained"):
            proc.save_pretrained(tmp)
            if file.exists():
                merged.update(json.loads(file.read_text(encoding="utf-8")))
    if merged:
        file.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
