"""audio_io: files of every kind and rate in, float32 mono at the model's rate out; clear errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from mediaformers.processors.audio_io import (
    AudioDecodeError,
    AudioWindows,
    decode_audio,
    load_audio,
    resample,
    to_mono,
)
from tests.audio_media import (
    SIGNALS,
    espeak,
    noise,
    pcm16,
    peak_frequency,
    speech_like,
    stereo,
    tone,
    write_container,
)


pytestmark = pytest.mark.timeout(60)  # a decoder that loops fails the test instead of hanging CI


def _write(path: Path, audio: np.ndarray, rate: int, **kw) -> Path:
    sf.write(path, audio, rate, **kw)
    return path


# ------------------------------------------------------------------------------------------------
# files


@pytest.mark.parametrize("name", sorted(SIGNALS))
@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_16")])
def test_lossless_files_round_trip(tmp_path, name, fmt, subtype):
    x = pcm16(SIGNALS[name](0.3, 16000, 0))
    path = _write(tmp_path / f"a.{fmt.lower()}", x, 16000, format=fmt, subtype=subtype)
    y = load_audio(path, 16000, return_numpy=True)
    assert y.dtype == np.float32 and y.ndim == 1
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("ext,fmt,subtype", [("ogg", "OGG", "VORBIS"), ("opus", "OGG", "OPUS"), ("mp3", "MP3", "MPEG_LAYER_III")])
def test_lossy_files_decode(tmp_path, ext, fmt, subtype):
    rate = 48000 if subtype == "OPUS" else 44100
    path = _write(tmp_path / f"a.{ext}", tone(1.0, rate, freq=1000), rate, format=fmt, subtype=subtype)
    y = load_audio(path, 16000, return_numpy=True)
    assert abs(len(y) - 16000) < 0.1 * 16000
    assert abs(peak_frequency(y, 16000) - 1000) < 5
    assert abs(np.sqrt(np.mean(y**2)) - 0.5 / np.sqrt(2)) < 0.05


def test_resamples_44k_stereo_to_16k_mono_as_channel_mean(tmp_path):
    left, right = tone(1.0, 44100, freq=440, amp=0.6), tone(1.0, 44100, freq=440, amp=0.2)
    path = _write(tmp_path / "stereo.wav", stereo(left, right), 44100, subtype="FLOAT")
    y = load_audio(path, 16000)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32 and y.shape == (16000,)
    expected = soxr.resample((left + right) / 2, 44100, 16000, quality="HQ")
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-6)
    assert abs(peak_frequency(y.numpy(), 16000) - 440) < 2


def test_opposite_channels_mix_to_silence(tmp_path):
    x = tone(0.5, 8000)
    y = load_audio(_write(tmp_path / "a.wav", stereo(x, -x), 8000, subtype="FLOAT"), 16000, return_numpy=True)
    assert len(y) == 8000 and np.abs(y).max() < 1e-6


def test_upsamples_8k_stereo(tmp_path):
    x = speech_like(0.5, 8000)
    y = load_audio(_write(tmp_path / "a.flac", stereo(x, x), 8000), 16000, return_numpy=True)
    assert len(y) == 4000 * 2
    np.testing.assert_allclose(y, soxr.resample(pcm16(x), 8000, 16000, quality="HQ"), atol=1e-4)


def test_target_rate_none_keeps_the_file_rate(tmp_path):
    x = pcm16(noise(0.2, 22050))
    y = load_audio(_write(tmp_path / "a.wav", x, 22050), None, return_numpy=True)
    np.testing.assert_array_equal(y, x)


def test_file_objects_and_bytes(tmp_path):
    x = pcm16(tone(0.25, 16000))
    path = _write(tmp_path / "a.flac", x, 16000)
    with open(path, "rb") as fh:
        np.testing.assert_array_equal(load_audio(fh, return_numpy=True), x)
    np.testing.assert_array_equal(load_audio(io.BytesIO(path.read_bytes()), return_numpy=True), x)
    np.testing.assert_array_equal(load_audio(path.read_bytes(), return_numpy=True), x)
    np.testing.assert_array_equal(load_audio(str(path), return_numpy=True), x)


@pytest.mark.parametrize(
    "suffix,codec,rate",
    [(".mp4", "aac", 44100), (".mkv", "flac", 44100), (".webm", "libopus", 48000), (".mov", "pcm_s16le", 22050)],
)
def test_audio_track_of_a_video(tmp_path, suffix, codec, rate):
    x = tone(1.0, rate, freq=440, amp=0.5)
    path = write_container(tmp_path / f"v{suffix}", stereo(x, x), rate, codec=codec)
    data, got_rate = decode_audio(path)
    assert got_rate == rate and data.shape[1] == 2
    y = load_audio(path, 16000, return_numpy=True)
    assert abs(len(y) - 16000) < 0.05 * 16000  # codec priming adds a little
    assert abs(peak_frequency(y, 16000) - 440) < 2
    assert abs(np.sqrt(np.mean(y**2)) - 0.5 / np.sqrt(2)) < 0.03


def test_espeak_speech(tmp_path):
    path = espeak("The quick brown fox jumps over the lazy dog.", tmp_path / "speech.wav")
    if path is None:
        pytest.skip("espeak-ng is not installed")
    y = load_audio(path, 16000, return_numpy=True)
    assert len(y) > 8000 and np.isfinite(y).all() and np.abs(y).max() > 0.01


# ------------------------------------------------------------------------------------------------
# arrays


def test_arrays_and_tensors():
    x = tone(0.5, 44100)
    y = load_audio(x, 16000, sampling_rate=44100)
    assert isinstance(y, torch.Tensor) and y.shape == (8000,)
    np.testing.assert_allclose(y.numpy(), soxr.resample(x, 44100, 16000, quality="HQ"), atol=1e-6)
    np.testing.assert_allclose(load_audio(torch.from_numpy(x), 16000, sampling_rate=44100), y, atol=1e-6)
    same = load_audio(x, 44100, sampling_rate=44100, return_numpy=True)
    np.testing.assert_array_equal(same, x)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_two_dimensional_arrays_mix_down(layout):
    left, right = tone(0.1, 16000, amp=0.4), noise(0.1, 16000)
    x = np.stack([left, right]) if layout == "channels_first" else stereo(left, right)
    y = load_audio(x, 16000, sampling_rate=16000, return_numpy=True)
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-7)


def test_integer_pcm_is_scaled():
    x = np.array([0, 16384, -32768, 32767], dtype=np.int16)
    y = load_audio(x, 16000, sampling_rate=16000, return_numpy=True)
    np.testing.assert_allclose(y, [0, 0.5, -1, 32767 / 32768])
    u8 = load_audio(np.array([128, 255, 0], np.uint8), 16000, sampling_rate=16000, return_numpy=True)
    np.testing.assert_allclose(u8, [0, 127 / 128, -1])


def test_to_mono_explicit_axis():
    x = np.ones((3, 100), np.float32) * np.array([[1], [2], [3]], np.float32)
    np.testing.assert_allclose(to_mono(x, channel_axis=0), np.full(100, 2.0))


# ------------------------------------------------------------------------------------------------
# bad input: each error names the source and the cause


def test_empty_array():
    with pytest.raises(ValueError, match=r"source holds no audio samples"):
        load_audio(np.zeros(0, np.float32), 16000, sampling_rate=16000)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_array(bad):
    x = np.zeros(100, np.float32)
    x[7] = bad
    with pytest.raises(ValueError, match=r"source has 1 non-finite \(NaN/inf\) sample\(s\), the first at flat index 7"):
        load_audio(x, 16000, sampling_rate=16000)


def test_wrong_rank():
    with pytest.raises(ValueError, match=r"source must be 1-D .* got shape \(2, 3, 100\)"):
        load_audio(np.zeros((2, 3, 100), np.float32), 16000, sampling_rate=16000)


def test_no_channel_axis():
    with pytest.raises(ValueError, match=r"shape \(100, 200\): no axis looks like channels"):
        load_audio(np.zeros((100, 200), np.float32), 16000, sampling_rate=16000)


def test_array_needs_sampling_rate():
    with pytest.raises(ValueError, match="sampling_rate is required with array input"):
        load_audio(np.zeros(100, np.float32), 16000)


@pytest.mark.parametrize("rate", [0, -16000, 16000.5])
def test_bad_rates(rate):
    with pytest.raises(ValueError, match=r"target_rate must be a positive integer rate in Hz"):
        load_audio(np.zeros(100, np.float32), rate, sampling_rate=16000)
    with pytest.raises(ValueError, match=r"orig_rate must be a positive integer rate in Hz"):
        resample(np.zeros(100, np.float32), rate, 16000)


def test_complex_array():
    with pytest.raises(ValueError, match="source must hold real samples, got dtype complex64"):
        load_audio(np.zeros(10, np.complex64), 16000, sampling_rate=16000)


def test_file_rate_conflict(tmp_path):
    path = _write(tmp_path / "a.wav", tone(0.1, 44100), 44100)
    with pytest.raises(ValueError, match=r"sampling_rate=16000 was given, but audio file .*a.wav is at 44100 Hz"):
        load_audio(path, 16000, sampling_rate=16000)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"audio file .*nope.wav does not exist"):
        load_audio(tmp_path / "nope.wav")


def test_empty_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioDecodeError, match=r"empty.wav: the file is empty \(0 bytes\)"):
        load_audio(tmp_path / "empty.wav")


def test_wav_without_samples(tmp_path):
    path = _write(tmp_path / "zero.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioDecodeError, match=r"zero.wav: no audio samples decoded \(WAV header without audio data"):
        load_audio(path)


def test_nan_in_float_wav(tmp_path):
    x = tone(0.1, 16000)
    x[10:12] = np.nan
    path = _write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match=r"audio file .*nan.wav has 2 non-finite"):
        load_audio(path)


def test_unknown_format(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(AudioDecodeError, match=r"notes.txt: unknown format or corrupt file"):
        load_audio(path)


def test_silent_video(tmp_path):
    path = write_container(tmp_path / "silent.mp4", None, 16000, video=True)
    with pytest.raises(AudioDecodeError, match=r"silent.mp4: it has no audio stream \(streams: video\)"):
        load_audio(path)


@pytest.mark.parametrize("ext,fmt", [("wav", "WAV"), ("flac", "FLAC"), ("ogg", "OGG")])
def test_truncated_audio_file(tmp_path, ext, fmt):
    path = _write(tmp_path / f"full.{ext}", noise(1.0, 16000), 16000, format=fmt)
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(AudioDecodeError, match=rf"cut.{ext}: (corrupt or truncated|truncated WAV|no audio samples decoded)"):
        load_audio(cut)


def test_truncated_video(tmp_path):
    x = tone(1.0, 44100)
    path = write_container(tmp_path / "full.mp4", stereo(x, x), 44100)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(AudioDecodeError, match=r"cut.mp4: (unknown format or corrupt file|corrupt or truncated)"):
        load_audio(cut)


def test_bad_source_type():
    with pytest.raises(ValueError, match="source must be a path, bytes or a seekable binary file object, got int"):
        decode_audio(3)


def test_truncated_wav_with_allow_partial(tmp_path):
    x = pcm16(noise(1.0, 16000))
    path = _write(tmp_path / "full.wav", x, 16000)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(path.read_bytes()[: 44 + 2 * 6000 + 1])  # header + 6000 samples and a stray byte
    with pytest.raises(AudioDecodeError, match=r"cut.wav: corrupt or truncated .*truncated WAV, header declares 32044 bytes"):
        load_audio(cut)
    y, info = load_audio(cut, 16000, return_numpy=True, allow_partial=True, return_info=True)
    np.testing.assert_array_equal(y, x[:6000])
    assert info.partial and "truncated WAV" in info.damage and info.num_frames == 6000 and info.decoder == "libsndfile"


def test_info_of_complete_sources(tmp_path):
    path = _write(tmp_path / "a.flac", stereo(tone(0.5, 22050), tone(0.5, 22050)), 22050)
    y, info = load_audio(path, 16000, return_info=True)
    assert (info.sample_rate, info.channels, info.num_frames, info.expected_frames) == (22050, 2, 11025, 11025)
    assert not info.partial and info.damage is None and info.duration == 0.5 and y.shape == (8000,)
    _, info = load_audio(np.zeros((2, 100), np.float32), 16000, sampling_rate=8000, return_info=True)
    assert (info.decoder, info.channels, info.num_frames, info.partial) == ("array", 2, 100, False)


# ------------------------------------------------------------------------------------------------
# AudioWindows


@pytest.mark.parametrize("n,window,hop,grid", [(1000, 300, 100, 1), (1000, 300, 300, 1), (1037, 300, 160, 16), (250, 300, 100, 1), (300, 300, 50, 7)])
def test_windows_match_slices_of_the_whole(n, window, hop, grid):
    x = noise(n / 16000, 16000, seed=n)
    got = list(AudioWindows(x, 16000, window=window, hop=hop, grid=grid, sampling_rate=16000, return_numpy=True))
    starts = list(range(0, n - window + 1, hop)) or [0]
    final = max(0, (n - window) // grid * grid)
    if final > starts[-1]:
        starts.append(final)
    assert [s for s, _ in got] == [s / 16000 for s in starts]
    for (_, w), s in zip(got, starts):
        np.testing.assert_array_equal(w, x[s : s + window])


def test_windows_of_a_file_equal_the_loaded_audio(tmp_path):
    x = speech_like(3.0, 44100)
    path = _write(tmp_path / "a.flac", stereo(x, 0.5 * x), 44100)
    whole = load_audio(path, 16000, return_numpy=True)
    windows = AudioWindows(path, 16000, window=8000, hop=3000)
    got = list(windows)
    assert isinstance(got[0][1], torch.Tensor) and windows.info.num_frames == len(x) and not windows.info.partial
    for start, w in got:
        s = round(start * 16000)
        np.testing.assert_array_equal(w.numpy(), whole[s : s + 8000])
    assert round(got[-1][0] * 16000) + 8000 == len(whole)


def test_windows_of_a_cut_file(tmp_path):
    path = _write(tmp_path / "full.wav", pcm16(noise(1.0, 16000)), 16000)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(path.read_bytes()[:20000])
    with pytest.raises(AudioDecodeError, match="pass allow_partial=True"):
        list(AudioWindows(cut, 16000, window=4000, hop=4000))
    windows = AudioWindows(cut, 16000, window=4000, hop=4000, allow_partial=True)
    assert len(list(windows)) == 3 and windows.info.partial


@pytest.mark.parametrize("kw,msg", [
    (dict(window=0, hop=1), r"window: expected a positive number of samples, got 0"),
    (dict(window=10, hop=-1), r"hop: expected a positive number of samples, got -1"),
    (dict(window=10, hop=1, grid=1.5), r"grid: expected a positive number of samples, got 1.5"),
])
def test_windows_bad_arguments(kw, msg):
    with pytest.raises(ValueError, match=msg):
        AudioWindows(np.zeros(100, np.float32), 16000, sampling_rate=16000, **kw)
    with pytest.raises(ValueError, match="sampling_rate is required"):
        AudioWindows(np.zeros(100, np.float32), 16000, window=10, hop=10)


def test_windows_on_the_fbank_grid_give_the_same_frames_as_the_whole():
    """The contract the windowed AST path relies on: a window of (L-1)*shift+win samples on a
    `grid=shift` grid has exactly the fbank frames of the whole signal at the same place, including
    the last window flush with the end (as `range(0, total-L+1, hop)` + `total-L`)."""
    from mediaformers.processors.fbank import count_frames, fbank

    rate, shift, win, length, hop = 16000, 160, 400, 64, 24
    x = torch.from_numpy(speech_like(1.37, rate))
    whole = fbank(x, sample_frequency=rate, num_mel_bins=32)[0][0]
    total = int(count_frames(torch.tensor([len(x)]), win, shift)[0])
    starts = list(range(0, total - length + 1, hop))
    starts += [total - length] if starts[-1] != total - length else []
    windows = list(AudioWindows(x, rate, window=(length - 1) * shift + win, hop=hop * shift, grid=shift, sampling_rate=rate))
    assert [round(s * rate) // shift for s, _ in windows] == starts
    for (_, w), s in zip(windows, starts):
        torch.testing.assert_close(fbank(w, sample_frequency=rate, num_mel_bins=32)[0][0], whole[s : s + length], rtol=0, atol=0)


@pytest.mark.timeout(60)
def test_windows_property():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=60, deadline=None)
    @hypothesis.given(st.integers(1, 3000), st.integers(1, 700), st.integers(1, 700), st.integers(1, 50))
    def check(n, window, hop, grid):
        x = np.arange(n, dtype=np.float32)
        got = list(AudioWindows(x, 8000, window=window, hop=hop, grid=grid, sampling_rate=8000, return_numpy=True))
        starts = [round(s * 8000) for s, _ in got]
        assert starts == sorted(set(starts)) and starts[0] == 0
        for s, (_, w) in zip(starts, got):
            np.testing.assert_array_equal(w, x[s : s + window])  # each window is the slice at its start
        # the last window reaches the end (to within the grid), and the
        # starts are the hop grid plus at most one extra
        assert min(n, window) == len(got[-1][1]) and starts[-1] + window > n - grid
        regular = list(range(0, n - window + 1, hop)) or [0]
        assert starts[: len(regular)] == regular and len(starts) - len(regular) in (0, 1)

    check()


def test_text_file_is_not_audio(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("just some notes, not audio\n" * 200)  # FFmpeg would read it as ANSI art
    with pytest.raises(AudioDecodeError, match=r"notes.wav: unknown format or corrupt file"):
        load_audio(path)


def test_libsndfile_failing_mid_stream_hands_over_to_ffmpeg(tmp_path, monkeypatch):
    """A2: whatever libsndfile trips on mid-way, FFmpeg continues at the same frame, seamlessly."""
    import mediaformers.processors.audio_decode as audio_decode

    x = pcm16(np.stack([speech_like(1.0, 22050), noise(1.0, 22050)], axis=1))
    path = _write(tmp_path / "a.flac", x, 22050)
    monkeypatch.setattr(audio_decode, "_BLOCK", 5000)
    read, calls = sf.SoundFile.read, []

    def flaky(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise sf.LibsndfileError(161, "simulated ")
        return read(self, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", flaky)
    y, rate, info = decode_audio(path, return_info=True)
    assert len(calls) == 3 and info.decoder == "ffmpeg" and not info.partial
    np.testing.assert_array_equal(y, x)
