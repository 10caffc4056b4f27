"""Video files with the structure of users' files: every codec/container PyAV encodes, B-frames, long
and open GOPs, TS/PS, AVI with B-frames, VFR, rotation, images, cover art, cut copies.

Each file's frames are drawn with their index (tests/media.py), so a decoded frame says which one it
is. The reference is a plain decode of the whole file: the frame on screen at ``t`` is the last one,
in decoder output order, whose time is <= t. Every request runs under a timeout, so a decoder loop
fails its test instead of hanging the suite.
"""
from __future__ import annotations

import io
import math
import os
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mediaformers.processors.video_io import VideoDecodeError, VideoReader, probe_video, read_clip, read_frames_at
from mediaformers.processors.sampling import ClipSampler
from tests.media import frame_index_of, make_video

FPS = 10
N = 36  # frames: 3.6 s
# name: (codec, gop, encoder options, extra make_video keywords)
CORPUS = {
    "h264_bframes.mp4": ("libx264", 12, {"preset": "veryfast"}, {}),
    "h264_opengop.mkv": ("libx264", 12, {"x264-params": "open-gop=1:bframes=3:keyint=12:min-keyint=12:scenecut=0"}, {}),
    "h264_gop1.mkv": ("libx264", 1, {"preset": "veryfast"}, {}),
    "h264_longgop.mp4": ("libx264", 250, {"preset": "veryfast"}, {}),
    "h264.ts": ("libx264", 12, {"preset": "veryfast"}, {}),
    "h264.flv": ("libx264", 12, {"preset": "veryfast"}, {}),
    "hevc_bframes.mp4": ("libx265", 12, {"x265-params": "keyint=12:min-keyint=12:bframes=4:log-level=error"}, {}),
    "mpeg4_bframes.avi": ("mpeg4", 12, {"bf": "2"}, {}),
    "mpeg4.3gp": ("mpeg4", 12, {}, {}),
    "mpeg1.mpg": ("mpeg1video", 12, {"bf": "2"}, {"fps": 25, "threads": 2}),  # MPEG-1/2: broadcast rates only
    # FFmpeg's single-threaded MPEG-1 encode (what a 1-core machine writes by default): in the PS file,
    # frames 12 and 13 repeat the timestamps of 10 and 11, so output order is not time order.
    "mpeg1_repeated_pts.mpg": ("mpeg1video", 12, {"bf": "2"}, {"fps": 25, "threads": 1}),
    "mpeg2.ts": ("mpeg2video", 12, {"bf": "2"}, {"fps": 25}),
    "mjpeg.mov": ("mjpeg", 1, {}, {"pix_fmt": "yuvj420p"}),
    "vp8.webm": ("libvpx", 12, {}, {}),
    "vp9.webm": ("libvpx-vp9", 12, {"deadline": "realtime", "cpu-used": "8"}, {}),
    "flv1.flv": ("flv", 12, {}, {}),
    "msmpeg4.avi": ("msmpeg4v2", 12, {}, {}),
    "rotated.mp4": ("libx264", 12, {"preset": "veryfast"}, {"rotate": 90}),
    "vfr.mkv": ("libx264", 12, {"preset": "veryfast"},
                {"timestamps": [0.0, 0.1, 0.15, 0.5, 0.55, 1.0, 1.9, 2.0, 2.05, 2.6, 3.0, 3.01] + [3.1 + 0.1 * i for i in range(24)]}),
}


def _make(root: Path, name: str) -> Path | None:
    codec, gop, options, extra = CORPUS[name]
    try:
        return make_video(root / name, frames=N, size=(48, 64), codec=codec, gop=gop, options=options,
                          **{"fps": FPS, **extra})
    except (av.FFmpegError, ValueError) as e:  # an encoder this PyAV build lacks
        print(f"skipping {name}: {e}")
        return None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("wild")
    made = {name: _make(root, name) for name in CORPUS}
    return {k: v for k, v in made.items() if v is not None}


