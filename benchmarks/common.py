"""Timing helpers shared by the benchmarks: ratios against the reference, measured in one run."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def bench(fn: Callable[[], object], *, warmup: int = 1, repeat: int = 3, min_seconds: float = 0.0) -> float:
    """Median wall time of ``fn`` in seconds (after warm-up), under inference mode."""
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        times = []
        start = time.perf_counter()
        while len(times) < repeat or time.perf_counter() - start < min_seconds:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def flops(fn: Callable[[], object]) -> int:
    """Floating-point operations of one call (matmuls, convs, attention), counted by torch."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def matmul_peak(dtype: torch.dtype = torch.float32, n: int = 2048) -> float:
    """This machine's measured matmul throughput in FLOP/s (large square GEMM)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    seconds = bench(lambda: a @ b, warmup=2, repeat=5)
    return 2 * n**3 / seconds


def row(name: str, ours: float, ref: float, work: float | None = None, peak: float | None = None) -> str:
    """One result line: times, ratio ref/ours (>1 = we are faster), share of the matmul peak."""
    line = f"{name:<42} ours {ours * 1e3:9.1f} ms   ref {ref * 1e3:9.1f} ms   ratio {ref / ours:5.2f}x"
    if work and peak:
        line += f"   ours {work / ours / peak:5.1%} / ref {work / ref / peak:5.1%} of peak"
    return line
