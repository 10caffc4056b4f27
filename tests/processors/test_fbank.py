"""Kaldi fbank and ASTFeatureExtractor against transformers 5 (its numpy path: no torchaudio here).

Tolerance: 1e-3 absolute on the normalised output (log-mel / 9.14). We match to ~1.2e-7 (one float32
ulp) with the default float64 FFT, on any CPU: float64 FFT error (~1e-16 of a frame's energy) stays
far below float32 rounding even in near-silent bins, and the float32 matmul with the (positive) mel
filters has a relative error of a few ulps. 1e-3 is >8000x that and still far below anything a model
notices (features span about [-1.3, 1.5]). The float32 FFT path is checked against its error bound.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from transformers import ASTFeatureExtractor as RefExtractor
from transformers import audio_utils

from mediaformers.processors.ast_features import ASTFeatureExtractor
from mediaformers.processors.fbank import KALDI_MEL_FLOOR, fbank
from mediaformers.processors.mel import (
    _reflect_pad,
    get_window,
    mel_bands,
    mel_filter_bank,
    mel_spectrogram,
    power_spectrogram,
)
from tests.audio_media import SIGNALS, noise, speech_like, tone

ATOL = 1e-3
RATE = 16000
# 400: exactly one frame; 401; 0.1 s; 1 s; 10.7 s (over the 1024-frame max_length)
LENGTHS = [400, 401, 1600, 16000, 171000]


@pytest.fixture(scope="module")
def ref() -> RefExtractor:
    return RefExtractor()


@pytest.fixture(scope="module")
def ours() -> ASTFeatureExtractor:
    return ASTFeatureExtractor()


def _signal(name: str, n: int, seed: int = 0) -> np.ndarray:
    return SIGNALS[name](n / RATE, RATE, seed)[:n]


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_parity_with_transformers(ref, ours, name, n):
    x = _signal(name, n)
    expected = ref(x, sampling_rate=RATE, return_tensors="np")["input_values"]
    got = ours(x, sampling_rate=RATE, return_tensors="np")["input_values"]
    assert got.shape == expected.shape == (1, 1024, 128) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def test_batched_list_matches_reference(ref, ours):
    """Variable lengths in one call: padding rows never leak into another row's frames."""
    clips = [_signal(name, n, seed) for seed, (name, n) in enumerate(zip(sorted(SIGNALS), [16000, 400, 3000, 171000, 1000, 8000]))]
    expected = ref(clips, sampling_rate=RATE, return_tensors="np")["input_values"]
    got = ours(clips, sampling_rate=RATE, return_tensors="np")["input_values"]
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
    # a (batch, samples) array is a batch too (transformers' convention)
    same = np.stack([_signal("noise", 4000, s) for s in range(3)])
    np.testing.assert_allclose(ours(same, sampling_rate=RATE, return_tensors="np")["input_values"],
                               ref(same, sampling_rate=RATE, return_tensors="np")["input_values"], atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_float32_fft_within_its_error_bound(name):
    """float32 FFTs differ by CPU and FFT library (1.5e-3 after normalisation on an AMD Zen 5, 8e-4
    here on a chirp), so instead of one absolute tolerance this checks the error bound of any stable
    FFT: |dX_k| <= eps * log2(N) * ||X||. A mel energy E_m = sum_k w_mk |X_k|^2 then moves by at most
    2 |dX| sqrt(W_m E_m) + W_m |dX|^2 (Cauchy-Schwarz, W_m = sum_k w_mk), so its log by that over E_m.
    Measured here: at most 0.18 of the bound (c = 1); we allow c = 2, 11x margin. A wrong window,
    frame or filter is off by orders of magnitude more in the loud bins."""
    x = torch.from_numpy(_signal(name, 48000))
    low, n = fbank(x, compute_dtype=torch.float32)
    high, _ = fbank(x, compute_dtype=torch.float64)
    n = int(n)
    window = get_window("povey", 400, False, torch.device("cpu"), torch.float64)
    power, _ = power_spectrogram(x[None], torch.tensor([len(x)]), window=window, hop_length=160, fft_length=512,
                                 remove_dc_offset=True, preemphasis=0.97)
    power = power[0, :n].double()
    mel = torch.from_numpy(mel_filter_bank(257, 128, 20.0, 8000.0, RATE, None, "kaldi", True))
    energy = (power @ mel).clamp_min(KALDI_MEL_FLOOR)
    weight = mel.sum(0)
    c, eps = 2.0, float(torch.finfo(torch.float32).eps)
    dx = c * eps * math.log2(512) * (2 * power.sum(-1, keepdim=True)).sqrt()  # full-spectrum norm of each frame
    bound = 2 * dx * (weight / energy).sqrt() + weight * dx**2 / energy
    err = (low[0, :n] - high[0, :n]).abs().double()
    assert (err <= bound + 1e-5).all(), f"worst {(err / (bound + 1e-5)).max():.2f} x the float32 FFT error bound"


def test_shorter_than_a_frame_is_all_padding(ours):
    """torchaudio gives 0 frames below 400 samples (transformers' numpy path raises below 240)."""
    out = ours(noise(0.01, RATE), sampling_rate=RATE)
    assert torch.allclose(out["input_values"], torch.full((1, 1024, 128), (0 - ours.mean) / (2 * ours.std)))


def test_padded_batch_with_lengths_equals_list():
    clips = [torch.from_numpy(speech_like(s, RATE, i)) for i, s in enumerate([0.5, 0.05, 1.2])]
    from_list, n_list = fbank(clips)
    padded = torch.nn.utils.rnn.pad_sequence(clips, batch_first=True)
    from_padded, n_padded = fbank(padded, torch.tensor([len(c) for c in clips]))
    assert n_list.tolist() == n_padded.tolist() == [(len(c) - 400) // 160 + 1 for c in clips]
    torch.testing.assert_close(from_list, from_padded, atol=0, rtol=0)
    # frames past each row's end are zero
    assert (from_list[1, n_list[1]:] == 0).all()
    single, _ = fbank(clips[2])
    torch.testing.assert_close(single[0], from_list[2], atol=1e-6, rtol=0)


def test_chunking_does_not_change_the_result():
    x = torch.from_numpy(np.stack([noise(0.3, RATE, s) for s in range(5)]))
    a, _ = fbank(x, chunk_frames=1)
    b, _ = fbank(x, chunk_frames=10**6)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_spans_of_a_long_row_equal_the_whole_row():
    """Long rows run in spans of chunk_frames frames: every span restarts the per-frame steps (DC
    removal, pre-emphasis and its window-edge term, exercised by a Hamming window) and rows of other
    lengths in the same batch keep their own frame counts."""
    clips = [speech_like(1.0, RATE, 0), noise(0.37, RATE, 1), speech_like(0.8, RATE, 2)]
    x, lengths = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(c) for c in clips], batch_first=True), \
        torch.tensor([len(c) for c in clips])
    window = torch.from_numpy(np.hamming(400))
    mel = torch.from_numpy(mel_filter_bank(257, 128, 20.0, 8000.0, RATE, None, "kaldi", True)).float()
    kw = dict(mel_floor=KALDI_MEL_FLOOR, window=window, hop_length=160, fft_length=512, remove_dc_offset=True,
              preemphasis=0.97)
    whole, n = mel_spectrogram(x, lengths, mel, chunk_frames=10**6, **kw)
    for chunk in (1, 7, 40):
        spans, n2 = mel_spectrogram(x, lengths, mel, chunk_frames=chunk, **kw)
        assert n2.tolist() == n.tolist() == [(len(c) - 400) // 160 + 1 for c in clips]
        for row, frames in enumerate(n.tolist()):
            torch.testing.assert_close(spans[row, :frames], whole[row, :frames], atol=0, rtol=1e-6)
    power, _ = power_spectrogram(x[:1], lengths[:1], window=window, hop_length=160, fft_length=512,
                                 remove_dc_offset=True, preemphasis=0.97)
    torch.testing.assert_close(spans[0, : n[0]], (power[0] @ mel).clamp_min(KALDI_MEL_FLOOR), atol=0, rtol=1e-5)


@pytest.mark.parametrize("bank", [(257, 128, 20.0, 8000.0, RATE, None, "kaldi", True),
                                  (1025, 128, 0.0, 22050.0, 44100, "slaney", "slaney", False),
                                  (257, 3, 0.0, 8000.0, RATE, None, "htk", False)])
def test_mel_bands_give_the_dense_product(bank):
    mel = torch.from_numpy(mel_filter_bank(*bank)).float()
    bands = mel_bands(mel)
    assert sum(b.numel() for _, _, b in bands) < mel.numel() * (0.5 if bank[1] == 128 else 1.01)
    power = torch.rand(50, mel.shape[0], generator=torch.Generator().manual_seed(0))
    out = torch.full((50, mel.shape[1]), float("nan"))
    for cols, bins, block in bands:
        torch.mm(power[:, bins], block, out=out[:, cols])
    torch.testing.assert_close(out, power @ mel, atol=0, rtol=1e-6)


def test_power_spectrogram_with_nonzero_window_edge():
    """Hann starts at 0, which hides the pre-emphasis edge term; a Hamming window exercises it."""
    x = speech_like(0.2, RATE)
    window = np.hamming(400)
    expected = audio_utils.spectrogram(
        x, window, frame_length=400, hop_length=160, fft_length=512, power=2.0, center=False,
        preemphasis=0.97, remove_dc_offset=True,
    ).T
    got, n = power_spectrogram(
        torch.from_numpy(x)[None], torch.tensor([len(x)]), window=torch.from_numpy(window), hop_length=160,
        fft_length=512, remove_dc_offset=True, preemphasis=0.97,
    )
    assert int(n) == expected.shape[0]
    np.testing.assert_allclose(got[0, : int(n)].numpy(), expected, rtol=1e-4, atol=1e-6 * expected.max())


def test_centred_power_spectrogram_matches_numpy():
    x = noise(0.1, 44100)
    window = audio_utils.window_function(2048, "hann")
    expected = audio_utils.spectrogram(x, window, frame_length=2048, hop_length=512, power=2.0).T
    got, n = power_spectrogram(torch.from_numpy(x)[None], torch.tensor([len(x)]),
                               window=get_window("hann", 2048, True, torch.device("cpu"), torch.float64),
                               hop_length=512, fft_length=2048, center=True)
    assert int(n) == expected.shape[0]
    np.testing.assert_allclose(got[0].numpy(), expected, rtol=1e-4, atol=1e-6 * expected.max())


@pytest.mark.parametrize(
    "kw",
    [
        dict(num_frequency_bins=257, num_mel_filters=128, min_frequency=20, max_frequency=8000, sampling_rate=16000,
             mel_scale="kaldi", triangularize_in_mel_space=True),
        dict(num_frequency_bins=1025, num_mel_filters=128, min_frequency=0.0, max_frequency=22050.0,
             sampling_rate=44100, norm="slaney", mel_scale="slaney"),
        dict(num_frequency_bins=201, num_mel_filters=80, min_frequency=0.0, max_frequency=8000.0,
             sampling_rate=16000, mel_scale="htk"),
    ],
)
def test_mel_filter_bank_matches_transformers(kw):
    np.testing.assert_allclose(mel_filter_bank(**kw), audio_utils.mel_filter_bank(**kw), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n,pad", [(5000, 1024), (300, 1024), (2, 7), (1, 3)])
def test_reflect_pad_matches_numpy(n, pad):
    x = np.random.default_rng(0).standard_normal(n)
    got = _reflect_pad(torch.from_numpy(x)[None], torch.tensor([n]), pad)[0].numpy()
    np.testing.assert_array_equal(got, np.pad(x, pad, mode="reflect") if n > 1 else np.full(n + 2 * pad, x[0]))


# ------------------------------------------------------------------------------------------------
# the extractor around it


def test_resamples_other_rates(ours):
    x = speech_like(1.0, 44100)
    at16 = soxr.resample(x, 44100, RATE, quality="HQ").astype(np.float32)
    torch.testing.assert_close(ours(x, sampling_rate=44100)["input_values"], ours(at16)["input_values"],
                               atol=1e-6, rtol=0)


def test_file_paths_and_lists_of_them(ours, tmp_path):
    a, b = speech_like(0.7, 44100), tone(0.3, 8000)
    sf.write(tmp_path / "a.wav", np.stack([a, a], 1), 44100, subtype="FLOAT")
    sf.write(tmp_path / "b.flac", b, 8000)
    got = ours([tmp_path / "a.wav", str(tmp_path / "b.flac")])["input_values"]
    assert got.shape == (2, 1024, 128)
    torch.testing.assert_close(got[0], ours(a, sampling_rate=44100)["input_values"][0], atol=1e-6, rtol=0)


def test_attention_mask_and_numpy_output(tmp_path):
    fe = ASTFeatureExtractor(return_attention_mask=True, max_length=64)
    out = fe([noise(0.2, RATE), noise(1.0, RATE)], return_tensors="np")
    assert out["input_values"].shape == (2, 64, 128) and isinstance(out["input_values"], np.ndarray)
    assert out["attention_mask"].sum(1).tolist() == [(3200 - 400) // 160 + 1, 64]


def test_unnormalised_and_padding_value():
    fe = ASTFeatureExtractor(do_normalize=False, padding_value=-5.0, max_length=100)
    out = fe(noise(0.2, RATE))["input_values"][0]
    n = (3200 - 400) // 160 + 1
    assert (out[n:] == -5.0).all() and (out[:n] > -16).all()


def test_padded_array_batch_equals_list_of_rows(ours):
    """A (batch, samples) float array at the model's rate is used as the batch itself (no per-row
    copies): same features as the list of its rows, for float32/float64, numpy/torch, read-only
    arrays; a non-finite sample still names its row."""
    rows = np.stack([speech_like(0.3, RATE, s) for s in range(3)]).astype(np.float64)
    expected = ours(list(rows.astype(np.float32)))["input_values"]
    readonly = rows.astype(np.float32)
    readonly.flags.writeable = False
    for batch in (rows, rows.astype(np.float32), torch.from_numpy(rows), readonly):
        torch.testing.assert_close(ours(batch)["input_values"], expected, atol=0, rtol=0)
    rows[1, 7] = np.nan
    with pytest.raises(ValueError, match=r"audio\[1\]: audio has 1 non-finite"):
        ours(torch.from_numpy(rows))
    rows[1, 7:9] = 3e38  # finite, but the batch sum overflows: the exact check lets it through
    got = ours(rows.astype(np.float32))["input_values"]
    torch.testing.assert_close(got[::2], expected[::2], atol=0, rtol=0)


def test_config_round_trip_both_ways(ref, tmp_path):
    ours = ASTFeatureExtractor(max_length=512, num_mel_bins=64, mean=-1.5, std=3.0, return_attention_mask=True)
    ours.save_pretrained(tmp_path / "ours")
    saved = json.loads((tmp_path / "ours" / "preprocessor_config.json").read_text())
    assert saved["feature_extractor_type"] == "ASTFeatureExtractor" and saved["max_length"] == 512
    theirs = RefExtractor.from_pretrained(tmp_path / "ours")
    assert (theirs.max_length, theirs.num_mel_bins, theirs.mean, theirs.std) == (512, 64, -1.5, 3.0)
    ref.save_pretrained(tmp_path / "ref")
    back = ASTFeatureExtractor.from_pretrained(tmp_path / "ref")
    assert back.to_dict() == ASTFeatureExtractor().to_dict()
    x = noise(0.5, RATE)
    np.testing.assert_allclose(ASTFeatureExtractor.from_pretrained(tmp_path / "ours")(x, return_tensors="np")["input_values"],
                               theirs(x, sampling_rate=RATE, return_tensors="np")["input_values"], atol=ATOL, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_runs_on_gpu(ours):
    x = torch.from_numpy(speech_like(2.0, RATE)).cuda()
    out = ours(x)["input_values"]
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), ours(x.cpu())["input_values"], atol=1e-4, rtol=0)


# ------------------------------------------------------------------------------------------------
# bad input


def test_config_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no preprocessor_config.json in"):
        ASTFeatureExtractor.from_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"feature_extractor_type": "WhisperFeatureExtractor"}))
    with pytest.raises(ValueError, match="preprocessor_config.json: feature_extractor_type: expected "
                                         "'ASTFeatureExtractor', got 'WhisperFeatureExtractor'"):
        ASTFeatureExtractor.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "audio,match",
    [
        (np.zeros((2, 2, 100), np.float32), r"audio must be \(samples,\) or \(batch, samples\); got shape \(2, 2, 100\)"),
        ([], "audio is an empty list"),
        (np.zeros(0, np.float32), "source holds no audio samples"),
        (torch.zeros(0), "audio holds no audio samples"),
        (torch.tensor([0.0, float("nan")]), r"audio has 1 non-finite \(NaN/inf\) sample"),
        ([np.zeros(800, np.float32), np.array([0.0, np.inf], np.float32)], r"audio\[1\]: source has 1 non-finite"),
        ([np.zeros(800, np.float32), {"a": 1}], r"audio\[1\]: audio items must be a path, file object, bytes, array"),
    ],
)
def test_bad_audio(ours, audio, match):
    with pytest.raises(ValueError, match=match):
        ours(audio)


def test_bad_file_in_a_batch(ours, tmp_path):
    (tmp_path / "junk.wav").write_bytes(b"\x00\x01" * 500)
    with pytest.raises(ValueError, match=r"audio\[1\]: cannot decode audio file .*junk.wav"):
        ours([noise(0.1, RATE), tmp_path / "junk.wav"])


def test_bad_return_tensors(ours):
    with pytest.raises(ValueError, match="return_tensors: expected 'pt', 'np' or None, got 'tf'"):
        ours(noise(0.1, RATE), return_tensors="tf")


def test_fbank_argument_errors():
    with pytest.raises(ValueError, match=r"lengths must be \(2,\) values in \[0, 100\], got \[50, 101\]"):
        fbank(torch.zeros(2, 100), [50, 101])
    with pytest.raises(ValueError, match=r"waveforms\[1\] must be 1-D \(samples,\), got shape \(2, 5\)"):
        fbank([torch.zeros(5), torch.zeros(2, 5)])
    with pytest.raises(ValueError, match="window_type must be 'hanning' or 'povey', got 'hamming'"):
        fbank(torch.zeros(1000), window_type="hamming")
