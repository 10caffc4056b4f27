"""Bringing a library up to date with folders: plan (unchanged / touched / to embed), embed, write, prune.

A file's vectors are written first and its ``files`` row last, so a row there means "complete": an
interrupted run leaves vectors without a files row, which the next run deletes and redoes.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch.nn.functional as F

from .records import LIBRARY_FILE, VISUAL_KINDS, LibraryError, Todo, check_name, file_hash, write_text_atomic
from .store import crash_point

if TYPE_CHECKING:
    from .library import Library

EmbedMany = Callable[[list[tuple[str, str]]], Iterator[tuple[str, Any]]]


def add(lib: Library, inputs: Sequence[str | os.PathLike], prune: bool, embed_many: EmbedMany | None,
        ) -> Iterator[dict[str, Any]]:
    from ..tasks.inputs import expand_inputs, media_kind
    from .locking import writer_lock

    lock = writer_lock(lib.path)
    try:
        _same_models(lib)
        crash_point("rewrite:meta")
        write_text_atomic(lib.path / LIBRARY_FILE, json.dumps(lib.meta, indent=2) + "\n")
        store = lib.store
        known = store.files()
        complete = {p for p, r in known.items() if r["status"] == "ok"}
        orphans = store.orphans(complete)
        if orphans:
            store.delete(orphans)
        items = expand_inputs([os.fspath(p) for p in inputs], lib.kinds())
        seen, todo = set(), {}
        for item in items:
            if item.error is not None and item.source is None:
                if "no such file" in item.error or "files in folder" in item.error:
                    yield {"path": item.key, "status": "error", "error": item.error}
                    continue
            path = str(Path(item.key).resolve())
            seen.add(path)
            try:
                check_name(path)
            except LibraryError as err:
                yield {"path": os.fsencode(path).decode("utf-8", "backslashreplace"), "status": "error",
                       "error": str(err)}
                continue
            if item.error is not None:
                yield {"path": path, "status": "error", "error": item.error}
                continue
            found = os.path.abspath(item.key)
            kind_of = _not_regular(path)
            if kind_of is not None:  # reading it would block (a FIFO) or never end (/dev/zero)
                yield {"path": path, "status": "error", "error": f"expected a regular media file, got {kind_of}"}
                continue
            try:
                planned = plan(lib, path, media_kind(path) or "video", known.get(path), found)
            except OSError as err:  # gone (or unreadable) since the folder was listed: the rest go on
                seen.discard(path)  # a vanished file's old rows are pruned like any removed file's
                yield {"path": path, "status": "error", "error": f"{type(err).__name__}: {err.strerror or err}"}
                continue
            if isinstance(planned, dict):  # unchanged
                yield planned
            elif embed_many is None:
                yield write(lib, planned, embed_or_error(lib, planned.path, planned.kind))
            else:
                todo[planned.path] = planned
        if todo:
            for path, result in embed_many([(t.path, t.kind) for t in todo.values()]):  # type: ignore[misc]
                yield write(lib, todo.pop(path), result)
            if todo:
                raise LibraryError(f"embed_many: expected a result for every file, got none for {sorted(todo)[:3]}")
        if prune:
            yield from _prune(lib, inputs, known, seen)
        if store.writes:  # compacting costs a pass over every table: only after a run that wrote
            store.upkeep()
    finally:
        lock.close()


def _not_regular(path: str) -> str | None:
    """What the path is when it is not a regular file (a FIFO, a device, a folder), else None."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # gone: plan() reports it
    if stat.S_ISREG(mode):
        return None
    return ("a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a folder" if stat.S_ISDIR(mode) else "a socket" if stat.S_ISSOCK(mode) else "a special file")


