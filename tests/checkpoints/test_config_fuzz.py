"""Random JSON at every config.json field of every declared family, and at the file's whole shape: the
only outcomes are a loaded model or a CheckpointError/ValueError, within bounded memory (issue 10).

The examples run in a child process under an address-space limit, so a config that allocated without
bound would end in a MemoryError (a failure here), not in a machine out of memory.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

LIMIT = 3 * 2**30  # address space the child may add to what importing torch took


def _strategies():
    from hypothesis import strategies as st

    big = st.sampled_from([0, -1, 2**31, 2**63, 10**9, 1e9, 1e308, -1e-12, 0.5, 1.5])
    leaf = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | big
            | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8))
    return st.recursive(leaf, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids,
                                                                                          max_size=4), max_leaves=8)


def _fields(data: dict) -> list[tuple[str, ...]]:
    """Paths of every field, nested configs' fields too (AltCLIP's towers)."""
    paths = []
    for key, value in data.items():
        paths.append((key,))
        if isinstance(value, dict) and key.endswith("_config"):
            paths += [(key, sub) for sub in value]
    return sorted(paths)


def _set(data: dict, path: tuple[str, ...], value) -> dict:
    data = json.loads(json.dumps(data))
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


def _load(folder: str, config) -> None:
    import mediaformers as mf

    Path(folder, "config.json").write_text(json.dumps(config))
    try:
        model = mf.from_pretrained(folder)
    except (mf.CheckpointError, ValueError) as err:
        assert str(err) and "Traceback" not in str(err)
        return
    assert model.num_parameters() < 10**7  # a tiny checkpoint makes a tiny model, whatever the config says


def run(examples: int) -> None:
    """The child: every family's head (or backbone) saved once, then fuzzed field by field and whole."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from mediaformers.family import families

    fuzz = settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    with tempfile.TemporaryDirectory() as tmp:
        for fam in families().values():
            cls = fam.head() or fam.backbone
            folder = os.path.join(tmp, fam.name)
            cls(fam.config_for(cls, fam.config(**fam.tiny))).save_pretrained(folder)
            for test in _tests(folder, json.loads(Path(folder, "config.json").read_text()), fuzz, given, st):
                try:
                    test()
                except BaseException:
                    print(f"{fam.name} {test.__name__}:", file=sys.stderr)
                    raise


def _tests(folder: str, base: dict, fuzz, given, st) -> list:
    """One field at a time set to random JSON; and the file's whole shape (any JSON value, or random
    values for a few fields at once)."""
    values = _strategies()

    @fuzz
    @given(path=st.sampled_from(_fields(base)), value=values)
    def field(path, value):
        _load(folder, _set(base, path, value))

    @fuzz
    @given(whole=values | st.dictionaries(st.sampled_from(sorted(base)), values, min_size=1, max_size=4))
    def shape(whole):
        _load(folder, {**base, **whole} if isinstance(whole, dict) and set(whole) <= set(base) else whole)

    return [field, shape]


def _child(call: str) -> str:
    """The code the child runs: an address-space limit LIMIT above what importing torch took, then ``call``."""
    return (
        "import resource, sys\n"
        "import torch, mediaformers.family as f; f.families()\n"
        "used = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()\n"
        f"resource.setrlimit(resource.RLIMIT_AS, (used + {LIMIT}, resource.RLIM_INFINITY))\n"
        f"{call}\n"
    )


def _run_child(call: str, timeout: int) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *sys.path])}
    return subprocess.run([sys.executable, "-c", _child(call)], cwd=root, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the memory bound uses RLIMIT_AS")


@pytest.mark.timeout(240)
@linux_only
def test_random_config_values_load_or_fail_clearly():
    pytest.importorskip("hypothesis")
    proc = _run_child("from tests.checkpoints.test_config_fuzz import run; run(100)", timeout=220)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.timeout(60)
@linux_only
def test_the_child_cannot_take_more_memory_than_the_bound():
    """So a config that allocated without bound would fail the fuzz run, not exhaust the machine."""
    proc = _run_child(f"torch.ones({LIMIT // 4 + 2**20}, dtype=torch.float32)", timeout=50)
    assert proc.returncode != 0 and ("MemoryError" in proc.stderr or "alloc" in proc.stderr), proc.stderr[-2000:]


def test_the_fuzz_would_catch_a_traceback(tmp_path, monkeypatch):
    """The harness fails on anything but a model or a clear error."""
    import mediaformers as mf

    monkeypatch.setattr(mf, "from_pretrained", lambda folder: {}["boom"])
    with pytest.raises(KeyError):
        _load(str(tmp_path), {})
