"""``mediaformers classify --timeline`` and ``--stream``: flags, checks made before the model loads, the run."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# flag -> (Timeline option, what it takes); None defaults, so a flag given without --timeline/--stream is caught
_TIMELINE_FLAGS = {"stride": "stride", "frame_step": "frame_step", "min_duration": "min_duration",
                   "merge_gap": "merge_gap", "threshold": "threshold", "labels_per_window": "labels_per_window"}
_LIVE_FLAGS = ("read_timeout", "reconnect", "reconnect_delay", "max_reconnect_delay", "stream_option", "stream_format",
               "max_lag")


def add_flags(c: argparse.ArgumentParser) -> None:
    """The timeline and live flags of ``classify``; INPUTS become optional (a stream replaces them)."""
    for action in c._actions:
        if action.dest == "inputs":
            action.nargs = "*"
    g = c.add_argument_group("timelines and live input (docs/timelines.md)")
    g.add_argument("--timeline", action="store_true",
                   help="classify windows over the whole of each input and merge them into labelled segments "
                        "(JSON Lines: kind 'window' and kind 'segment' records)")
    g.add_argument("--stream", metavar="URL", default=None,
                   help="classify live input as it arrives: rtsp/http/udp/tcp URL, HLS, a growing file, or - "
                        "for stdin (one record per window, flushed at once; implies --timeline)")
    g.add_argument("--stride", type=float, default=None, help="video: seconds between clips (default 2)")
    g.add_argument("--frame-step", type=int, default=None,
                   help="video: frames between a clip's frames (default: clips span the stride)")
    g.add_argument("--min-duration", type=float, default=None, help="drop segments shorter than this (s)")
    g.add_argument("--merge-gap", type=float, default=None, help="join a label's windows this far apart (s)")
    g.add_argument("--threshold", type=float, default=None, help="a window votes for labels scoring at least this")
    g.add_argument("--labels-per-window", type=int, default=None, help="labels each window votes for (default 1)")
    g.add_argument("--plot", metavar="FILE", default=None,
                   help="also draw the timeline to FILE.png or FILE.svg (needs the plot extra)")
    g.add_argument("--read-timeout", type=float, default=None,
                   help="--stream: seconds without data before it counts as stalled (default 10)")
    g.add_argument("--reconnect", type=int, default=None,
                   help="--stream: reopenings in a row after a network stream drops (default 5)")
    g.add_argument("--reconnect-delay", type=float, default=None,
                   help="--stream: seconds before the first reopening, doubling each time (default 0.5)")
    g.add_argument("--max-reconnect-delay", type=float, default=None,
                   help="--stream: the longest wait between reopenings (default 8)")
    g.add_argument("--stream-option", metavar="KEY=VALUE", action="append", default=None,
                   help="--stream: an FFmpeg option, repeatable (rtsp_transport=tcp, fifo_size=100000, "
                        "live_start_index=0, ...)")
    g.add_argument("--max-lag", metavar="SECONDS", type=float, default=None,
                   help="--stream: skip windows already more than this behind live when the model is free for "
                        "them, so a model slower than real time stays current (default: classify every window)")
    g.add_argument("--stream-format", metavar="FORMAT", default=None,
                   help="--stream: FFmpeg's input format, as ffmpeg -f (a capture device: alsa, x11grab; "
                        "raw stdin: s16le)")


def wanted(args: argparse.Namespace) -> bool:
    return bool(args.timeline or args.stream is not None)


def check(args: argparse.Namespace) -> None:
    """Everything about the flags, before the model loads."""
    given = [f for f in (*_TIMELINE_FLAGS, "plot", *_LIVE_FLAGS) if getattr(args, f) is not None]
    if not wanted(args):
        if given:
            raise ValueError(f"--{given[0].replace('_', '-')}: applies with --timeline or --stream")
        if not args.inputs:
            raise ValueError("inputs: expected media files, folders or .txt lists (or --stream URL), got none")
        return
    if args.stream is not None and args.inputs:
        raise ValueError(f"--stream: expected either INPUTS or --stream, got both ({args.inputs[0]} and "
                         f"{args.stream})")
    if args.stream is None and not args.inputs:
        raise ValueError("--timeline: expected media files, folders or .txt lists, got none")
    live = [f for f in _LIVE_FLAGS if getattr(args, f) is not None]
    if live and args.stream is None:
        raise ValueError(f"--{live[0].replace('_', '-')}: applies with --stream")
    if args.stream is not None:
        live_options(args)  # its checks (numbers, KEY=VALUE, the format's name) before the model loads
        if args.max_lag is not None:
            from ..processors.video.pyav.live import check_seconds

            check_seconds("--max-lag", args.max_lag)
    for flag, bad in (("--ray", args.ray is not None), ("--resume", args.resume), ("--views", args.views),
                      ("--clips/--crops", (args.clips, args.crops) != (1, 1))):
        if bad:
            raise ValueError(f"{flag}: not available with --timeline/--stream")
    if args.plot is not None:
        from ..plots import check_picture_path

        check_picture_path(args.plot)
        if args.stream is None and len(args.inputs) != 1:
            raise ValueError(f"--plot: draws one input's timeline; got {len(args.inputs)} inputs")


def timeline_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"timeline": True, **{opt: getattr(args, f) for f, opt in _TIMELINE_FLAGS.items()
                                 if getattr(args, f) is not None}}


def live_options(args: argparse.Namespace):
    from ..processors.video.pyav.live import LiveOptions

    names = {"read_timeout": "read_timeout", "reconnect": "reconnect", "reconnect_delay": "backoff",
             "max_reconnect_delay": "max_backoff", "stream_format": "format"}
    given = {opt: getattr(args, f) for f, opt in names.items() if getattr(args, f) is not None}
    return LiveOptions(**given, options=stream_options(args.stream_option or []))


def stream_options(pairs: list[str]) -> dict[str, str]:
    """``--stream-option KEY=VALUE`` flags as FFmpeg options; a key given twice is refused (which to keep?)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"--stream-option: expected KEY=VALUE (an FFmpeg option, e.g. rtsp_transport=tcp), "
                             f"got {pair!r}")
        if key in out:
            raise ValueError(f"--stream-option: {key} given twice ({out[key]!r} and {value!r})")
        out[key] = value
    return out


