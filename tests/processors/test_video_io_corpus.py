"""Time-addressed reads against a decode-everything reference on a corpus of varied files.

Every codec/container the PyAV wheel writes (B-frames, GOPs of 1/12/250, open GOP, AVI with
B-frames, MPEG-TS/PS, VFR, rotation, truncated copies, non-UTF-8 metadata) is read at every time
just before, at and after each frame, one time per call (seeks) and all at once (linear decode),
and must give the reference's exact pixels. A hang fails the test through its timeout.
"""

from __future__ import annotations

import bisect
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mediaformers.processors.sampling import ClipSampler
from mediaformers.processors.video_io import VideoDecodeError, probe_video, read_clip, read_frames_at, VideoReader
from tests.media import frame_index_of, natural_frames
from tests.wild.video_corpus import _SPECS, build_corpus, make_cover_art_audio, make_images, reference_frames


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    files = build_corpus(tmp_path_factory.mktemp("wild"))
    return {name: (item, *reference_frames(item)) for name, item in files.items()}


# AVI stores decode-order timestamps: the reader times its frames by decoder output order (issue 9 point 4).
_NAMES = [n for n in sorted([s[0] for s in _SPECS]
                          + ["vfr.mkv", "vfr.mp4", "h264_gop12_cut.mkv", "h264_gop12_cut.ts", "latin1_meta.mkv"])]


def _expected(times, ref, t):
    """Index in the reference of the frame on screen at ``t`` (the first frame before it)."""
    return max(bisect.bisect_right(times, t + 1e-9) - 1, 0)


def _get(corpus, name):
    if name not in corpus:
        pytest.skip(f"PyAV wheel cannot write {name}")
    return corpus[name]


