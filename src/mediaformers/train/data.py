"""Labelled media for training: a folder of class subfolders or a CSV/JSONL manifest, split by a seed.

Files become model inputs through the same views as inference (the family's processors), so what a
model is trained on is what it is later asked about.
"""
from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..tasks.inputs import media_kind


class DataError(ValueError):
    """Training data that cannot be used, found before any step runs."""


@dataclass(frozen=True)
class Example:
    path: str
    label: int


def read_folder(root: Path, kinds: set[str]) -> tuple[list[Example], list[str]]:
    """``root/<label>/<file>`` -> examples and the sorted label names."""
    if not root.is_dir():
        raise DataError(f"data: expected a folder of class subfolders or a .csv/.jsonl manifest, got {root}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    examples: list[Example] = []
    for i, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*") if p.is_file() and media_kind(p) in kinds)
        if not files:
            raise DataError(f"data: class folder {root / name} holds no {' or '.join(sorted(kinds))} files")
        examples += [Example(str(p), i) for p in files]
    return examples, classes


def read_manifest(path: Path, kinds: set[str]) -> tuple[list[Example], list[str]]:
    """CSV (``path,label`` header) or JSON Lines (``{"path": ..., "label": ...}``); relative paths are
    relative to the manifest."""
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not row.get("path") or row.get("label") in (None, ""):
            raise DataError(f"{path} row {n}: expected a path and a label, got {row}")
    classes = sorted({str(r["label"]) for r in rows})
    index = {c: i for i, c in enumerate(classes)}
    examples = []
    for n, row in enumerate(rows, 1):
        p = Path(row["path"])
        p = p if p.is_absolute() else path.parent / p
        if not p.is_file():
            raise DataError(f"{path} row {n}: {p} does not exist")
        examples.append(Example(str(p), index[str(row["label"])]))
    return examples, classes


def load_split(train: str | Path, kinds: set[str], val: str | Path | None = None, val_fraction: float = 0.2,
               seed: int = 0) -> tuple[list[Example], list[Example], list[str]]:
    """(train examples, validation examples, class names), checked before anything runs."""
    read = lambda p: read_manifest(Path(p), kinds) if Path(p).suffix in (".csv", ".jsonl") else read_folder(Path(p), kinds)  # noqa: E731
    examples, classes = read(train)
    if len(classes) < 2:
        raise DataError(f"data: classification needs at least 2 classes, got {classes} in {train}")
    if val is not None:
        held, val_classes = read(val)
        unknown = sorted(set(val_classes) - set(classes))
        if unknown:
            raise DataError(f"validation labels {unknown} are not in the training labels {classes}")
        remap = {i: classes.index(c) for i, c in enumerate(val_classes)}
        return examples, [Example(e.path, remap[e.label]) for e in held], classes
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction: expected a fraction between 0 and 1, got {val_fraction}")
    rng = random.Random(seed)
    shuffled = examples[:]
    rng.shuffle(shuffled)
    n_val = max(1, round(len(shuffled) * val_fraction))
    if n_val >= len(shuffled):
        raise DataError(f"data: {len(shuffled)} examples leave none to train on after holding out {n_val}")
    return shuffled[n_val:], shuffled[:n_val], classes


class MediaDataset(Dataset):
    """Decoded, processed examples: ``(inputs, label)`` with the first view of each file, or None for a
    file that cannot be read (counted and named by the trainer)."""

    def __init__(self, examples: list[Example], views):
        self.examples, self.views = examples, views

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor] | None, int, str]:
        ex = self.examples[i]
        try:
            inputs = {k: v[0] for k, v in self.views(ex.path).items() if k != "window_start"}
        except Exception as err:  # a corrupt file: the trainer skips it and names it
            return None, ex.label, f"{ex.path}: {type(err).__name__}: {err}"
        return inputs, ex.label, ""


def collate(batch: list[tuple[dict[str, Any] | None, int, str]]):
    good = [(x, y) for x, y, _ in batch if x is not None]
    bad = [e for x, _, e in batch if x is None]
    if not good:
        return None, None, bad
    inputs = {k: torch.stack([x[k] for x, _ in good]) for k in good[0][0]}
    return inputs, torch.tensor([y for _, y in good]), bad
