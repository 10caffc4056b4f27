"""Errors of the library's own (torch-free, so configs can raise them), and the record of a bad input."""
from __future__ import annotations

from typing import Any


class CheckpointError(ValueError):
    """A checkpoint that is malformed or does not fit the model; the message names the file and key."""


def bad_input(index: int, path: str, message: str) -> dict[str, Any]:
    """The one shape of the record an input that could not be prepared leaves among the prepared ones
    (DataLoader items in inference, training and the datasets): ``{"index", "path", "error"}``, the
    message naming the file. A batch skips these and reports them; one bad file never stops a run."""
    return {"index": index, "path": path, "error": message}
