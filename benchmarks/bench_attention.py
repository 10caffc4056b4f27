"""Attention kernel per shape: torch's fused SDPA vs two GEMMs around a softmax ("math"), and what the
"auto" selector picks; then whole bf16 models with each choice vs the transformers bf16 model, one run.

    python benchmarks/bench_attention.py [--threads 2] [--models videomae ast] [--repeat 5] [--skip-models]

Shapes are the real ones (batch 1): VideoMAE-B 16x224 (1568 tokens), ViViT-B 32x224 (3137), AST
1024x128 (1214), AltCLIP ViT-L/14 image (257, 16 heads) and XLM-R text (77, 16 heads), plus ViT-B
at 197 tokens and batch 8. Kernel figures are medians of alternating calls (benchmarks/common.py);
"auto" is the selector's own choice, measured as the library does it (best of 3 after a warm-up).
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_precision import cases  # noqa: E402
from common import alternate, bench, set_threads  # noqa: E402

from mediaformers.layers import attention as A  # noqa: E402
from mediaformers.precision import apply_precision, has_native_bf16  # noqa: E402

SHAPES = {  # name: (batch, heads, tokens, head_dim)
    "VideoMAE-B 16x224": (1, 12, 1568, 64),
    "ViViT-B 32x224": (1, 12, 3137, 64),
    "AST 1024x128": (1, 12, 1214, 64),
    "AltCLIP image L/14": (1, 16, 257, 64),
    "AltCLIP text 77": (1, 16, 77, 64),
    "ViT-B 197, batch 8": (8, 12, 197, 64),
}


def kernels(dtype: torch.dtype, repeat: int) -> None:
    print(f"\nattention kernels, {str(dtype).split('.')[-1]} (ms per call; math/sdpa > 1: the fused kernel is faster)")
    for name, (b, h, n, d) in SHAPES.items():
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(b, h, n, d, generator=g).to(dtype) for _ in range(3))
        t = alternate({kind: (lambda fn=fn: fn(q, k, v)) for kind, fn in A.KERNELS.items()}, repeat=repeat)
        A.clear_attention_choices()
        with torch.inference_mode():
            choice = A.select_kernel(q, k, v)
        print(f"  {name:<20} sdpa {t['sdpa'] * 1e3:8.2f}   math {t['math'] * 1e3:8.2f}   "
              f"math/sdpa {t['math'] / t['sdpa']:5.2f}   auto picks {choice}", flush=True)


def models(names: list[str], repeat: int) -> None:
    table = cases()
    for name in names:
        ref_factory, ours_cls, make, _ = table[name]
        with tempfile.TemporaryDirectory() as tmp:
            ref = ref_factory().eval()
            ref.save_pretrained(tmp)
            ours = apply_precision(ours_cls.from_pretrained(tmp).eval(), "bf16", "cpu")
        ref = ref.to(torch.bfloat16)
        x = make(1, torch.Generator().manual_seed(0))
        x16 = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in x.items()}
        A.clear_attention_choices()
        A.set_attention(ours, "auto")
        bench(lambda: ours(**x), warmup=1, repeat=1)  # the selector measures on this first call
        picked = sorted(set(A.attention_choices().values()))

        def run(mode):
            def call():
                A.set_attention(ours, mode)
                ours(**x)
            return call

        t = alternate({"ref bf16": lambda: ref(**x16), **{f"ours {m}": run(m) for m in A.ATTENTION_MODES}},
                      repeat=repeat)
        print(f"\n{name} bf16, batch 1 (auto picked {picked}):")
        for key, sec in t.items():
            print(f"  {key:<12} {sec * 1e3:9.1f} ms   vs ref bf16 {t['ref bf16'] / sec:5.2f}x", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--models", nargs="+", default=["videomae", "altclip-text"], choices=list(cases()))
    p.add_argument("--skip-models", action="store_true")
    args = p.parse_args()
    set_threads(args.threads)
    print(f"{platform.processor() or platform.machine()} | torch {torch.__version__} | "
          f"{torch.get_num_threads()} threads | native bf16: {has_native_bf16()}")
    for dtype in (torch.bfloat16, torch.float32):
        kernels(dtype, args.repeat)
    if not args.skip_models:
        models(args.models, max(3, args.repeat // 2))


if __name__ == "__main__":
    main()
