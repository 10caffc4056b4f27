"""A searchable media library: embeddings of images, video segments and audio windows in LanceDB.

Layout of a library folder: ``library.json`` (which models made the vectors, and their sizes) and a
LanceDB database with three tables:

- ``visual``: one row per image, per video segment (``segment`` seconds) and per whole video (the
  mean of its segments, ``whole=True``), embedded by an image-text model (AltCLIP);
- ``audio``: one row per audio window and per whole file, embedded by an audio model (AST), when
  the library has one;
- ``files``: one row per indexed file (size, mtime, content hash, duration, status). A file's
  vectors are written first and its ``files`` row last, so a row there means "complete": an
  interrupted run leaves vectors without a files row, which the next run deletes and redoes.

Incremental: a rerun skips files whose size and mtime (else content hash) are unchanged, re-embeds
changed ones, and removes files that disappeared from the folders it is given.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

LIBRARY_FILE = "library.json"
ANN_MIN_ROWS = 50_000  # below this an exact scan is fast enough and exact
NPROBES, REFINE = 32, 100  # ANN search: partitions probed; candidates re-ranked exactly per result (bench_search.py: recall@10 1.000 at 100k and 1M vectors; 30 gave 0.887 at 1M)
VISUAL_KINDS = ("image", "video")


def _sql(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def file_hash(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class Hit:
    path: str
    start: float
    end: float
    score: float
    kind: str
    whole: bool

    def record(self) -> dict[str, Any]:
        return {"path": self.path, "start": round(self.start, 3), "end": round(self.end, 3),
                "score": round(self.score, 6), "kind": self.kind, "whole": self.whole}


@dataclass(frozen=True)
class _Todo:
    """A new or changed file to embed: its path, media kind, stat, content hash and old files row."""

    path: str
    kind: str
    st: os.stat_result
    digest: str
    old: dict[str, Any] | None


class LibraryError(ValueError):
    pass


class Library:
    """``Library(path).add(paths)`` indexes media; ``.search(text=..., like=..., k=...)`` finds them.

    ``model``: an image-text checkpoint (folder, hub id or registry name) for images and video;
    ``audio_model``: optionally, an audio checkpoint for sounds. Both are fixed when the library is
    created (``library.json``); opening an existing library uses the recorded ones. ``precision``
    (``fp32``/``bf16``/``int8``/``auto``, as ``from_pretrained``) is how they run here, not part of the
    library: vectors from different precisions agree to a cosine of 0.99 or better and are searched together.
    """

    def __init__(self, path: str | os.PathLike, *, model: str | None = None, audio_model: str | None = None,
                 segment: float = 4.0, device: str | None = None, batch_size: int = 16,
                 precision: str | None = None):
        import lancedb

        from .precision import resolve_precision

        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise LibraryError(f"library: expected a folder, got a file {self.path}")
        meta_file = self.path / LIBRARY_FILE
        if meta_file.is_file():
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            for name, given in (("model", model), ("audio_model", audio_model)):
                if given is not None and given != meta.get(name):
                    raise LibraryError(f"{name}: this library was built with {meta.get(name)!r}; got {given!r} "
                                       "(vectors of two models cannot be searched together: use a new library)")
        elif self.path.exists() and any(self.path.iterdir()):
            raise LibraryError(f"library: {self.path} is a folder with other files and no {LIBRARY_FILE}; "
                               "expected a new or an existing library folder")
        else:
            if model is None and audio_model is None:
                raise LibraryError("model: a new library needs an image-text model (model=) and/or an audio "
                                   "model (audio_model=), got neither")
            if segment <= 0:
                raise LibraryError(f"segment: expected seconds > 0, got {segment}")
            meta = {"model": model, "audio_model": audio_model, "segment": float(segment), "version": 1}
        self.meta = meta
        self.device, self.batch_size = device, batch_size
        with warnings.catch_warnings():  # a bad value fails here, before any model loads; loading warns
            warnings.simplefilter("ignore")
            resolve_precision(precision, device)
        self.precision = precision
        self._models: dict[str, Any] = {}
        self.path.mkdir(parents=True, exist_ok=True)
        self.db = lancedb.connect(str(self.path / "db"))

    # ---- models ---------------------------------------------------------------------------------
    def _loaded(self, which: str):
        if which not in self._models:
            from .tasks.loading import load_model

            ref = self.meta[which]
            if ref is None:
                raise LibraryError(f"{which}: this library has none; it was built with {self.meta}")
            self._models[which] = load_model(ref, device=self.device, precision=self.precision)
        return self._models[which]

    def _processor(self, which: str, kind: str):
        from .tasks.loading import processor

        key = f"{which}:{kind}"
        if key not in self._models:
            self._models[key] = processor(self._loaded(which), kind)
        return self._models[key]

    def embed_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(n, H, W, 3) uint8 frames -> (n, dim) unit vectors of the image-text model."""
        from .tasks.zero_shot import image_embeddings

        pixels = self._processor("model", "image")(list(frames))["pixel_values"]
        return image_embeddings(self._loaded("model").model, pixels, self.batch_size)

    def embed_text(self, texts: Sequence[str]) -> torch.Tensor:
        from .tasks.zero_shot import text_embeddings

        tokens = self._processor("model", "text")(text=list(texts), padding=True, truncation=True)
        return text_embeddings(self._loaded("model").model, tokens["input_ids"], tokens["attention_mask"])

    def embed_audio_windows(self, source: str) -> tuple[torch.Tensor, list[tuple[float, float]]]:
        """An audio file (or a video's sound track) -> (windows, dim) unit vectors and their times."""
        from .tasks.embedding import unit_embedding
        from .tasks.views import make_views

        loaded = self._loaded("audio_model")
        views = make_views(loaded)(source)
        starts = views.get("window_start", torch.zeros(1)).tolist()
        with torch.inference_mode():
            emb = unit_embedding(loaded, {k: v.to(loaded.model.device) if isinstance(v, torch.Tensor) else v
                                          for k, v in views.items()})
        fe = self._processor("audio_model", "audio")
        length = getattr(fe, "max_length", None) or getattr(fe, "spectrogram_length", 1024)
        span = length * 0.01  # Kaldi frames every 10 ms
        return emb.cpu(), [(s, s + span) for s in starts]

    # ---- tables ---------------------------------------------------------------------------------
    def _table(self, name: str):
        listed = self.db.list_tables() if hasattr(self.db, "list_tables") else self.db.table_names()
        names = getattr(listed, "tables", listed)
        return self.db.open_table(name) if name in names else None

    def _write(self, name: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        import pyarrow as pa

        table = self._table(name)
        if name == "files":
            data = pa.Table.from_pylist(rows)
        else:
            dim = len(rows[0]["vector"])
            schema = pa.schema([("path", pa.string()), ("start", pa.float64()), ("end", pa.float64()),
                                ("kind", pa.string()), ("whole", pa.bool_()),
                                ("vector", pa.list_(pa.float32(), dim))])
            data = pa.Table.from_pylist(rows, schema=schema)
        if table is None:
            self.db.create_table(name, data=data)
        else:
            table.add(data)

    def _delete(self, paths: Sequence[str]) -> None:
        for name in ("visual", "audio", "files"):
            table = self._table(name)
            if table is None:
                continue
            for i in range(0, len(paths), 200):
                table.delete("path IN (" + ", ".join(_sql(p) for p in paths[i:i + 200]) + ")")

    def files(self) -> dict[str, dict[str, Any]]:
        table = self._table("files")
        return {r["path"]: r for r in table.to_arrow().to_pylist()} if table is not None else {}

    def _orphans(self, complete: set[str]) -> list[str]:
        """Paths with vectors but no complete files row: an interrupted run's leftovers."""
        found: set[str] = set()
        for name in ("visual", "audio"):
            table = self._table(name)
            if table is not None:  # the path column only: the vectors are the bulk of the table
                paths = table.search().select(["path"]).limit(table.count_rows()).to_arrow()
                found |= set(paths.column("path").to_pylist())
        return sorted(found - complete)

    # ---- indexing -------------------------------------------------------------------------------
    def _lock(self):
        fh = open(self.path / ".lock", "w")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise LibraryError(f"library: {self.path} is being written by another process; try again when it ends"
                               ) from None
        return fh

    def kinds(self) -> set[str]:
        kinds = set()
        if self.meta.get("model"):
            kinds |= set(VISUAL_KINDS)
        if self.meta.get("audio_model"):
            kinds |= {"audio", "video"}
        return kinds

    def add(self, inputs: Sequence[str | os.PathLike], *, prune: bool = True,
            embed_many: Callable[[list[tuple[str, str]]], Iterator[tuple[str, Any]]] | None = None,
            ) -> Iterator[dict[str, Any]]:
        """Index files and folders; yields one record per file: ``{"path", "status": added|updated|
        unchanged|removed|error, ...}``. With ``prune``, files that vanished from the given folders
        are removed. Hold the iterator to the end: the work happens as it is consumed.

        ``embed_many``: embeds the new and changed files elsewhere, (path, kind) pairs -> (path,
        :meth:`embed_or_error`'s result) in any order (``mediaformers.integrations.ray.library_embedder``);
        this process still decides what to embed and is the one writer. Default: here, one file at a time.
        """
        from .tasks.inputs import expand_inputs, media_kind

        lock = self._lock()
        try:
            (self.path / LIBRARY_FILE).write_text(json.dumps(self.meta, indent=2) + "\n", encoding="utf-8")
            known = self.files()
            complete = {p for p, r in known.items() if r["status"] == "ok"}
            orphans = self._orphans(complete)
            if orphans:
                self._delete(orphans)
            items = expand_inputs([os.fspath(p) for p in inputs], self.kinds())
            seen, todo = set(), {}
            for item in items:
                if item.error is not None and item.source is None:
                    if "no such file" in item.error or "files in folder" in item.error:
                        yield {"path": item.key, "status": "error", "error": item.error}
                        continue
                path = str(Path(item.key).resolve())
                seen.add(path)
                if item.error is not None:
                    yield {"path": path, "status": "error", "error": item.error}
                    continue
                planned = self._plan(path, media_kind(path) or "video", known.get(path))
                if isinstance(planned, dict):  # unchanged
                    yield planned
                elif embed_many is None:
                    yield self._store(planned, self.embed_or_error(planned.path, planned.kind))
                else:
                    todo[planned.path] = planned
            if todo:
                for path, result in embed_many([(t.path, t.kind) for t in todo.values()]):
                    yield self._store(todo.pop(path), result)
                if todo:
                    raise LibraryError(f"embed_many: expected a result for every file, got none for {sorted(todo)[:3]}")
            if prune:
                roots = [str(Path(p).resolve()) for p in inputs if Path(p).is_dir()]
                gone = [p for p in known if p not in seen and any(p.startswith(r + os.sep) for r in roots)
                        and not os.path.exists(p)]
                if gone:
                    self._delete(gone)
                    for p in gone:
                        yield {"path": p, "status": "removed"}
            self._maybe_build_index()
        finally:
            lock.close()

    def _plan(self, path: str, kind: str, old: dict[str, Any] | None) -> dict[str, Any] | _Todo:
        """The record of an unchanged file (its files row refreshed when only touched), or what to embed."""
        st = os.stat(path)
        if old is not None and old["status"] == "ok" and old["size"] == st.st_size and old["mtime_ns"] == st.st_mtime_ns:
            return {"path": path, "status": "unchanged"}
        digest = file_hash(path)
        if old is not None and old["status"] == "ok" and old["sha256"] == digest:  # touched, not changed
            self._table("files").delete(f"path = {_sql(path)}")
            self._write("files", [self._files_row(path, st, digest, kind, old["duration"], "ok", "")])
            return {"path": path, "status": "unchanged"}
        return _Todo(path, kind, st, digest, old)

    def embed_or_error(self, path: str, kind: str) -> tuple[list, list, float | None] | str:
        """(visual rows, audio rows, duration) of a file, or the error text of one that cannot be embedded."""
        try:
            return self._embed_file(path, kind)
        except Exception as err:  # a bad file is logged and retried next run; the rest go on
            return f"{type(err).__name__}: {err}"

    def _store(self, todo: _Todo, result: tuple[list, list, float | None] | str) -> dict[str, Any]:
        """Write a file's vectors (replacing its old ones), then its files row: a run cut in between leaves
        vectors without a complete row, which the next run removes and redoes."""
        path, st, digest, kind = todo.path, todo.st, todo.digest, todo.kind
        self._delete([path])
        if isinstance(result, str):
            self._write("files", [self._files_row(path, st, digest, kind, None, "error", result)])
            return {"path": path, "status": "error", "error": result}
        visual, audio, duration = result
        self._write("visual", visual)
        self._write("audio", audio)
        self._write("files", [self._files_row(path, st, digest, kind, duration, "ok", "")])
        status = "added" if todo.old is None else "updated"
        return {"path": path, "status": status, "vectors": len(visual) + len(audio)}

    def _files_row(self, path, st, digest, kind, duration, status, error) -> dict[str, Any]:
        return {"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest, "kind": kind,
                "duration": float(duration) if duration is not None else -1.0, "status": status, "error": error,
                "indexed_at": time.time()}

    def _embed_file(self, path: str, kind: str):
        visual, audio, duration = [], [], None
        if kind in VISUAL_KINDS and self.meta.get("model"):
            if kind == "image":
                from .processors.video_io import read_frames_at

                emb = self.embed_frames(read_frames_at(path, [0.0]))
                visual.append(self._row(path, 0.0, 0.0, "image", True, emb[0]))
            else:
                visual, duration = self._video_rows(path)
        if (kind == "audio" or (kind == "video" and self._has_audio(path))) and self.meta.get("audio_model"):
            emb, spans = self.embed_audio_windows(path)
            for v, (s, e) in zip(emb, spans):
                audio.append(self._row(path, s, e, kind, False, v))
            if len(emb) > 1:
                audio.append(self._row(path, 0.0, spans[-1][1], kind, True, F.normalize(emb.mean(0), dim=0)))
        if not visual and not audio:
            raise LibraryError(f"{path}: expected {' or '.join(sorted(self.kinds()))} content, found none to embed")
        return visual, audio, duration

    def _has_audio(self, path: str) -> bool:
        import av

        try:
            with av.open(path, metadata_errors="ignore") as c:
                return bool(c.streams.audio)
        except av.FFmpegError:
            return False

    def _video_rows(self, path: str):
        from .processors.video_io import probe_video, read_frames_at

        meta = probe_video(path)
        duration = meta.duration or 0.0
        seg = self.meta["segment"]
        n = max(1, int(np.ceil(duration / seg))) if duration > 0 else 1
        bounds = [(i * seg, min((i + 1) * seg, duration) if duration > 0 else 0.0) for i in range(n)]
        # Two frames per segment (at 1/4 and 3/4 of it), embedded and averaged.
        times = [s + f * (e - s) for s, e in bounds for f in (0.25, 0.75)]
        emb = self.embed_frames(read_frames_at(path, times)).view(n, 2, -1)
        seg_emb = F.normalize(emb.mean(1), dim=-1)
        rows = [self._row(path, s, e, "video", False, v) for (s, e), v in zip(bounds, seg_emb)]
        rows.append(self._row(path, 0.0, duration, "video", True, F.normalize(seg_emb.mean(0), dim=0)))
        return rows, duration

    @staticmethod
    def _row(path, start, end, kind, whole, vector) -> dict[str, Any]:
        return {"path": path, "start": float(start), "end": float(end), "kind": kind, "whole": bool(whole),
                "vector": vector.float().cpu().numpy().astype(np.float32)}

    def _maybe_build_index(self) -> None:
        for name in ("visual", "audio"):
            table = self._table(name)
            if table is None or table.count_rows() < ANN_MIN_ROWS:
                continue
            if not table.list_indices():
                try:
                    from lancedb.index import IvfPq

                    table.create_index("vector", config=IvfPq(distance_type="cosine"))
                except ImportError:  # lancedb before the unified index API
                    table.create_index(metric="cosine", vector_column_name="vector")

    # ---- search ---------------------------------------------------------------------------------
    def query_vector(self, *, text: str | None = None, like: str | os.PathLike | None = None) -> tuple[str, torch.Tensor]:
        """(table, unit vector) for a text query (any language) or an example file."""
        if (text is None) == (like is None):
            raise LibraryError("query: expected exactly one of text= and like=, got "
                               f"{'both' if text is not None else 'neither'}")
        if text is not None:
            if not text.strip():
                raise LibraryError("text: expected words to search for, got an empty query")
            return "visual", self.embed_text([text])[0]
        from .tasks.inputs import media_kind

        path = os.fspath(like)
        if not os.path.isfile(path):
            raise LibraryError(f"like: no such file {path}")
        kind = media_kind(path)
        if kind == "audio":
            emb, _ = self.embed_audio_windows(path)
            return "audio", F.normalize(emb.mean(0), dim=0)
        if kind == "image":
            from .processors.video_io import read_frames_at

            return "visual", self.embed_frames(read_frames_at(path, [0.0]))[0]
        rows, _ = self._video_rows(path)
        return "visual", torch.as_tensor(rows[-1]["vector"])

    def search(self, *, text: str | None = None, like: str | os.PathLike | None = None, k: int = 10,
               where: str | None = None) -> list[Hit]:
        """The ``k`` best rows for a text or an example file; ``where`` is an SQL filter on the rows'
        columns (``path``, ``start``, ``end``, ``kind``, ``whole``), e.g. ``"path LIKE '%2024%'"``."""
        if not isinstance(k, int) or k < 1:
            raise LibraryError(f"k: expected a positive number of results, got {k!r}")
        name, vector = self.query_vector(text=text, like=like)
        table = self._table(name)
        if table is None:
            return []
        q = table.search(vector.numpy().astype(np.float32), vector_column_name="vector").metric("cosine").limit(k)
        if table.list_indices():  # the ANN index: probe more lists and re-rank exactly, for recall
            q = q.nprobes(NPROBES).refine_factor(REFINE)
        if where:
            q = q.where(where, prefilter=True)
        try:
            rows = q.to_list()
        except Exception as err:  # LanceDB's message for a bad filter names the problem
            raise LibraryError(f"where: {where!r} is not a valid filter: {str(err).splitlines()[0]}") from err
        return [Hit(r["path"], r["start"], r["end"], 1.0 - float(r["_distance"]), r["kind"], bool(r["whole"]))
                for r in rows]
