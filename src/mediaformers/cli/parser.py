"""The argument parser: every command's flags, their types and checks, the examples under --help."""
from __future__ import annotations

import argparse

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
    from ..tasks.timeline_cli import add_flags as add_timeline_flags  # timelines and streams: their own module

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
    ix.add_argument("--segment", type=float, default=None, help="seconds per video segment (new library; default 4)")
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
    sv.add_argument("--port", type=_port, default=8000, help="0 picks a free port (default 8000)")
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
    from ..train.cli import add_parser as add_train_parser  # training's flags live with training

    add_train_parser(sub)
    for command in sub.choices.values():  # one thread policy for every command (mediaformers.threads)
        command.add_argument("--threads", type=_positive("threads"), default=None,
                             help="compute threads (default: the cores available minus --workers; "
                                  "or MEDIAFORMERS_THREADS)")
    return parser


def _whole(value: str) -> int:
    import re

    # as typed: ASCII digits only (int() would also take ' 80', '8_0' and other scripts' digits)
    if not re.fullmatch(r"-?[0-9]{1,18}", value):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}")
    return int(value)


def _positive(name: str):
    def parse(value: str) -> int:
        n = _whole(value)
        if n < 1:
            raise argparse.ArgumentTypeError(f"expected a number >= 1, got {n}")
        return n
    parse.__name__ = name
    return parse


def _port(value: str) -> int:
    n = _whole(value)
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"expected 0..65535 (0 picks a free port), got {n}")
    return n


def _device(value: str) -> str:
    import re

    if not re.fullmatch(r"(cpu|cuda|mps|xpu)(:\d+)?", value):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N, mps or xpu, got {value!r}")
    return value

