"""Batch work items through a model: prepare in DataLoader workers, run in the main process.

Each item is prepared into a dict of tensors whose first dim counts its *views* (clips x crops of a
video, windows of a long audio file, frames for zero-shot). Views of several items are stacked
into model batches; results are split back per item, so one bad item never stops the others.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import bad_input
from .inputs import Item

Prepared = dict[str, torch.Tensor]


class _Items(Dataset):
    def __init__(self, items: list[Item], prepare: Callable[[Any], Prepared]):
        self.items, self.prepare = items, prepare

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return prepare_item(self.items[i], self.prepare, i)


def prepare_item(item: Item, prepare: Callable[[Any], Prepared], index: int) -> dict[str, Any]:
    """``{"index", "inputs"}``, or the bad-input record (``errors.bad_input``) when it cannot be prepared."""
    if item.error is not None:
        return bad_input(index, item.key, item.error)
    try:
        return {"index": index, "inputs": prepare(item.source)}
    except (ValueError, OSError, RuntimeError) as err:  # decoder and processor failures name the cause
        message = str(err)
        if item.key not in message:
            message = f"{item.key}: {message}"
        return bad_input(index, item.key, message)


def concat(parts: list[Prepared]) -> Prepared:
    """Stack items' views; tensors whose later dims differ are right-padded with zeros (masks too)."""
    out = {}
    for key in parts[0]:
        tensors = [p[key] for p in parts]
        shape = [max(t.shape[d] for t in tensors) for d in range(tensors[0].dim())]
        if any(list(t.shape[1:]) != shape[1:] for t in tensors):
            padded = []
            for t in tensors:
                pad = []
                for d in range(t.dim() - 1, 0, -1):
                    pad += [0, shape[d] - t.shape[d]]
                padded.append(torch.nn.functional.pad(t, pad))
            tensors = padded
        out[key] = torch.cat(tensors)
    return out


def run(
    items: list[Item],
    prepare: Callable[[Any], Prepared],
    forward: Callable[[Prepared], Any],
    *,
    batch_size: int = 8,
    num_workers: int = 0,
    combine: Callable[[list[Prepared]], Prepared] = concat,
) -> Iterator[tuple[int, Any, str | None]]:
    """Yield ``(item index, per-item output, error)`` in input order.

    ``forward`` takes a combined batch of at most ``batch_size`` views and returns a tensor (or a
    tuple of tensors) with one row per view; each item gets its rows back.
    """
    # Workers prepare single items (not whole batches): the first batch waits for batch_size /
    # num_workers preparations instead of batch_size, and every worker feeds every batch.
    loader = DataLoader(_Items(items, prepare), batch_size=None, num_workers=num_workers,
                        collate_fn=_as_is, persistent_workers=False,
                        prefetch_factor=2 * batch_size if num_workers else None)
    for records in _groups(loader, batch_size):
        outputs = forward_prepared(records, forward, batch_size=batch_size, combine=combine)
        for r in records:
            yield r["index"], outputs.get(r["index"]), r.get("error")


def forward_prepared(
    records: list[dict[str, Any]],
    forward: Callable[[Prepared], Any],
    *,
    batch_size: int,
    combine: Callable[[list[Prepared]], Prepared] = concat,
) -> dict[int, Any]:
    """Run the prepared records of :func:`prepare_item` (errors skipped) through ``forward`` in chunks of
    at most ``batch_size`` views; each record's index gets its rows back."""
    good = [r for r in records if "error" not in r]
    outputs: dict[int, Any] = {}
    if good:
        counts = [next(iter(r["inputs"].values())).shape[0] for r in good]
        batch = combine([r["inputs"] for r in good])
        total = sum(counts)
        chunks = [forward({k: v[s:s + batch_size] for k, v in batch.items()})
                  for s in range(0, total, batch_size)]
        rows = _cat(chunks)
        start = 0
        for r, n in zip(good, counts):
            outputs[r["index"]] = _slice(rows, start, start + n)
            start += n
    return outputs


def _as_is(record: Any) -> Any:  # batch_size=None: the loader's items one by one
    return record


def _groups(records: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    group = []
    for record in records:
        group.append(record)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def _cat(chunks: list[Any]) -> Any:
    if isinstance(chunks[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*chunks))
    return torch.cat(chunks)


def _slice(rows: Any, a: int, b: int) -> Any:
    return tuple(r[a:b] for r in rows) if isinstance(rows, tuple) else rows[a:b]
