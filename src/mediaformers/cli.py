"""The command line: a thin layer over mediaformers.tasks. See ``mediaformers --help``."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import MediaformersError, TrainingError, UsageError

EPILOG = {
    "classify": "example:\n  mediaformers classify MCG-NJU/videomae-base-finetuned-kinetics clips/ --top-k 3 -o out.jsonl",
    "zero-shot": 'example:\n  mediaformers zero-shot BAAI/AltCLIP photos/ --labels cat dog "ein Auto" --template "a photo of {}"',
    "embed": "example:\n  mediaformers embed ./my-checkpoint clips/ -o embeddings.parquet",
    "info": "example:\n  mediaformers info ./my-checkpoint",
    "demo": "example:\n  mediaformers demo demo/   # trains small models on generated media, classifies fresh media",
    "index": "examples:\n  mediaformers index photos/ videos/ -o my-library --model altclip --segment 4\n"
             "  mediaformers index sounds/ -o sound-library --audio-model ast-audioset",
    "search": 'examples:\n  mediaformers search my-library "un perro en la playa" -k 5\n'
              "  mediaformers search my-library --like photo.jpg --where \"path LIKE '%2024%'\"",
    "serve": "example:\n  mediaformers serve my-library   # then open http://127.0.0.1:8000",
    "export": "examples:\n  mediaformers export ./my-checkpoint -o exported/ --format onnx --dynamic-batch\n"
              "  mediaformers export BAAI/AltCLIP -o altclip-onnx/ --part all",
}

EPILOG_EXPLAIN = "example:\n  mediaformers explain demo/runs/videomae/best demo/fresh/video/circle_0.mp4 -o where.png"


def _common(p: argparse.ArgumentParser, *, outputs: bool = True) -> None:
    p.add_argument("model", help="checkpoint folder, hub id (org/name) or registry name")
    p.add_argument("inputs", nargs="+", help="media files, folders (searched recursively) or .txt lists of paths")
    p.add_argument("--batch-size", type=_positive("batch size"), default=4, help="views per model call (default 4)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers that decode while the model runs")
    p.add_argument("--device", type=_device, default=None, help="cpu, cuda, cuda:1, ... (default cpu)")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"])
    _precision_flag(p)
    p.add_argument("--compile", action="store_true", help="torch.compile the model first")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--frames", type=_positive("frames"), default=None,
                   help="video models: frames per clip instead of the checkpoint's")
    p.add_argument("--size", type=_positive("size"), default=None,
                   help="video/image models: frame size (square crop) instead of the checkpoint's")
    p.add_argument("--allow-partial", action="store_true",
                   help="damaged or cut media: use what decodes instead of reporting an error")
    p.add_argument("--non-strict", action="store_true",
                   help="load a checkpoint that does not fit exactly (missing/unexpected tensors keep their init)")
    if outputs:
        p.add_argument("-o", "--output", help="write JSON Lines here (default: stdout)")
        p.add_argument("--resume", action="store_true", help="continue OUTPUT: skip inputs it already holds")
        p.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")


def _precision_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", default=None, choices=["fp32", "bf16", "int8", "auto"],
                   help="inference precision: bf16 uses the CPU's/GPU's bf16 units, int8 quantises the "
                        "encoder's Linear layers (CPU), auto = bf16 where the hardware has it (default auto, "
                        "printed once on stderr; --dtype alone keeps its dtype; fp32 for bit-exact work)")


def _ray_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray: decode in tasks, the model in actors (one per GPU), Parquet partitions in the "
                        "-o folder; ADDRESS 'auto' or ray://host:10001 joins a cluster, none starts Ray here")
    p.add_argument("--ray-actors", type=_positive("actors"), default=None,
                   help="--ray: model actors (default one per GPU, else the CPUs but one)")


class _Parser(argparse.ArgumentParser):
    """argparse's usage errors as one line (the full usage is one --help away); subcommands inherit it."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mediaformers", description="Video, audio, audio-visual and image-text transformers on media files.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples (the demo makes these paths):\n  mediaformers demo demo/\n"
               "  mediaformers classify demo/runs/videomae/best demo/fresh/video\n"
               "  mediaformers classify demo/runs/ast/best demo/fresh/audio\n"
               "  mediaformers info demo/runs/videomae/best\n\n"
               "errors are one line (exit 2: arguments or inputs; 1: some inputs or a run failed);\n"
               "--debug anywhere on the line shows the traceback")
    sub = parser.add_subparsers(dest="command", required=True)
    fmt = argparse.RawDescriptionHelpFormatter
    c = sub.add_parser("classify", help="label videos, audio or both (classification checkpoints)",
                       epilog=EPILOG["classify"], formatter_class=fmt)
    _common(c)
    c.add_argument("--top-k", type=_positive("top-k"), default=5)
    c.add_argument("--clips", type=int, default=1, help="video: clips spread over each video, averaged")
    c.add_argument("--crops", type=int, default=1, choices=[1, 3], help="video: 3 = three-crop testing")
    c.add_argument("--hop", type=int, default=None, help="audio: frames between windows (default half a window)")
    c.add_argument("--aggregate", default="mean", choices=["mean", "max"], help="how views/windows combine")
    c.add_argument("--views", action="store_true", help="also list each view's/window's labels")
    _ray_flags(c)
    from .tasks.timeline_cli import add_flags as add_timeline_flags  # timelines and streams: their own module

    add_timeline_flags(c)
    z = sub.add_parser("zero-shot", help="score images or videos against labels in any language (image-text checkpoints)",
                       epilog=EPILOG["zero-shot"], formatter_class=fmt)
    _common(z)
    z.add_argument("--labels", nargs="+", required=True, help="candidate labels")
    z.add_argument("--template", default="{}", help='prompt around each label, e.g. "a photo of {}"')
    z.add_argument("--top-k", type=_positive("top-k"), default=5)
    e = sub.add_parser("embed", help="pooled embeddings of any family to .parquet or .npy",
                       epilog=EPILOG["embed"], formatter_class=fmt)
    _common(e, outputs=False)
    e.add_argument("-o", "--output", required=True, help="FILE.parquet or FILE.npy (written atomically at the end; "
                   "finished embeddings wait in FILE.partial.jsonl; beside FILE.npy, FILE.inputs.jsonl names "
                   "each row's input)")
    e.add_argument("--resume", action="store_true", help="continue an interrupted run from FILE.partial.jsonl")
    e.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT (and its partial file)")
    _ray_flags(e)
    i = sub.add_parser("info", help="family, config, parameters, FLOPs and expected input of a model",
                       epilog=EPILOG["info"], formatter_class=fmt)
    i.add_argument("model", help="checkpoint folder, hub id or registry name")
    x = sub.add_parser("export", help="ONNX or torch.export program of a model, verified against eager PyTorch",
                       epilog=EPILOG["export"], formatter_class=fmt)
    x.add_argument("model", help="checkpoint folder, hub id or registry name")
    x.add_argument("-o", "--output", required=True, help="folder for the export and the processor files")
    x.add_argument("--format", default="onnx", choices=["onnx", "exported-program"])
    x.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    x.add_argument("--dynamic-batch", action="store_true", help="batch size free at run time")
    x.add_argument("--part", default="model", choices=["model", "text", "image", "all"],
                   help="two-tower models: one tower, or all = the model and each tower")
    x.add_argument("--batch", type=int, default=2, help="batch size of the example inputs (default 2)")
    ix = sub.add_parser("index", help="embed images, video segments and sounds into a searchable library",
                        epilog=EPILOG["index"], formatter_class=fmt)
    ix.add_argument("inputs", nargs="+", help="media files, folders or .txt lists of paths")
    ix.add_argument("-o", "--library", required=True, help="library folder (created, or updated incrementally)")
    ix.add_argument("--model", default=None, help="image-text checkpoint for images and video (new library)")
    ix.add_argument("--audio-model", default=None, help="audio checkpoint for sounds (new library)")
    ix.add_argument("--segment", type=float, default=4.0, help="seconds per video segment (new library; default 4)")
    ix.add_argument("--no-prune", action="store_true", help="keep files that vanished from the given folders")
    ix.add_argument("--allow-partial", action="store_true",
                    help="damaged or cut media: index what decodes instead of skipping the file")
    ix.add_argument("--device", default=None)
    _precision_flag(ix)
    ix.add_argument("--quiet", action="store_true", help="no progress bar")
    ix.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                    help="embed the new and changed files in Ray actors (one per GPU, else the CPUs but one); "
                         "this process writes the library; ADDRESS 'auto' or ray://host:10001 joins a cluster")
    ix.add_argument("--ray-actors", type=_positive("actors"), default=None, help="--ray: embedding actors")
    se = sub.add_parser("search", help="find media in a library by text (any language) or by example",
                        epilog=EPILOG["search"], formatter_class=fmt)
    se.add_argument("library")
    se.add_argument("text", nargs="?", help="what to look for, in any language")
    se.add_argument("--like", help="an example image, video or sound")
    se.add_argument("-k", type=_positive("results"), default=10, help="files (or rows with --rows) to list (default 10)")
    se.add_argument("--where", help="SQL filter on path, start, end, kind, whole, e.g. \"kind = 'video'\"")
    se.add_argument("--rows", action="store_true", help="every matching row (a video's segments separately) "
                                                        "instead of one line per file with its other times")
    se.add_argument("--device", default=None)
    _precision_flag(se)
    sv = sub.add_parser("serve", help="a local search page over a library", epilog=EPILOG["serve"], formatter_class=fmt)
    sv.add_argument("library")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8000, help="0 picks a free port (default 8000)")
    sv.add_argument("--max-upload", type=_positive("megabytes"), default=256,
                    help="largest search-by-example upload in MB (default 256)")
    sv.add_argument("--allow-remote", action="store_true", help="allow a host other machines can reach")
    sv.add_argument("--device", default=None)
    _precision_flag(sv)
    d = sub.add_parser("demo", help="generate labelled media, train small models on it, classify fresh media",
                       epilog=EPILOG["demo"], formatter_class=fmt)
    d.add_argument("folder", nargs="?", help="work folder (default: a new temporary folder); same as --workdir")
    d.add_argument("--workdir", help="work folder: data/, runs/<model>/best, fresh/, results.jsonl")
    d.add_argument("--quick", action="store_true", help="less data and fewer steps: a fast check, lower accuracy")
    d.add_argument("--seed", type=int, default=0, help="seed of the training data (fresh media: seed + 1)")
    d.add_argument("--search", action="store_true",
                   help="the search demo instead: captions in four languages, a tiny AltCLIP, a library to search")
    ex = sub.add_parser("explain", help="where a classifier looked: attention rollout as a heat map on the "
                        "frames or spectrogram", epilog=EPILOG_EXPLAIN, formatter_class=fmt)
    ex.add_argument("model", help="classification checkpoint folder, hub id or registry name")
    ex.add_argument("input", help="a video or audio file")
    ex.add_argument("-o", "--output", required=True, help="the picture: FILE.png or FILE.svg (needs the plot extra)")
    ex.add_argument("--view", type=int, default=0, help="which view (audio window, video clip) to explain (default 0)")
    ex.add_argument("--device", type=_device, default=None, help="cpu, cuda, ... (default cpu)")
    from .train.cli import add_parser as add_train_parser  # training's flags live with training

    add_train_parser(sub)
    for command in sub.choices.values():  # one thread policy for every command (mediaformers.threads)
        command.add_argument("--threads", type=_positive("threads"), default=None,
                             help="compute threads (default: the cores available minus --workers; "
                                  "or MEDIAFORMERS_THREADS)")
    return parser


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
    from .tasks.loading import load_model

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
    from .tasks.pipelines import pipeline

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
    from .integrations.ray import Job, run

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
    from .integrations.ray import output_folder, require_ray

    require_ray()
    if args.resume:
        raise ValueError("--resume: not available with --ray (a job writes its partitions whole); use --overwrite")
    if not args.output:
        raise ValueError("-o: expected a folder for the Parquet partitions with --ray, got none")
    output_folder(args.output, overwrite=args.overwrite)


