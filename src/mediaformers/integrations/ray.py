"""Ray Data: ``mediaformers classify|embed --ray`` on one machine or a cluster, and the pieces to build your own job.

The job is three ``map_batches`` steps over one row per input (``row``, ``input``, ``source``, ``error``)::

    ray.data.from_items(rows)
      .map_batches(Prepare(views))                      # CPU tasks: decode + processors, npz bytes per input
      .map_batches(Model, fn_constructor_args=(job,))   # actors: the model loads once per actor (on a GPU if any)
      .map_batches(WritePartitions(folder))             # part-<first row>-<last row>.parquet, atomically

On a GPU cluster decoding runs in CPU tasks beside the GPU actors; where the actors take a CPU too, Ray Data
fuses the two steps, so each actor decodes and runs the model on its own CPU (no tensors through the object store).

Records are those of the single-process command: ``Prepare`` runs the runner's ``prepare_item`` and ``Model``
its ``forward_prepared`` and the pipeline's ``record``, then the command's own record shaping (``Job.post``).

Exactly once: a partition's name comes from the input rows it holds, and it is written to a temporary name
then renamed, so a retried task (a worker killed, an actor restarted) rewrites its own partition and never
leaves half of one. At the end the driver checks that the partitions hold every input exactly once, and
removes leftovers (temporary files, partitions of lost attempts) that no finished task reported.
"""
from __future__ import annotations

import io
import math
import os
import pickle
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..tasks.inputs import Item, expand_inputs
from ..tasks.output import OutputError, arrow_name
from ..tasks.runner import forward_prepared, prepare_item

PARTITION = "part-{first:09d}-{last:09d}.parquet"


def require_ray():
    """The ``ray`` module (with Ray Data), or the error the command line reports."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ValueError("--ray: expected the `ray` package (pip install 'mediaformers[ray]'), "
                         "got ImportError") from None
    return ray


@dataclass(frozen=True)
class Job:
    """What every worker needs to rebuild the pipeline the single-process command builds.

    ``load``: keywords of ``load_model`` (device, dtype, precision, compile, strict, frames, size);
    ``options``: of ``pipeline`` (top_k, aggregate, num_clips, num_crops, hop, allow_partial, ...);
    ``call``: of the pipeline's ``finish`` (``views=True``); ``post``: the command's record shaping.
    """

    model: str
    task: str | None = None
    load: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    call: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 4
    post: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def pipeline(self, **load: Any):
        """The pipeline, loaded with ``load`` over the job's own loading keywords."""
        from ..tasks.loading import load_model
        from ..tasks.pipelines import pipeline

        return pipeline(self.task, load_model(self.model, **{**self.load, **load}), batch_size=self.batch_size,
                        **self.options)


def record_schema(pipe, call: dict[str, Any]):
    """The Arrow schema of a task's records, fixed so every partition agrees (also one of failures only):
    ``input``, the results (``embedding`` list<float32> as ``embed`` writes it, or ``labels`` [+ ``views``]),
    and ``error`` (null when the input succeeded)."""
    import pyarrow as pa

    if pipe.task == "feature-extraction":
        results = [("embedding", pa.list_(pa.float32()))]
    else:
        label = pa.list_(pa.struct([("label", pa.string()), ("score", pa.float64())]))
        results = [("labels", label)]
        if call.get("views"):
            results.append(("views", pa.list_(pa.struct([("start", pa.float64()), ("labels", label)]))))
    return pa.schema([("input", pa.string()), *results, ("error", pa.string())])


def _pack(inputs: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{k: v.detach().cpu().numpy() for k, v in inputs.items()})
    return buf.getvalue()


def _unpack(data: bytes) -> dict[str, Any]:
    import torch

    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: torch.from_numpy(z[k]) for k in z.files}


