"""The Pipeline base: inputs -> prepared views -> batched forward -> one record per input.

Its own module, so task modules (classification, zero-shot, ...) import it and ``pipelines``
imports them, with no cycle.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from . import runner
from .inputs import expand_inputs
from .loading import Loaded


class Pipeline:
    """A task over one loaded model. Subclasses set ``task`` and implement prepare/forward/finish.

    A pipeline takes one input (returns one record, raising on failure) or a list (returns a record
    per input; a failed input's record holds ``error`` instead of results). Records are plain Python.
    """

    task = ""

    def __init__(self, loaded: Loaded, *, batch_size: int = 4, num_workers: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch_size: expected a positive number, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers: expected 0 or more, got {num_workers}")
        self.loaded, self.model = loaded, loaded.model
        self.batch_size, self.num_workers = batch_size, num_workers
        self.accept = set(loaded.declaration.accepts)

    # -- to be set by tasks --------------------------------------------------------------------
    def prepare(self):  # -> callable(source) -> dict of tensors with a leading views dim
        raise NotImplementedError

    def forward(self, batch: dict[str, torch.Tensor]) -> Any:
        raise NotImplementedError

    def finish(self, rows: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:  # tasks name their options
        raise NotImplementedError

    # -- running ---------------------------------------------------------------------------------
    def _to_model(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        dtype, device = self.model.dtype, self.model.device
        return {k: (v.to(device, dtype) if v.is_floating_point() else v.to(device)) for k, v in batch.items()}

    def forward_batch(self, batch: dict[str, torch.Tensor]) -> Any:
        """``forward`` on the model's device and dtype, without autograd."""
        with torch.inference_mode():
            return self.forward(self._to_model(batch))

    def record(self, key: str, rows: Any, error: str | None, **kwargs: Any) -> dict[str, Any]:
        """The record of one input: ``{"input", ...finish(rows)}``, or ``{"input", "error"}``."""
        record: dict[str, Any] = {"input": key}
        if error is None:
            try:
                record.update(self.finish(rows, **kwargs))
            except ValueError as err:
                error = str(err)
        if error is not None:
            record["error"] = error
        return record

    def iter(self, inputs: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """One record per input, in order, as soon as its batch is done."""
        items = expand_inputs(inputs, self.accept)
        for index, rows, error in runner.run(items, self.prepare(), self.forward_batch, batch_size=self.batch_size,
                                             num_workers=self.num_workers):
            yield self.record(items[index].key, rows, error, **kwargs)

    def __call__(self, inputs: Any, **kwargs: Any):
        single = not isinstance(inputs, (list, tuple))
        records = list(self.iter(inputs, **kwargs))
        if single and len(records) == 1:
            if "error" in records[0]:
                raise ValueError(records[0]["error"])
            return records[0]
        return records
