"""The one timer of the benchmarks: warm-up, repeats, median, a device synchronise when CUDA is in use.

Every benchmarks/*.py times through here, so all figures mean the same thing: median wall seconds of
complete calls (GPU work included, not just its launch), measured in one run against the reference.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch.utils.flop_counter import FlopCounterMode


def set_threads(n: int | None) -> int:
    """Use ``n`` intra-op threads (None: leave torch's choice); returns the count in use."""
    if n:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def sync() -> None:
    """Wait for queued GPU work, so a timing covers the work and not just its launch (no-op on CPU)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """``with stopwatch() as t: ...`` then ``t[0]`` is the block's wall seconds (synchronised)."""
    out: list[float] = []
    sync()
    t0 = time.perf_counter()
    yield out
    sync()
    out.append(time.perf_counter() - t0)


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """One synchronised call of ``fn``: (wall seconds, CPU seconds of this process)."""
    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    sync()
    return time.perf_counter() - t0, time.process_time() - c0


def bench(fn: Callable[[], object], *, warmup: int = 1, repeat: int = 3, min_seconds: float = 0.0,
          reduce: Callable[[list[float]], float] = statistics.median) -> float:
    """Median (or ``reduce``) wall time of ``fn`` in seconds after warm-up, under inference mode."""
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        times = []
        start = time.perf_counter()
        while len(times) < repeat or time.perf_counter() - start < min_seconds:
            times.append(timed(fn)[0])
    return reduce(times)


def alternate(fns: dict[str, Callable[[], object]], *, repeat: int = 3, warmup: int = 1,
              cpu: bool = False) -> dict[str, float | tuple[float, float]]:
    """Median seconds of each callable, warmed up, then called in turn (drift hits all alike).

    With ``cpu=True`` each value is (median wall seconds, median CPU seconds)."""
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    with torch.inference_mode():
        for _ in range(warmup):
            for fn in fns.values():
                fn()
        for _ in range(repeat):
            for name, fn in fns.items():
                runs[name].append(timed(fn))
    med = {name: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r)) for name, r in runs.items()}
    return med if cpu else {name: m[0] for name, m in med.items()}


def flops(fn: Callable[[], object]) -> int:
    """Floating-point operations of one call (matmuls, convs, attention), counted by torch."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def matmul_peak(dtype: torch.dtype = torch.float32, n: int = 2048, device: str | torch.device = "cpu") -> float:
    """This machine's measured matmul throughput in FLOP/s (large square GEMM)."""
    a, b = (torch.randn(n, n, dtype=dtype, device=device) for _ in range(2))
    seconds = bench(lambda: a @ b, warmup=2, repeat=5)
    return 2 * n**3 / seconds


def row(name: str, ours: float, ref: float, work: float | None = None, peak: float | None = None) -> str:
    """One result line: times, ratio ref/ours (>1 = we are faster), share of the matmul peak."""
    line = f"{name:<42} ours {ours * 1e3:9.1f} ms   ref {ref * 1e3:9.1f} ms   ratio {ref / ours:5.2f}x"
    if work and peak:
        line += f"   ours {work / ours / peak:5.1%} / ref {work / ref / peak:5.1%} of peak"
    return line
