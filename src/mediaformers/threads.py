"""How many threads torch's CPU kernels use: one policy for every command.

torch's default is one thread per core of the machine, which oversubscribes whenever something else
wants the cores: DataLoader workers decoding media beside the model (``train`` ran 16x slower on two busy
cores with torch's default than with one thread), several ``torchrun`` processes on one machine, or a
container limited to fewer cores than the machine has. So:

    threads = cores this process may run on (``os.sched_getaffinity``) / local processes - workers, >= 1

overridden by ``--threads N`` on the command line, else by ``MEDIAFORMERS_THREADS`` or an explicit
``OMP_NUM_THREADS`` in the environment.
"""
from __future__ import annotations

import os
import sys

ENV = "MEDIAFORMERS_THREADS"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's or taskset's limit)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def _positive(value: str, name: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{name}: expected a whole number >= 1, got {value!r}")
    return n


def thread_count(workers: int = 0, requested: int | None = None, environ: dict[str, str] | None = None) -> int:
    """The number of compute threads for a process that runs ``workers`` DataLoader workers beside it.

    ``requested`` (``--threads``) wins, then ``MEDIAFORMERS_THREADS``, then ``OMP_NUM_THREADS``; otherwise
    the cores available, shared by ``LOCAL_WORLD_SIZE`` processes (torchrun), minus the workers, at least 1.
    """
    env = os.environ if environ is None else environ
    if requested is not None:
        return _positive(str(requested), "--threads")
    for name in (ENV, "OMP_NUM_THREADS"):
        if env.get(name, "").strip():
            return _positive(env[name].strip(), name)
    if workers < 0:
        raise ValueError(f"workers: expected 0 or more, got {workers}")
    local = _positive(env.get("LOCAL_WORLD_SIZE", "1") or "1", "LOCAL_WORLD_SIZE")
    return max(1, available_cores() // local - workers)


def apply_threads(workers: int = 0, requested: int | None = None) -> int:
    """Set torch's intra-op threads by :func:`thread_count`; returns the number set. Before torch is imported
    (a command may never need it: ``search`` through a running server) it is said through the environment,
    which torch reads when it starts its thread pool, so importing torch is left to the code that needs it."""
    n = thread_count(workers, requested)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    else:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
    return n
