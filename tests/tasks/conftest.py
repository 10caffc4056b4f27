"""Small checkpoints of every family and a folder of generated media, shared by the task tests."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import mediaformers as mf
from tests.media import make_video

LABELS = {0: "walk", 1: "run", 2: "jump"}


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpts")
    torch.manual_seed(0)
    small = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=48)
    mf.VideoMAEForVideoClassification(mf.VideoMAEConfig(
        **small, image_size=32, num_frames=4, id2label=LABELS)).save_pretrained(root / "videomae")
    mf.VivitForVideoClassification(mf.VivitConfig(
        **small, image_size=32, num_frames=4, tubelet_size=[2, 16, 16], id2label=LABELS)).save_pretrained(root / "vivit")
    mf.ASTForAudioClassification(mf.ASTConfig(
        **small, max_length=128, id2label={0: "tone", 1: "noise"})).save_pretrained(root / "ast")
    mf.TvltForAudioVisualClassification(mf.TvltConfig(
        **small, image_size=32, num_frames=4, spectrogram_length=64, id2label=LABELS)).save_pretrained(root / "tvlt")
    from tests.altclip_tiny import make_folder

    make_folder(root / "altclip")
    return {p.name: p for p in root.iterdir()}


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Path:
    """a.mp4, b_corrupt.mp4 (garbage in the middle of the sorted list), c.mp4, tone.wav, long.wav, still.png."""
    root = tmp_path_factory.mktemp("media")
    make_video(root / "a.mp4", frames=12, size=(48, 64), audio=True)
    (root / "b_corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    make_video(root / "c.mp4", frames=6, size=(40, 30), audio=True)
    t = np.arange(16000) / 16000
    sf.write(root / "tone.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    rng = np.random.default_rng(0)
    sf.write(root / "long.wav", (0.1 * rng.standard_normal(44100 * 2)).astype(np.float32), 44100)
    from PIL import Image

    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(root / "still.png")
    return root
