"""TVLT audio features against golden files from transformers 4.57.1 (tools/make_tvlt_feature_goldens.py).

Tolerance 1e-3 absolute: features live in [-1, 1] as (dB - 20) / 40, so 1e-3 is 0.04 dB. We match
to ~2.4e-7; the slack covers float32 FFT/BLAS differences across machines, not a different recipe.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from mediaformers.processors.tvlt_audio import TvltFeatureExtractor, tvlt_log_mel
from tests.audio_media import noise, speech_like, tone

ATOL = 1e-3
GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "tvlt" / "audio_features.npz"


@pytest.fixture(scope="module")
def golden() -> dict:
    data = np.load(GOLDEN)
    meta = json.loads(data["meta_json"].tobytes())
    clips = {name: data[f"pcm_{name}"].astype(np.float32) / 32768 for name in meta["clips"]}
    return {"meta": meta, "clips": clips, **{k: data[k] for k in data.files if not k.startswith(("pcm_", "meta"))}}


def test_golden_batch(golden):
    out = TvltFeatureExtractor()(list(golden["clips"].values()), sampling_rate=44100, return_tensors="np")
    assert out["audio_values"].shape == golden["batch_audio_values"].shape == (7, 1, 80, 128)
    np.testing.assert_allclose(out["audio_values"], golden["batch_audio_values"], atol=ATOL, rtol=0)
    np.testing.assert_array_equal(out["audio_mask"], golden["batch_audio_mask"])


def test_golden_truncation(golden):
    fe = TvltFeatureExtractor(spectrogram_length=golden["meta"]["trunc_config"]["spectrogram_length"])
    clips = [golden["clips"][name] for name in golden["meta"]["trunc_clips"]]
    out = fe(clips, sampling_rate=44100, return_tensors="np")
    np.testing.assert_allclose(out["audio_values"], golden["trunc_audio_values"], atol=ATOL, rtol=0)
    np.testing.assert_array_equal(out["audio_mask"], golden["trunc_audio_mask"])


def test_golden_config_matches_defaults(golden):
    """Every field the reference saves (it saves hop_length, not hop_length_to_sampling_rate) agrees."""
    ours = TvltFeatureExtractor().to_dict()
    shared = set(ours) & set(golden["meta"]["config"])
    assert {"hop_length", "freq_len", "spectrogram_length", "patch_size", "n_fft"} <= shared
    for key in shared:
        assert golden["meta"]["config"][key] == ours[key], key
    # a saved reference config (hop_length only) loads with that hop
    assert TvltFeatureExtractor(**{**golden["meta"]["config"], "hop_length": 256}).hop_length == 256


def test_single_clips_equal_their_batch_rows(golden):
    fe = TvltFeatureExtractor()
    for i, clip in enumerate(golden["clips"].values()):
        one = fe(clip, sampling_rate=44100)
        t = one["audio_values"].shape[2]
        torch.testing.assert_close(one["audio_values"][0], torch.from_numpy(golden["batch_audio_values"][i, :, :t]),
                                   atol=ATOL, rtol=0)
        assert one["audio_mask"].shape == (1, t // 16 * 8) and bool(one["audio_mask"].all())


def test_mask_layout():
    """Time-major patches: ceil(frames / 16) * 8 ones, zeros up to the longest clip's patches."""
    fe = TvltFeatureExtractor()
    out = fe([noise(0.5, 44100), noise(0.1, 44100)])
    frames = [int(0.5 * 44100) // 512, int(0.1 * 44100) // 512]  # 43, 8
    assert out["audio_values"].shape == (2, 1, 48, 128)
    assert out["audio_mask"].sum(1).tolist() == [-(-f // 16) * 8 for f in frames] == [24, 8]
    assert (out["audio_values"][1, 0, frames[1]:] == 0).all()


def test_resamples_other_rates_and_reads_files(tmp_path):
    fe = TvltFeatureExtractor()
    x = speech_like(0.5, 16000)
    at44 = soxr.resample(x, 16000, 44100, quality="HQ").astype(np.float32)
    expected = fe(at44)["audio_values"]
    torch.testing.assert_close(fe(x, sampling_rate=16000)["audio_values"], expected, atol=1e-5, rtol=0)
    sf.write(tmp_path / "a.wav", np.stack([x, x], 1), 16000, subtype="FLOAT")
    torch.testing.assert_close(fe(tmp_path / "a.wav")["audio_values"], expected, atol=1e-5, rtol=0)


def test_log_mel_range_and_frames():
    x = torch.from_numpy(tone(1.0, 44100, amp=0.9))[None]
    feats, n = tvlt_log_mel(x, torch.tensor([44100]))
    assert int(n) == 44100 // 512 and feats.shape[-1] == 128
    assert feats.min() >= -1 and feats.max() <= 1


def test_config_round_trip(tmp_path):
    fe = TvltFeatureExtractor(spectrogram_length=1024, patch_size=[16, 8])
    fe.save_pretrained(tmp_path)
    back = TvltFeatureExtractor.from_pretrained(tmp_path)
    assert back.to_dict() == fe.to_dict() and back.freq_len == 16


def test_return_without_mask_and_numpy():
    out = TvltFeatureExtractor()(noise(0.2, 44100), return_attention_mask=False, return_tensors="np")
    assert set(out) == {"audio_values"} and isinstance(out["audio_values"], np.ndarray)


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match=r"feature_size: expected a multiple of patch_size\[1\] \(12\), got 128"):
        TvltFeatureExtractor(patch_size=[16, 12])
    fe = TvltFeatureExtractor()
    with pytest.raises(ValueError, match=r"audio must be \(samples,\) or \(batch, samples\); got shape \(1, 2, 3\)"):
        fe(np.zeros((1, 2, 3), np.float32))
    with pytest.raises(ValueError, match="return_tensors: expected 'pt', 'np' or None, got 'jax'"):
        fe(noise(0.1, 44100), return_tensors="jax")
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"feature_extractor_type": "ASTFeatureExtractor"}))
    with pytest.raises(ValueError, match="expected 'TvltFeatureExtractor'"):
        TvltFeatureExtractor.from_pretrained(tmp_path)
