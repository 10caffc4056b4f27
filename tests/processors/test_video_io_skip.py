"""Exact frames, faster (issue 14): non-reference frames that cannot be an answer are not decoded, and
seek-heavy requests are split over readers in threads.

The file has B-frames (x264's b-pyramid: a reference B and non-reference b's) and long GOPs, the case
where skipping saves most. Answers must be the pixels of a plain full decode, bit for bit, at every
time just before, at and between frames, requested all at once, one per call and sparsely (seeks).
"""

from __future__ import annotations

import bisect

import av
import numpy as np
import pytest
import torch

from mediaformers.processors.video_io import VideoReader, read_frames_at
from tests.media import frame_index_of, make_video

FPS = 10
N = 90
# Two GOPs of 45 frames, 3 B-frames with a reference B in the middle of each run.
X264 = {"preset": "veryfast", "x264-params": "keyint=45:min-keyint=45:scenecut=0:bframes=3:b-pyramid=normal"}


@pytest.fixture(scope="module")
def bframes(tmp_path_factory):
    path = make_video(tmp_path_factory.mktemp("skip") / "bframes.mp4", frames=N, size=(48, 64), fps=FPS,
                      codec="libx264", options=X264)
    times, pixels = [], []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        start = float(s.start_time * s.time_base) if s.start_time is not None else 0.0
        for f in c.decode(s):
            times.append(float(f.pts * f.time_base) - start)
            pixels.append(f.to_ndarray(format="rgb24"))
    assert times == sorted(times) and len(times) == N
    return path, times, pixels


def _want(ref, t):
    times, pixels = ref[1], ref[2]
    return pixels[max(bisect.bisect_right(times, t + 1e-9) - 1, 0)]


def _probes(times):
    out = [0.0, times[-1] + 3.0]
    for a, b in zip(times, times[1:] + [times[-1] + 0.1]):
        out += [max(a - 1e-4, 0.0), a, (a + b) / 2]
    return out


def _assert_same(ref, probes, got):
    bad = [(round(t, 4), frame_index_of(g), frame_index_of(_want(ref, t)))
           for t, g in zip(probes, got) if not np.array_equal(g, _want(ref, t))]
    assert not bad, f"(time, got frame, want frame): {bad[:6]}"


@pytest.mark.timeout(60)
def test_skipping_gives_the_full_decodes_frames(bframes):
    path, times, _ = bframes
    probes = _probes(times)
    with VideoReader(path) as reader:
        assert reader._can_skip()
        _assert_same(bframes, probes, reader.get_frames_at(probes).numpy())  # all at once: one forward decode
        for t in probes[::2]:  # one per call: a seek (second GOP) or a decode from the start
            _assert_same(bframes, [t], reader.get_frames_at([t]).numpy())
        rng = np.random.default_rng(0)
        for _ in range(20):  # sparse runs: seeks between far-apart times, forward decode between close ones
            picks = sorted(rng.choice(probes, size=4, replace=False).tolist())
            _assert_same(bframes, picks, reader.get_frames_at(picks).numpy())
        assert reader._skip_nonref, "the safety net fired: these answers came from the fallback, not from skipping"


@pytest.mark.timeout(30)
def test_skipping_decodes_fewer_frames(bframes):
    path, times, _ = bframes
    # The last frame of each GOP: everything before it in the GOP is decoded without skipping.
    probes = [times[44], times[89]]
    counts, answers = {}, {}
    for skip in (False, True):
        with VideoReader(path) as reader:
            reader._skip_nonref = skip
            answers[skip] = reader.get_frames_at(probes).numpy()
            counts[skip] = reader.frames_decoded
    assert np.array_equal(answers[True], answers[False])
    _assert_same(bframes, probes, answers[True])
    # About half the frames of a 3-B-frame pyramid are non-reference: the decoder drops them unseen.
    assert counts[False] >= N - 2 and counts[True] <= 0.7 * counts[False], counts


@pytest.mark.timeout(30)
def test_a_wrong_skip_is_caught_and_decoded_again(bframes, monkeypatch):
    # A rule that skips every packet drops non-reference frames that ARE answers; the check against
    # the answers must notice, decode the request again without skipping and stop skipping.
    path, times, _ = bframes

    def skip_all(self, packet, targets, recent):
        if packet.pts is None:
            return "DEFAULT"
        self._nonref_fed.append(float(packet.pts * packet.time_base) - self.metadata.start_time)
        return "NONREF"

    monkeypatch.setattr(VideoReader, "_skip_frame_for", skip_all)
    probes = [times[k] for k in (1, 2, 3, 50, 51, 62, 63)] + [times[-1] + 1.0]
    with VideoReader(path) as reader:
        got = reader.get_frames_at(probes).numpy()
        assert not reader._skip_nonref
        _assert_same(bframes, probes, got)
        _assert_same(bframes, probes[::-1], reader.get_frames_at(probes[::-1]).numpy())


@pytest.mark.timeout(30)
def test_no_skipping_where_timestamps_are_not_trusted(tmp_path):
    # MPEG-TS (pts of frames after a seek can be another frame's) and AVI (decode-order times).
    for suffix in (".ts", ".avi"):
        path = make_video(tmp_path / f"b{suffix}", frames=24, size=(48, 64), fps=FPS, codec="libx264",
                          options=X264)
        with VideoReader(path) as reader:
            assert not reader._can_skip()
            got = [frame_index_of(f) for f in reader.get_frames_at([0.0, 1.05, 2.35]).numpy()]
        assert got == [0, 10, 23]
    assert [frame_index_of(f) for f in read_frames_at(path, [1.55]).numpy()] == [15]


# -- seek-heavy requests split over readers in threads -------------------------------------------
@pytest.fixture(scope="module")
def many_gops(tmp_path_factory):
    """120 frames, a keyframe every 10, B-frames: sparse requests seek across 12 GOPs."""
    options = {"preset": "veryfast", "x264-params": "keyint=10:min-keyint=10:scenecut=0:bframes=3"}
    path = make_video(tmp_path_factory.mktemp("gops") / "gops.mp4", frames=120, size=(48, 64), fps=FPS,
                      codec="libx264", options=options)
    times, pixels = [], []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            times.append(float(f.pts * f.time_base))
            pixels.append(f.to_ndarray(format="rgb24"))
    return path, times, pixels


@pytest.mark.timeout(60)
def test_parallel_readers_give_one_readers_frames(many_gops):
    path, times, _ = many_gops
    rng = np.random.default_rng(1)
    threads = torch.get_num_threads()
    torch.set_num_threads(3)  # the split follows torch's thread count
    try:
        with VideoReader(path) as reader:
            probes = [times[15], times[55] - 1e-4, times[95], times[119] + 1.0]
            assert len(reader._parallel_chunks(probes)) > 1
            _assert_same(many_gops, probes, reader.get_frames_at(probes).numpy())
            split = 0
            for _ in range(15):
                picks = sorted(rng.choice(_probes(times), size=5, replace=False).tolist())
                split += not reader._dense(picks) and len(reader._parallel_chunks(picks)) > 1
                _assert_same(many_gops, picks, reader.get_frames_at(picks).numpy())
            assert split >= 5 and reader._skip_nonref and reader.frames_decoded > 0
            torch.set_num_threads(1)  # one thread (a DataLoader worker): one reader
            assert len(reader._parallel_chunks(probes)) == 1
            _assert_same(many_gops, probes, reader.get_frames_at(probes).numpy())
    finally:
        torch.set_num_threads(threads)
