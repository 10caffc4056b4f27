"""A run killed with SIGKILL right after a checkpoint and resumed gives the same losses and weights,
bit for bit, as an uninterrupted run (CPU)."""
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from .conftest import TINY_AUDIO

SCRIPT = """
import json, os, signal, sys
from mediaformers.train import Recipe, fit
import mediaformers.train.checkpointing as ck
kill_at, resume = int(sys.argv[3]), sys.argv[4] == "1"
if kill_at:
    save = ck.save_state
    def save_then_die(run, state, step, keep):
        path = save(run, state, step, keep)
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return path
    ck.save_state = save_then_die
fit(Recipe(model="ast", data=sys.argv[1], output=sys.argv[2], config=json.loads(sys.argv[5]), max_steps=6,
           batch_size=3, lr=3e-3, save_every=1, warmup_steps=2, label_smoothing=0.1, clip_grad=1.0, seed=3,
           augment=True, drop_path_rate=0.2, resume=resume))  # random draws after the resume point too
"""


def _run(data, run, kill_at=0, resume=False):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-c", SCRIPT, str(data), str(run), str(kill_at), "1" if resume else "0",
                           json.dumps(TINY_AUDIO)], env=env, capture_output=True, text=True, timeout=120)


def _losses(run):
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["train_loss"] for r in rows if "top1" not in r}


@pytest.mark.timeout(300)
def test_sigkill_and_resume_is_bit_identical(audio_classes, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert _run(audio_classes, a).returncode == 0
    killed = _run(audio_classes, b, kill_at=4)
    assert killed.returncode == -signal.SIGKILL
    assert max(_losses(b)) == 4
    done = _run(audio_classes, b, resume=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _losses(a) == _losses(b) and len(_losses(a)) == 6
    from safetensors.torch import load_file

    wa, wb = load_file(a / "final" / "model.safetensors"), load_file(b / "final" / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
