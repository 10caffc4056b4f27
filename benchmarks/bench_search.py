"""Media library search: query latency and ANN recall over synthetic vectors, index throughput on files.

    python benchmarks/bench_search.py [--sizes 100000 1000000] [--dim 768] [--queries 100] [--files 24]

1. For each size: N random unit vectors (AltCLIP's 768-d, clustered so neighbours mean something) in a
   LanceDB table as the library writes it; 100 queries timed exactly (flat scan) and with the IVF-PQ
   index the library builds past 50,000 rows (probing and re-ranking as Library.search does);
   p50/p95 latency, and recall@10 of the ANN results against the exact ones.
2. Index throughput: `Library.add` on generated 4 s videos with a small AltCLIP, files/s, against
   the model-only rate (the same frames embedded without decoding or writing), measured in one run.
3. `mediaformers search` as a user runs it (a new process per query): with a `serve` of the library
   running (the query goes to its loaded models) against without (the process loads them), median of
   ``--searches`` runs each, measured in one run.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import stopwatch  # noqa: E402


def synthetic(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit vectors shaped like embeddings: clusters on a 64-d subspace, lifted to ``dim`` with a little
    isotropic noise (isotropic high-dimensional noise alone makes every neighbour equally far, and
    recall meaningless)."""
    rng = np.random.default_rng(0)  # the same space for data and queries
    lift = rng.standard_normal((64, dim)).astype(np.float32) / 8
    centres = rng.standard_normal((512, 64)).astype(np.float32)
    rng = np.random.default_rng(seed + 1)
    z = centres[rng.integers(0, 512, n)] + 0.5 * rng.standard_normal((n, 64)).astype(np.float32)
    x = z @ lift + 0.05 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def bench_queries(n: int, dim: int, queries: int, tmp: Path) -> None:
    import lancedb
    import pyarrow as pa

    from mediaformers import library as L

    vecs = synthetic(n, dim)
    db = lancedb.connect(str(tmp / f"db{n}"))
    table = db.create_table("visual", data=pa.table({
        "path": pa.array([f"/media/{i}.mp4" for i in range(n)]),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), dim)}))
    q = synthetic(queries, dim, seed=1)

    def run(indexed: bool):
        times, ids = [], []
        for v in q:
            s = table.search(v, vector_column_name="vector").metric("cosine").limit(10)
            if indexed:
                s = s.nprobes(L.NPROBES).refine_factor(L.REFINE)
            with stopwatch() as took:
                rows = s.to_list()
            times.append(took[0])
            ids.append({r["path"] for r in rows})
        return times, ids

    exact_t, exact_ids = run(False)
    from lancedb.index import IvfPq

    with stopwatch() as took:
        table.create_index("vector", config=IvfPq(distance_type="cosine"))
    build = took[0]
    ann_t, ann_ids = run(True)
    recall = statistics.mean(len(a & e) / 10 for a, e in zip(ann_ids, exact_ids))
    p = lambda ts, k: 1e3 * sorted(ts)[int(k * (len(ts) - 1))]  # noqa: E731
    print(f"[1] {n:>9,} x {dim}: exact p50 {p(exact_t, .5):7.1f} ms p95 {p(exact_t, .95):7.1f} ms | IVF-PQ "
          f"(built in {build:.0f} s) p50 {p(ann_t, .5):6.1f} ms p95 {p(ann_t, .95):6.1f} ms | recall@10 {recall:.3f}",
          flush=True)


def bench_index(files: int, tmp: Path) -> None:
    import torch

    from mediaformers.library import Library
    from mediaformers.processors.video_io import read_frames_at
    from tests.altclip_tiny import make_folder
    from tests.media import make_video

    model = make_folder(tmp / "altclip")
    media = tmp / "media"
    media.mkdir()
    for i in range(files):
        make_video(media / f"v{i:03d}.mp4", frames=40, size=(240, 320), fps=10)
    lib = Library(tmp / "lib", model=str(model), segment=2.0)
    with stopwatch() as took:
        n = sum(1 for r in lib.add([media]) if r["status"] == "added")
    add = took[0]
    frames = [read_frames_at(p, [0.5, 1.5, 2.5, 3.5]) for p in sorted(media.iterdir())]
    with stopwatch() as took, torch.inference_mode():
        for f in frames:
            lib.embed_frames(f)
    model_only = took[0]
    print(f"[2] index {n} videos (4 s, 320x240, 2 segments): {n / add:.1f} files/s; model-only {files / model_only:.1f} "
          f"files/s; indexing runs at {model_only / add:.0%} of the model-only rate (tiny model: decoding and "
          "writing dominate; with AltCLIP ViT-L the model does)")


def bench_cli_search(tmp: Path, searches: int) -> None:
    import os
    import re
    import subprocess

    from mediaformers.library import Library
    from tests.altclip_tiny import make_folder

    lib_dir = tmp / "cli-lib"
    media = tmp / "cli-media"
    media.mkdir()
    from PIL import Image

    for i in range(8):
        Image.fromarray(np.full((32, 32, 3), 30 * i, np.uint8)).save(media / f"p{i}.png")
    list(Library(lib_dir, model=str(make_folder(tmp / "cli-altclip"))).add([media]))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "mediaformers", "search", str(lib_dir), "a red picture", "-k", "3"]

    def timed() -> float:
        with stopwatch() as took:
            subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=300)
        return took[0]

    cold = statistics.median(timed() for _ in range(searches))
    server = subprocess.Popen([sys.executable, "-m", "mediaformers", "serve", str(lib_dir), "--port", "0"],
                              stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = server.stderr.readline()
        assert re.search(r"http://127.0.0.1:\d+", line), line
        timed()  # the server loads its models on the first query
        warm = statistics.median(timed() for _ in range(searches))
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"[3] `mediaformers search` (new process per query, tiny AltCLIP): {warm:.2f} s with `serve` running vs "
          f"{cold:.2f} s loading the models itself: {cold / warm:.1f}x (real AltCLIP: the load is seconds more)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--files", type=int, default=24, help="generated videos for the index throughput (0: skip it)")
    p.add_argument("--searches", type=int, default=5, help="`mediaformers search` runs per setting (0: skip it)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        for n in args.sizes:
            bench_queries(n, args.dim, args.queries, Path(d))
        if args.files:
            bench_index(args.files, Path(d))
        if args.searches:
            bench_cli_search(Path(d), args.searches)


if __name__ == "__main__":
    main()