def _same_models(lib: Library) -> None:
    """Two `index` creating one library at once with different models: each wrote its library.json before
    either held the lock; the second to get the lock would add its vectors to the first one's library."""
    try:
        on_disk = json.loads((lib.path / LIBRARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    keys = ("model", "audio_model", "segment", "model_fingerprint", "audio_model_fingerprint")
    if isinstance(on_disk, dict) and any(on_disk.get(k) != lib.meta.get(k) for k in keys):
        raise LibraryError(f"library: {lib.path / LIBRARY_FILE} changed since this process opened it (another "
                           f"process made or changed the library: model {on_disk.get('model')!r}); expected "
                           f"{lib.meta.get('model')!r}; nothing was written: open it again")


def _prune(lib: Library, inputs, known: dict[str, dict], seen: set[str]) -> Iterator[dict[str, Any]]:
    """Files gone from the given folders. A symlink is indexed as its target, which may live outside the
    folder: its row records where it was found, and goes when that link is gone or points elsewhere."""
    roots = [os.path.abspath(p) for p in inputs if Path(p).is_dir()]
    roots += [str(Path(r).resolve()) for r in roots]
    gone = []
    for p, rec in known.items():
        if p in seen:
            continue
        found = rec.get("found_as") or p
        if not any(q.startswith(r + os.sep) for r in roots for q in (p, found)):
            continue  # indexed from elsewhere: not this run's to prune
        if not os.path.exists(p) or not os.path.lexists(found) or str(Path(found).resolve()) != p:
            gone.append(p)
    if gone:
        lib.store.delete(gone)
        for p in gone:
            yield {"path": p, "status": "removed"}


def plan(lib: Library, path: str, kind: str, old: dict[str, Any] | None, found: str) -> dict[str, Any] | Todo:
    """The record of an unchanged file (its files row refreshed when only touched), or what to embed."""
    st = os.stat(path)
    if old is not None and old["status"] == "ok" and old["size"] == st.st_size and old["mtime_ns"] == st.st_mtime_ns:
        return {"path": path, "status": "unchanged"}
    digest = file_hash(path)
    if old is not None and old["status"] == "ok" and old["sha256"] == digest:  # touched, not changed
        return write(lib, Todo(path, kind, st, digest, old, found), None, status="unchanged")
    return Todo(path, kind, st, digest, old, found)


def embed_or_error(lib: Library, path: str, kind: str) -> tuple[list, list, float | None] | str:
    """(visual rows, audio rows, duration) of a file, or the error text of one that cannot be embedded."""
    try:
        return embed_file(lib, path, kind)
    except Exception as err:  # a bad file is logged and retried next run; the rest go on
        return f"{type(err).__name__}: {err}"


def write(lib: Library, todo: Todo, result, status: str | None = None) -> dict[str, Any]:
    """Write a file's vectors (replacing its old ones), then its files row: a run cut in between leaves
    vectors without a complete row, which the next run removes and redoes."""
    store = lib.store
    path = todo.path
    if result is None:  # touched only: a new files row, same vectors
        store.delete([path], tables=("files",))
        store.write("files", [files_row(todo, todo.old["duration"], "ok", "")])  # type: ignore[index]
        return {"path": path, "status": status}
    store.delete([path])
    if isinstance(result, str):
        store.write("files", [files_row(todo, None, "error", result)])
        return {"path": path, "status": "error", "error": result}
    visual, audio, duration = result
    store.write("visual", visual)
    store.write("audio", audio)
    crash_point("before:files-row")
    store.write("files", [files_row(todo, duration, "ok", "")])
    return {"path": path, "status": "added" if todo.old is None else "updated", "vectors": len(visual) + len(audio)}


def files_row(todo: Todo, duration: float | None, status: str, error: str) -> dict[str, Any]:
    return {"path": todo.path, "size": todo.st.st_size, "mtime_ns": todo.st.st_mtime_ns, "sha256": todo.digest,
            "kind": todo.kind, "duration": float(duration) if duration is not None else -1.0, "status": status,
            "error": error, "indexed_at": time.time(), "found_as": todo.found}


def row(path, start, end, kind, whole, vector) -> dict[str, Any]:
    return {"path": path, "start": float(start), "end": float(end), "kind": kind, "whole": bool(whole),
            "vector": vector.float().cpu().numpy().astype("float32")}


def embed_file(lib: Library, path: str, kind: str):
    visual, audio, duration = [], [], None
    models = lib.embedder
    if kind in VISUAL_KINDS and lib.meta.get("model"):
        if kind == "image":
            visual.append(row(path, 0.0, 0.0, "image", True, models.image_file(path)))
        else:
            visual, duration = video_rows(lib, path)
    if (kind == "audio" or (kind == "video" and models.has_audio(path))) and lib.meta.get("audio_model"):
        emb, spans = models.audio_windows(path)
        for v, (s, e) in zip(emb, spans, strict=True):
            audio.append(row(path, s, e, kind, False, v))
        if len(emb) > 1:
            audio.append(row(path, 0.0, spans[-1][1], kind, True, F.normalize(emb.mean(0), dim=0)))
    if not visual and not audio:
        raise LibraryError(f"{path}: expected {' or '.join(sorted(lib.kinds()))} content, found none to embed")
    return visual, audio, duration


def video_rows(lib: Library, path: str) -> tuple[list[dict[str, Any]], float]:
    bounds, seg_emb, duration = lib.embedder.video_segments(path, lib.meta["segment"])
    rows = [row(path, s, e, "video", False, v) for (s, e), v in zip(bounds, seg_emb, strict=True)]
    rows.append(row(path, 0.0, duration, "video", True, F.normalize(seg_emb.mean(0), dim=0)))
    return rows, duration

