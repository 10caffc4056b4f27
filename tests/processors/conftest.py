"""Session-scoped synthetic videos for the processor tests (made once, in a temp dir)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.media import encoder_available, make_audio_only, make_video

FPS = 10
NUM_FRAMES = 30
SIZE = (48, 64)  # (height, width)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def h264_video(media_dir) -> Path:
    """30 frames, 10 fps, 64x48, h264 in mp4, keyframe every 10 frames."""
    return make_video(media_dir / "h264.mp4", frames=NUM_FRAMES, size=SIZE, fps=FPS, gop=10)


@pytest.fixture(scope="session")
def h264_audio_video(media_dir) -> Path:
    return make_video(media_dir / "h264_audio.mp4", frames=NUM_FRAMES, size=SIZE, fps=FPS, audio=True)


@pytest.fixture(scope="session")
def vfr_video(media_dir) -> Path:
    """Variable frame rate: 7 frames at irregular times (s) in mkv (no frame count in the header)."""
    times = [0.0, 0.1, 0.15, 0.5, 0.55, 1.0, 1.9]
    return make_video(media_dir / "vfr.mkv", frames=len(times), size=SIZE, fps=FPS, timestamps=times)


@pytest.fixture(scope="session")
def codec_video(media_dir):
    """Factory: a 20-frame video for ``codec`` (skips when the wheel lacks the encoder)."""
    made: dict[str, Path] = {}

    def make(codec: str, suffix: str) -> Path:
        if not encoder_available(codec):
            pytest.skip(f"PyAV wheel has no '{codec}' encoder")
        key = codec + suffix
        if key not in made:
            made[key] = make_video(media_dir / f"codec_{codec}{suffix}", frames=20, size=SIZE, fps=FPS,
                                   codec=codec, audio=True)
        return made[key]

    return make


@pytest.fixture(scope="session")
def audio_only(media_dir) -> Path:
    return make_audio_only(media_dir / "audio_only.m4a")


@pytest.fixture(scope="session")
def broken_files(media_dir, h264_video) -> dict[str, Path]:
    """Zero bytes, random bytes, a text file, and h264 files cut in half (mkv and mp4)."""
    import numpy as np

    out = {}
    out["empty"] = media_dir / "empty.mp4"
    out["empty"].write_bytes(b"")
    out["random"] = media_dir / "random.mp4"
    out["random"].write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    out["text"] = media_dir / "notes.txt"
    out["text"].write_text("this is not a video\n" * 50)
    full_mkv = make_video(media_dir / "long.mkv", frames=40, size=SIZE, fps=FPS, gop=5)
    data = full_mkv.read_bytes()
    out["truncated_mkv"] = media_dir / "truncated.mkv"
    out["truncated_mkv"].write_bytes(data[: len(data) // 2])
    data = h264_video.read_bytes()  # mp4 with its index (moov) at the end: the header is gone
    out["truncated_mp4"] = media_dir / "truncated.mp4"
    out["truncated_mp4"].write_bytes(data[: len(data) // 2])
    return out
