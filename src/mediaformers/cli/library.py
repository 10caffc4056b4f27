"""The media library's commands: index, search, serve."""
from __future__ import annotations

import json
import os
import sys

from .checks import _say_precision
from .errors import _cli_hint, _visible
from .inference import _progress

def _library(args, **new):
    from ..library import Library

    if not os.path.isdir(args.library) and not new:
        raise ValueError(f"{args.library}: no such library folder (make one with `mediaformers index`)")
    if not new and not os.path.isfile(os.path.join(args.library, "library.json")):  # search/serve make nothing
        raise ValueError(f"{args.library}: expected a library folder (with library.json), got a folder without "
                         "one (make a library with `mediaformers index`)")
    library = Library(args.library, device=args.device, precision=args.precision,
                      allow_partial=getattr(args, "allow_partial", False), **new)
    _say_precision(args)  # after the checks the library makes of its options and models
    return library


def cmd_index(args) -> int:
    embed_many = None
    if args.ray is not None:
        from ..integrations.ray import library_embedder

        embed_many = library_embedder(args.library, address=args.ray or None, actors=args.ray_actors,
                                      device=args.device, quiet=args.quiet, precision=args.precision)
    lib = _library(args, model=args.model, audio_model=args.audio_model, segment=args.segment)
    counts: dict[str, int] = {}
    for rec in _progress(lib.add(args.inputs, prune=not args.no_prune, embed_many=embed_many), None,
                         args.quiet):
        counts[rec["status"]] = counts.get(rec["status"], 0) + 1
        if rec["status"] == "error":
            line = f"skipped {rec['path']}: {_cli_hint(ValueError(rec['error']))}"
            print(f"mediaformers index: {_visible(line)}", file=sys.stderr)
    print(json.dumps({"library": str(args.library), **dict(sorted(counts.items()))}))
    return 1 if counts.get("error") else 0


def cmd_search(args) -> int:
    from ..search.client import running_server, search_remote

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
    from ..search.server import check_port
    from ..serve import serve

    check_port(args.port)  # before the models load
    lib = _library(args)
    serve(lib, host=args.host, port=args.port, allow_remote=args.allow_remote, max_upload=args.max_upload << 20)
    return 0