def _inputs(pipe, args, done: set[str]) -> list[str]:
    from .tasks.inputs import expand_inputs
    from .tasks.output import input_key

    items = expand_inputs(args.inputs, pipe.accept)
    return [it.key for it in items if input_key(it.key) not in done]


def _stream(pipe, args, **call) -> int:
    from .tasks.output import RecordWriter

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
        from .tasks.output import check_output_path

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


def cmd_classify(args) -> int:
    from .tasks import timeline_cli

    timeline_cli.check(args)
    _check_ray(args)
    if args.ray is None:
        _check_output_first(args)
    loaded = _load(args)
    if loaded.declaration.task == "zero-shot-classification":
        raise ValueError(f"{args.model} is a zero-shot model ({loaded.family}); use "
                         "`mediaformers zero-shot MODEL INPUTS --labels ...`")
    views = {"num_clips": args.clips, "num_crops": args.crops} if (args.clips, args.crops) != (1, 1) else {}
    options = {"top_k": args.top_k, "aggregate": args.aggregate, **views,
               **({"hop": args.hop} if args.hop is not None else {})}
    if timeline_cli.wanted(args):  # long or live media as window and segment records
        from .tasks.output import RecordWriter

        pipe = _pipeline(args, None, loaded, **options, **timeline_cli.timeline_options(args))
        with RecordWriter(args.output, overwrite=args.overwrite) as out:
            return timeline_cli.run(args, pipe, out)
    pipe = _pipeline(args, None, loaded, **options)
    if args.ray is not None:
        return _ray(args, None, pipe, options, {"views": args.views}, _hinted)
    return _stream(pipe, args, views=args.views)


