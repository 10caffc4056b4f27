"""Settings for the whole suite and every process it starts."""
import os

# onnxruntime >= 1.32 uploads usage telemetry from a thread started on import; on a machine that can resolve
# but not reach the host (CI), the process waits on it for minutes. The library sets the same default.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers on two cores: one thread each, and in every process they start. Two-thread OpenMP pools
    # in both would spin against each other (a 10 s fixture took 60 s).
    os.environ["OMP_NUM_THREADS"] = "1"


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state, whichever tests ran before it in its process (the
    suite runs in two xdist workers, so the order differs from run to run)."""
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