class Prepare:
    """``map_batches`` step (CPU tasks): each input decoded and prepared by the pipeline's views, as the
    single-process DataLoader workers do; ``prepared`` holds the tensors (npz bytes), or ``error`` says why not.

    Relative paths are opened from ``cwd`` (the driver's folder; workers run elsewhere) and named as given.
    """

    def __init__(self, views: Callable[[Any], dict[str, Any]], cwd: str | None = None):
        self.views, self.cwd = views, cwd or os.getcwd()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["row"])
        prepared, errors = np.empty(n, dtype=object), np.empty(n, dtype=object)
        for i in range(n):
            source = os.fsdecode(batch["source"][i]) or None
            path = os.path.join(self.cwd, source) if source is not None else None
            item = Item(os.fsdecode(batch["key"][i]), path, str(batch["error"][i]) or None)
            got = prepare_item(item, self.views, i)
            prepared[i] = _pack(got["inputs"]) if "inputs" in got else b""
            errors[i] = (got.get("error") or "").replace(path or "\0", source or "")
        return {"row": batch["row"], "key": batch["key"], "prepared": prepared, "error": errors}


class Model:
    """``map_batches`` actor: loads the job's model once (on the actor's GPU when it has one), then turns prepared
    batches into record batches (a ``pyarrow.Table`` of :func:`record_schema`, Arrow's own batch format)."""

    def __init__(self, job: Job):
        import torch

        self.job = job
        device = job.load.get("device") or ("cuda" if torch.cuda.is_available() else None)
        if device and device.startswith("cuda"):
            device = "cuda"  # the GPU Ray gave this actor (the only one it sees)
        self.pipe = job.pipeline(device=device)
        self.schema = record_schema(self.pipe, job.call)

    def __call__(self, batch: dict[str, np.ndarray]):
        import pyarrow as pa

        rows = [int(r) for r in batch["row"]]
        keys = [os.fsdecode(k) for k in batch["key"]]
        prepared = [{"index": row, "error": str(err)} if err else {"index": row, "inputs": _unpack(data)}
                    for row, data, err in zip(rows, batch["prepared"], batch["error"])]
        outputs = forward_prepared(prepared, self.pipe.forward_batch, batch_size=self.pipe.batch_size)
        records = []
        for row, key, p in zip(rows, keys, prepared):
            rec = self.pipe.record(key, outputs.get(row), p.get("error"), **self.job.call)
            records.append(self.job.post(rec) if self.job.post is not None else rec)
        unknown = {k for rec in records for k in rec} - set(self.schema.names)
        if unknown:
            raise ValueError(f"records: expected fields {self.schema.names}, got also {sorted(unknown)}")
        for rec in records:  # Arrow strings are UTF-8: names that are not keep their bytes as \xNN escapes
            for k in ("input", "error"):
                if k in rec:
                    rec[k] = arrow_name(rec[k])
        table = pa.Table.from_pylist(records, schema=self.schema)
        return table.append_column("row", pa.array(rows, pa.int64()))


class WritePartitions:
    """``map_batches`` step (tasks): each batch of records to ``folder/part-<first>-<last>.parquet`` (rows in input
    order, without the ``row`` column), written to a temporary name and renamed; returns what it wrote."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = os.fspath(folder)

    def __call__(self, table):
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        table = table.sort_by("row")
        rows = table.column("row").to_pylist()
        name = PARTITION.format(first=rows[0], last=rows[-1])
        tmp = os.path.join(self.folder, f".{name}.{uuid.uuid4().hex}.tmp")
        try:
            pq.write_table(table.drop_columns(["row"]), tmp)
            os.replace(tmp, os.path.join(self.folder, name))  # a retry replaces its own partition whole
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        errors = pc.drop_null(table.column("error")).to_pylist()
        return pa.table({"file": [name], "rows": pa.array([rows], pa.list_(pa.int64())),
                         "errors": pa.array([errors], pa.list_(pa.string()))})


def _ours(name: str) -> bool:
    return ((name.startswith("part-") and name.endswith(".parquet"))
            or (name.startswith(".part-") and name.endswith(".tmp")))


def output_folder(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """The output folder, checked before any work: created, or emptied of our partitions with ``overwrite``."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"-o: with --ray, expected a folder for the Parquet partitions, got a file {folder}")
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise OutputError(f"-o: {folder} is not empty; pass --overwrite to replace its partitions")
        others = sorted(p.name for p in folder.iterdir() if not _ours(p.name))
        if others:
            raise OutputError(f"-o: expected a folder of mediaformers partitions to overwrite, got also {others[:3]}; "
                              "choose another folder")
        for p in folder.iterdir():
            p.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise OutputError(f"-o: cannot write in {folder} (permission denied or read-only)")
    return folder


