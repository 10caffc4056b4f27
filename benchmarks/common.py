"""Timing helpers shared by the benchmarks: ratios against the reference, measured in one run."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def sync() -> None:
    """Wait for queued GPU work, so a timing covers the work and not just its launch."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of one call, GPU work included."""
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def bench(fn: Callable[[], object], *, warmup: int = 1, repeat: int = 3, min_seconds: float = 0.0,
          reduce: Callable[[list[float]], float] = statistics.median) -> float:
    """Median (or ``reduce``) wall time of ``fn`` in seconds after warm-up, under inference mode."""
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        times = []
        start = time.perf_counter()
        while len(times) < repeat or time.perf_counter() - start < min_seconds:
            times.append(timed(fn))
    return reduce(times)


def alternate(*fns: Callable[[], object], runs: int, warmup: int = 1) -> list[float]:
    """Median seconds of each function, called in turn (so drifting machine load hits all alike)."""
    times: list[list[float]] = [[] for _ in fns]
    with torch.inference_mode():
        for _ in range(warmup):
            for fn in fns:
                fn()
        for _ in range(runs):
            for fn, t in zip(fns, times):
                t.append(timed(fn))
    return [statistics.median(t) for t in times]


def flops(fn: Callable[[], object]) -> int:
    """Floating-point operations of one call (matmuls, convs, attention), counted by torch.

    Counted with the math attention kernel: FlopCounterMode has no formula for the fused CPU
    attention kernel, which would leave attention's matmuls out.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
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