def reference(path: Path) -> tuple[list[float], list[int]]:
    """Times and frame indices of every frame, by decoding the whole file with plain PyAV."""
    times, idx = [], []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        start = float(s.start_time * s.time_base) if s.start_time is not None else 0.0
        by_order = c.format.name == "avi"  # AVI's timestamps are in decode order: frame k shows at k / fps
        for f in c.decode(s):
            if by_order:
                times.append(len(times) / float(s.average_rate))
                idx.append(f.to_ndarray(format="rgb24"))
                continue
            times.append(float(f.pts * f.time_base) - start if f.pts is not None else (times[-1] + 1 / FPS))
            # (frames without a pts follow the previous one at the nominal rate, as the reader does)
            img = f.to_ndarray(format="rgb24")
            idx.append(img)
    with VideoReader(path) as r:
        rot = r.metadata.rotation
    k = (rot // 90) % 4
    return times, [frame_index_of(np.rot90(i, k, axes=(0, 1)) if k else i) for i in idx]


def expected(ref, t: float) -> int:
    """The frame before the first one, in output order, whose time is after ``t`` (the first frame when
    ``t`` precedes it; the last at the end): what a player shows, decoding forward until ``t``. Where
    timestamps repeat (mpeg1_repeated_pts.mpg), a later frame stamped <= t is shown only after a frame
    stamped > t, so it cannot be on screen at ``t``."""
    times, idx = ref
    after = next((j for j, tj in enumerate(times) if tj > t + 1e-6), len(times))
    return idx[max(after - 1, 0)]


def probe_times(ref) -> list[float]:
    """Around every frame: just before, at, between; past the end; before the start."""
    times = ref[0]
    out = {0.0, times[-1] + 5.0, 1e-6}
    for a, b in zip(times, times[1:] + [times[-1] + 0.1]):
        out |= {max(0.0, a - 1e-6), a, (a + b) / 2}
    return sorted(out)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(CORPUS))
def test_every_time_gives_the_reference_frame(corpus, name):
    if name not in corpus:
        pytest.skip(f"{name}: encoder not in this PyAV build")
    path = corpus[name]
    ref = reference(path)
    ts = probe_times(ref)
    want = [expected(ref, t) for t in ts]
    assert [frame_index_of(f.numpy()) for f in read_frames_at(path, ts)] == want  # all at once (dense)
    # one at a time (sparse: a seek each), in random order
    rng = np.random.default_rng(0)
    for j in rng.permutation(len(ts))[:24]:
        assert frame_index_of(read_frames_at(path, [ts[j]])[0].numpy()) == want[j], (name, ts[j])
    # a few far-apart times in one request: seeks between them
    picks = sorted(rng.choice(len(ts), size=5, replace=False))
    got = read_frames_at(path, [ts[j] for j in picks])
    assert [frame_index_of(f.numpy()) for f in got] == [want[j] for j in picks]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", ["h264_bframes.mp4", "mpeg1.mpg", "mpeg2.ts", "mpeg4_bframes.avi", "vp8.webm"])
def test_uniform_clip_matches_the_reference(corpus, name):
    if name not in corpus:
        pytest.skip(f"{name}: encoder not in this PyAV build")
    ref = reference(corpus[name])
    clip = read_clip(corpus[name], ClipSampler("uniform", num_frames=8))[0]
    got = [frame_index_of(f.numpy()) for f in clip]
    assert got == sorted(got) and len(set(got)) == 8 and got[-1] >= len(ref[1]) - 6  # spread over all frames


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
@pytest.mark.timeout(300)
def test_random_times_property(corpus, data):
    name = data.draw(st.sampled_from(sorted(corpus)))
    ref = reference(corpus[name])
    end = ref[0][-1] + 0.5
    ts = data.draw(st.lists(st.floats(0, end, allow_nan=False), min_size=1, max_size=12))
    ts += data.draw(st.lists(st.sampled_from(ts), max_size=3))  # duplicates
    got = [frame_index_of(f.numpy()) for f in read_frames_at(corpus[name], ts)]
    assert got == [expected(ref, t) for t in ts]


@pytest.mark.timeout(60)
def test_keyframe_mode_never_returns_a_later_frame(corpus):
    for name in ("h264_bframes.mp4", "mpeg4_bframes.avi", "mpeg2.ts"):
        if name not in corpus:
            continue
        ref = reference(corpus[name])
        ts = probe_times(ref)[::3]
        got = read_frames_at(corpus[name], ts, seek_mode="keyframe")
        for t, f in zip(ts, got):
            assert frame_index_of(f.numpy()) <= expected(ref, t), (name, t)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fmt", ["jpg", "png", "bmp", "tiff", "webp", "gif"])