def cmd_zero_shot(args) -> int:
    _check_labels(args.labels, args.template)
    _check_output_first(args)
    pipe = _pipeline(args, "zero-shot-classification", template=args.template)
    return _stream(pipe, args, candidate_labels=args.labels, top_k=args.top_k)


def cmd_embed(args) -> int:
    from .tasks.output import RecordWriter, check_output_path, dumps, partial_path, read_parts, write_embeddings

    _check_ray(args)
    if args.ray is not None:
        return _ray(args, "feature-extraction", _pipeline(args, "feature-extraction"), {}, {}, _embedding_record)
    path = Path(args.output)
    if path.suffix not in (".npy", ".parquet"):
        raise ValueError(f"-o: expected a .npy or .parquet file, got {path.name}")
    # Everything about the output is checked before the model loads and the work starts.
    check_output_path(path, overwrite=args.overwrite, resumable=False)
    if path.suffix == ".npy":
        check_output_path(rows_sidecar(path), overwrite=args.overwrite or args.resume, resumable=False)
    parts = partial_path(path)
    if parts.exists() and not (args.resume or args.overwrite):
        raise ValueError(f"-o: an interrupted run left {parts}; pass --resume to continue it or --overwrite to "
                         "start again")
    if path.suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ValueError("-o: writing .parquet needs pyarrow (pip install 'mediaformers[parquet]'), or use "
                             ".npy") from None
    failed = 0
    with RecordWriter(parts, resume=args.resume, overwrite=args.overwrite) as out:
        pipe = _pipeline(args, "feature-extraction")
        inputs, row = _inputs(pipe, args, out.done), len(out.done)
        for rec in _progress(pipe.iter(inputs) if inputs else iter(()), len(inputs), args.quiet):
            if "error" in rec:
                failed += 1
                _report(_hinted(rec))
                print(dumps(rec))
            else:
                rec = _embedding_record(rec)  # float32: the parts read back bit for bit
                print(dumps({"input": rec["input"], "row": row}))
                row += 1
            out.write(rec)
        keys, rows = read_parts(parts)
        if path.suffix == ".npy":  # an array has no room for names: row i's input is line i of the sidecar
            _write_rows_sidecar(rows_sidecar(path), keys)
        write_embeddings(path, keys, rows)
        os.unlink(parts)  # under the lock: OUTPUT now holds every part
    return 1 if failed else 0


