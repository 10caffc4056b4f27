"""Write TVLT audio-feature golden files with transformers 4.57.1's TvltFeatureExtractor.

Run in the reference venv (TVLT exists only up to transformers 4.57.1):
    bash tools/make_tvlt_venv.sh
    tools/.venv-tvlt/bin/python tools/make_tvlt_feature_goldens.py

Writes tests/fixtures/tvlt/audio_features.npz (~0.3 MB): the clips as int16 PCM (lossless: the
generators' output is rounded to 16-bit levels first) and the reference outputs as float32:
  * ``batch_*``: one batched call over all clips (default config), so padding and ``audio_mask`` of
    clips of different lengths are covered; lengths run from 0.01 s (shorter than one FFT window)
    to 0.8 s.
  * ``trunc_*``: a config with ``spectrogram_length=32`` on two clips longer than that (truncation),
    since a clip over the default 2048 frames is 24 s of audio (4 MB) and would not stay small.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import transformers
from transformers.models.deprecated.tvlt.feature_extraction_tvlt import TvltFeatureExtractor

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from audio_media import SIGNALS, pcm16  # noqa: E402  (numpy-only generators shared with the tests)

RATE = 44100
# (name, generator, seconds, seed)
CLIPS = [
    ("tone", "tone", 0.4, 0),
    ("noise", "noise", 0.4, 1),
    ("chirp", "chirp", 0.8, 2),
    ("silence", "silence", 0.2, 3),
    ("clipping", "clipping", 0.3, 4),
    ("speech_like", "speech_like", 0.6, 5),
    ("tiny_noise", "noise", 0.01, 6),  # 441 samples: shorter than the 2048-sample window
]
TRUNC_CLIPS = ["chirp", "speech_like"]


def _plain(config: dict) -> dict:
    """The JSON-able fields of a config (drops the mel matrix the reference keeps as an attribute)."""
    return {k: v for k, v in config.items() if isinstance(v, (str, int, float, bool, list, type(None)))}


def main() -> None:
    out_dir = ROOT / "tests" / "fixtures" / "tvlt"
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = {name: pcm16(SIGNALS[gen](sec, RATE, seed)) for name, gen, sec, seed in CLIPS}
    arrays: dict[str, np.ndarray] = {f"pcm_{k}": np.round(v * 32768).astype(np.int16) for k, v in clips.items()}

    fe = TvltFeatureExtractor()
    ref = fe(list(clips.values()), sampling_rate=RATE, return_tensors="np")
    arrays["batch_audio_values"] = ref["audio_values"].astype(np.float32)
    arrays["batch_audio_mask"] = ref["audio_mask"].astype(np.float32)

    short = TvltFeatureExtractor(spectrogram_length=32)
    ref = short([clips[k] for k in TRUNC_CLIPS], sampling_rate=RATE, return_tensors="np")
    arrays["trunc_audio_values"] = ref["audio_values"].astype(np.float32)
    arrays["trunc_audio_mask"] = ref["audio_mask"].astype(np.float32)

    meta = {
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "rate": RATE,
        "clips": [name for name, *_ in CLIPS],
        "trunc_clips": TRUNC_CLIPS,
        "trunc_config": _plain(short.to_dict()),
        "config": _plain(fe.to_dict()),
    }
    arrays["meta_json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path = out_dir / "audio_features.npz"
    np.savez_compressed(path, **arrays)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
