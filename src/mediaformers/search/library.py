"""A searchable media library: embeddings of images, video segments and audio windows in LanceDB.

Layout of a library folder: ``library.json`` (which models made the vectors: a local checkpoint as its
absolute path and a fingerprint of its weights; the segment length) and a LanceDB database with three
tables:

- ``visual``: one row per image, per video segment (``segment`` seconds) and per whole video (the
  mean of its segments, ``whole=True``), embedded by an image-text model (AltCLIP);
- ``audio``: one row per audio window and per whole file, embedded by an audio model (AST), when
  the library has one;
- ``files``: one row per indexed file (size, mtime, content hash, duration, status, where it was found).

Incremental: a rerun skips files whose size and mtime (else content hash) are unchanged, re-embeds
changed ones, and removes files that disappeared from the folders it is given (see ``sync``).
"""
from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from . import sync
from .models import Embedder, check_device, pin
from .records import LIBRARY_FILE, VISUAL_KINDS, Hit, LibraryError, check_batch_size, check_k, check_segment, write_text_atomic
from .store import Store, crash_point

DEFAULT_SEGMENT = 4.0  # seconds per video segment of a new library
NPROBES, REFINE = 32, 100  # ANN search: partitions probed; candidates re-ranked exactly per result (bench_search.py: recall@10 1.000 at 100k and 1M vectors; 30 gave 0.887 at 1M)


def _creation_leftover(p: Path) -> bool:
    """What a creation killed before its library.json leaves: the lock, an empty db, a temp file."""
    if p.name == ".lock" or p.name.startswith(f".{LIBRARY_FILE}."):
        return True
    return p.name == "db" and p.is_dir() and not any(p.iterdir())


def _read_meta(path: Path, model: str | None, audio_model: str | None) -> dict[str, Any]:
    meta_file = path / LIBRARY_FILE
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError(f"a JSON {type(meta).__name__}")
    except (ValueError, UnicodeDecodeError) as err:
        raise LibraryError(f"{meta_file}: expected the library's JSON description, got unreadable text "
                           f"({str(err).splitlines()[0]})") from None
    _check_meta(meta_file, meta)
    for name, given in (("model", model), ("audio_model", audio_model)):
        if given is not None and pin(given)["ref"] != meta.get(name) and given != meta.get(name):
            raise LibraryError(f"{name}: this library was built with {meta.get(name)!r}; got {given!r} "
                               "(vectors of two models cannot be searched together: use a new library)")
    seg = meta.get("segment")
    if isinstance(seg, bool) or not isinstance(seg, (int, float)) or not math.isfinite(seg) or seg <= 0:
        raise LibraryError(f"{meta_file}: segment: expected finite seconds > 0, got {seg!r}; this library "
                           "was written before --segment was checked: index into a new library")
    return meta


def _check_meta(meta_file: Path, meta: dict[str, Any]) -> None:
    """A hand-edited library.json fails here, in one line, not later inside a model loader."""
    version = meta.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version > 2:
        raise LibraryError(f"{meta_file}: version: expected 1 or 2 (this mediaformers' formats), got {version!r}")
    for name in ("model", "audio_model", "model_fingerprint", "audio_model_fingerprint"):
        value = meta.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise LibraryError(f"{meta_file}: {name}: expected a checkpoint path or name, got {value!r}")
    if meta.get("model") is None and meta.get("audio_model") is None:
        raise LibraryError(f"{meta_file}: expected a model and/or an audio_model, got neither")
    for name in ("model", "audio_model"):  # a relative folder would mean another checkpoint in each folder
        ref = meta.get(name)
        if ref and not os.path.isabs(ref) and os.path.isdir(ref) and not meta.get(f"{name}_fingerprint"):
            raise LibraryError(f"{meta_file}: {name}: expected the checkpoint's absolute path, got the relative "
                               f"{ref!r}, which names another folder from each folder you run in; write its "
                               "absolute path there")


