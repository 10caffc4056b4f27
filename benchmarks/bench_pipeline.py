"""End to end: generated 10 s videos classified from disk vs the model alone on the same batches.

    python benchmarks/bench_pipeline.py [--videos 64] [--workers 0 1 2] [--size small|base]

Prints clips/s of the whole pipeline (decode + transform + model, via mediaformers.pipeline) for
each worker count, next to model-only throughput on pre-made inputs of the same batch size, and
their ratio (target: >= 80% with 2 workers, i.e. decoding hidden behind compute). CPU seconds per
clip are printed for the model alone, the main process and the workers: on a shared machine wall
ratios swing with the load, while these show where the pipeline's work goes (decode CPU in workers
competes with the model for the same cores; main-process CPU above the model's is overhead).
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent.parent))
import mediaformers as mf  # noqa: E402
from benchmarks.common import bench, stopwatch, timed  # noqa: E402
from tests.media import make_video, natural_frames  # noqa: E402

SIZES = {"small": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536),
         "base": dict()}


def _children_cpu() -> float:
    """CPU seconds of exited (joined) child processes: the DataLoader workers once a call ends."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=64)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--size", default="small", choices=list(SIZES))
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with stopwatch() as made:
            base = natural_frames(120, (240, 320), seed=0)  # shapes over gradients with noise
            for i in range(args.videos):  # H.264, 10 s, 320x240, 12 fps; shifted in time and space per file
                make_video(tmp / f"v{i:03d}.mp4", frames=np.roll(base, (5 * i, 29 * i), axis=(0, 2)), fps=12,
                           options={"preset": "veryfast"})
        print(f"made {args.videos} videos in {made[0]:.0f} s")
        cfg = mf.VideoMAEConfig(**SIZES[args.size], num_labels=400)
        mf.VideoMAEForVideoClassification(cfg).save_pretrained(tmp / "ckpt")
        clf = mf.pipeline(model=tmp / "ckpt", batch_size=args.batch_size)
        x = torch.randn(args.batch_size, 16, 3, 224, 224)
        batches = max(2, args.videos // args.batch_size // 4)
        model_only = args.batch_size / bench(lambda: clf.model(x), repeat=batches, reduce=statistics.mean)
        with torch.inference_mode():
            model_cpu = statistics.median(timed(lambda: clf.model(x))[1] for _ in range(batches)) / args.batch_size
        print(f"VideoMAE-{args.size} 16x224, batch {args.batch_size}: model only {model_only:.2f} clips/s, "
              f"{model_cpu:.2f} CPU s/clip")
        files = sorted(str(f) for f in tmp.glob("v*.mp4"))
        for workers in args.workers:
            clf.num_workers = workers
            c0, w0 = time.process_time(), _children_cpu()
            with stopwatch() as took:
                recs = clf(files)
            main_cpu, worker_cpu = (time.process_time() - c0) / len(files), (_children_cpu() - w0) / len(files)
            rate = len(files) / took[0]
            assert all("labels" in r for r in recs)
            print(f"pipeline, {workers} workers: {rate:.2f} clips/s = {rate / model_only:.0%} of model-only; "
                  f"CPU s/clip: main {main_cpu:.2f} (model alone {model_cpu:.2f}), workers {worker_cpu:.2f}")


if __name__ == "__main__":
    np.random.seed(0)
    main()
