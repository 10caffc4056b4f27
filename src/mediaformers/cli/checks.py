"""What every command's arguments must be, checked before anything loads; the default precision."""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import UsageError

def _check_args(args) -> None:
    """What every command's arguments must be, checked before anything loads."""
    for i, value in enumerate(getattr(args, "inputs", None) or [], 1):
        if not value.strip():
            raise UsageError(f"inputs: expected a file, folder or .txt list, got an empty string (input {i})")
    for name in ("model", "library"):
        value = getattr(args, name, None)
        if isinstance(value, str) and not value.strip():
            raise UsageError(f"{name}: expected a path or name, got an empty string")
    if isinstance(getattr(args, "model", None), str):
        _check_model_path(args.model)
    if args.command == "export" and args.batch < 1:
        raise UsageError(f"--batch: expected a positive batch size, got {args.batch}")
    if args.command == "export" and args.batch > _MAX_EXPORT_BATCH:
        raise UsageError(f"--batch: expected a positive batch size of at most {_MAX_EXPORT_BATCH} for the example "
                         f"inputs (--dynamic-batch frees it at run time), got {args.batch}")
    for name in ("output", "library"):  # "" would write into the working folder
        value = getattr(args, name, None)
        if isinstance(value, str) and not value.strip():
            flag = "-o" if name == "output" or args.command == "index" else name
            raise UsageError(f"{flag}: expected a path, got an empty string")
    if getattr(args, "resume", False) and getattr(args, "overwrite", False):
        raise UsageError("--resume and --overwrite: expected one of them (continue OUTPUT or replace it), got both")
    workers = getattr(args, "workers", None)
    if args.command != "train" and isinstance(workers, int) and not 0 <= workers <= _MAX_WORKERS:
        raise UsageError(f"--workers: expected 0 to {_MAX_WORKERS} decoding processes, got {workers}")
    for flag in ("clips", "hop"):
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            raise UsageError(f"--{flag}: expected a whole number >= 1, got {value}")
    if args.command == "explain" and args.view < 0:
        raise UsageError(f"--view: expected a view number >= 0, got {args.view}")
    if args.command == "demo" and args.seed < 0:
        raise UsageError(f"--seed: expected a whole number >= 0, got {args.seed}")
    if args.command == "index" and args.segment is not None:  # None: a new library's default
        from ..search.records import check_segment

        try:
            args.segment = check_segment(args.segment)  # the library's own rule, named as the flag
        except ValueError as err:
            raise UsageError(f"--{err}") from None
    if args.command == "train":
        from ..train.cli import check

        check(args)


_MAX_WORKERS = 256  # a process each: a typo of 100000 would fork until the machine stalls
_MAX_EXPORT_BATCH = 1024  # example inputs only: their size does not limit the exported model with --dynamic-batch


def _check_model_path(model: str) -> None:
    """A training run folder given where a model is expected: point at the model folders it holds."""
    run = Path(model)
    if run.is_dir() and not (run / "config.json").exists() and (run / "metrics.jsonl").exists():
        inside = [n for n in ("best", "final") if (run / n / "config.json").exists()]
        hint = f"; use {run / inside[0]}" if inside else ""
        raise UsageError(f"model: {run} is a training run folder, not a model (it holds "
                         f"{', '.join(inside) or 'no model folder yet'}){hint}")


def _default_precision(args) -> None:
    """``auto`` unless --precision (or --dtype) says; :func:`_say_precision` names the choice when a model loads."""
    if args.command not in _AUTO_PRECISION or getattr(args, "precision", "") is not None:
        return
    if getattr(args, "dtype", None) is None:
        args.precision = "auto"
        args.precision_note = True


def _say_precision(args) -> None:
    """The precision chosen by default, once on stderr, as the first model loads (a usage error prints only itself)."""
    if getattr(args, "precision_note", False):
        args.precision_note = False
        from ..precision import resolve_precision

        chosen = resolve_precision("auto", args.device or "cpu")
        print(f"mediaformers {args.command}: precision {chosen} (auto; --precision fp32 for bit-exact float32)",
              file=sys.stderr)


_AUTO_PRECISION = ("classify", "zero-shot", "embed", "index", "search", "serve")
