"""Writing a small video file (the demo's generated clips, tests): RGB frames -> MPEG-4, repeatable bytes."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def _yuv420p(rgb: np.ndarray) -> np.ndarray:
    """BT.601 limited-range 4:2:0 planes stacked as (H * 3 / 2, W), computed here so the encoder's input
    does not depend on the scaler's build or threads."""
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    h, w = rgb.shape[:2]
    sub = lambda c: c.reshape(h // 2, 2, w // 2, 2).mean((1, 3)).reshape(h // 4, w)  # noqa: E731
    return np.concatenate([y, sub(u), sub(v)]).round().clip(0, 255).astype(np.uint8)


def write_video(path: str | Path, frames: np.ndarray, fps: int, audio: np.ndarray | None = None,
                rate: int = 16000) -> None:
    """``frames`` ``(n, H, W, 3)`` uint8 RGB (H, W even) -> an MPEG-4 file at ``fps``, byte for byte the same
    on every run and machine; ``audio`` (samples,) float32 mono at ``rate``, when given, as an AAC track."""
    with av.open(str(path), "w") as box:
        a = None
        if audio is not None:
            a = box.add_stream("aac", rate=rate)  # FFmpeg's own AAC encoder
            a.layout = "mono"
        # FFmpeg's own MPEG-4 encoder, one thread: x264's bytes vary from one process to the next even
        # single-threaded; the demo promises byte-for-byte repeatable files (and so output).
        v = box.add_stream("mpeg4", rate=fps, options={"qscale": "3"})
        v.thread_count = 1
        v.height, v.width, v.pix_fmt = frames.shape[1], frames.shape[2], "yuv420p"
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(_yuv420p(f), format="yuv420p")
            frame.pts = i  # explicit timestamps: without them the rate control varied run to run
            for pkt in v.encode(frame):
                box.mux(pkt)
        for pkt in v.encode():
            box.mux(pkt)
        if a is not None and audio is not None:
            _write_audio(box, a, np.asarray(audio, np.float32), rate)


def _write_audio(box, stream, samples: np.ndarray, rate: int) -> None:
    for start in range(0, len(samples), 1024):
        frame = av.AudioFrame.from_ndarray(samples[None, start:start + 1024], format="flt", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        for pkt in stream.encode(frame):
            box.mux(pkt)
    for pkt in stream.encode():
        box.mux(pkt)
