"""The malloc setting that lets each training step reuse the last one's activation memory."""
import os
import platform
import subprocess
import sys

import pytest

CODE = """
import torch
from mediaformers.allocator import keep_freed_memory
print(keep_freed_memory(), keep_freed_memory())
x = torch.ones(96 * 2**20, dtype=torch.uint8)  # above glibc's largest mmap threshold: now from the heap
print(int(x.sum()) == x.numel())
"""


def _run(**env) -> str:
    return subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env}, check=True).stdout.split()


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_applied_once_per_process_unless_turned_off():
    # (How many page faults it saves depends on the kernel -- a VM's memory reclaim may take idle heap
    # pages back too -- so that is measured in benchmarks/bench_train.py, not asserted here.)
    assert _run() == ["True", "True", "True"]
    assert _run(MEDIAFORMERS_KEEP_FREED_MEMORY="0") == ["False", "False", "True"]
