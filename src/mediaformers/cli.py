"""The command line: a thin layer over mediaformers.tasks. See ``mediaformers --help``."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EPILOG = {
    "classify": "example:\n  mediaformers classify MCG-NJU/videomae-base-finetuned-kinetics clips/ --top-k 3 -o out.jsonl",
    "zero-shot": 'example:\n  mediaformers zero-shot BAAI/AltCLIP photos/ --labels cat dog "ein Auto" --template "a photo of {}"',
    "embed": "example:\n  mediaformers embed ./my-checkpoint clips/ -o embeddings.parquet",
    "info": "example:\n  mediaformers info ./my-checkpoint",
    "demo": "example:\n  mediaformers demo demo/   # builds untrained checkpoints + media, then classifies them",
}


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _common(p: argparse.ArgumentParser, *, outputs: bool = True) -> None:
    p.add_argument("model", help="checkpoint folder, hub id (org/name) or registry name")
    p.add_argument("inputs", nargs="+", help="media files, folders (searched recursively) or .txt lists of paths")
    p.add_argument("--batch-size", type=_positive, default=4, help="views per model call (default 4)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers that decode while the model runs")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default cpu)")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"])
    p.add_argument("--compile", action="store_true", help="torch.compile the model first")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    if outputs:
        p.add_argument("-o", "--output", help="write JSON Lines here (default: stdout)")
        p.add_argument("--resume", action="store_true", help="continue OUTPUT: skip inputs it already holds")
        p.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mediaformers", description="Video, audio, audio-visual and image-text transformers on media files.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  mediaformers demo demo/\n  mediaformers classify demo/videomae demo/media\n"
               "  mediaformers info demo/videomae")
    sub = parser.add_subparsers(dest="command", required=True)
    fmt = argparse.RawDescriptionHelpFormatter
    c = sub.add_parser("classify", help="label videos, audio or both (classification checkpoints)",
                       epilog=EPILOG["classify"], formatter_class=fmt)
    _common(c)
    c.add_argument("--top-k", type=_positive, default=5)
    c.add_argument("--clips", type=int, default=1, help="video: clips spread over each video, averaged")
    c.add_argument("--crops", type=int, default=1, choices=[1, 3], help="video: 3 = three-crop testing")
    c.add_argument("--hop", type=int, default=None, help="audio: frames between windows (default half a window)")
    c.add_argument("--aggregate", default="mean", choices=["mean", "max"], help="how views/windows combine")
    c.add_argument("--views", action="store_true", help="also list each view's/window's labels")
    z = sub.add_parser("zero-shot", help="score images or videos against labels in any language (image-text checkpoints)",
                       epilog=EPILOG["zero-shot"], formatter_class=fmt)
    _common(z)
    z.add_argument("--labels", nargs="+", required=True, help="candidate labels")
    z.add_argument("--template", default="{}", help='prompt around each label, e.g. "a photo of {}"')
    z.add_argument("--top-k", type=_positive, default=5)
    e = sub.add_parser("embed", help="pooled embeddings of any family to .parquet or .npy",
                       epilog=EPILOG["embed"], formatter_class=fmt)
    _common(e, outputs=False)
    e.add_argument("-o", "--output", required=True, help="FILE.parquet or FILE.npy (written atomically)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    i = sub.add_parser("info", help="family, config, parameters, FLOPs and expected input of a model",
                       epilog=EPILOG["info"], formatter_class=fmt)
    i.add_argument("model", help="checkpoint folder, hub id or registry name")
    d = sub.add_parser("demo", help="build small untrained checkpoints and media, then classify them",
                       epilog=EPILOG["demo"], formatter_class=fmt)
    d.add_argument("folder", nargs="?", default="demo")
    return parser


# ---- output -----------------------------------------------------------------------------------
def _open_output(args):
    from .tasks.output import open_output

    return open_output(args.output, resume=args.resume, overwrite=args.overwrite)


def _progress(records: Iterator[dict], total: int, quiet: bool) -> Iterator[dict]:
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
def _load(args):
    from .tasks.loading import load_model

    return load_model(args.model, device=args.device, dtype=args.dtype, compile=args.compile)


def _pipeline(args, task: str | None, loaded=None, **options):
    from .tasks.pipelines import pipeline

    return pipeline(task, loaded or _load(args), batch_size=args.batch_size, num_workers=args.workers, **options)


def _inputs(pipe, args, done: set[str]) -> list:
    from .tasks.inputs import expand_inputs

    from .tasks.output import input_key

    items = expand_inputs(args.inputs, pipe.accept)
    return [it for it in items if not done or input_key(it.key) not in done]


def _stream(args, make_pipe, **call) -> int:
    """Open (lock, validate) the output first, so a bad -o fails before the model is loaded."""
    from .tasks.output import record_line

    existed = bool(args.output) and os.path.exists(args.output)
    out, done = _open_output(args)
    written = failed = 0
    try:
        pipe = make_pipe()
        inputs = _inputs(pipe, args, done)
        for rec in _progress(pipe.iter(inputs, **call) if inputs else iter(()), len(inputs), args.quiet):
            failed += "error" in rec
            _report(rec)
            out.write(record_line(rec))
            out.flush()  # record by record: an interrupted run keeps what it finished
            written += 1
    except Exception:
        if not existed and not written and out is not sys.stdout:
            os.unlink(args.output)  # a run that failed before its first record leaves no empty file behind
        raise
    finally:
        if out is not sys.stdout:
            out.close()
    return 1 if failed else 0


def cmd_classify(args) -> int:
    def make_pipe():
        loaded = _load(args)
        if loaded.declaration.task == "zero-shot-classification":
            raise ValueError(f"{args.model} is a zero-shot model ({loaded.family}); use "
                             "`mediaformers zero-shot MODEL INPUTS --labels ...`")
        views = {"num_clips": args.clips, "num_crops": args.crops} if (args.clips, args.crops) != (1, 1) else {}
        return _pipeline(args, None, loaded, top_k=args.top_k, aggregate=args.aggregate, **views,
                         **({"hop": args.hop} if args.hop is not None else {}))

    return _stream(args, make_pipe, views=args.views)


def cmd_zero_shot(args) -> int:
    return _stream(args, lambda: _pipeline(args, "zero-shot-classification", template=args.template),
                   candidate_labels=args.labels, top_k=args.top_k)


def _check_writable(path: Path) -> None:
    if path.suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ValueError("-o: writing .parquet needs pyarrow (pip install pyarrow), or write .npy") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"-o: cannot create {path}: a parent is a file, not a folder") from None
    except OSError as err:
        raise ValueError(f"-o: cannot write in {path.parent}: {err.strerror}") from None
    os.close(fd)
    os.unlink(probe)


def cmd_embed(args) -> int:
    import numpy as np

    from .tasks.output import escape, record_line

    path = Path(args.output)
    if path.suffix not in (".npy", ".parquet"):
        raise ValueError(f"-o: expected a .npy or .parquet file, got {path.name}")
    if path.is_dir():
        raise ValueError(f"-o: expected a file, got the folder {path}")
    if path.exists() and not args.overwrite:
        raise ValueError(f"{path} exists; pass --overwrite to replace it")
    _check_writable(path)  # before the model is loaded and every input computed
    pipe = _pipeline(args, "feature-extraction")
    inputs, rows, keys, failed = _inputs(pipe, args, set()), [], [], 0
    for rec in _progress(pipe.iter(inputs) if inputs else iter(()), len(inputs), args.quiet):
        if "error" in rec:
            failed += 1
            _report(rec)
            print(record_line(rec), end="")
            continue
        print(record_line({"input": rec["input"], "row": len(rows)}), end="")
        keys.append(escape(rec["input"]))
        rows.append(np.asarray(rec["embedding"], dtype=np.float32))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        if path.suffix == ".npy":
            np.save(tmp, np.stack(rows) if rows else np.zeros((0, 0), np.float32))
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.table({"input": pa.array(keys, pa.string()),
                              "embedding": pa.array([r.tolist() for r in rows], pa.list_(pa.float32()))})
            pq.write_table(table, tmp)
        os.replace(tmp, path)  # atomic: readers never see half a file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return 1 if failed else 0


def cmd_info(args) -> int:
    from .tasks.info import describe

    print(json.dumps(describe(args.model), indent=2, ensure_ascii=False))
    return 0


def cmd_demo(args) -> int:
    """Build the demo, then classify its media with each model, one group of lines per model.

    Byte-for-byte reproducible: seeded checkpoints and media, sorted inputs, paths relative to the
    demo folder, no timings.
    """
    from .demo import build_demo
    from .tasks.output import record_line

    folder = Path(args.folder)
    built = build_demo(folder)
    print(f"mediaformers: built untrained demo checkpoints and media in {folder}/ (labels are NOT meaningful)",
          file=sys.stderr)
    failed = 0
    for name in built:
        ns = build_parser().parse_args(["classify", str(folder / name), str(folder / "media"), "--quiet",
                                        "--top-k", "2"])
        loaded = _load(ns)
        pipe = _pipeline(ns, None, loaded, top_k=2)
        fam = loaded.declaration
        reads = sorted(set(fam.processors) & {"video", "audio", "image"})
        what = [f"the {kind} files" for kind in sorted(fam.accepts) if kind in reads]
        if "video" in fam.accepts and "video" not in reads:  # an audio model hears a video's sound track
            what.append("the sound track of each video")
        print(f"# {name} ({'+'.join(reads)} model, untrained) on {' and '.join(what)}:")
        for rec in pipe.iter(_inputs(pipe, ns, set())):
            failed += "error" in rec
            rec = {"model": name, "input": os.path.relpath(rec["input"], folder),
                   **{k: v for k, v in rec.items() if k != "input"}}
            print(record_line(rec), end="")
    return 1 if failed else 0


COMMANDS = {"classify": cmd_classify, "zero-shot": cmd_zero_shot, "embed": cmd_embed, "info": cmd_info,
            "demo": cmd_demo}


def _check_template(template: str) -> None:
    import string

    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as err:
        raise ValueError(f"--template: expected text with one {{}}, got {template!r} ({err})") from None
    if fields != [""]:
        raise ValueError(f"--template: expected text with exactly one {{}} where the label goes, got {template!r}")


def validate(args) -> None:
    """Argument checks argparse cannot express; each fails with the option's name."""
    if getattr(args, "device", None) is not None:
        import torch

        try:
            device = torch.device(args.device)
        except RuntimeError:
            raise ValueError(f"--device: expected cpu, cuda, cuda:N or mps, got {args.device!r}") from None
        if device.type == "meta":
            raise ValueError("--device: expected a device that computes (cpu, cuda, ...), got 'meta'")
    for entry in getattr(args, "inputs", None) or ():
        if not entry.strip():
            raise ValueError("inputs: expected file, folder or list paths, got an empty name ''")
    if args.command == "zero-shot":
        labels = [label.strip() for label in args.labels]
        if not all(labels):
            raise ValueError(f"--labels: expected non-empty labels, got {args.labels!r}")
        seen = {label for label in labels if labels.count(label) > 1}
        if seen:
            raise ValueError(f"--labels: expected distinct labels, got {sorted(seen)} more than once")
        _check_template(args.template)
    if args.command == "demo" and os.path.exists(args.folder) and not os.path.isdir(args.folder):
        raise ValueError(f"demo: expected a folder to build the demo in, got the file {args.folder}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        validate(args)
        return COMMANDS[args.command](args)
    except BrokenPipeError:
        # The reader left (`| head -1`): as the Python docs advise, point stdout at devnull so the
        # interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, OSError) as err:
        text = err
        if isinstance(err, OSError) and err.strerror:
            text = err.strerror + (f": {err.filename}" if err.filename else f" (writing {args.output or 'stdout'})")
        print(f"mediaformers {args.command}: error: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        kept = ("nothing was written (embed writes its file at the end)" if args.command == "embed"
                else "finished records are kept (use --resume)")
        print(f"mediaformers: interrupted; {kept}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
