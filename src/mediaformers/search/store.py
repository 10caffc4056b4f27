"""The LanceDB side of a library: table schemas, crash-safe creation, writes, deletes, upkeep.

A table's first write creates it; a process killed inside that write leaves a ``<name>.lance`` folder
with no committed version, which LanceDB lists but cannot open. Such a half-made table held nothing
yet, so the writer removes it and creates the table again; readers treat it as absent.
"""
from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from .records import LibraryError, sql

ANN_MIN_ROWS = 50_000  # below this an exact scan is fast enough and exact
KEEP_VERSIONS_FOR = timedelta(minutes=2)  # old versions a running `serve` may still be reading
TABLES = ("visual", "audio", "files")


_passed: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Test hook: ``MEDIAFORMERS_LIBRARY_EXIT_AT=name`` (or ``name@N``: the N-th time there) ends the
    process here at once, as kill -9 would."""
    wanted = os.environ.get("MEDIAFORMERS_LIBRARY_EXIT_AT")
    if not wanted or wanted.partition("@")[0] != name:
        return
    _passed[name] = _passed.get(name, 0) + 1
    if wanted == name or wanted == f"{name}@{_passed[name]}":
        _passed.clear()
        _die()


def _die() -> None:  # tests replace this to stop in-process at a crash point
    os._exit(137)


def _disk_full(err: BaseException) -> bool:
    return (isinstance(err, OSError) and err.errno == errno.ENOSPC) or "No space left" in str(err)


class Store:
    """The tables of one library folder (``<library>/db``)."""

    def __init__(self, folder: Path):
        import lancedb

        self.folder = folder
        self.db = lancedb.connect(str(folder))
        self.writes = 0  # writes and deletes since opened: upkeep is due after a run that made some

    def _committed(self, name: str) -> bool:
        versions = self.folder / f"{name}.lance" / "_versions"
        return versions.is_dir() and any(versions.iterdir())

    def table(self, name: str):
        """The table, or None when it does not exist yet (or is a half-made first write)."""
        if not self._committed(name):
            return None
        try:
            return self.db.open_table(name)
        except (ValueError, FileNotFoundError):
            return None

    def write(self, name: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        import pyarrow as pa

        table = self.table(name)
        if name == "files":
            data = pa.Table.from_pylist(rows)
            if table is not None:  # a library from before a column was added keeps its schema
                data = data.select([c for c in data.column_names if c in table.schema.names])
        else:
            dim = len(rows[0]["vector"])
            schema = pa.schema([("path", pa.string()), ("start", pa.float64()), ("end", pa.float64()),
                                ("kind", pa.string()), ("whole", pa.bool_()),
                                ("vector", pa.list_(pa.float32(), dim))])
            data = pa.Table.from_pylist(rows, schema=schema)
        self.writes += 1
        with self.guard(f"writing the {name} table"):
            if table is None:
                shutil.rmtree(self.folder / f"{name}.lance", ignore_errors=True)  # a half-made first write
                crash_point(f"create:{name}")
                self.db.create_table(name, data=data)
            else:
                crash_point(f"add:{name}")
                table.add(data)

    def delete(self, paths: Sequence[str], tables: Sequence[str] = TABLES) -> None:
        for name in tables:
            table = self.table(name)
            if table is None:
                continue
            self.writes += 1
            with self.guard(f"updating the {name} table"):
                crash_point(f"delete:{name}")
                for i in range(0, len(paths), 200):
                    table.delete("path IN (" + ", ".join(sql(p) for p in paths[i:i + 200]) + ")")

    def guard(self, doing: str):
        return _Guard(self.folder.parent, doing)

    def files(self) -> dict[str, dict[str, Any]]:
        table = self.table("files")
        return {r["path"]: r for r in table.to_arrow().to_pylist()} if table is not None else {}

    def orphans(self, complete: set[str]) -> list[str]:
        """Paths with vectors but no complete files row: an interrupted run's leftovers."""
        found: set[str] = set()
        for name in ("visual", "audio"):
            table = self.table(name)
            if table is not None:  # the path column only: the vectors are the bulk of the table
                paths = table.search().select(["path"]).limit(max(1, table.count_rows())).to_arrow()
                found |= set(paths.column("path").to_pylist())
        return sorted(found - complete)

    def dims(self) -> dict[str, int]:
        """The vector size of each vector table that exists."""
        out = {}
        for name in ("visual", "audio"):
            table = self.table(name)
            if table is not None:
                out[name] = table.schema.field("vector").type.list_size
        return out

    def upkeep(self) -> None:
        """After a sync: compact the small fragments each file's writes made, drop versions older than a
        reader may need, and build the ANN index once a table is large."""
        for name in TABLES:
            table = self.table(name)
            if table is None:
                continue
            with self.guard(f"compacting the {name} table"):
                crash_point(f"compact:{name}")
                table.optimize(cleanup_older_than=KEEP_VERSIONS_FOR)
            if name != "files" and table.count_rows() >= ANN_MIN_ROWS and not table.list_indices():
                from lancedb.index import IvfPq

                table.create_index("vector", config=IvfPq(distance_type="cosine"))

    def nearest(self, name: str, vector: np.ndarray, k: int, where: str | None, nprobes: int, refine: int):
        table = self.table(name)
        if table is None:
            return []
        q = table.search(vector.astype(np.float32), vector_column_name="vector").metric("cosine").limit(k)
        if table.list_indices():  # the ANN index: probe more lists and re-rank exactly, for recall
            q = q.nprobes(nprobes).refine_factor(refine)
        if where:
            q = q.where(where, prefilter=True)
        try:
            return q.to_list()
        except Exception as err:  # LanceDB's message for a bad filter names the problem
            raise LibraryError(f"where: {where!r} is not a valid filter: {str(err).splitlines()[0]}") from err


class _Guard:
    """A full disk inside LanceDB is a one-line OSError naming the library, not a lance traceback."""

    def __init__(self, library: Path, doing: str):
        self.library, self.doing = library, doing

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if err is not None and _disk_full(err):
            raise OSError(errno.ENOSPC, f"library {self.library}: the disk is full ({self.doing}); free some "
                                        "space and run again: files finished so far are kept") from None
        return False
