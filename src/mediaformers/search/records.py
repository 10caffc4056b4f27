"""The small shared pieces of the media library: errors, hits, file digests and checkpoint fingerprints."""
from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LIBRARY_FILE = "library.json"
VISUAL_KINDS = ("image", "video")
MIN_SEGMENT = 0.25  # seconds: shorter video segments cost memory and time without finding anything new
MAX_K = 10_000  # results per query: more is a dump of the library, not a search


class LibraryError(ValueError):
    pass


def write_text_atomic(path: Path, text: str) -> None:
    """Replace a small file whole: a process killed meanwhile leaves the old file (and at most a hidden
    ``.<name>.*`` temp file), never half of the new one."""
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:  # mkstemp makes it owner-only: keep the old file's mode (a shared library stays readable)
        try:
            mode = os.stat(path).st_mode & 0o7777
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def sql(value: str) -> str:
    """A string literal for a LanceDB filter."""
    return "'" + value.replace("'", "''") + "'"


def file_hash(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    import stat

    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO swapped in would block a plain open for ever
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path}: expected a regular file, got a FIFO, device or folder")
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_name(path: str) -> None:
    """Arrow stores text as UTF-8: a file name with undecodable bytes (surrogateescape) cannot be a row."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # the record names the file (its bytes escaped); the message does not repeat it
        raise LibraryError("expected a UTF-8 file name, got undecodable bytes; rename the file to index it") from None


def check_segment(segment: Any) -> float:
    # text as typed: ASCII decimals only (float() would take '1_0', other scripts' digits, 'infinity')
    if isinstance(segment, str) and not re.fullmatch(r"\s*[+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*",
                                                     segment, flags=re.ASCII):
        raise LibraryError(f"segment: expected finite seconds >= {MIN_SEGMENT}, got {segment!r}")
    try:
        value = float(segment)
    except (TypeError, ValueError):
        raise LibraryError(f"segment: expected seconds, got {segment!r}") from None
    if not math.isfinite(value) or value < MIN_SEGMENT:
        raise LibraryError(f"segment: expected finite seconds >= {MIN_SEGMENT}, got {segment!r}")
    return value


def check_k(k: Any) -> int:
    if isinstance(k, str):  # ASCII digits only: int() would also take '1_0' and other scripts' digits
        if not re.fullmatch(r"\s*[+-]?[0-9]+\s*", k, flags=re.ASCII):
            raise LibraryError(f"k: expected a whole number of results, got {k!r}")
        k = int(k)
    if isinstance(k, bool) or not hasattr(k, "__index__"):  # ints, numpy ints; not 2.0, nan, inf
        raise LibraryError(f"k: expected a positive number of results up to {MAX_K}, got {k!r}")
    if not 1 <= int(k) <= MAX_K:
        raise LibraryError(f"k: expected a positive number of results up to {MAX_K}, got {k!r}")
    return int(k)


def check_batch_size(size: Any) -> int:
    if isinstance(size, bool) or not hasattr(size, "__index__") or not 1 <= int(size) <= 4096:
        raise LibraryError(f"batch_size: expected a whole number of files 1..4096, got {size!r}")
    return int(size)


_WEIGHTS = ("*.safetensors", "*.bin", "*.pt", "*.pth")


def fingerprint(folder: str | os.PathLike) -> str:
    """A digest of a checkpoint folder's weights: names, sizes and the first and last MiB of each file
    (cheap on a GB checkpoint, and retraining or replacing the weights changes it)."""
    h = hashlib.sha256()
    files = sorted({p for pattern in _WEIGHTS for p in Path(folder).glob(pattern)})
    for p in files:
        size = p.stat().st_size
        h.update(f"{p.name}\0{size}\0".encode())
        with open(p, "rb") as fh:
            h.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(-(1 << 20), os.SEEK_END)
                h.update(fh.read())
    return h.hexdigest()[:32]


@dataclass
class Hit:
    """One search result; ``times`` lists the file's other matching (start, end, score) segments when grouped."""

    path: str
    start: float
    end: float
    score: float
    kind: str
    whole: bool
    times: list[tuple[float, float, float]] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        out = {"path": self.path, "start": round(self.start, 3), "end": round(self.end, 3),
               "score": round(self.score, 6), "kind": self.kind, "whole": self.whole}
        if self.times:
            out["times"] = [[round(s, 3), round(e, 3), round(c, 6)] for s, e, c in self.times]
        return out


@dataclass(frozen=True)
class Todo:
    """A new or changed file to embed: its path, media kind, stat, content hash and old files row."""

    path: str
    kind: str
    st: os.stat_result
    digest: str
    old: dict[str, Any] | None
    found: str = ""  # the path as the walk found it (a symlink's own path), for pruning
