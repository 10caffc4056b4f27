"""What a run tells: metrics.jsonl (always), train.log, a tqdm progress bar (loss, lr, samples/s,
ETA; unless quiet) and TensorBoard scalars in run/tensorboard/ when the ``tensorboard`` package is
installed (silently skipped otherwise). Only the main process (rank 0) reports; the others' reporter
is silent."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def _summary_writer(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: metrics.jsonl only
        return None
    return SummaryWriter(str(folder))


class Reporter:
    def __init__(self, run: Path, quiet: bool = True, main: bool = True):
        self.run, self.quiet, self.main = run, quiet, main
        self._log = (run / "train.log").open("a", encoding="utf-8") if main else None
        self._bar = self._tb = None
        self.rows = 0  # metrics.jsonl rows this run has (saved in checkpoints: a resume cuts what came after)

    def keep_rows(self, n: int | None, step: int) -> None:
        """Resume: metrics.jsonl back to the rows it had when the checkpoint was written (``n``; for an
        older checkpoint, the rows up to its ``step``), so a step run again is not listed twice."""
        if not self.main:
            return
        file = self.run / "metrics.jsonl"
        lines = file.read_text(encoding="utf-8").splitlines(keepends=True) if file.exists() else []
        if n is None:
            keep = [x for x in lines if x.strip() and json.loads(x).get("step", 0) <= step]
        else:
            keep = lines[:n]
        if keep != lines:
            tmp = file.with_name(".metrics.jsonl.tmp")
            tmp.write_text("".join(keep), encoding="utf-8")
            os.replace(tmp, file)
        self.rows = len(keep)

    def log(self, msg: str) -> None:
        if not self.main:
            return
        self._log.write(msg + "\n")
        self._log.flush()
        if not self.quiet:
            if self._bar is not None:
                self._bar.write(msg)
            else:
                print(msg, flush=True)

    def start(self, total: int, step: int) -> None:
        """Training begins (or resumes at ``step``) towards ``total`` optimizer steps."""
        if not self.main:
            return
        self._tb = _summary_writer(self.run / "tensorboard")
        if not self.quiet:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=step, unit="step", dynamic_ncols=True, desc="train")

    def row(self, row: dict[str, Any]) -> None:
        """One metrics row: appended to metrics.jsonl, numbers sent to TensorBoard under train/ or val/,
        the progress bar advanced to the row's step."""
        if not self.main:
            return
        with (self.run / "metrics.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        self.rows += 1
        step = row.get("step", 0)
        if self._tb is not None:
            per_step = "lr" in row  # else a validation row, with the epoch's mean training loss
            for k, v in row.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("step", "epoch"):
                    tag = f"train/{k}" if per_step else "train/epoch_loss" if k == "train_loss" else f"val/{k}"
                    self._tb.add_scalar(tag, v, step)
            self._tb.flush()
        if self._bar is not None and "lr" in row:
            self._bar.update(step - self._bar.n)
            self._bar.set_postfix(loss=f"{row['train_loss']:.4g}", lr=f"{row['lr']:.3g}",
                                  samples_s=f"{row['samples_per_s']:.1f}", refresh=False)

    def close(self) -> None:
        for x in (self._bar, self._tb, self._log):
            if x is not None:
                x.close()
        self._bar = self._tb = self._log = None