def _probe_times(times, keys):
    """Just before, at and just after every frame, plus before the start and past the end."""
    out = [0.0, times[-1] + 5.0]
    for t in times:
        out += [max(t - 1e-4, 0.0), t, t + 1e-4]
    return out


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", _NAMES)
def test_every_time_matches_the_reference(corpus, name):
    item, times, ref, keys = _get(corpus, name)
    probes = _probe_times(times, keys)
    want = np.stack([ref[_expected(times, ref, t)] for t in probes])
    # All at once: sorted internally, decoded linearly.
    got = read_frames_at(item.path, probes, allow_partial=item.partial).numpy()
    bad = [(t, frame_index_of(g), frame_index_of(w)) for t, g, w in zip(probes, got, want) if not np.array_equal(g, w)]
    assert not bad, f"{name}: (time, got frame, want frame) {bad[:6]}"
    # One reader, one time per call, in an order that seeks forward and back around keyframes.
    key_times = [t for t, k in zip(times, keys) if k] or times[:1]
    singles = [x for kt in key_times for x in (max(kt - 1e-4, 0.0), kt)] + [times[len(times) // 2], times[-1] + 1]
    order = singles[::2] + singles[1::2][::-1]
    with VideoReader(item.path) as reader:
        for t in order:
            got = reader.get_frames_at([t], allow_partial=item.partial)[0].numpy()
            want = ref[_expected(times, ref, t)]
            assert np.array_equal(got, want), f"{name} t={t}: got frame {frame_index_of(got)}, want {frame_index_of(want)}"


@pytest.mark.timeout(120)
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_times_property(corpus, data):
    name = data.draw(st.sampled_from(sorted(n for n in corpus if not n.endswith("bframes.avi"))))
    item, times, ref, _ = corpus[name]
    end = times[-1] + 0.5
    probes = data.draw(st.lists(st.one_of(st.floats(0.0, end), st.sampled_from(times)), min_size=1, max_size=12))
    probes = probes + data.draw(st.lists(st.sampled_from(probes), max_size=3))  # duplicates
    got = read_frames_at(item.path, probes, allow_partial=item.partial).numpy()
    for t, g in zip(probes, got):
        w = ref[_expected(times, ref, t)]
        assert np.array_equal(g, w), f"{name} t={t}: got frame {frame_index_of(g)}, want {frame_index_of(w)}"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["mpeg1_gop12.mpg", "h264_bframes.avi", "mpeg2_gop12.ts",
                                  # Matroska has no frame count: the packets' times are used (a cut
                                  # file is still caught: the packets end before the header's duration).
                                  "vfr.mkv"])
def test_read_clip_counts_real_frames(corpus, name):
    item, times, ref, _ = _get(corpus, name)
    clip = read_clip(item.path, ClipSampler("uniform", num_frames=len(times)))[0].numpy()
    assert [frame_index_of(f) for f in clip] == list(range(len(times)))


@pytest.mark.timeout(30)
def test_truncated_past_the_cut_does_not_hang(corpus):
    item, times, ref, _ = corpus["h264_gop12_cut.mkv"]
    with pytest.raises(VideoDecodeError, match="pass allow_partial=True"):
        read_frames_at(item.path, [2.5])
    got = read_frames_at(item.path, [2.5, 0.0], allow_partial=True).numpy()
    assert np.array_equal(got[0], ref[-1]) and np.array_equal(got[1], ref[0])


@pytest.mark.timeout(30)
def test_cover_art_audio_has_no_video(tmp_path):
    path = make_cover_art_audio(tmp_path / "song.mp3")
    with pytest.raises(VideoDecodeError, match=r"'.*song\.mp3': the file has no video stream \(streams found: attached picture, audio\)"):
        probe_video(path)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("suffix", [".jpg", ".png", ".bmp", ".tiff", ".webp", ".gif"])
def test_images_read_as_one_frame(tmp_path_factory, suffix):
    path = make_images(tmp_path_factory.mktemp("img" + suffix[1:]))[suffix]
    frames = read_frames_at(path, [0.0]).numpy()
    src = natural_frames(1, (48, 64))[0]
    assert frames.shape == (1, 48, 64, 3)
    # JPEG/WebP are lossy and GIF is paletted: a loose bound; a blank or wrong picture is far off.
    assert np.abs(frames[0].astype(int) - src).mean() < 10
    assert read_clip(path, ClipSampler("uniform", 1)).shape == (1, 1, 48, 64, 3)


@pytest.mark.timeout(10)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_refused_not_read(tmp_path):
    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    with pytest.raises(VideoDecodeError, match=r"'.*clip\.mp4': expected a regular file, got a pipe"):
        read_frames_at(fifo, [0.0])


# -- adversarial demuxers: an index that lies, a seek that overshoots ---------------------------
@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", ["h264_gop250.mp4", "hevc_gop12.mkv", "vp8_gop12.webm"])
def test_lying_keyframe_index_cannot_loop(corpus, name):
    # The index claims a keyframe at every frame, so every seek lands earlier than it promises
    # (real files: edit lists, B-frame delays). The old reader sought again, forever.
    item, times, ref, _ = _get(corpus, name)
    probes = [times[-1], times[3], times[20] - 1e-4, times[12], times[27] + 1e-4]
    with VideoReader(item.path) as reader:
        reader._keyframes = list(times)
        got = reader.get_frames_at(probes).numpy()
    for t, g in zip(probes, got):
        assert np.array_equal(g, ref[_expected(times, ref, t)]), f"{name} t={t}"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", ["h264_gop12.mp4", "mpeg4_gop12.mp4", "h264_gop12.ts"])
def test_overshooting_seek_is_caught(corpus, name):
    # A demuxer that lands a second past the target (seen with hevc and mpeg-1): the first frame
    # after the seek is checked, the reader seeks further back or decodes from the start.
    item, times, ref, _ = _get(corpus, name)
    probes = [times[5], times[14], times[25] - 1e-4, times[26]]
    with VideoReader(item.path) as reader:
        real_seek = reader._seek
        reader._seek = lambda seconds: real_seek(seconds + 1.0)
        reader._keyframes = list(times)  # make every target look worth a seek
        got = reader.get_frames_at(probes).numpy()
    for t, g in zip(probes, got):
        assert np.array_equal(g, ref[_expected(times, ref, t)]), f"{name} t={t}"
