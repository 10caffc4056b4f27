"""What a run was trained with (run.json): the recipe's fixed fields, the task, its labels, the data's
files and the model's family and config. ``resume`` checks a restarted run against it and refuses a
mismatch naming the field, so a resumed run is the same run (options that may change are ``RESUMABLE``)."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ResumeError

if TYPE_CHECKING:  # type only: the recipe runs the loop, which writes this
    from .data import Item
    from .recipe import Recipe

# May differ on resume: how long to go on, how often to save, how to load data and report. Anything else
# changes what the run computes (lr, batch, seed, augmentation, ...) and is refused.
RESUMABLE = ("epochs", "max_steps", "save_every", "keep_last", "num_workers", "quiet", "compile",
             "gradient_checkpointing", "max_bad_fraction")
# Not compared as written: paths may be spelled another way (the files and model config are compared instead).
_NOT_COMPARED = ("model", "data", "val", "output", "resume", "eval_only", "config", "task")  # task: as resolved
FILE = "run.json"


def files_digest(items: list[Item]) -> dict[str, Any]:
    """How many items and a digest of their absolute paths, labels, captions and time ranges."""
    h = hashlib.sha256()
    for it in items:
        h.update(json.dumps([os.path.abspath(it.path), list(it.labels), it.caption, it.start, it.end]).encode())
    return {"count": len(items), "sha256": h.hexdigest()}


def describe(r: Recipe, task, train: list[Item], val: list[Item]) -> dict[str, Any]:
    """The record of a run, before its model is built (``model_config`` is added once it is)."""
    recipe = {k: v for k, v in asdict(r).items() if k not in RESUMABLE and k not in _NOT_COMPARED}
    return {"task": task.name, "labels": getattr(task, "labels", None), "train_files": files_digest(train),
            "val_files": files_digest(val), "family": task.family.name, "recipe": recipe}


def model_config(model) -> dict[str, Any]:
    return json.loads(json.dumps(model.config.to_dict(), default=str))


def read(run: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run / FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise ResumeError(f"resume: {run / FILE} (what the run was trained with) is unreadable ({err}); "
                          "train into a new -o folder") from None


def write(run: Path, record: dict[str, Any]) -> None:
    tmp = run / f".{FILE}.tmp"
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, run / FILE)


def check(recorded: dict[str, Any], now: dict[str, Any], run: Path) -> None:
    """Refuse to resume ``run`` when ``now`` differs from what it ``recorded``, naming the first field."""
    def refuse(field: str, was: Any, got: Any, text: bool = False) -> None:
        may = ", ".join("--workers" if k == "num_workers" else "--" + k.replace("_", "-") for k in RESUMABLE)
        was, got = (was, got) if text else (_short(was), _short(got))
        raise ResumeError(f"resume: {run} was trained with {field} {was}, got {got}; resume with "
                          f"the same data, model and task (only {may} may change), or train into a new -o folder")

    for key in ("task", "family", "labels"):
        if key in recorded and recorded[key] != now.get(key):
            refuse(key, recorded[key], now.get(key))
    for key, name in (("train_files", "training files"), ("val_files", "validation files")):
        was, got = recorded.get(key), now.get(key)
        if was is not None and was != got:
            refuse(name, f"{was['count']} files (digest {was['sha256'][:12]})",
                   f"{got['count']} files (digest {got['sha256'][:12]})" if got else "none", text=True)
    for k, was in recorded.get("recipe", {}).items():
        got = now["recipe"].get(k)
        if was != got:
            refuse(k, was, got)
    was_cfg, cfg = recorded.get("model_config"), now.get("model_config")
    if was_cfg is not None and cfg is not None:
        for k in sorted(set(was_cfg) | set(cfg)):
            if was_cfg.get(k) != cfg.get(k) and k not in ("transformers_version", "_name_or_path"):
                refuse(f"model config {k}", was_cfg.get(k), cfg.get(k))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
