"""Decoding: metadata, frame choice by time, seeking, codecs, VFR, rotation, odd and broken files."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from mediaformers.processors.sampling import ClipSampler
from mediaformers.processors.video_io import (
    VideoDecodeError,
    VideoReader,
    probe_video,
    read_clip,
    read_frames_at,
)
from tests.media import frame_index_of, make_video, natural_frames

from .conftest import FPS, NUM_FRAMES, SIZE


def indices_of(frames: torch.Tensor) -> list[int]:
    return [frame_index_of(f.numpy()) for f in frames]


def test_probe_h264(h264_video):
    m = probe_video(h264_video)
    assert (m.duration, m.fps, m.num_frames, m.estimated_num_frames) == (3.0, 10.0, 30, 30)
    assert (m.height, m.width, m.rotation, m.has_audio, m.codec) == (48, 64, 0, False, "h264")
    assert m.source == str(h264_video)


def test_probe_audio_track(h264_audio_video):
    assert probe_video(h264_audio_video).has_audio


def test_frames_at_times_are_the_frames_on_screen(h264_video):
    # t in [i/fps, (i+1)/fps) shows frame i; past the end gives the last frame; order and
    # duplicates are kept.
    times = [0.0, 0.05, 0.1, 0.99, 2.5, 10.0, 1.25, 0.05]
    frames = read_frames_at(h264_video, times)
    assert frames.shape == (8, *SIZE, 3) and frames.dtype == torch.uint8
    assert indices_of(frames) == [0, 0, 1, 9, 25, 29, 12, 0]


def test_decoded_pixels_match_source(h264_video):
    ref = natural_frames(NUM_FRAMES, SIZE)
    frames = read_frames_at(h264_video, [0.55]).numpy()
    # Lossy h264 at 64x48: only a loose bound makes sense; a wrong frame or layout is far off.
    assert np.abs(frames[0].astype(int) - ref[5]).mean() < 8


def test_seeks_instead_of_decoding_from_start(h264_video, monkeypatch):
    decoded = []
    real = VideoReader._time
    monkeypatch.setattr(VideoReader, "_time", lambda self, f, p: decoded.append(1) or real(self, f, p))
    with VideoReader(h264_video) as reader:
        seeks = []
        real_seek = reader._seek
        reader._seek = lambda t: seeks.append(t) or real_seek(t)
        assert indices_of(reader.get_frames_at([2.85])) == [28]
    # keyframes every 10 frames: seek to 2.85 s lands on frame 20, so about 10 frames are decoded.
    assert seeks == [2.85]
    assert len(decoded) <= 12


def test_close_targets_decode_on_without_seeking(h264_video):
    with VideoReader(h264_video) as reader:
        seeks = []
        real_seek = reader._seek
        reader._seek = lambda t: seeks.append(t) or real_seek(t)
        assert indices_of(reader.get_frames_at([1.05, 1.25, 1.45, 2.15])) == [10, 12, 14, 21]
    assert len(seeks) == 2  # once for the run at 1 s, once across the keyframe at 2 s


@pytest.mark.parametrize("codec,suffix", [("libx264", ".mp4"), ("mpeg4", ".mp4"), ("libvpx-vp9", ".webm")])
def test_codecs(codec_video, codec, suffix):
    path = codec_video(codec, suffix)
    m = probe_video(path)
    assert m.has_audio and m.fps == FPS and m.duration == pytest.approx(2.0, abs=0.1)
    assert indices_of(read_frames_at(path, [0.0, 0.55, 1.95])) == [0, 5, 19]


def test_file_like_object(h264_video):
    frames = read_frames_at(io.BytesIO(h264_video.read_bytes()), [0.35])
    assert indices_of(frames) == [3]


def test_variable_frame_rate(vfr_video):
    with VideoReader(vfr_video) as reader:
        assert reader.metadata.num_frames is None  # mkv: no count in the header
        times = reader.frame_times()
        assert torch.allclose(times, torch.tensor([0.0, 0.1, 0.15, 0.5, 0.55, 1.0, 1.9], dtype=torch.float64))
        # the frame on screen at each time, by pts, not by frame count
        assert indices_of(reader.get_frames_at([0.12, 0.16, 0.6, 1.5, 1.95])) == [1, 2, 4, 5, 6]
    clip = read_clip(vfr_video, ClipSampler("uniform", num_frames=7), exact_times=True)
    assert clip.shape == (1, 7, *SIZE, 3)
    assert indices_of(clip[0]) == list(range(7))


@pytest.mark.parametrize("rotate", [90, 180, 270])
def test_rotation_is_applied(media_dir, rotate):
    # The file stores turned pixels plus a display matrix; decoded frames are upright again.
    size = (48, 64)
    path = make_video(media_dir / f"rot{rotate}.mp4", frames=5, size=size, fps=FPS, rotate=rotate)
    m = probe_video(path)
    assert m.rotation == rotate and (m.height, m.width) == size
    frames = read_frames_at(path, [0.25])
    assert frames.shape == (1, *size, 3)
    assert indices_of(frames) == [2]
    assert np.abs(frames[0].numpy().astype(int) - natural_frames(5, size)[2]).mean() < 8


def test_portrait_and_odd_sizes(media_dir):
    for size in [(64, 48), (17, 31)]:
        path = make_video(media_dir / f"size{size[0]}x{size[1]}.mp4", frames=4, size=size, fps=FPS)
        m = probe_video(path)
        assert (m.height, m.width) == size
        frames = read_frames_at(path, [0.0, 0.35])
        assert frames.shape == (2, *size, 3)
        ref = natural_frames(4, size)
        assert np.abs(frames[1].numpy().astype(int) - ref[3]).mean() < 10


def test_one_frame_video_repeats(media_dir):
    path = make_video(media_dir / "one.mp4", frames=1, size=SIZE, fps=FPS)
    clip = read_clip(path, ClipSampler("uniform", num_frames=8))
    assert clip.shape == (1, 8, *SIZE, 3)
    assert (clip[0] == clip[0, :1]).all()


def test_short_video_repeat_pads_or_errors(h264_video):
    clip = read_clip(h264_video, ClipSampler("stride", num_frames=16, step=4))
    assert indices_of(clip[0]) == [0, 4, 8, 12, 16, 20, 24, 28] + [29] * 8
    with pytest.raises(ValueError, match=r"too short for stride \(16x4\) sampling: it has 30 frames, 61 are needed"):
        read_clip(h264_video, ClipSampler("stride", num_frames=16, step=4, on_short="error"))


def test_multi_clip_read(h264_video):
    clips = read_clip(h264_video, ClipSampler("multi_clip", num_frames=4, step=2, num_clips=3))
    assert clips.shape == (3, 4, *SIZE, 3)
    assert [indices_of(c) for c in clips] == [[0, 2, 4, 6], [12, 14, 16, 18], [23, 25, 27, 29]]


# -- refusals: every message names the file and the cause --------------------------------------
def test_empty_file(broken_files):
    with pytest.raises(VideoDecodeError, match=r"cannot open video '.*empty\.mp4': the file is empty \(0 bytes\)"):
        probe_video(broken_files["empty"])


@pytest.mark.parametrize("kind,name", [("random", r"random\.mp4"), ("text", r"notes\.txt")])
def test_not_a_video(broken_files, kind, name):
    with pytest.raises(VideoDecodeError, match=rf"cannot open video '.*{name}': not a readable media file"):
        read_frames_at(broken_files[kind], [0.0])


def test_audio_only(audio_only):
    with pytest.raises(VideoDecodeError, match=r"'.*audio_only\.m4a': the file has no video stream \(streams found: audio\)"):
        probe_video(audio_only)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"video file not found: '.*nope\.mp4'"):
        probe_video(tmp_path / "nope.mp4")


def test_truncated_mp4_without_header(broken_files):
    with pytest.raises(VideoDecodeError, match=r"'.*truncated\.mp4': not a readable media file or truncated before its header"):
        probe_video(broken_files["truncated_mp4"])


def test_truncated_mid_stream(broken_files):
    path = broken_files["truncated_mkv"]
    with pytest.raises(VideoDecodeError, match=r"'.*truncated\.mkv' at 3\.500s: the stream ends at .* but the header says 4\.000s \(truncated\?\); pass allow_partial=True"):
        read_frames_at(path, [0.05, 0.85, 3.5])
    frames = read_frames_at(path, [0.05, 0.85, 3.5], allow_partial=True)
    got = indices_of(frames)
    assert got[:2] == [0, 8] and 8 <= got[2] < 30  # the last frame before the damage


def test_bad_timestamps(h264_video):
    with VideoReader(h264_video) as reader:
        with pytest.raises(ValueError, match="timestamps: expected at least one time"):
            reader.get_frames_at([])
        with pytest.raises(ValueError, match=r"timestamps: expected finite seconds, got \[nan\]"):
            reader.get_frames_at([float("nan")])


def test_keyframe_seek_mode(tmp_path):
    """seek_mode='keyframe' gives, for each time, the exact frame of the keyframe at or before it."""
    from tests.media import make_video, frame_index_of
    from mediaformers.processors.video_io import read_frames_at

    path = make_video(tmp_path / "gop.mp4", frames=40, fps=10, gop=10, size=(64, 96))
    times = [0.0, 0.55, 1.25, 2.95, 3.9]
    fast = read_frames_at(path, times, seek_mode="keyframe").numpy()
    exact = read_frames_at(path, [0.0, 0.0, 1.0, 2.0, 3.0]).numpy()
    assert [frame_index_of(f) for f in fast] == [0, 0, 10, 20, 30]
    assert np.abs(fast.astype(int) - exact.astype(int)).max() == 0
    with pytest.raises(ValueError, match="seek_mode: expected 'exact' or 'keyframe'"):
        read_frames_at(path, [0.0], seek_mode="nearest")
