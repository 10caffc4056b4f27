import numpy as np
import pytest


def write_audio_classes(root, n_per_class=6, sr=16000, seconds=0.7):
    """root/tone/*.wav (sine at random pitch) and root/noise/*.wav (white noise): separable at once."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(int(sr * seconds)) / sr
    for label in ("tone", "noise"):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            wave = (0.4 * np.sin(2 * np.pi * rng.uniform(300, 1500) * t) if label == "tone"
                    else 0.3 * rng.standard_normal(len(t)))
            sf.write(root / label / f"{label}{i}.wav", wave.astype(np.float32), sr)
    return root


@pytest.fixture
def audio_classes(tmp_path):
    return write_audio_classes(tmp_path / "data")


TINY_AUDIO = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
                  num_mel_bins=32, max_length=64)
