"""Synthetic media for tests, made with PyAV in a temp dir (nothing large is committed).

Video helpers live in their own functions so audio helpers can sit beside them:

    from tests.media import make_video, natural_frames
    path = make_video(tmp_path / "a.mp4", frames=12, size=(48, 64), fps=10, codec="libx264")

Frames look natural enough for resize parity (smooth gradients, moving shapes, mild noise), not
random noise, which aliasing makes meaningless. Frame ``i`` also carries its index, readable with
``frame_index_of`` after lossy coding, so tests can check which frame a decoder returned.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import numpy as np
import pytest

# A bar of 8 blocks along the top-left encodes the frame index in binary (0..255); blocks are
# large and saturated so they survive lossy codecs at tiny sizes.
_INDEX_BITS = 8


def natural_frames(num: int, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """``(num, H, W, 3)`` uint8 frames: gradients + a moving disc and box + mild noise + index bar.

    Args:
        num: number of frames.
        size: ``(height, width)``.
        seed: noise seed (the content is otherwise deterministic).
    """
    h, w = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((num, h, w, 3), dtype=np.uint8)
    for i in range(num):
        phase = i / max(num, 1)
        r = 60 + 120 * xx / max(w - 1, 1) + 30 * np.sin(2 * np.pi * (yy / max(h, 1) + phase))
        g = 50 + 150 * yy / max(h - 1, 1)
        b = 140 + 70 * np.cos(2 * np.pi * (xx / max(w, 1) - phase))
        img = np.stack([r, g, b], axis=-1)
        cx, cy = (0.2 + 0.6 * phase) * w, 0.55 * h
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 < (0.18 * min(h, w)) ** 2
        img[disc] = (230, 200, 40)
        bx = int((0.7 - 0.5 * phase) * w)
        img[int(0.7 * h):int(0.9 * h), max(bx - w // 8, 0):bx] = (30, 40, 200)
        img += rng.normal(0, 3, size=img.shape)
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
        _draw_index(out[i], i)
    return out


def _block(size: tuple[int, int]) -> int:
    return max(2, min(size) // 12)


def _draw_index(img: np.ndarray, index: int) -> None:
    b = _block(img.shape[:2])
    if b * _INDEX_BITS > img.shape[1]:
        return  # too small to carry an index
    for bit in range(_INDEX_BITS):
        img[:b, bit * b:(bit + 1) * b] = 255 if (index >> bit) & 1 else 0


def frame_index_of(img: np.ndarray) -> int:
    """Read back the index drawn by ``natural_frames`` from an upright ``(H, W, 3)`` frame."""
    b = _block(img.shape[:2])
    value = 0
    for bit in range(_INDEX_BITS):
        patch = img[1:b - 1, bit * b + 1:(bit + 1) * b - 1].astype(np.float32)
        if patch.mean() > 127:
            value |= 1 << bit
    return value


def encoder_available(codec: str) -> bool:
    """Whether this PyAV wheel can encode ``codec``."""
    try:
        av.codec.Codec(codec, "w")
    except Exception:
        return False
    return True


def require_encoder(codec: str) -> None:
    """Skip the calling test when the wheel lacks ``codec``."""
    if not encoder_available(codec):
        pytest.skip(f"PyAV wheel has no '{codec}' encoder")


def make_video(
    path: str | os.PathLike,
    *,
    frames: int | np.ndarray = 12,
    size: tuple[int, int] = (48, 64),
    fps: int = 10,
    codec: str = "libx264",
    pix_fmt: str | None = None,
    gop: int | None = None,
    audio: bool = False,
    rotate: int = 0,
    timestamps: Sequence[float] | None = None,
    options: dict[str, str] | None = None,
    threads: int | None = None,
) -> Path:
    """Encode a small video with PyAV and return its path. The container follows the suffix.

    Args:
        path: output file (.mp4, .mkv, .webm, .avi, ...).
        frames: a frame count (content from ``natural_frames``) or ``(n, H, W, 3)`` uint8 frames.
        size: ``(height, width)`` of the upright picture.
        fps: nominal frame rate.
        codec: encoder name, e.g. ``libx264``, ``mpeg4``, ``libvpx-vp9``, ``ffv1``.
        pix_fmt: defaults to yuv420p, or yuv444p when a side is odd (4:2:0 needs even sides).
        gop: keyframe interval in frames (``codec_context.gop_size``).
        audio: add a 440 Hz mono AAC/Opus track as long as the video.
        rotate: counter-clockwise display rotation in degrees (0, 90, 180, 270) written as the
            stream's display matrix; pixels are stored turned the other way, so a player (or our
            decoder) that honours it shows the same upright frames as ``natural_frames``.
        timestamps: presentation time (s) of each frame, for variable frame rate files.
        options: encoder options, e.g. ``{"preset": "ultrafast"}``.
        threads: the encoder's slice threads. Some encoders write different files with different thread
            counts (FFmpeg's single-threaded MPEG-1 with B-frames muxes repeated timestamps into PS);
            None: FFmpeg's default, one per core.
    """
    path = Path(path)
    pictures = natural_frames(frames, size) if isinstance(frames, int) else np.asarray(frames)
    n, h, w = pictures.shape[:3]
    k = (rotate // 90) % 4
    stored = np.ascontiguousarray(np.rot90(pictures, -k, axes=(1, 2))) if k else pictures
    sh, sw = stored.shape[1:3]
    if pix_fmt is None:
        pix_fmt = "yuv420p" if (sh % 2 == 0 and sw % 2 == 0) else "yuv444p"
    # A fine time base so manual (VFR) timestamps are represented exactly enough.
    time_base = Fraction(1, 1000 * fps) if timestamps is not None else Fraction(1, fps)
    container = av.open(str(path), "w")
    try:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height, stream.pix_fmt = sw, sh, pix_fmt
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if gop is not None:
            stream.codec_context.gop_size = gop
        if threads is not None:
            stream.codec_context.thread_type, stream.codec_context.thread_count = "SLICE", threads
        if k:
            stream.set_display_rotation(k * 90)
        astream = None
        if audio:
            acodec = "libopus" if path.suffix == ".webm" else "aac"
            astream = container.add_stream(acodec, rate=48000 if acodec == "libopus" else 16000)
            astream.layout = "mono"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(stored[i], format="rgb24")
            frame.pts = round(timestamps[i] / time_base) if timestamps is not None else i
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if astream is not None:
            _write_tone(container, astream, seconds=(timestamps[-1] + 1 / fps) if timestamps is not None else n / fps)
    finally:
        container.close()
    return path


def _write_tone(container, astream, seconds: float) -> None:
    rate = astream.codec_context.sample_rate
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    chunk = 1024
    for s in range(0, len(samples), chunk):
        piece = samples[s:s + chunk]
        frame = av.AudioFrame.from_ndarray(piece[None, :], format="flt", layout="mono")
        frame.sample_rate = rate
        frame.pts = s
        for packet in astream.encode(frame):
            container.mux(packet)
    for packet in astream.encode():
        container.mux(packet)


def make_audio_only(path: str | os.PathLike, seconds: float = 0.5) -> Path:
    """An .m4a/.mp4 holding only an AAC tone: a "video" with no video stream."""
    path = Path(path)
    container = av.open(str(path), "w")
    try:
        astream = container.add_stream("aac", rate=16000)
        astream.layout = "mono"
        _write_tone(container, astream, seconds)
    finally:
        container.close()
    return path
