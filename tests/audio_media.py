"""Synthetic audio for tests and golden files: numpy only, deterministic, no mediaformers import
(tools/make_tvlt_feature_goldens.py runs it in the transformers 4.57.1 venv).

Every generator takes ``(seconds, rate, seed)`` and returns float32 ``(samples,)`` in [-1, 1];
``SIGNALS`` names them for parametrised tests. ``pcm16`` rounds a signal to 16-bit levels so that it
survives a trip through an int16 file or an .npz exactly.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np

Generator = Callable[[float, int, int], np.ndarray]


def _t(seconds: float, rate: int) -> np.ndarray:
    return np.arange(int(round(seconds * rate)), dtype=np.float64) / rate


def tone(seconds: float, rate: int, seed: int = 0, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    """A pure sine."""
    return (amp * np.sin(2 * np.pi * freq * _t(seconds, rate))).astype(np.float32)


def noise(seconds: float, rate: int, seed: int = 0, amp: float = 0.1) -> np.ndarray:
    """White Gaussian noise, clipped to [-1, 1]."""
    x = amp * np.random.default_rng(seed).standard_normal(len(_t(seconds, rate)))
    return np.clip(x, -1, 1).astype(np.float32)


def chirp(seconds: float, rate: int, seed: int = 0, f0: float = 50.0, f1: float | None = None) -> np.ndarray:
    """A linear sweep from f0 to f1 (default: 0.45 * rate) Hz."""
    t = _t(seconds, rate)
    f1 = 0.45 * rate if f1 is None else f1
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * max(seconds, 1e-9)))
    return (0.5 * np.sin(phase)).astype(np.float32)


def silence(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """Digital zeros (exercises the mel floor)."""
    return np.zeros(len(_t(seconds, rate)), dtype=np.float32)


def clipping(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """A 300 Hz sine driven 4x into hard clipping at full scale."""
    return np.clip(4.0 * np.sin(2 * np.pi * 300 * _t(seconds, rate)), -1, 1).astype(np.float32)


def speech_like(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """A voiced-speech stand-in: a harmonic series on a wandering pitch (110-190 Hz), shaped by two
    moving formant resonances, gated into ~4 syllables per second, over a little breath noise."""
    t = _t(seconds, rate)
    rng = np.random.default_rng(seed)
    f0 = 150 + 30 * np.sin(2 * np.pi * 1.3 * t) + 10 * np.sin(2 * np.pi * 5.1 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    f1 = 500 + 250 * np.sin(2 * np.pi * 2.1 * t)  # formant centres drift like changing vowels
    f2 = 1500 + 600 * np.sin(2 * np.pi * 1.7 * t + 1.0)
    out = np.zeros_like(t)
    for k in range(1, int(0.45 * rate / 110)):
        fk = k * f0
        gain = np.exp(-(((fk - f1) / 150) ** 2)) + 0.6 * np.exp(-(((fk - f2) / 250) ** 2)) + 0.02
        out += gain * np.sin(k * phase) * (fk < 0.45 * rate)
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 0.5
    out = out * syllables + 0.01 * rng.standard_normal(len(t))
    return (0.8 * out / max(np.abs(out).max(), 1e-9)).astype(np.float32)


SIGNALS: dict[str, Generator] = {
    "tone": tone,
    "noise": noise,
    "chirp": chirp,
    "silence": silence,
    "clipping": clipping,
    "speech_like": speech_like,
}


def pcm16(x: np.ndarray) -> np.ndarray:
    """Round to 16-bit PCM levels (still float32), so int16 storage is lossless."""
    return (np.round(np.clip(x, -1, 32767 / 32768) * 32768) / 32768).astype(np.float32)


def stereo(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``(samples, 2)``, soundfile's layout."""
    return np.stack([left, right], axis=1)


