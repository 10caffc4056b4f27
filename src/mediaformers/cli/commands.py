"""The model commands: classify, zero-shot, embed, info, export, explain, train, demo."""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from ..errors import UsageError
from .inference import (_check_labels, _check_output_first, _check_ray, _embedding_record, _hinted, _inputs, _load,
                        _pipeline, _progress, _ray, _report, _stream)
from .parser import build_parser

def cmd_classify(args) -> int:
    from ..tasks import timeline_cli

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
        from ..tasks.output import RecordWriter

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
    from ..tasks.output import RecordWriter, check_output_path, dumps, partial_path, read_parts, write_embeddings

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
    from ..tasks.info import describe

    print(json.dumps(describe(args.model), indent=2, ensure_ascii=False))
    return 0


def cmd_export(args) -> int:
    from ..export import export_model
    from ..tasks.loading import load_model, processor

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



def cmd_explain(args) -> int:
    from ..plots import check_picture_path

    check_picture_path(args.output, "-o")  # before the model loads
    from ..plots.explain import plot_explanation
    from ..tasks.explain import explain
    from ..tasks.loading import load_model
    from ..tasks.pipelines import pipeline

    pipe = pipeline(None, load_model(args.model, device=args.device), batch_size=1)
    result = explain(pipe, args.input, view=args.view)
    plot_explanation(result, args.output, title=f"{Path(args.input).name}: {result['label']} ({result['score']:.3f})")
    print(json.dumps({"input": args.input, "label": result["label"], "score": result["score"], "output": args.output}))
    return 0


def cmd_train(args) -> int:
    from ..train.cli import run

    return run(args)


def cmd_demo(args) -> int:
    import tempfile

    from ..demo import run_demo

    if args.folder and args.workdir and Path(args.folder) != Path(args.workdir):
        raise ValueError(f"demo: expected one work folder, got {args.folder} and --workdir {args.workdir}")
    folder = Path(args.folder or args.workdir or tempfile.mkdtemp(prefix="mediaformers-demo-"))
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"demo: expected a folder to build the demo in, got a file {folder}")
    if args.search:
        from ..search.demo import TARGET, run_search_demo

        # the demo is deterministic (a seed gives the same recall each run), so recall under its target is a
        # regression, not bad luck: exit 1 (--quick trains too little to be held to it)
        recall = run_search_demo(folder, seed=args.seed, quick=args.quick)["recall@5"]
        if recall < TARGET and not args.quick:
            print(f"demo --search: recall@5 {recall:.0%} is under its {TARGET:.0%} target", file=sys.stderr)
            return 1
        return 0
    print(f"mediaformers demo: working in {folder}/ (data/, runs/<model>/best, fresh/, results.jsonl)",
          file=sys.stderr)

    def classify(model: Path, media: Path):  # exactly `mediaformers classify MODEL MEDIA --top-k 1`
        ns = build_parser().parse_args(["classify", str(model), str(media), "--quiet", "--top-k", "1"])
        pipe = _pipeline(ns, None, _load(ns), top_k=1)
        return pipe.iter(_inputs(pipe, ns, set()))

    result = run_demo(folder, classify, quick=args.quick, seed=args.seed)
    return 1 if any(result["errors"].values()) else 0
