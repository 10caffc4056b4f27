"""Forward throughput of VideoMAE and ViViT: mediaformers vs transformers, same weights, same run.

    python benchmarks/bench_video_models.py [--quick] [--dtype float32|bfloat16]

Base configs: VideoMAE 16x224x224 (ViT-B), ViViT 32x224x224 (ViT-B), batch 1 and 4, CPU.
Prints each time, the ratio (reference time / ours; above 1 means we are faster) and the share of
this machine's measured matmul peak.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
import transformers as tf

sys.path.insert(0, str(Path(__file__).parent))
import mediaformers as mf  # noqa: E402
from common import bench, flops, matmul_peak, row, set_threads  # noqa: E402

CASES = {
    "VideoMAE-B 16x224": (tf.VideoMAEForVideoClassification, mf.VideoMAEForVideoClassification,
                          tf.VideoMAEConfig(num_labels=400), (16, 224)),
    "ViViT-B 32x224": (tf.VivitForVideoClassification, mf.VivitForVideoClassification,
                       tf.VivitConfig(num_labels=400), (32, 224)),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="batch 1 only, fewer repeats")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args()
    set_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    peak = matmul_peak(dtype)
    print(f"torch {torch.__version__}, transformers {tf.__version__}, {args.threads} threads, {args.dtype}, "
          f"matmul peak {peak / 1e9:.0f} GFLOP/s")
    for name, (ref_cls, our_cls, cfg, (frames, size)) in CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            ref = ref_cls(cfg).eval()
            ref.save_pretrained(tmp)
            ours = our_cls.from_pretrained(tmp, dtype=dtype)
            ref = ref.to(dtype)
        for batch in [1] if args.quick else [1, 4]:
            x = torch.randn(batch, frames, 3, size, size, dtype=dtype)
            work = flops(lambda: ours(x))
            repeat = 2 if args.quick or batch > 1 else 3  # a ViT-B forward of 4 clips takes tens of seconds
            t_ref = bench(lambda: ref(pixel_values=x), repeat=repeat)
            t_ours = bench(lambda: ours(x), repeat=repeat)
            print(row(f"{name} batch {batch}", t_ours, t_ref, work, peak), flush=True)


if __name__ == "__main__":
    main()
