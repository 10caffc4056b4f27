"""Fine-tuning on generated media: the loss falls, the best model classifies from the CLI, a resumed run
equals an uninterrupted one, and bad data is refused before any step."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import mediaformers as mf
from mediaformers.train import DataError, Recipe
from tests.media import make_video

pytestmark = pytest.mark.timeout(300)
SMALL = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=48)


def _moving(direction: int, seed: int) -> np.ndarray:
    """A bright square crossing a dark noisy frame left-to-right (1) or right-to-left (-1)."""
    rng = np.random.default_rng(seed)
    frames = (rng.random((8, 32, 32, 3)) * 40).astype(np.uint8)
    for i in range(8):
        x = (i * 3) if direction > 0 else (21 - i * 3)
        frames[i, 10:20, x:x + 10] = 230
    return frames


@pytest.fixture(scope="module")
def video_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    for label, direction in (("left_to_right", 1), ("right_to_left", -1)):
        (root / label).mkdir()
        for i in range(6):
            make_video(root / label / f"{i}.mp4", frames=_moving(direction, i), size=(32, 32), fps=8)
    return root


@pytest.fixture(scope="module")
def videomae(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "videomae"
    torch.manual_seed(0)
    mf.VideoMAEForVideoClassification(mf.VideoMAEConfig(**SMALL, image_size=32, patch_size=16, num_frames=4,
                                                        num_labels=5)).save_pretrained(path)
    return path


def test_video_classifier_learns_and_classifies(videomae, video_data, tmp_path):
    result = Recipe(model=str(videomae), data=str(video_data), output=str(tmp_path / "run"), epochs=6, lr=3e-3,
                    batch_size=4, val_fraction=0.25, seed=0).fit()
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    assert result["evaluated"] == 3 and len(result["confusion"]) == 2
    best = tmp_path / "run" / "best"
    assert json.loads((best / "config.json").read_text())["id2label"] == {"0": "left_to_right", "1": "right_to_left"}
    run = subprocess.run([sys.executable, "-m", "mediaformers", "classify", str(best),
                          str(video_data / "left_to_right" / "0.mp4"), "--quiet", "--top-k", "2"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert {r["label"] for r in json.loads(run.stdout)["labels"]} == {"left_to_right", "right_to_left"}


def test_audio_classifier_learns(tmp_path):
    root = tmp_path / "sounds"
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 16000
    for label in ("tone", "noise"):
        (root / label).mkdir(parents=True)
        for i in range(5):
            x = 0.3 * np.sin(2 * np.pi * (300 + 50 * i) * t) if label == "tone" else 0.2 * rng.standard_normal(8000)
            sf.write(root / label / f"{i}.wav", x.astype(np.float32), 16000)
    ckpt = tmp_path / "ast"
    torch.manual_seed(0)
    mf.ASTForAudioClassification(mf.ASTConfig(**SMALL, max_length=64, num_mel_bins=32)).save_pretrained(ckpt)
    Recipe(model=str(ckpt), data=str(root), output=str(tmp_path / "run"), epochs=5, lr=3e-3, batch_size=4).fit()
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]


def test_resumed_run_equals_an_uninterrupted_one(videomae, video_data, tmp_path, monkeypatch):
    from mediaformers.train.recipe import Trainer

    common = dict(model=str(videomae), data=str(video_data), lr=1e-3, batch_size=4, seed=3, epochs=3)
    Recipe(**common, output=str(tmp_path / "a")).fit()
    real = Trainer._checkpoint

    def killed_after_first_checkpoint(self):
        real(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_checkpoint", killed_after_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        Recipe(**common, output=str(tmp_path / "b")).fit()
    monkeypatch.setattr(Trainer, "_checkpoint", real)
    Recipe(**common, output=str(tmp_path / "b"), resume=True).fit()
    a = mf.VideoMAEForVideoClassification.from_pretrained(tmp_path / "a" / "final").state_dict()
    b = mf.VideoMAEForVideoClassification.from_pretrained(tmp_path / "b" / "final").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    la = [json.loads(x)["train_loss"] for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["train_loss"] for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert la == lb


def test_bad_data_is_refused_before_any_step(videomae, video_data, tmp_path):
    one = tmp_path / "one"
    (one / "only").mkdir(parents=True)
    (one / "only" / "a.mp4").write_bytes((video_data / "left_to_right" / "0.mp4").read_bytes())
    with pytest.raises(DataError, match="at least 2 classes"):
        Recipe(model=str(videomae), data=str(one), output=str(tmp_path / "r1")).fit()
    (one / "empty").mkdir()
    with pytest.raises(DataError, match="holds no video files"):
        Recipe(model=str(videomae), data=str(one), output=str(tmp_path / "r2")).fit()
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\nnope.mp4,a\n")
    with pytest.raises(DataError, match="does not exist"):
        Recipe(model=str(videomae), data=str(manifest), output=str(tmp_path / "r3")).fit()
    val = tmp_path / "val"
    (val / "sideways").mkdir(parents=True)
    (val / "sideways" / "a.mp4").write_bytes((video_data / "left_to_right" / "0.mp4").read_bytes())
    with pytest.raises(DataError, match=r"validation labels \['sideways'\] are not in the training labels"):
        Recipe(model=str(videomae), data=str(video_data), val=str(val), output=str(tmp_path / "r4")).fit()
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("mine")
    with pytest.raises(DataError, match="exists and is not empty"):
        Recipe(model=str(videomae), data=str(video_data), output=str(tmp_path / "used")).fit()


def test_corrupt_files_are_skipped_and_named(videomae, video_data, tmp_path, capsys):
    data = tmp_path / "data"
    for label in ("left_to_right", "right_to_left"):
        (data / label).mkdir(parents=True)
        for f in sorted((video_data / label).iterdir()):
            (data / label / f.name).write_bytes(f.read_bytes())
    (data / "left_to_right" / "broken.mp4").write_bytes(b"\x00" * 100)
    Recipe(model=str(videomae), data=str(data), output=str(tmp_path / "run"), epochs=1, val_fraction=0.2,
           max_bad_fraction=0.5).fit()
    assert "broken.mp4" in capsys.readouterr().out


@pytest.mark.parametrize("variant", ["factorised_encoder", "factorised_self_attention", "factorised_dot_product"])
def test_vivit_variants_train_through_the_recipe(video_data, tmp_path, variant):
    """ViViT models 2-4 (not in transformers) fine-tune with the same command as every family."""
    ckpt = tmp_path / "vivit"
    torch.manual_seed(0)
    mf.VivitForVideoClassification(mf.VivitConfig(**SMALL, image_size=32, num_frames=4, tubelet_size=[2, 16, 16],
                                                  vivit_variant=variant, num_temporal_layers=1)).save_pretrained(ckpt)
    Recipe(model=str(ckpt), data=str(video_data), output=str(tmp_path / "run"), epochs=4, lr=3e-3).fit()
    metrics = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    assert json.loads((tmp_path / "run" / "best" / "config.json").read_text())["vivit_variant"] == variant
