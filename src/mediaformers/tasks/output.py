"""JSON Lines output that survives interruption: one writer at a time, resume without losing a byte.

- ``-o FILE`` is locked (``flock``, exclusive, non-blocking) for the whole run: a second writer is
  refused instead of interleaving records.
- ``--resume`` first checks that every complete line is a record of ours (a JSON object with
  ``"input"``); a file that is not ours is refused untouched. Only then is a torn last line (a run
  killed mid-write) cut off, in place with ``ftruncate`` — the file is never rewritten.
- Inputs are matched by their resolved absolute path, so ``clips/`` and ``/abs/clips`` are one folder.
- Strings that are not valid UTF-8 (file names from another encoding) are written with their bytes
  escaped as ``\\xNN`` instead of aborting the run.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any, TextIO


def escape(value: Any) -> Any:
    """Strings with undecodable bytes (``surrogateescape``) get them as ``\\xNN`` text; JSON-safe."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {k: escape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape(v) for v in value]
    return value


def input_key(name: str) -> str:
    """What resume compares: the escaped, absolute, resolved path."""
    return escape(os.path.realpath(name))


def record_line(rec: dict[str, Any]) -> str:
    return json.dumps(escape(rec), ensure_ascii=False) + "\n"


def _done_inputs(path: Path, data: bytes) -> tuple[set[str], int]:
    """(input keys with a successful record, length of the complete lines). Raises if not ours."""
    keep = data.rfind(b"\n") + 1
    done: set[str] = set()
    for n, line in enumerate(data[:keep].split(b"\n")[:-1], 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
        except ValueError:
            rec = None
        if not isinstance(rec, dict) or not isinstance(rec.get("input"), str):
            raise ValueError(f"{path}: expected JSON Lines records with an \"input\" (a mediaformers output), "
                             f"got line {n}: {line[:60]!r}; the file was not changed")
        if "error" not in rec:
            done.add(input_key(rec["input"]))
    return done, keep


def open_output(output: str | None, *, resume: bool = False, overwrite: bool = False) -> tuple[TextIO, set[str]]:
    """The stream to write records to and the input keys already done (``--resume``).

    The returned file holds the lock until it is closed (or the process ends, however it ends).
    """
    if not output:
        return sys.stdout, set()
    path = Path(output)
    if path.is_dir():
        raise ValueError(f"-o: expected a file, got the folder {path}")
    if path.exists() and not (resume or overwrite):
        raise ValueError(f"{path} exists; pass --resume to continue it or --overwrite to replace it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"-o: cannot create {path}: a parent is a file, not a folder") from None
    except OSError as err:
        raise ValueError(f"-o: cannot write {path}: {err.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ValueError(f"{path} is being written by another mediaformers run; "
                                 "wait for it to finish or choose another -o") from None
            raise
        done: set[str] = set()
        if resume:
            size = os.fstat(fd).st_size
            data = os.pread(fd, size, 0) if size else b""
            done, keep = _done_inputs(path, data)  # validate before touching anything
            if keep != len(data):
                os.ftruncate(fd, keep)  # the torn record of an interrupted write is redone
        elif stat.S_ISREG(os.fstat(fd).st_mode):  # not /dev/stdout, a pipe, ...
            os.ftruncate(fd, 0)  # --overwrite (or a new file), only once the lock is ours
        return os.fdopen(fd, "a", encoding="utf-8"), done
    except BaseException:
        os.close(fd)
        raise
