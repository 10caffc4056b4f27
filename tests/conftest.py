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


SEED = int(os.environ.get("MF_TEST_SEED", 0))


def _seed() -> None:
    import random

    import numpy as np
    import torch

    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef, request):
    """Every fixture (a module's tiny checkpoint too) starts from the same random state, whichever tests
    ran before it in its process: the two xdist workers pick tests in a different order each run."""
    _seed()


@pytest.fixture(autouse=True)
def _seeded():
    """And so does every test."""
    _seed()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
