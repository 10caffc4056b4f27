"""AST forward throughput, mediaformers vs transformers, measured in one run (CPU).

The real base config (ASTConfig() defaults: 1024 frames x 128 mel bins, 12 layers, hidden 768,
strides 10/10 -> 1214 tokens) with AudioSet's 527-way head, same weights in both models.
Prints seconds per forward (median), the ratio ref/ours (>1: we are faster) and the share of the
machine's fp32 matmul peak, measured here with a large torch.mm. Runs alternate between the two
models so background load hits both alike.

    python benchmarks/bench_ast.py [--batches 1 4] [--runs 3] [--no-bf16]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
import transformers as tf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternate, matmul_peak  # noqa: E402

import mediaformers as mf  # noqa: E402


def model_flops(c: mf.ASTConfig, batch: int) -> float:
    """Multiply-adds x2 of one forward, from the shapes (norms, softmax and activations left out)."""
    f, t = c.grid
    n, d, i = 2 + f * t, c.hidden_size, c.intermediate_size
    patch = 2 * f * t * c.kernel[0] * c.kernel[1] * d
    layer = 2 * n * (4 * d * d + 2 * d * i) + 2 * 2 * n * n * d  # qkv+proj, mlp; q@k^T and attn@v
    return batch * (patch + c.num_hidden_layers * layer)


def compare(ours, ref, x: torch.Tensor, runs: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU seconds per forward of each model; one warmup each, then alternating runs."""
    with torch.inference_mode():
        a, b = ours(x).logits, ref(input_values=x).logits
    print(f"    max |ours - ref| logits: {(a.float() - b.float()).abs().max().item():.2e}")
    return alternate({"ours": lambda: ours(x), "ref": lambda: ref(input_values=x)}, repeat=runs, warmup=0, cpu=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--no-bf16", action="store_true")
    args = p.parse_args()

    torch.manual_seed(0)
    ref = tf.ASTForAudioClassification(tf.ASTConfig(num_labels=527)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        ref.save_pretrained(tmp)
        ours = mf.ASTForAudioClassification.from_pretrained(tmp)
    c = ours.config
    peak = matmul_peak(n=4096)
    print(f"AST base: {c.max_length}x{c.num_mel_bins} input, {c.num_hidden_layers} layers, hidden {c.hidden_size}, "
          f"{2 + c.grid[0] * c.grid[1]} tokens; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"fp32 matmul peak (4096^3 torch.mm): {peak / 1e9:.0f} GFLOP/s")

    for batch in args.batches:
        x = torch.randn(batch, c.max_length, c.num_mel_bins)
        flops = model_flops(c, batch)
        print(f"float32 batch {batch} ({flops / 1e9:.0f} GFLOP):")
        m = compare(ours, ref, x, args.runs)
        for name, key in (("mediaformers", "ours"), ("transformers", "ref")):
            t, cpu = m[key]
            print(f"    {name:13s} {t:7.3f} s ({cpu:6.2f} CPU s)  {batch / t:5.2f} clips/s  "
                  f"{flops / t / peak:5.1%} of fp32 peak")
        print(f"    ratio ref/ours: {m['ref'][0] / m['ours'][0]:.2f} wall, {m['ref'][1] / m['ours'][1]:.2f} CPU")

    if not args.no_bf16:
        ours_bf, ref_bf = ours.to(torch.bfloat16), ref.to(torch.bfloat16)
        batch = args.batches[-1]
        x = torch.randn(batch, c.max_length, c.num_mel_bins, dtype=torch.bfloat16)
        print(f"bfloat16 batch {batch}:")
        m = compare(ours_bf, ref_bf, x, args.runs)
        print(f"    mediaformers {m['ours'][0]:7.3f} s  transformers {m['ref'][0]:7.3f} s  "
              f"ratio ref/ours: {m['ref'][0] / m['ours'][0]:.2f} wall, {m['ref'][1] / m['ours'][1]:.2f} CPU")


if __name__ == "__main__":
    main()
