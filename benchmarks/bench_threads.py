"""``mediaformers train`` with its default thread policy against every explicit thread setting (CPU).

The policy (``mediaformers.threads``): threads = cores available to the process - DataLoader workers, >= 1.
This script trains the same small AST on the same generated clips with the default and with ``--threads N``
for N = 1 .. cores, each with 0 and 2 DataLoader workers, alternating the settings over ``--runs`` rounds,
and prints samples/s (``metrics.jsonl``) and the default's share of the best setting for each worker count.

    python benchmarks/bench_threads.py [--runs 2] [--epochs 2] [--work DIR]

Inputs: 64 one-second 16 kHz WAV clips (4 classes: tones, chirps, noise, clicks), AST 192 wide, 4 layers,
its window fitted to the 1 s clips, batch 8.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

CONFIG = {"hidden_size": 192, "num_hidden_layers": 4, "num_attention_heads": 3, "intermediate_size": 768}


def make_data(folder: Path, per_class: int = 16, rate: int = 16000) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(rate) / rate
    makers = {
        "tone": lambda: np.sin(2 * np.pi * rng.uniform(200, 800) * t),
        "chirp": lambda: np.sin(2 * np.pi * (rng.uniform(100, 300) + rng.uniform(500, 2000) * t) * t),
        "noise": lambda: rng.normal(0, 0.3, rate),
        "clicks": lambda: (rng.random(rate) > 0.995).astype(float),
    }
    for label, make in makers.items():
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            sf.write(folder / label / f"{label}-{i}.wav", (0.5 * make()).astype(np.float32), rate)
    return folder


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def train(data: Path, out: Path, *, threads: int | None, workers: int, epochs: int) -> float:
    cmd = [sys.executable, "-m", "mediaformers", "train", "ast", str(data), "-o", str(out), "--config",
           json.dumps(CONFIG), "--epochs", str(epochs), "--batch-size", "8", "--workers", str(workers),
           "--val-fraction", "0.1", "--quiet", "--seed", "0"]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MEDIAFORMERS_THREADS")}
    subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=3600)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return max(r["samples_per_s"] for r in rows if "samples_per_s" in r)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=2, help="rounds over all settings (alternating)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--work", type=Path, default=None, help="folder for the clips and runs (default: temporary)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp())
    data = make_data(work / "clips")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    print(json.dumps({"cpu": cpu_name(), "cores": cores, "torch_threads_default": "policy"}))
    settings = [(t, w) for w in (0, 2) for t in [None, *range(1, cores + 1)]]
    results: dict[tuple, list[float]] = {s: [] for s in settings}
    for run in range(args.runs):
        order = settings if run % 2 == 0 else settings[::-1]
        for threads, workers in order:
            out = work / f"run-{run}-{threads}-{workers}"
            rate = train(data, out, threads=threads, workers=workers, epochs=args.epochs)
            results[(threads, workers)].append(rate)
            print(json.dumps({"run": run, "threads": threads or "default", "workers": workers,
                              "samples_per_s": round(rate, 2)}), flush=True)
    for workers in (0, 2):
        best = {t: max(results[(t, workers)]) for t, w in settings if w == workers}
        top = max(v for t, v in best.items() if t is not None)
        print(json.dumps({"workers": workers, "default_samples_per_s": round(best[None], 2),
                          "best_explicit_samples_per_s": round(top, 2),
                          "default_vs_best": round(best[None] / top, 3)}))


if __name__ == "__main__":
    main()
