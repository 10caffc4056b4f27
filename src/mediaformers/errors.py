"""Errors of the library's own (torch-free, so configs can raise them)."""


class CheckpointError(ValueError):
    """A checkpoint that is malformed or does not fit the model; the message names the file and key."""
