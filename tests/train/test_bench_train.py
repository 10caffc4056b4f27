"""benchmarks/bench_train.py keeps working: its memory probe sees an allocation, and one configuration of
ours and of the transformers reference trains on the pre-decoded rows (structure only, never timings)."""
from __future__ import annotations

import importlib.util
import sys
from argparse import Namespace
from pathlib import Path

import mmap

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_train.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_train", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_train"] = mod
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop("bench_train", None)


@pytest.mark.timeout(60)
def test_peak_rss_sees_an_allocation_and_resets(bench):
    rss0 = bench.reset_peak()
    # fresh pages, touched: an array could come from memory malloc kept resident (the CLI's allocator settings,
    # applied by any test in this process that ran `mediaformers.cli.main`)
    block = mmap.mmap(-1, 256 * 2**20)
    block.write(b"\1" * (256 * 2**20))
    assert bench.status_kb("VmHWM") - rss0 >= 200 * 1024
    block.close()
    rss1 = bench.reset_peak()
    assert bench.status_kb("VmHWM") - rss1 < 64 * 1024  # the peak starts again from the current RSS


@pytest.mark.timeout(120)
def test_ours_and_reference_train_on_the_same_rows(bench, tmp_path):
    a = Namespace(quick=True, batch=2, warmup=1, steps=1, threads=None)
    spec = bench.prepare("ast", tmp_path, a)
    assert spec["feed"] == "memory" and Path(spec["cache"]).is_file()
    for impl in ("ours", "ref"):
        r = (bench.run_ours if impl == "ours" else bench.run_ref)({**spec, "out": str(tmp_path / impl)})
        assert len(r["walls"]) == 1 and r["wall"] > 0 and r["cpu"] > 0, (impl, r)
        assert r["rss0_kb"] > 0
