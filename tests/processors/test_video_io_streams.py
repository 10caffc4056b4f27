"""Frame times from the stream, not the header (issue 26), against a decode-everything reference.

Files made with the wheel's FFmpeg (tests/wild/video_corpus.py): MPEG-PS/TS whose header rate is wrong
or whose frames pause, a VFR MP4 whose last frame is long, WebM/MKV without Cues, raw Annex-B streams,
an encrypted MP4, a keyframe the decoder must conceal. Each frame carries its index in its pixels, so
the reference (every frame decoded in order, dated by its index) trusts no timestamp. Every test runs
under a timeout, so a decode or seek loop fails instead of hanging.
"""

from __future__ import annotations

import bisect

import numpy as np
import pytest

from mediaformers.processors.sampling import ClipSampler
from mediaformers.processors.video import (
    VideoDecodeError,
    VideoReader,
    probe_video,
    read_clip,
    read_frames_at,
)
from mediaformers.processors.video.pyav import stamps
from tests.media import frame_index_of
from tests.wild.video_corpus import (
    build_stream_timing_corpus,
    make_damaged_keyframe,
    make_encrypted_mp4,
    reference_frames,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    files = build_stream_timing_corpus(tmp_path_factory.mktemp("streams"))
    return {name: (item, *reference_frames(item)) for name, item in files.items()}


_NAMES = ["mpeg1_header25.mpg", "mpeg2_header25.ts", "mpeg1_15fps_pause.mpg", "vfr_long_last.mp4",
          "nocues.webm", "nocues.mkv", "h264.264", "hevc.265"]


def _get(corpus, name):
    if name not in corpus:
        pytest.skip(f"PyAV wheel cannot write {name}")
    return corpus[name]


def _want(times, ref, t):
    return ref[max(bisect.bisect_right(times, t + 1e-9) - 1, 0)]


def _probes(times):
    out = [0.0, times[-1] + 5.0]
    for a, b in zip(times, times[1:] + [times[-1] + 0.05]):
        out += [max(a - 1e-4, 0.0), a, a + 1e-4, (a + b) / 2]
    return out


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", _NAMES)
def test_every_time_matches_the_reference(corpus, name):
    item, times, ref, _ = _get(corpus, name)
    probes = _probes(times)
    got = read_frames_at(item.path, probes).numpy()  # all at once: one forward decode
    bad = [(t, frame_index_of(g), frame_index_of(_want(times, ref, t)))
           for t, g in zip(probes, got) if not np.array_equal(g, _want(times, ref, t))]
    assert not bad, f"{name}: (time, got frame, want frame) {bad[:6]}"
    with VideoReader(item.path) as reader:  # one time per call, forward and back: seeks
        for t in probes[2::7] + probes[3::5][::-1]:
            g = reader.get_frames_at([t])[0].numpy()
            assert np.array_equal(g, _want(times, ref, t)), f"{name} t={t}: got frame {frame_index_of(g)}"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", _NAMES)
def test_read_clip_samples_the_real_frames(corpus, name):
    """read_clip numbers frames from the packets (raw streams included) and decodes each one exactly
    (an MP4 states a frame count, so its VFR frames are numbered from the packets on request)."""
    item, times, _, _ = _get(corpus, name)
    clip = read_clip(item.path, ClipSampler("uniform", num_frames=len(times)), exact_times=name.endswith(".mp4"))
    clip = clip[0].numpy()
    assert [frame_index_of(f) for f in clip] == list(range(len(times)))


@pytest.mark.timeout(30)
def test_mpeg_header_rate_never_times_frames(corpus):
    """Issue 26.1: header 25 fps, frames stamped 1/29.97 s apart; t x 25 would give frame 20 at 0.8 s."""
    item, times, _, _ = _get(corpus, "mpeg1_header25.mpg")
    assert probe_video(item.path).fps == 25.0  # the header's claim, kept as metadata
    assert frame_index_of(read_frames_at(item.path, [0.8])[0].numpy()) == 23  # 0.8 s x 29.97
    with VideoReader(item.path) as reader:
        assert np.allclose(reader.frame_times().numpy(), times, atol=1e-4)


@pytest.mark.timeout(30)
def test_long_last_frame_is_not_truncation(corpus):
    """Issue 26.2: the last frame (1.3 s) lasts 1.57 s by its packet; the header ends at 2.87 s."""
    item, _, _, _ = _get(corpus, "vfr_long_last.mp4")
    assert abs(probe_video(item.path).duration - 2.87) < 1e-3
    got = read_frames_at(item.path, [1.5, 2.0, 2.8, 2.86]).numpy()
    assert [frame_index_of(f) for f in got] == [9, 9, 9, 9]
    clip = read_clip(item.path, ClipSampler("uniform", 4), exact_times=True)[0].numpy()
    assert [frame_index_of(f) for f in clip] == [0, 3, 6, 9]
    cut = item.path.with_name("vfr_long_last_cut.mp4")  # a real cut is still caught
    data = item.path.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(VideoDecodeError):
        read_frames_at(cut, [2.8])


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", ["nocues.webm", "nocues.mkv"])
def test_no_cues_seeks_instead_of_decoding_everything(corpus, name):
    """Issue 26.7: without Cues the keyframes come from the packets' flags (no decoding), so sparse
    requests seek (and may split over parallel readers) rather than decode the whole file."""
    item, times, _, _ = _get(corpus, name)
    probes = [0.45, 1.75, 2.95, 3.85]
    with VideoReader(item.path, threads=False) as reader:  # one reader: count its seeks and frames
        assert reader._keyframe_times() == pytest.approx([0.0, 1.2, 2.4, 3.6])
        seeks = []
        real = reader._seek
        reader._seek = lambda t: seeks.append(t) or real(t)
        got = reader.get_frames_at(probes).numpy()
        assert seeks and reader.frames_decoded < len(times) * 3 // 4
    assert [frame_index_of(f) for f in got] == [4, 17, 29, 38]


@pytest.mark.timeout(30)
def test_encrypted_mp4_is_refused(tmp_path):
    """Issue 26.5: CENC ciphertext would decode to noise; the packets' encryption info says so."""
    path = make_encrypted_mp4(tmp_path / "cenc.mp4")
    for call in (lambda: probe_video(path), lambda: read_frames_at(path, [0.0])):
        with pytest.raises(VideoDecodeError, match=r"'.*cenc\.mp4': the video stream is encrypted"):
            call()


@pytest.mark.timeout(30)
def test_a_start_time_after_the_first_frame_yields_to_the_packets(corpus, monkeypatch):
    """Issue 26.6 (VVC in MP4: start 2.12 s, packets from 1.16 s), injected: the header states a start
    1 s after the first frame. Frames before it stay reachable; the end is not taken for a cut."""
    item, _, _, _ = _get(corpus, "vfr_long_last.mp4")  # frames at 0 ... 1.3 s, the last lasting to 2.87 s
    real = VideoReader._stated_start
    monkeypatch.setattr(VideoReader, "_stated_start", lambda self: real(self) + 1.0)
    with VideoReader(item.path) as reader:
        assert reader.metadata.start_time == pytest.approx(real(reader))
        assert reader.metadata.duration == pytest.approx(2.87)  # the track's, from its first packet
        got = reader.get_frames_at([0.05, 0.55, 1.25, 2.8, 3.5]).numpy()
    assert [frame_index_of(f) for f in got] == [0, 3, 8, 9, 9]


@pytest.mark.timeout(60)
def test_a_concealed_keyframe_after_a_seek_falls_back(tmp_path):
    """Issue 26.4: a keyframe the decoder reports as concealed right after a seek (an IDR that cannot be
    decoded alone) is decoded again from the keyframe before, as a forward decode shows it."""
    item = make_damaged_keyframe(tmp_path / "damaged.mp4")
    times, ref, _ = reference_frames(item)
    for t in (1.25, 1.55, 2.35):  # inside the damaged GOP (1.2 s - 2.3 s): one seek each
        with VideoReader(item.path, threads=False) as reader:  # the reference decodes on one thread too
            got = reader.get_frames_at([t])[0].numpy()
        assert np.array_equal(got, _want(times, ref, t)), f"t={t}: got frame {frame_index_of(got)}"


@pytest.mark.timeout(30)
def test_a_decoder_that_flags_every_frame_cannot_loop(corpus, monkeypatch):
    """Every frame reported concealed: each seek backs off a bounded number of times, then the file is
    decoded from the start (the frames are what a forward decode gives)."""
    item, _, _, _ = _get(corpus, "nocues.mkv")

    class Flagged:
        def __init__(self, frame):
            self._frame = frame
            self.is_corrupt = True

        def __getattr__(self, name):
            return getattr(self._frame, name)

    real = VideoReader._frames
    monkeypatch.setattr(VideoReader, "_frames", lambda self: (Flagged(f) for f in real(self)))
    monkeypatch.setattr(VideoReader, "_rgb", lambda self, f: f._frame.to_ndarray(format="rgb24"))
    with VideoReader(item.path, threads=False) as reader:
        got = reader.get_frames_at([3.05, 1.45]).numpy()
    assert [frame_index_of(f) for f in got] == [30, 14]


def test_stamp_spreading_rules():
    """Between two stamps: even spacing when it matches the step; a pause puts the frames before the later
    stamp; a stamp out of line (earlier than the step says) keeps the frames after the earlier one."""
    assert stamps.spread(2, 0, 300, 100) == [100, 200]
    assert stamps.spread(2, 0, 900, 100) == [700, 800]  # a pause after the first frame
    assert stamps.spread(2, 0, 200, 100) == [100, 200]  # bunched: as FFmpeg fills them
    assert stamps.spread(2, None, 300, 100) == [100, 200]  # before the first stamp
    assert stamps.spread(2, 500, None, 100) == [600, 700]  # after the last
    assert stamps.choose_step([3003, 3003], 3600) == 3003  # two gaps agree against the header
    assert stamps.choose_step([3000], 3600) == 3600  # one gap is not enough to overrule it
    assert stamps.choose_step([9500, 6000], 6000) == 6000  # a pause, then the header's rate


@pytest.mark.timeout(10)
def test_unstamped_frames_are_timed_without_waiting_forever():
    """A stream with no stamps at all: frames are held at most ``_MAX_HELD`` at a time, all come out."""

    class Frame:
        pts = None

    n = stamps._MAX_HELD * 2 + 5
    out = list(stamps.stamp_frames((Frame() for _ in range(n)), 10))
    assert len(out) == n and [s for _, s in out] == [10 * k for k in range(n)]


@pytest.mark.timeout(30)
def test_public_functions_go_through_the_backend_registry(corpus, monkeypatch):
    """A second decoder is one entry in ``BACKENDS``: the public functions reach it by name, and clip
    sampling needs only the ``VideoBackend`` methods."""
    from mediaformers.processors import video

    item, _, _, _ = _get(corpus, "nocues.mkv")
    opened = []

    class Wrapped(VideoReader):  # stands in for another decoder
        def __init__(self, source, *, threads=True):
            opened.append(source)
            super().__init__(source, threads=threads)

    monkeypatch.setitem(video.BACKENDS, "other", Wrapped)
    with video.open_video(item.path, backend="other") as reader:
        assert isinstance(reader, Wrapped) and reader.get_frames_at([0.0]).shape == (1, 48, 64, 3)
    clip = read_clip(item.path, ClipSampler("uniform", 4), backend="other")[0].numpy()
    assert [frame_index_of(f) for f in clip] == [0, 13, 26, 39] and len(opened) == 2
    assert probe_video(item.path, backend="other").width == 64
    with pytest.raises(ValueError, match=r"backend: expected one of \['other', 'pyav'\], got 'nope'"):
        read_frames_at(item.path, [0.0], backend="nope")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", ["mpeg1_header25.mpg", "mpeg2_header25.ts", "mpeg1_15fps_pause.mpg"])
def test_mpeg_frame_times_by_demuxing_equal_the_decoded_ones(corpus, name):
    """read_clip's frame times for MPEG-1/2 come from the packets (picture types give the display order),
    not from a decode; they equal the times the decode loop gives every frame."""
    item, times, _, _ = _get(corpus, name)
    with VideoReader(item.path) as reader:
        from_packets = reader.frame_times().tolist()
        assert reader.frames_decoded == 0
        reader._fresh = False
        reader._reopen()
        decoded = sorted(t for _, t in reader._timed(reader._frames()))
    assert from_packets == pytest.approx(decoded, abs=1e-9) and from_packets == pytest.approx(times, abs=1e-4)


@pytest.mark.timeout(30)
def test_an_index_built_while_probing_is_not_taken_for_cues(tmp_path, monkeypatch):
    """Without Cues the demuxer's index holds the keyframes the probe happened to read (two here): the
    reader still reads them all from the packets; a file with Cues or an MP4 is never scanned."""
    from tests.media import make_video
    from tests.wild.video_corpus import _encode, _NoSeek

    short_gops = tmp_path / "nocues_gop2.mkv"
    with open(short_gops, "wb") as raw:
        _encode(_NoSeek(raw), "matroska", "libx264", 10, [i / 10 for i in range(100)], gop=2, options={"bf": "2"})
    with VideoReader(short_gops) as reader:
        assert reader._keyframe_times() == pytest.approx([0.2 * k for k in range(50)])

    def refuse(self):
        raise AssertionError("scanned a file that has an index")

    monkeypatch.setattr(VideoReader, "_scan_keyframes", refuse)
    for name in ("cues.mkv", "index.mp4"):
        path = make_video(tmp_path / name, frames=100, size=(48, 64), fps=10, gop=2)
        with VideoReader(path) as reader:
            assert len(reader._keyframe_times()) == 50