def connect(address: str | None) -> bool:
    """Join Ray: the instance this process already runs, ``address`` ("auto", "ray://host:10001"), or a local
    one started here with the CPUs this process may use. True when this call started it (and should stop it)."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address)
    else:
        ray.init(num_cpus=len(os.sched_getaffinity(0)), include_dashboard=False)
    return True


def run(job: Job, inputs: Any, output: str | os.PathLike, *, address: str | None = None, actors: int | None = None,
        rows_per_file: int = 1000, overwrite: bool = False, quiet: bool = False, pipe=None,
        actor: type[Model] = Model) -> dict[str, Any]:
    """Run ``job`` over ``inputs`` (files, folders, lists) with Ray Data; Parquet partitions go to ``output``.

    ``actors``: model actors (default one per GPU of the cluster, else its CPUs but one). ``pipe``: the job's
    pipeline already loaded here (only its views and accepted kinds are used; default: loaded on the CPU).
    ``actor``: the actor class (a subclass of :class:`Model`). Returns ``output``, ``records``, ``partitions``
    and the ``errors`` of failed inputs.
    """
    ray = require_ray()
    folder = output_folder(output, overwrite=overwrite)
    if pipe is None:
        pipe = job.pipeline(device="cpu", dtype=None, precision=None, compile=False)
    items = expand_inputs(inputs, pipe.accept)
    started = connect(address)
    try:
        summaries = _execute(ray, job, pipe.prepare(), items, folder, actors, rows_per_file, quiet, actor)
    finally:
        if started:
            ray.shutdown()
    return _verify(folder, summaries, len(items))


def _actors(ray, device: str | None, actors: int | None) -> tuple[int, bool, int, int]:
    """(actors, whether each takes a GPU, the cluster's CPUs, its GPUs): by default one actor per GPU of the
    cluster, else its CPUs but one; GPUs unless ``device`` names another kind."""
    resources = ray.cluster_resources()
    cpus, gpus = int(resources.get("CPU", 1)), int(resources.get("GPU", 0))
    gpu = gpus > 0 and not (device and not device.startswith("cuda"))
    return actors or (gpus if gpu else max(1, cpus - 1)), gpu, cpus, gpus


def _execute(ray, job, views, items, folder, actors, rows_per_file, quiet, actor) -> list[dict[str, Any]]:
    device = job.load.get("device")
    actors, gpu, cpus, gpus = _actors(ray, device, actors)
    if device and device.startswith("cuda") and not gpus:
        raise ValueError(f"--device {device}: expected a Ray cluster with GPUs, got {cpus} CPUs and no GPU")
    if actors < 1 or (not gpu and actors >= cpus):
        raise ValueError(f"--ray-actors: expected 1 to {max(1, cpus - 1)} model actors on a cluster of {cpus} CPUs "
                         f"(the partition writer needs a CPU beside them), got {actors}")
    rows = [{"row": i, "key": os.fsencode(it.key), "source": os.fsencode(it.source) if it.source is not None else b"",
             "error": it.error or ""} for i, it in enumerate(items)]
    ctx = ray.data.DataContext.get_current()
    saved = ctx.execution_options.preserve_order, ctx.enable_progress_bars
    ctx.execution_options.preserve_order = True  # partitions of consecutive inputs, in input order
    ctx.enable_progress_bars = not quiet
    try:
        ds = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / job.batch_size))
        # Retries are Ray Data's: a dead model actor is restarted and its batch retried (max_restarts and
        # max_task_retries -1), a task whose worker died is retried (Ray's max_retries, 3).
        ds = ds.map_batches(Prepare(views, os.getcwd()), batch_size=job.batch_size, batch_format="numpy", num_cpus=1)
        ds = ds.map_batches(actor, fn_constructor_args=(job,), batch_size=job.batch_size, batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1, num_gpus=1 if gpu else 0)
        ds = ds.map_batches(WritePartitions(folder.resolve()), batch_size=rows_per_file, batch_format="pyarrow",
                            num_cpus=1)
        return ds.take_all()
    finally:
        ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved


def _verify(folder: Path, summaries: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """Every input in exactly one partition; what no finished task reported (leftovers of lost attempts) removed."""
    written = {s["file"]: s for s in summaries}  # a partition reported twice is one file, rewritten
    seen = Counter(int(r) for s in written.values() for r in s["rows"])
    twice = sorted(r for r, c in seen.items() if c > 1)
    lost = sorted(set(range(n)) - set(seen))
    if twice or lost:
        raise OutputError(f"--ray: expected every input in exactly one partition of {folder}, got inputs "
                          f"{twice[:5]} more than once and {lost[:5]} in none")
    for p in folder.iterdir():
        if _ours(p.name) and p.name not in written:
            p.unlink()
    errors = [str(e) for name in sorted(written) for e in written[name]["errors"]]
    return {"output": str(folder), "records": n, "partitions": len(written), "failed": len(errors), "errors": errors}


def read_records(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a ``--ray`` output folder in input order, as the single-process command writes them
    (fields that are null, such as ``error`` of a success, left out)."""
    import pyarrow.parquet as pq

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    out = []
    for p in sorted(Path(folder).glob("part-*.parquet")):
        out.extend(strip(rec) for rec in pq.read_table(p).to_pylist())
    return out


# ---- the media library (mediaformers index --ray) --------------------------------------------------
class LibraryEmbedder:
    """``map_batches`` actor: opens the library (its models load once per actor) and embeds files exactly as
    ``Library.add`` does here; the results go back to the one process that writes the library."""

    def __init__(self, library: str, device: str | None, precision: str | None = None):
        from ..library import Library

        self.library = Library(library, device=device, precision=precision)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = [pickle.dumps(self.library.embed_or_error(str(p), str(k))) for p, k in zip(batch["path"], batch["kind"])]
        return {"path": batch["path"], "result": np.array(results, dtype=object)}


def library_embedder(library: str | os.PathLike, *, address: str | None = None, actors: int | None = None,
                     device: str | None = None, quiet: bool = False, precision: str | None = None,
                     actor: type[LibraryEmbedder] = LibraryEmbedder) -> Callable:
    """``Library.add(embed_many=...)`` on Ray: the files to embed are spread over actors (one per GPU, else the
    CPUs but one); each result streams back as it is ready, and the caller writes it. A dead actor is restarted
    and its file redone (Ray Data's retries); a file is written once, when its result arrives, so nothing is
    duplicated, and a run cut short resumes as any interrupted index run does."""
    ray = require_ray()

    def embed_many(pairs: list[tuple[str, str]]):
        started = connect(address)
        try:
            n, gpu, _, _ = _actors(ray, device, actors)
            ctx = ray.data.DataContext.get_current()
            saved = ctx.enable_progress_bars
            ctx.enable_progress_bars = not quiet
            try:
                ds = ray.data.from_items([{"path": p, "kind": k} for p, k in pairs], override_num_blocks=len(pairs))
                ds = ds.map_batches(actor, fn_constructor_args=(str(library), device, precision), batch_size=1,
                                    batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=min(n, len(pairs))),
                                    num_cpus=1, num_gpus=1 if gpu else 0)
                for row in ds.iter_rows():
                    yield str(row["path"]), pickle.loads(row["result"])
            finally:
                ctx.enable_progress_bars = saved
        finally:
            if started:
                ray.shutdown()

    return embed_many