class Library:
    """``Library(path).add(paths)`` indexes media; ``.search(text=..., like=..., k=...)`` finds them.

    ``model``: an image-text checkpoint (folder, hub id or registry name) for images and video;
    ``audio_model``: optionally, an audio checkpoint for sounds. Both are fixed when the library is
    created (``library.json``), and loaded then, so a checkpoint that cannot load creates nothing;
    opening an existing library uses the recorded ones. ``precision`` (``fp32``/``bf16``/``int8``/``auto``,
    as ``from_pretrained``) is how they run here, not part of the library: vectors from different
    precisions agree to a cosine of 0.99 or better and are searched together. ``allow_partial``: a damaged or
    cut file is embedded from what decodes (else it is an error record naming ``--allow-partial``).
    """

    def __init__(self, path: str | os.PathLike, *, model: str | None = None, audio_model: str | None = None,
                 segment: float | None = None, device: str | None = None, batch_size: int = 16,
                 precision: str | None = None, allow_partial: bool = False):
        from ..precision import resolve_precision

        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise LibraryError(f"library: expected a folder, got a file {self.path}")
        device = check_device(device)
        batch_size = check_batch_size(batch_size)
        with warnings.catch_warnings():  # a bad value fails here, before any model loads; loading warns
            warnings.simplefilter("ignore")
            resolve_precision(precision, device)
        new = not (self.path / LIBRARY_FILE).is_file()
        if not new:
            meta = _read_meta(self.path, model, audio_model)
            if segment is not None and check_segment(segment) != meta["segment"]:
                raise LibraryError(f"segment: this library cuts videos into {meta['segment']:g} s segments; got "
                                   f"{segment!r} (its segments cannot change: use a new library)")
        elif self.path.exists() and any(not _creation_leftover(p) for p in self.path.iterdir()):
            raise LibraryError(f"library: {self.path} is a folder with other files and no {LIBRARY_FILE}; "
                               "expected a new or an existing library folder")
        else:
            if model is None and audio_model is None:
                raise LibraryError("model: a new library needs an image-text model (model=) and/or an audio "
                                   "model (audio_model=), got neither")
            pins = {"model": pin(model), "audio_model": pin(audio_model)}
            meta = {"model": pins["model"]["ref"], "audio_model": pins["audio_model"]["ref"],
                    "segment": check_segment(DEFAULT_SEGMENT if segment is None else segment), "version": 2}
            meta.update({f"{k}_fingerprint": v["fingerprint"] for k, v in pins.items() if "fingerprint" in v})
        self.meta = meta
        self.device, self.batch_size, self.precision = device, batch_size, precision
        self.embedder = Embedder(meta, device=device, precision=precision, batch_size=batch_size,
                                 allow_partial=allow_partial)
        if new:  # a checkpoint that cannot load (or cannot do its part) fails now, before the library exists
            for which, parts, what in (("model", ("image", "text"), "an image-text"), ("audio_model", ("audio",), "an audio")):
                if meta[which] is not None:
                    self.embedder.loaded(which)
                    try:
                        for part in parts:
                            self.embedder.processor(which, part)
                    except ValueError as err:
                        raise LibraryError(f"{which}: expected {what} checkpoint, got {meta[which]} "
                                           f"({str(err).splitlines()[0]})") from None
        self.path.mkdir(parents=True, exist_ok=True)
        if new:  # first, before any table: a folder with tables always says which models made them
            crash_point("create:meta")
            write_text_atomic(self.path / LIBRARY_FILE, json.dumps(meta, indent=2) + "\n")
        self.store = Store(self.path / "db")

    # ---- the parts, under the names callers used before the split -------------------------------
    @property
    def db(self):
        return self.store.db

    def _table(self, name: str):
        return self.store.table(name)

    def _write(self, name: str, rows: list[dict[str, Any]]) -> None:
        self.store.write(name, rows)

    def _loaded(self, which: str):
        return self.embedder.loaded(which)

    def _maybe_build_index(self) -> None:
        self.store.upkeep()

    _row = staticmethod(sync.row)

    def embed_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(n, H, W, 3) uint8 frames -> (n, dim) unit vectors of the image-text model."""
        return self.embedder.frames(frames)

    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        return self.embedder.text(texts)

    def embed_audio_windows(self, source: str) -> tuple[torch.Tensor, list[tuple[float, float]]]:
        """An audio file (or a video's sound track) -> (windows, dim) unit vectors and their times."""
        return self.embedder.audio_windows(source)

    def files(self) -> dict[str, dict[str, Any]]:
        return self.store.files()

    def kinds(self) -> set[str]:
        kinds = set()
        if self.meta.get("model"):
            kinds |= set(VISUAL_KINDS)
        if self.meta.get("audio_model"):
            kinds |= {"audio", "video"}
        return kinds

    # ---- indexing -------------------------------------------------------------------------------
    def add(self, inputs: Sequence[str | os.PathLike], *, prune: bool = True,
            embed_many: sync.EmbedMany | None = None) -> Iterator[dict[str, Any]]:
        """Index files and folders; yields one record per file: ``{"path", "status": added|updated|
        unchanged|removed|error, ...}``. With ``prune``, files that vanished from the given folders
        are removed. Hold the iterator to the end: the work happens as it is consumed.

        ``embed_many``: embeds the new and changed files elsewhere, (path, kind) pairs -> (path,
        :meth:`embed_or_error`'s result) in any order (``mediaformers.integrations.ray.library_embedder``);
        this process still decides what to embed and is the one writer. Default: here, one file at a time.
        """
        return sync.add(self, inputs, prune, embed_many)

    def embed_or_error(self, path: str, kind: str) -> tuple[list, list, float | None] | str:
        """(visual rows, audio rows, duration) of a file, or the error text of one that cannot be embedded."""
        return sync.embed_or_error(self, path, kind)

    # ---- search ---------------------------------------------------------------------------------
    def query_vector(self, *, text: str | None = None, like: str | os.PathLike | None = None) -> tuple[str, torch.Tensor]:
        """(table, unit vector) for a text query (any language) or an example file."""
        if (text is None) == (like is None):
            raise LibraryError("query: expected exactly one of text= and like=, got "
                               f"{'both' if text is not None else 'neither'}")
        if text is not None:
            if "\x00" in text:  # never typed: a crafted URL or a broken client
                raise LibraryError(f"text: expected words to search for, got a NUL character at {text.index(chr(0))}")
            if not text.strip() or all(c.isspace() or not c.isprintable() for c in text):
                raise LibraryError(f"text: expected words to search for, got an empty query ({text!r})")
            return "visual", self.embed_text([text])[0]
        from ..tasks.inputs import media_kind

        path = os.fspath(like)  # type: ignore[arg-type]
        if not os.path.isfile(path):
            what = sync._not_regular(path) if os.path.exists(path) else None
            raise LibraryError(f"like: expected a regular media file, got {what} {path}" if what
                               else f"like: no such file {path}")
        kind = media_kind(path)
        if kind == "audio":
            emb, _ = self.embed_audio_windows(path)
            return "audio", F.normalize(emb.mean(0), dim=0)
        if kind == "image":
            return "visual", self.embedder.image_file(path)
        rows, _ = sync.video_rows(self, path)
        return "visual", torch.as_tensor(rows[-1]["vector"])

    def search(self, *, text: str | None = None, like: str | os.PathLike | None = None, k: int = 10,
               where: str | None = None, group: bool = False) -> list[Hit]:
        """The ``k`` best rows for a text or an example file; ``where`` is an SQL filter on the rows'
        columns (``path``, ``start``, ``end``, ``kind``, ``whole``), e.g. ``"path LIKE '%2024%'"``.

        ``group``: one hit per file (its best row first; a video's other matching segments in ``times``,
        best first), ``k`` files instead of ``k`` rows."""
        k = check_k(k)
        name, vector = self.query_vector(text=text, like=like)
        dim = self.store.dims().get(name)
        if dim is not None and vector.numel() != dim:
            raise LibraryError(f"query: the {name} vectors of this library have {dim} values, the query's "
                               f"{vector.numel()}; the model loaded now is not the one that built it")
        fetch = min(k * 8, 10_000) if group else k  # segments of one file crowd the top rows
        rows = self.store.nearest(name, vector.numpy(), fetch, where, NPROBES, REFINE)
        hits = [Hit(r["path"], r["start"], r["end"], 1.0 - float(r["_distance"]), r["kind"], bool(r["whole"]))
                for r in rows]
        return group_hits(hits)[:k] if group else hits


def group_hits(hits: list[Hit]) -> list[Hit]:
    """One hit per file, in the order of each file's best row; its other segments become ``times``."""
    out: dict[str, Hit] = {}
    for h in hits:
        if h.path not in out:
            out[h.path] = Hit(h.path, h.start, h.end, h.score, h.kind, h.whole)
        elif not h.whole:
            out[h.path].times.append((h.start, h.end, h.score))
    return list(out.values())


__all__ = ["Hit", "Library", "LibraryError", "group_hits"]
