"""JSON Lines output that survives interruption: one writer at a time, resume that never loses data.

- The file is locked (``flock``, exclusive, non-blocking) for the whole run: a second writer is
  refused at once instead of interleaving records.
- ``--resume`` first checks that every complete line is a record of ours (a JSON object with an
  ``"input"``); a file that is not is refused untouched. Only then is a torn last line (a run killed
  mid-write) cut off, in place (``ftruncate``): the file is never rewritten.
- Records are flushed one by one, so whatever finished before an interruption is kept.
- Inputs are keyed by their resolved absolute path, so the same file named another way is not redone.
- ``embed`` keeps each finished embedding in ``OUTPUT.partial.jsonl`` (the same writer: locked,
  resumable) and turns it into OUTPUT (.npy / .parquet, written atomically) at the end; an
  interrupted run keeps its parts and ``--resume`` continues them.
- File names that are not valid UTF-8 are written with JSON's ``\\udcXX`` escapes (Python's
  surrogateescape), which read back to the same name.
"""
from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any, TextIO

from ..locks import exclusive


class OutputError(ValueError):
    """A problem with the output file, named with what was expected."""


def input_key(name: str) -> str:
    """The identity of an input for resume: its resolved absolute path (other names stay as they are)."""
    if name.startswith("input[") or not name:
        return name
    return os.path.realpath(name)


def dumps(record: dict[str, Any]) -> str:
    """One JSON line; non-UTF-8 names (lone surrogates) are escaped instead of failing the run."""
    try:
        line = json.dumps(record, ensure_ascii=False)
        line.encode("utf-8")
        return line
    except UnicodeEncodeError:
        return json.dumps(record, ensure_ascii=True)


def check_output_path(path: Path, *, resume: bool = False, overwrite: bool = False, resumable: bool = True) -> None:
    """Refuse, before any work, an output that cannot be written or that would be lost."""
    if path.exists() and path.is_dir():
        raise OutputError(f"-o: expected a file, got a folder {path}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"-o: {path} would be inside {parent}, which is a file, not a folder")
            if not os.access(parent, os.W_OK):
                raise OutputError(f"-o: cannot write in {parent} (permission denied or read-only)")
            break
    if path.exists() and not (resume or overwrite):
        how = "--resume to continue it or --overwrite to replace it" if resumable else "--overwrite to replace it"
        raise OutputError(f"-o: {path} exists; pass {how}")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"-o: {path} is not writable")


class RecordWriter:
    """Write records to ``path`` (or stdout when None); see the module docstring for the guarantees."""

    def __init__(self, path: str | os.PathLike | None, *, resume: bool = False, overwrite: bool = False):
        self.path = Path(path) if path is not None else None
        self.done: set[str] = set()
        self._fh: TextIO | None = None
        if self.path is None:
            return
        check_output_path(self.path, resume=resume, overwrite=overwrite)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        exclusive(fd, OutputError(f"-o: {self.path} is being written by another mediaformers run; wait for it to "
                                  "end or choose another output"))
        try:
            if resume:
                self.done = self._validated_done(fd)
            elif stat.S_ISREG(os.fstat(fd).st_mode):  # not a device or pipe (/dev/full, /dev/stdout)
                os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_END)
        except BaseException:
            os.close(fd)
            raise
        self._fh = os.fdopen(fd, "w", encoding="utf-8")

    def _validated_done(self, fd: int) -> set[str]:
        size = os.fstat(fd).st_size
        raw = b""
        while len(raw) < size:
            chunk = os.pread(fd, min(1 << 24, size - len(raw)), len(raw))
            if not chunk:
                break
            raw += chunk
        end = raw.rfind(b"\n") + 1  # bytes after the last newline: a record cut by an interruption
        done: set[str] = set()
        for n, line in enumerate(raw[:end].splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                rec = None
            if not isinstance(rec, dict) or not isinstance(rec.get("input"), str):
                raise OutputError(f"--resume: {self.path} line {n} is not a mediaformers record (expected a JSON "
                                  f"object with an \"input\"), got {line[:60]!r}; the file was left as it was")
            if "error" not in rec:
                done.add(input_key(rec["input"]))
        if end < len(raw):
            os.ftruncate(fd, end)  # in place: the torn record is redone
        return done

    def write(self, record: dict[str, Any]) -> None:
        out = self._fh if self._fh is not None else sys.stdout
        out.write(dumps(record) + "\n")
        out.flush()  # record by record: an interrupted run keeps what it finished

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the descriptor releases the lock
            self._fh = None

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def partial_path(path: Path) -> Path:
    """Where ``embed`` keeps finished embeddings until OUTPUT is written."""
    return path.with_name(path.name + ".partial.jsonl")


def read_parts(path: Path) -> tuple[list[str], list[list[float]]]:
    """Inputs and embeddings of a partial file, in order; a retried input keeps its last success."""
    parts: dict[str, list[float]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line) if line.strip() else {}
            if "embedding" in rec:
                parts.pop(rec["input"], None)
                parts[rec["input"]] = rec["embedding"]
    return list(parts), list(parts.values())


def arrow_name(name: str) -> str:
    """``name`` as an Arrow/Parquet string (UTF-8): a file name that is not keeps its bytes as \\xNN escapes."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def write_embeddings(path: Path, keys: list[str], rows: list[list[float]]) -> None:
    """OUTPUT as .npy (rows in order) or .parquet (input, embedding), replaced atomically."""
    import tempfile

    import numpy as np

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        if path.suffix == ".npy":
            np.save(tmp, np.asarray(rows, np.float32) if rows else np.zeros((0, 0), np.float32))
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table({"input": pa.array([arrow_name(k) for k in keys], pa.string()),
                                     "embedding": pa.array(rows, pa.list_(pa.float32()))}), tmp)
        os.replace(tmp, path)  # atomic: readers never see half a file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