def rows_sidecar(path: Path) -> Path:
    """``x.npy`` -> ``x.inputs.jsonl``: one ``{"row": i, "input": ...}`` a line, row i of the array."""
    return path.with_name(path.stem + ".inputs.jsonl")


def _write_rows_sidecar(file: Path, keys: list[str]) -> None:
    tmp = file.with_name(f".{file.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for i, key in enumerate(keys):
            f.write(json.dumps({"row": i, "input": key}, ensure_ascii=False) + "\n")
    os.replace(tmp, file)


def cmd_info(args) -> int:
    from .tasks.info import describe

    print(json.dumps(describe(args.model), indent=2, ensure_ascii=False))
    return 0


def cmd_export(args) -> int:
    from .export import export_model
    from .tasks.loading import load_model, processor

    # torch's ONNX exporter logs "torchvision is not installed" once per torchvision op it could register:
    # notes about a package this library never uses (the export does not need it)
    logging.getLogger("torch.onnx._internal.exporter._registration").addFilter(_NoTorchvisionNote())
    # onnxscript's optimizer warns once per Split it leaves unfolded: a note on its own pass, not on the export
    logging.getLogger("onnxscript.optimizer._constant_folding").addFilter(_NoTorchvisionNote())
    loaded = load_model(args.model)
    model, folder = loaded.model, loaded.folder
    inputs = loaded.declaration.dummy_inputs(type(model), model.config, args.batch)
    two_towers = all(hasattr(model, f"get_{p}_features") for p in ("text", "image"))
    if args.part != "model" and not two_towers:
        raise ValueError(f"--part {args.part}: {type(model).__name__} has one tower; use --part model")
    parts = ["model", "text", "image"] if args.part == "all" else [args.part]
    for part in parts:
        result = export_model(model, args.output, inputs, format=args.format, precision=args.precision,
                              dynamic_batch=args.dynamic_batch, part=part,
                              source_folder=folder)
        print(result.summary())
    if set(loaded.declaration.processors) == {"video"}:
        # the settings classify uses, complete (file + model config), so torch-free preprocessing follows them
        processor(loaded, "video").save_pretrained(args.output)
    return 0


class _NoTorchvisionNote(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return "torchvision is not installed" not in text and "Skipping constant folding" not in text


def _library(args, **new):
    from .library import Library

    if not os.path.isdir(args.library) and not new:
        raise ValueError(f"{args.library}: no such library folder (make one with `mediaformers index`)")
    library = Library(args.library, device=args.device, precision=args.precision,
                      allow_partial=getattr(args, "allow_partial", False), **new)
    _say_precision(args)  # after the checks the library makes of its options and models
    return library


def cmd_index(args) -> int:
    embed_many = None
    if args.ray is not None:
        from .integrations.ray import library_embedder

        embed_many = library_embedder(args.library, address=args.ray or None, actors=args.ray_actors,
                                      device=args.device, quiet=args.quiet, precision=args.precision)
    lib = _library(args, model=args.model, audio_model=args.audio_model, segment=args.segment)
    counts: dict[str, int] = {}
    for rec in _progress(lib.add(args.inputs, prune=not args.no_prune, embed_many=embed_many), None,
                         args.quiet):
        counts[rec["status"]] = counts.get(rec["status"], 0) + 1
        if rec["status"] == "error":
            print(f"mediaformers index: skipped {rec['path']}: {_cli_hint(ValueError(rec['error']))}", file=sys.stderr)
    print(json.dumps({"library": str(args.library), **dict(sorted(counts.items()))}))
    return 1 if counts.get("error") else 0


def cmd_search(args) -> int:
    from .search.client import running_server, search_remote

    server = None  # a running `serve` of this library answers text queries with its models already loaded
    chosen = args.precision is not None and not getattr(args, "precision_note", False)  # given, not the default
    if args.text is not None and args.like is None and not (args.where or args.rows or args.device or chosen):
        server = running_server(args.library) if os.path.isdir(args.library) else None
    if server is not None:
        records = search_remote(server, args.text, args.k)
    else:
        lib = _library(args)
        hits = lib.search(text=args.text, like=args.like, k=args.k, where=args.where, group=not args.rows)
        records = [hit.record() for hit in hits]
    for rec in records:
        print(json.dumps(rec, ensure_ascii=False))
    return 0


def cmd_serve(args) -> int:
    from .search.server import check_port
    from .serve import serve

    check_port(args.port)  # before the models load
    lib = _library(args)
    serve(lib, host=args.host, port=args.port, allow_remote=args.allow_remote, max_upload=args.max_upload << 20)
    return 0


def cmd_explain(args) -> int:
    from .plots import check_picture_path

    check_picture_path(args.output, "-o")  # before the model loads
    from .plots.explain import plot_explanation
    from .tasks.explain import explain
    from .tasks.loading import load_model
    from .tasks.pipelines import pipeline

    pipe = pipeline(None, load_model(args.model, device=args.device), batch_size=1)
    result = explain(pipe, args.input, view=args.view)
    plot_explanation(result, args.output, title=f"{Path(args.input).name}: {result['label']} ({result['score']:.3f})")
    print(json.dumps({"input": args.input, "label": result["label"], "score": result["score"], "output": args.output}))
    return 0


def cmd_train(args) -> int:
    from .train.cli import run

    return run(args)


def cmd_demo(args) -> int:
    import tempfile

    from .demo import run_demo

    if args.folder and args.workdir and Path(args.folder) != Path(args.workdir):
        raise ValueError(f"demo: expected one work folder, got {args.folder} and --workdir {args.workdir}")
    folder = Path(args.folder or args.workdir or tempfile.mkdtemp(prefix="mediaformers-demo-"))
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"demo: expected a folder to build the demo in, got a file {folder}")
    if args.search:
        from .search.demo import run_search_demo

        return 0 if run_search_demo(folder, seed=args.seed, quick=args.quick)["recall@5"] >= 0.8 else 1
    print(f"mediaformers demo: working in {folder}/ (data/, runs/<model>/best, fresh/, results.jsonl)",
          file=sys.stderr)

    def classify(model: Path, media: Path):  # exactly `mediaformers classify MODEL MEDIA --top-k 1`
        ns = build_parser().parse_args(["classify", str(model), str(media), "--quiet", "--top-k", "1"])
        pipe = _pipeline(ns, None, _load(ns), top_k=1)
        return pipe.iter(_inputs(pipe, ns, set()))

    result = run_demo(folder, classify, quick=args.quick, seed=args.seed)
    return 1 if any(result["errors"].values()) else 0


COMMANDS = {"classify": cmd_classify, "zero-shot": cmd_zero_shot, "embed": cmd_embed, "info": cmd_info,
            "export": cmd_export, "train": cmd_train, "index": cmd_index, "search": cmd_search, "serve": cmd_serve, "demo": cmd_demo}
COMMANDS["explain"] = cmd_explain


# Python option -> the flag that does the same on the command line, for error hints.
_FLAGS = {"allow_partial=True": "--allow-partial", "strict=False": "--non-strict",
          "ignore_mismatched_sizes=True": "--non-strict (a head of another size is then left as initialised)"}


def _cli_hint(err: BaseException) -> str:
    text = str(err) if not isinstance(err, OSError) or not err.filename else f"{err.strerror}: {err.filename}"
    if isinstance(err, OSError) and err.errno == 28 and "disk is full" not in text:  # unless it says so itself
        text += " (disk full; records written so far are kept: free space and rerun with --resume)"
    for python, flag in _FLAGS.items():
        text = text.replace(python, flag)
    return text


def _positive(name: str):
    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
        if n < 1:
            raise argparse.ArgumentTypeError(f"expected a number >= 1, got {n}")
        return n
    parse.__name__ = name
    return parse


def _device(value: str) -> str:
    import re

    if not re.fullmatch(r"(cpu|cuda|mps|xpu)(:\d+)?", value):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N, mps or xpu, got {value!r}")
    return value


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
    if args.command == "index":
        from .search.records import check_segment

        try:
            check_segment(args.segment)  # the library's own rule, named as the flag
        except ValueError as err:
            raise UsageError(f"--{err}") from None
    if args.command == "train":
        from .train.cli import check

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
        from .precision import resolve_precision

        chosen = resolve_precision("auto", args.device or "cpu")
        print(f"mediaformers {args.command}: precision {chosen} (auto; --precision fp32 for bit-exact float32)",
              file=sys.stderr)


_AUTO_PRECISION = ("classify", "zero-shot", "embed", "index", "search", "serve")


def _one_line(err: BaseException) -> str:
    lines = [x.strip() for x in str(err).strip().splitlines() if x.strip()]
    return lines[0] if len(lines) == 1 else (lines[0] + " ...") if lines else type(err).__name__


def main(argv: list[str] | None = None) -> int:
    from .allocator import keep_freed_memory
    from .threads import apply_threads

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # anywhere on the line: a traceback for every error, as Python gives it
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    keep_freed_memory()  # batch after batch reuses the activation memory instead of faulting it in again
    try:
        _check_args(args)
        # DataLoader workers (inference's --workers, train's --num-workers) decode on cores of their own
        apply_threads(getattr(args, "workers", None) or getattr(args, "num_workers", 0) or 0, args.threads)
        _default_precision(args)
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as the Python docs advise
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        print(f"mediaformers {args.command}: output closed early; stopped", file=sys.stderr)
        return 2
    except TrainingError as err:  # a run that started and stopped part way: what it finished is kept
        if debug:
            raise
        print(f"mediaformers {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 1
    except (ValueError, OSError, MediaformersError) as err:  # OSError: read-only location, disk full, permissions
        if debug:
            raise
        print(f"mediaformers {args.command}: error: {_cli_hint(err)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as err:
        if debug or not _out_of_memory(err):
            raise  # a real bug: the traceback is what a report needs
        print(f"mediaformers {args.command}: error: out of memory ({_one_line(err)[:200]}); try a smaller "
              "--batch-size (or --batch), or fewer --workers", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        kept = ("finished records are kept (use --resume)" if args.command in ("classify", "zero-shot")
                else "finished embeddings are kept in OUTPUT.partial.jsonl (use --resume)"
                if args.command == "embed" else
                _train_interrupted(args.output) if args.command == "train" else "stopped")
        print(f"mediaformers {args.command}: interrupted; {kept}", file=sys.stderr)
        return 130


def _train_interrupted(output: str) -> str:
    """What Ctrl-C left of a run: --resume goes on from a checkpoint only where one was written."""
    states = sorted(Path(output).glob("checkpoints/step-*.pt"))
    if states:
        return (f"the same command with --resume continues the run in {output} from its last checkpoint "
                f"({states[-1].stem}; steps after it are done again)")
    if Path(output).is_dir() and any(Path(output).iterdir()):
        return f"no checkpoint was written yet: the same command with --resume starts the run in {output} again"
    return "no checkpoint was written yet: run the same command again"


def _out_of_memory(err: BaseException) -> bool:
    text = str(err)
    return isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError" or any(
        s in text for s in ("can't allocate memory", "out of memory", "DefaultCPUAllocator"))


if __name__ == "__main__":
    sys.exit(main())