def test_every_image_format(tmp_path, fmt):
    from PIL import Image

    from tests.media import natural_frames

    img = natural_frames(1, (40, 56))[0]
    path = tmp_path / f"still.{fmt}"
    Image.fromarray(img).save(path)
    frames = read_frames_at(path, [0.0, 1.0])
    assert frames.shape == (2, 40, 56, 3)
    tol = 40 if fmt in ("jpg", "webp", "gif") else 0  # lossy formats
    assert np.abs(frames[0].numpy().astype(int) - img.astype(int)).mean() <= tol
    assert read_clip(path, ClipSampler("uniform", 4)).shape == (1, 4, 40, 56, 3)


@pytest.mark.timeout(30)
def test_fifo_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "stream.mp4"
    os.mkfifo(fifo)
    with pytest.raises(VideoDecodeError, match="expected a regular file, got a pipe"):
        probe_video(fifo)


@pytest.mark.timeout(30)
def test_cover_art_is_no_video_stream(tmp_path):
    from tests.audio_media import flac_with_picture, tiny_png, tone, write_container

    flac = write_container(tmp_path / "a.flac", tone(0.5, 16000)[:, None].astype(np.float32), 16000, codec="flac",
                           video=False)
    path = tmp_path / "covered.flac"
    path.write_bytes(flac_with_picture(flac.read_bytes(), tiny_png()))
    with pytest.raises(VideoDecodeError, match="no video stream .*attached picture"):
        probe_video(path)


@pytest.mark.timeout(60)
def test_cut_file_raises_or_gives_frames_before_the_cut(corpus, tmp_path):
    src = corpus["h264_bframes.mp4"]
    data = src.read_bytes()
    cut = tmp_path / "cut.mkv"
    make_video(cut, frames=N, size=(48, 64), fps=FPS, gop=12)
    whole = cut.read_bytes()
    cut.write_bytes(whole[: int(len(whole) * 0.6)])
    with pytest.raises(VideoDecodeError, match="allow_partial=True"):
        read_frames_at(cut, [3.4])
    frames = read_frames_at(cut, [0.2, 3.4], allow_partial=True)
    assert frame_index_of(frames[0].numpy()) == 2
    assert len(data) > 0


@pytest.mark.timeout(60)
def test_time_past_a_cut_does_not_loop(tmp_path):
    path = make_video(tmp_path / "long.mkv", frames=60, size=(48, 64), fps=FPS, gop=6)
    whole = path.read_bytes()
    path.write_bytes(whole[: int(len(whole) * 0.5)])
    for t in (4.0, 5.5, 5.9):
        with pytest.raises(VideoDecodeError):
            read_frames_at(path, [t])
        assert read_frames_at(path, [t], allow_partial=True).shape[0] == 1


@pytest.mark.timeout(60)
def test_header_with_a_wrong_duration_does_not_drive_clips(corpus):
    """Sampling uses the packets' times where a container's duration is an estimate (MPEG-PS/TS)."""
    clip = read_clip(corpus["mpeg1.mpg"], ClipSampler("uniform", num_frames=16))[0]
    got = [frame_index_of(f.numpy()) for f in clip]
    assert len(set(got)) >= 14 and got == sorted(got)


def test_huge_frames_are_scaled_inside_ffmpeg(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((3000, 4000, 3), np.uint8)).save(tmp_path / "big.png")
    with VideoReader(tmp_path / "big.png", max_pixels=1_000_000) as r:
        frames = r.get_frames_at([0.0, 0.0, 1.0])
    h, w = frames.shape[1:3]
    assert h * w <= 1_000_000 and abs(w / h - 4 / 3) < 0.02


@pytest.mark.timeout(60)
def test_file_like_sources_rewind(corpus):
    data = corpus["h264.ts"].read_bytes()
    ref = reference(corpus["h264.ts"])
    ts = [0.0, 1.25, 3.0]
    got = [frame_index_of(f.numpy()) for f in read_frames_at(io.BytesIO(data), ts)]
    assert got == [expected(ref, t) for t in ts]


def test_probe_is_sane_on_every_file(corpus):
    for name, path in corpus.items():
        m = probe_video(path)
        assert m.width > 0 and m.height > 0 and (m.fps is None or math.isfinite(m.fps)), name
        assert torch.as_tensor(0.0).item() == 0.0
