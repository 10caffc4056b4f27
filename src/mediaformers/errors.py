"""Errors of the library's own (torch-free, so configs can raise them).

Every error raised on purpose carries a one-line message naming what was expected and what came; the
command line prints it as one line (exit 2 for a usage or input error, 1 for a run that stopped part
way) and keeps a traceback for real bugs (``--debug`` shows one anyway). The library's other error
classes (``VideoDecodeError``, ``OutputError``, ``ExportError``, ...) are ``ValueError`` subclasses,
which the command line treats the same way.
"""

from __future__ import annotations

from typing import Any


class MediaformersError(Exception):
    """Base of the errors this package raises on purpose."""


class UsageError(MediaformersError, ValueError):
    """Arguments that cannot work (a flag out of range, an empty path), found before anything loads."""


class CheckpointError(MediaformersError, ValueError):
    """A checkpoint that is malformed or does not fit the model; the message names the file and key."""


class DataError(MediaformersError, ValueError):
    """Data a run cannot train on (a manifest row, a folder, labels), found before any step."""


class ResumeError(MediaformersError, ValueError):
    """``resume``: the run folder was trained with other data, model or task; the message names the field."""


class TrainingError(MediaformersError, RuntimeError):
    """A run that started and stopped part way (too many files that fail to decode, a checkpoint that could not
    be written); what it finished is kept."""


class NonFiniteLossError(TrainingError, FloatingPointError):
    """The loss went NaN or infinite at some step; the last good checkpoint (if any) is kept."""


def bad_input(index: int, path: str, message: str) -> dict[str, Any]:
    """The one shape of the record an input that could not be prepared leaves among the prepared ones
    (DataLoader items in inference, training and the datasets): ``{"index", "path", "error"}``, the
    message naming the file. A batch skips these and reports them; one bad file never stops a run."""
    return {"index": index, "path": path, "error": message}
