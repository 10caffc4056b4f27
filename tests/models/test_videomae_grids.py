"""VideoMAE at other frame counts and sizes: its sin-cos table is a function of the token index, so a
16-frame checkpoint run on 8 frames is exactly an 8-frame model with the same weights."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import mediaformers as mf

BASE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48, patch_size=8,
            tubelet_size=2, num_labels=3)


def _pair(cls, frames_a, size_a, frames_b, size_b, **kw):
    torch.manual_seed(0)
    a = cls(mf.VideoMAEConfig(**BASE, num_frames=frames_a, image_size=size_a, **kw)).eval()
    b = cls(mf.VideoMAEConfig(**BASE, num_frames=frames_b, image_size=size_b, **kw)).eval()
    b.load_state_dict(a.state_dict())
    return a, b


@pytest.mark.parametrize("frames, size", [(4, 32), (16, 32), (8, 48), (8, 24)])
@pytest.mark.parametrize("mean_pooling", [True, False])
def test_other_grid_equals_a_model_built_for_it(frames, size, mean_pooling):
    a, b = _pair(mf.VideoMAEForVideoClassification, 8, 32, frames, size, use_mean_pooling=mean_pooling)
    x = torch.randn(2, frames, 3, size, size)
    torch.testing.assert_close(a(x, interpolate_pos_encoding=True).logits, b(x).logits, rtol=0, atol=0)


def test_pretraining_on_another_grid():
    a, b = _pair(mf.VideoMAEForPreTraining, 8, 32, 4, 48)
    x = torch.randn(2, 4, 3, 48, 48)
    mask = mf.make_tube_mask(b.config, 2, 0.75, seed=0)
    out_a = a(x, bool_masked_pos=mask, interpolate_pos_encoding=True)
    torch.testing.assert_close(out_a.loss, b(x, bool_masked_pos=mask).loss, rtol=0, atol=0)


def test_without_the_flag_the_grid_is_checked():
    a, _ = _pair(mf.VideoMAEForVideoClassification, 8, 32, 8, 32)
    with pytest.raises(ValueError, match="expected 8 frames"):
        a(torch.randn(1, 4, 3, 32, 32))
    with pytest.raises(ValueError, match="smaller than one tubelet"):
        a(torch.randn(1, 1, 3, 32, 32), interpolate_pos_encoding=True)


@pytest.mark.timeout(240)
def test_cli_frames_and_size(tmp_path):
    from tests.media import make_video

    torch.manual_seed(0)
    mf.VideoMAEForVideoClassification(mf.VideoMAEConfig(**BASE, num_frames=8, image_size=32)).save_pretrained(tmp_path / "m")
    clip = make_video(tmp_path / "c.mp4", frames=20, size=(48, 64))

    def run(*extra):
        r = subprocess.run([sys.executable, "-m", "mediaformers", "classify", str(tmp_path / "m"), str(clip),
                            "--quiet", *extra], capture_output=True, text=True, timeout=200)
        return r

    base, other = run(), run("--frames", "4", "--size", "48")
    assert base.returncode == 0 and other.returncode == 0, other.stderr
    assert json.loads(base.stdout)["labels"] != json.loads(other.stdout)["labels"]  # another input, same model
    bad = run("--frames", "0")
    assert bad.returncode == 2 and "--frames: expected a number >= 1" in bad.stderr.replace("argument ", "")
