"""Inference's shared steps: load the model, build the pipeline, stream records to the output, or run on Ray."""
from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .checks import _say_precision
from .errors import _cli_hint

# ---- output -----------------------------------------------------------------------------------
def _progress(records: Iterator[dict], total: int | None, quiet: bool) -> Iterator[dict]:
    if quiet or not sys.stderr.isatty():
        yield from records
        return
    from tqdm import tqdm

    with tqdm(total=total, file=sys.stderr, unit="input") as bar:
        for rec in records:
            bar.update(1)
            yield rec


def _report(rec: dict[str, Any]) -> None:
    if "error" in rec:
        print(f"mediaformers: failed: {rec['error']}", file=sys.stderr)


# ---- commands ----------------------------------------------------------------------------------
def _load_options(args) -> dict[str, Any]:
    return dict(device=args.device, dtype=args.dtype, compile=args.compile, precision=args.precision,
                strict=not args.non_strict, frames=args.frames, size=args.size)


def _load(args):
    from ..tasks.loading import load_model

    options = _load_options(args)
    _say_precision(args)
    if getattr(args, "ray", None) is not None:  # here only the views and checks: the actors load their own
        options.update(device="cpu", dtype=None, compile=False, precision=None)
    return load_model(args.model, **options)


def _task_options(args, task: str | None, options: dict[str, Any]) -> dict[str, Any]:
    if args.allow_partial:
        return {**options, "allow_partial": True}
    return options


def _pipeline(args, task: str | None, loaded=None, **options):
    from ..tasks.pipelines import pipeline

    return pipeline(task, loaded or _load(args), batch_size=args.batch_size, num_workers=args.workers,
                    **_task_options(args, task, options))


def _hinted(rec: dict[str, Any]) -> dict[str, Any]:
    """A record as classify/zero-shot write it: errors name the command-line flags."""
    if "error" in rec:
        rec["error"] = _cli_hint(ValueError(rec["error"]))
    return rec


def _embedding_record(rec: dict[str, Any]) -> dict[str, Any]:
    """A record as embed keeps it: the embedding in float32 (float32 -> Python float -> JSON is exact)."""
    if "error" in rec:
        return rec
    import numpy as np

    return {"input": rec["input"], "embedding": np.asarray(rec["embedding"], np.float32).tolist()}


def _ray(args, task: str | None, pipe, options: dict[str, Any], call: dict[str, Any], post) -> int:
    """``--ray``: the same records, built by Ray tasks and actors, into Parquet partitions in the -o folder."""
    from ..integrations.ray import Job, run

    job = Job(args.model, task, load=_load_options(args), options=_task_options(args, task, options), call=call,
              batch_size=args.batch_size, post=post)
    result = run(job, args.inputs, args.output, address=args.ray or None, actors=args.ray_actors,
                 overwrite=args.overwrite, quiet=args.quiet, pipe=pipe)
    for error in result.pop("errors"):
        _report({"error": error})
    print(json.dumps(result))
    return 1 if result["failed"] else 0


def _check_ray(args) -> None:
    """--ray: Ray and the output folder are checked before the model loads."""
    if args.ray is None:
        return
    from ..integrations.ray import output_folder, require_ray

    require_ray()
    if args.resume:
        raise ValueError("--resume: not available with --ray (a job writes its partitions whole); use --overwrite")
    if not args.output:
        raise ValueError("-o: expected a folder for the Parquet partitions with --ray, got none")
    output_folder(args.output, overwrite=args.overwrite)


def _inputs(pipe, args, done: set[str]) -> list[str]:
    from ..tasks.inputs import expand_inputs
    from ..tasks.output import input_key

    items = expand_inputs(args.inputs, pipe.accept)
    return [it.key for it in items if input_key(it.key) not in done]


def _stream(pipe, args, **call) -> int:
    from ..tasks.output import RecordWriter

    failed = 0
    with RecordWriter(args.output, resume=args.resume, overwrite=args.overwrite) as out:
        inputs = _inputs(pipe, args, out.done)
        for rec in _progress(pipe.iter(inputs, **call) if inputs else iter(()), len(inputs), args.quiet):
            failed += "error" in rec
            _report(_hinted(rec))
            out.write(rec)
    return 1 if failed else 0


def _check_output_first(args) -> None:
    """Output problems are found before the model loads, not after the work."""
    if getattr(args, "output", None):
        from ..tasks.output import check_output_path

        check_output_path(Path(args.output), resume=getattr(args, "resume", False),
                          overwrite=getattr(args, "overwrite", False))


def _check_labels(labels: list[str], template: str) -> None:
    import string

    empty = [i for i, label in enumerate(labels) if not label.strip()]
    if empty:
        raise ValueError(f"--labels: expected non-empty labels, got an empty one at position {empty[0] + 1}")
    dupes = sorted({label for label in labels if labels.count(label) > 1})
    if dupes:
        raise ValueError(f"--labels: expected distinct labels, got {dupes} more than once")
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as err:
        raise ValueError(f"--template: expected text with one {{}} for the label, got {template!r} ({err})") from None
    if fields != [""]:
        raise ValueError(f"--template: expected exactly one {{}} (the label) and no other fields, got {template!r}")