def run(args: argparse.Namespace, timeline, writer) -> int:
    """Write the records of every input (or of the stream) to ``writer``; draw ``--plot`` at the end."""
    from .inputs import expand_inputs

    collect: list | None = [] if args.plot else None
    segments: list[dict[str, Any]] = []
    failed = windows = 0
    sources: list[tuple[str, Callable[[], Iterator[dict[str, Any]]]]]
    if args.stream is not None:
        from .stream import stream_records

        options = live_options(args)

        def live() -> Iterator[dict[str, Any]]:
            return stream_records(timeline, args.stream, options, collect=collect, max_lag=args.max_lag)

        sources = [(args.stream, live)]
    else:
        def file_records(key: str) -> Callable[[], Iterator[dict[str, Any]]]:
            return lambda: timeline.iter_records(key, collect=collect)

        sources = [(it.key, file_records(it.key)) for it in expand_inputs(args.inputs, timeline.accept)]
    try:
        for key, records in sources:
            it = records()
            while True:
                try:
                    rec = next(it)
                except StopIteration:
                    break
                except (ValueError, OSError) as err:  # one input fails, the others go on (as classify)
                    failed += 1
                    rec = {"input": key, "error": str(err)}
                    print(f"mediaformers: failed: {rec['error']}", file=sys.stderr)
                    writer.write(rec)
                    break
                windows += rec["kind"] == "window"
                if rec["kind"] == "segment":
                    segments.append(rec)
                writer.write(rec)
    except KeyboardInterrupt:  # Ctrl-C: a stream's normal end; what was written stays (no --resume here)
        print("mediaformers classify: interrupted; the records written so far are kept", file=sys.stderr)
        return 130
    finally:  # also after Ctrl-C: the picture of what was classified
        if collect:
            from ..plots.timeline import plot_timeline

            title = sources[0][0] if args.stream is not None else Path(sources[0][0]).name
            plot_timeline(collect, timeline.id2label, args.plot, segments=segments, title=title)
    if args.stream is not None and not windows:
        print(f"mediaformers: {args.stream}: no window was classified", file=sys.stderr)
        return 1
    return 1 if failed else 0