def espeak(text: str, path: Path) -> Path | None:
    """Speak ``text`` to a wav with espeak-ng; None when espeak-ng is not installed."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    subprocess.run([exe, "-w", str(path), text], check=True, capture_output=True, timeout=60)
    return path


_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


def write_container(
    path: Path,
    audio: np.ndarray | None,
    rate: int,
    *,
    codec: str = "aac",
    video: bool = True,
    seconds: float = 0.5,
    format: str | None = None,
    options: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
) -> Path:
    """A media file written by FFmpeg (PyAV), its container chosen by suffix or ``format``.

    Args:
        audio: ``(samples, channels)`` float32 with 1, 2 or 6 (5.1) channels, or None for a silent video.
        codec: the audio encoder (aac, libopus, flac, libmp3lame, ac3, wavpack, pcm_s24le, ...).
        video: add a tiny video stream (``seconds`` long) before the audio.
        format: FFmpeg's muxer name where the suffix is ambiguous (``adts`` for raw AAC).
        options: encoder options; metadata: container tags; container_options: muxer options
            (``{"movflags": "faststart"}`` puts the mp4 index first, as streaming sites do).
    """
    import av  # test dependency through mediaformers; kept local so the golden tool needs numpy only

    container = av.open(str(path), "w", format=format, options=container_options or {})
    try:  # every stream is added before the first packet is muxed (that writes the header)
        container.metadata.update(metadata or {})
        vs = stream = None
        if video:
            vs = container.add_stream("libvpx-vp9" if path.suffix == ".webm" else "mpeg4", rate=10)
            vs.width, vs.height, vs.pix_fmt = 32, 32, "yuv420p"
        if audio is not None:
            layout = _LAYOUTS[audio.shape[1]]
            stream = container.add_stream(codec, rate=rate, options=options or {})
            stream.layout = layout
            # PyAV takes an encoder's first sample format, which can be 8-bit (wavpack): take the widest.
            supported = [f.name for f in stream.codec_context.codec.audio_formats or []]
            best = [f for f in ("fltp", "flt", "s32p", "s32", "s16p", "s16") if f in supported]
            if best:
                stream.format = best[0]
        if vs is not None:
            for i in range(max(1, int(seconds * 10))):
                frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 20 * i % 256, np.uint8), format="rgb24")
                for packet in vs.encode(frame):
                    container.mux(packet)
            for packet in vs.encode():
                container.mux(packet)
        if stream is not None:
            chunk = stream.codec_context.frame_size or 1024
            for s in range(0, len(audio), chunk):
                piece = np.ascontiguousarray(audio[s : s + chunk].reshape(1, -1), dtype=np.float32)
                frame = av.AudioFrame.from_ndarray(piece, format="flt", layout=layout)
                frame.sample_rate, frame.pts = rate, s
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    finally:
        container.close()
    return path


def channel_chirps(seconds: float, rate: int, channels: int, amp: float = 0.3) -> np.ndarray:
    """``(samples, channels)`` float32: channel k sweeps up from ``200 + 150 k`` Hz (staying under
    0.2 * rate), so a delay, a swapped or a mixed channel shows (a sweep never repeats itself)."""
    top = min(0.2 * rate, 4000.0)
    return np.stack(
        [chirp(seconds, rate, f0=min(200.0 + 150.0 * k, top / 2), f1=top - 50.0 * k) * (2 * amp) for k in range(channels)],
        axis=1,
    ).astype(np.float32)


def flac_with_picture(flac: bytes, picture: bytes, mime: str = "image/png") -> bytes:
    """Insert a METADATA_BLOCK_PICTURE (front cover) after STREAMINFO, as taggers do."""
    assert flac[:4] == b"fLaC"
    body = (
        (3).to_bytes(4, "big") + len(mime).to_bytes(4, "big") + mime.encode() + (0).to_bytes(4, "big")
        + (1).to_bytes(4, "big") * 2 + (24).to_bytes(4, "big") + (0).to_bytes(4, "big")
        + len(picture).to_bytes(4, "big") + picture
    )
    streaminfo_end = 4 + 4 + int.from_bytes(flac[5:8], "big")
    last = flac[4] & 0x80  # STREAMINFO's "last block" flag moves to the picture block
    head = bytes([flac[4] & 0x7F]) + flac[5:streaminfo_end]
    block = bytes([6 | last]) + len(body).to_bytes(3, "big") + body
    return flac[:4] + head + block + flac[streaminfo_end:]


def mp3_with_picture(mp3: bytes, picture: bytes, mime: str = "image/png") -> bytes:
    """Prepend an ID3v2.3 tag holding an APIC (front cover) frame, as taggers do."""
    apic = b"\x00" + mime.encode() + b"\x00" + b"\x03" + b"cover\x00" + picture
    frame = b"APIC" + len(apic).to_bytes(4, "big") + b"\x00\x00" + apic
    size = len(frame)
    synchsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + synchsafe + frame + mp3


def tiny_png() -> bytes:
    """A valid 1x1 PNG (the smallest cover art)."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = (1).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b"")


def peak_frequency(x: np.ndarray, rate: int) -> float:
    """The frequency (Hz) of the strongest FFT bin of a Hann-windowed signal."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * rate / len(x))
