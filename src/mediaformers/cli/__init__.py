"""The command line: a thin layer over mediaformers.tasks. See ``mediaformers --help``.

parser.py builds the argument parser, checks.py checks the arguments, commands.py and library.py run the
commands (inference.py holds their shared steps), errors.py words what went wrong as one line; ``main``
here calls them and maps each error to one line and an exit code.
"""
from __future__ import annotations

import os
import sys

from ..errors import MediaformersError, TrainingError
from .checks import _AUTO_PRECISION, _MAX_EXPORT_BATCH, _MAX_WORKERS, _check_args, _check_model_path, \
    _default_precision, _say_precision
from .commands import (_NoTorchvisionNote, _write_rows_sidecar, cmd_classify, cmd_demo, cmd_embed, cmd_explain,
                       cmd_export, cmd_info, cmd_train, cmd_zero_shot, rows_sidecar)
from .errors import _FLAGS, _cli_hint, _one_line, _out_of_memory, _train_interrupted, _visible
from .inference import (_check_labels, _check_output_first, _check_ray, _embedding_record, _hinted, _inputs, _load,
                        _load_options, _pipeline, _progress, _ray, _report, _stream, _task_options)
from .library import _library, cmd_index, cmd_search, cmd_serve
from .parser import EPILOG, EPILOG_EXPLAIN, _common, _device, _Parser, _positive, _precision_flag, _ray_flags, \
    build_parser

# The old single module's names, importable from mediaformers.cli as before the split.
__all__ = ["COMMANDS", "EPILOG", "EPILOG_EXPLAIN", "build_parser", "main", "rows_sidecar", "cmd_classify", "cmd_demo",
           "cmd_embed", "cmd_explain", "cmd_export", "cmd_index", "cmd_info", "cmd_search", "cmd_serve", "cmd_train",
           "cmd_zero_shot", "_AUTO_PRECISION", "_FLAGS", "_MAX_EXPORT_BATCH", "_MAX_WORKERS", "_NoTorchvisionNote",
           "_Parser", "_check_args", "_check_labels", "_check_model_path", "_check_output_first", "_check_ray",
           "_cli_hint", "_common", "_default_precision", "_device", "_embedding_record", "_hinted", "_inputs",
           "_library", "_load", "_load_options", "_one_line", "_out_of_memory", "_pipeline", "_positive",
           "_precision_flag", "_progress", "_ray", "_ray_flags", "_report", "_say_precision", "_stream",
           "_task_options", "_train_interrupted", "_write_rows_sidecar"]

COMMANDS = {"classify": cmd_classify, "zero-shot": cmd_zero_shot, "embed": cmd_embed, "info": cmd_info,
            "export": cmd_export, "train": cmd_train, "index": cmd_index, "search": cmd_search, "serve": cmd_serve, "demo": cmd_demo}
COMMANDS["explain"] = cmd_explain


def main(argv: list[str] | None = None) -> int:
    from ..allocator import keep_freed_memory
    from ..threads import apply_threads

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
        print(f"mediaformers {args.command}: error: {_visible(_cli_hint(err))}", file=sys.stderr)
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
