"""Thumbnails for the page: a video's frame at a time (an image's only frame) as JPEG, a sound's waveform
around a time as PNG. Both read an already opened, checked file (see ``app.open_indexed``)."""
from __future__ import annotations

import io
from typing import BinaryIO

import numpy as np

WIDTH, HEIGHT = 320, 120
WAVE_SECONDS = 10.0  # the waveform shows this much sound around the hit's time
MAX_T = 1e7  # seconds (115 days): later times are clamped, the frame shown is the last one anyway


def frame_jpeg(source: BinaryIO, t: float, width: int = WIDTH) -> bytes:
    """The frame on screen at ``t`` seconds, scaled to at most ``width`` pixels wide."""
    from PIL import Image

    from ..processors.video_io import read_frames_at

    # past the end is the last frame; a huge t would overflow the seek's 64-bit timestamp instead
    frame = read_frames_at(source, [min(max(t, 0.0), MAX_T)])[0].numpy()
    image = Image.fromarray(frame)
    if image.width > width:
        image = image.resize((width, max(1, round(image.height * width / image.width))))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def waveform_png(source: BinaryIO, t: float, width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """The sound's envelope over ``WAVE_SECONDS`` centred on ``t``: per column the min..max sample, drawn as
    a bar, the middle marked (no plotting library needed)."""
    from PIL import Image, ImageDraw

    from ..processors.audio_io import load_audio

    rate = 8000  # enough for an envelope, and a quarter of the memory of 16 kHz
    wave = load_audio(source, rate, return_numpy=True)
    start = int(max(0.0, t - WAVE_SECONDS / 2) * rate)
    part = wave[start:start + int(WAVE_SECONDS * rate)]
    image = Image.new("RGB", (width, height), (245, 245, 245))
    draw = ImageDraw.Draw(image)
    mid = height // 2
    draw.line([(0, mid), (width, mid)], fill=(200, 200, 200))
    if len(part):
        cols = np.array_split(part, width) if len(part) >= width else [part[i:i + 1] for i in range(len(part))]  # type: ignore[arg-type]
        peak = max(float(np.abs(part).max()), 1e-6)  # type: ignore[arg-type]
        for x, col in enumerate(cols):
            if len(col):
                lo, hi = float(col.min()) / peak, float(col.max()) / peak  # type: ignore[union-attr]
                draw.line([(x, mid - hi * (mid - 2)), (x, mid - lo * (mid - 2))], fill=(40, 90, 200))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
