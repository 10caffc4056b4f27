"""``mediaformers demo``: small untrained checkpoints and generated media, so the CLI runs anywhere.

The weights are random: the labels the demo prints show the plumbing, not a prediction.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

VIDEO_LABELS = ["moving square", "moving circle", "static scene"]  # what the generated clips show
AUDIO_LABELS = ["tone", "noise"]  # what the generated wav files hold


def _frames(n: int, h: int, w: int, seed: int) -> np.ndarray:
    """A shape sliding over a gradient: natural enough for the codecs, cheap to make."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 96)], -1).astype(np.uint8)
    out = np.repeat(base[None], n, 0)
    size, color = h // 4, rng.integers(0, 255, 3)
    for i in range(n):
        cx, cy = int((w - size) * i / max(n - 1, 1)), int((h - size) / 2 + h / 6 * math.sin(i / 3))
        out[i, cy:cy + size, cx:cx + size] = color
    return out


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


def write_video(path: Path, frames: np.ndarray, fps: int = 12, audio: bool = True) -> None:
    import av

    with av.open(str(path), "w") as box:
        # FFmpeg's own MPEG-4 encoder, one thread: x264's bytes (and so the demo's scores) vary from one
        # process to the next even single-threaded; the demo promises byte-for-byte repeatable output.
        v = box.add_stream("mpeg4", rate=fps, options={"qscale": "3"})
        v.thread_count = 1
        v.height, v.width, v.pix_fmt = frames.shape[1], frames.shape[2], "yuv420p"
        a = box.add_stream("aac", rate=16000) if audio else None
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(_yuv420p(f), format="yuv420p")
            frame.pts = i  # explicit timestamps: without them x264's rate control varies run to run
            for pkt in v.encode(frame):
                box.mux(pkt)
        for pkt in v.encode():
            box.mux(pkt)
        if a is not None:
            # whole 1024-sample AAC frames: the encoder pads a partial last frame with whatever memory
            # holds, so the file (and the scores printed for it) varied from run to run
            n = -(-int(16000 * len(frames) / fps) // 1024) * 1024
            t = np.arange(n) / 16000
            wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
            frame.sample_rate = 16000
            for pkt in a.encode(frame):
                box.mux(pkt)
            for pkt in a.encode():
                box.mux(pkt)


def build_demo(folder: Path) -> list[str]:
    """folder/<family>: a small checkpoint of every family that declares a demo size; folder/media:
    3 videos and 2 wav files. Returns the checkpoint folder names.

    Refuses a non-empty folder that an earlier demo did not make, so nothing of the user's is overwritten.
    """
    import soundfile as sf

    from .family import families

    marker = folder / ".mediaformers-demo"
    if folder.exists() and any(folder.iterdir()) and not marker.exists():
        raise ValueError(f"{folder} exists and is not a mediaformers demo folder; name a new or empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    marker.write_text("made by `mediaformers demo`; safe to delete\n")

    built = []
    for fam in sorted(families().values(), key=lambda f: f.name):
        head = fam.head()
        if fam.demo is None or head is None:
            continue
        torch.manual_seed(0)
        labels = VIDEO_LABELS if "video" in fam.processors else AUDIO_LABELS
        head(fam.config(**fam.demo, id2label=dict(enumerate(labels)))).save_pretrained(folder / fam.name)
        built.append(fam.name)
    media = folder / "media"
    media.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        write_video(media / f"clip{i}.mp4", _frames(36, 120, 160, i))
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 4) / 16000
    sf.write(media / "tone.wav", (0.4 * np.sin(2 * np.pi * 660 * t)).astype(np.float32), 16000)
    sf.write(media / "noise.wav", (0.1 * rng.standard_normal(44100 * 3)).astype(np.float32), 44100)
    return built
