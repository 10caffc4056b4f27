"""A corpus of small video/image files of every codec and container the PyAV wheel can write.

Each file carries its frame index in its pixels (``tests.media.natural_frames``), so a test can
tell which frame a decoder returned without trusting any timestamp, and a decode-everything
reference (``reference_frames``) gives the exact pixels a time-addressed read must return.

    files = build_corpus(tmp_dir)          # {name: CorpusFile}
    ref = reference_frames(files["h264_gop12.mp4"])
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from tests.media import encoder_available, frame_index_of, make_video, natural_frames

FPS = 10
FRAMES = 30
SIZE = (48, 64)  # enough to hold the index bar of 8 x 4-pixel blocks
VFR_TIMES = [0.0, 0.1, 0.15, 0.5, 0.55, 1.0, 1.05, 1.1, 1.7, 1.9, 2.0, 2.45]


@dataclass
class CorpusFile:
    path: Path
    times: list[float]  # true presentation time (s) of frame i, as encoded
    partial: bool = False  # truncated: read with allow_partial=True


# (file name, encoder, make_video keyword arguments). B-frames are x264/x265's default; "bf" is
# FFmpeg's max_b_frames for the others.
_SPECS = [
    ("h264_gop1.mp4", "libx264", dict(gop=1)),
    ("h264_gop12.mp4", "libx264", dict(gop=12)),
    ("h264_gop250.mp4", "libx264", dict(gop=250)),
    ("h264_opengop.mkv", "libx264", dict(gop=12, options={"x264-params": "open-gop=1:bframes=3"})),
    ("h264_gop12.mov", "libx264", dict(gop=12)),
    ("h264_gop12.3gp", "libx264", dict(gop=12)),
    ("h264_gop12.flv", "libx264", dict(gop=12)),
    ("h264_gop12.ts", "libx264", dict(gop=12)),
    ("h264_bframes.avi", "libx264", dict(gop=12)),
    ("hevc_gop12.mp4", "libx265", dict(gop=12, options={"x265-params": "keyint=12:bframes=3:log-level=error"})),
    ("hevc_gop12.mkv", "libx265", dict(gop=12, options={"x265-params": "keyint=12:bframes=3:log-level=error"})),
    ("mpeg4_bframes.avi", "mpeg4", dict(gop=12, options={"bf": "2"})),
    ("mpeg4_gop12.mp4", "mpeg4", dict(gop=12, options={"bf": "2"})),
    # MPEG-1/2 allow only broadcast frame rates: 25 fps.
    ("mpeg1_gop12.mpg", "mpeg1video", dict(gop=12, fps=25, options={"bf": "2"})),
    ("mpeg2_gop12.ts", "mpeg2video", dict(gop=12, fps=25, options={"bf": "2"})),
    ("mpeg2_gop12.mpg", "mpeg2video", dict(gop=12, fps=25, options={"bf": "2"})),
    ("mjpeg.mov", "mjpeg", dict(pix_fmt="yuvj420p")),
    ("mjpeg.avi", "mjpeg", dict(pix_fmt="yuvj420p")),
    ("flv1_gop12.flv", "flv", dict(gop=12)),
    ("vp8_gop12.webm", "libvpx", dict(gop=12)),
    ("vp9_gop12.webm", "libvpx-vp9", dict(gop=12)),
    ("av1_gop12.mkv", "libsvtav1", dict(gop=12, size=(64, 64))),
    ("h264_rot90.mp4", "libx264", dict(gop=12, rotate=90)),
]


def build_corpus(directory: str | os.PathLike) -> dict[str, CorpusFile]:
    """Write the corpus into ``directory`` (skipping encoders the wheel lacks); name -> file."""
    directory = Path(directory)
    out: dict[str, CorpusFile] = {}
    times = [i / FPS for i in range(FRAMES)]
    for name, codec, kwargs in _SPECS:
        if not encoder_available(codec):
            continue
        kwargs = dict(kwargs)
        kwargs.setdefault("size", SIZE)
        fps = kwargs.setdefault("fps", FPS)
        path = make_video(directory / name, frames=FRAMES, codec=codec, **kwargs)
        out[name] = CorpusFile(path, [i / fps for i in range(FRAMES)])
    out["vfr.mkv"] = CorpusFile(make_video(directory / "vfr.mkv", frames=len(VFR_TIMES), size=SIZE, fps=FPS,
                                           timestamps=VFR_TIMES, gop=4), VFR_TIMES)
    out["vfr.mp4"] = CorpusFile(make_video(directory / "vfr.mp4", frames=len(VFR_TIMES), size=SIZE, fps=FPS,
                                           timestamps=VFR_TIMES, gop=4), VFR_TIMES)
    for name in ("h264_gop12.mkv", "h264_gop12_cut.ts"):
        src = make_video(directory / ("full_" + name), frames=FRAMES, size=SIZE, fps=FPS, gop=6)
        data = src.read_bytes()
        cut = directory / name.replace(".mkv", "_cut.mkv")
        cut.write_bytes(data[: len(data) * 2 // 3])
        out[cut.name] = CorpusFile(cut, times, partial=True)
    out["latin1_meta.mkv"] = CorpusFile(_non_utf8_metadata(directory / "latin1_meta.mkv"), times)
    return out


def _non_utf8_metadata(path: Path) -> Path:
    """An h264 mkv whose title tag holds bytes that are not UTF-8."""
    container = av.open(str(path), "w")
    container.metadata["title"] = "QQQQQQQQ"
    stream = container.add_stream("libx264", rate=FPS)
    stream.width, stream.height, stream.pix_fmt = SIZE[1], SIZE[0], "yuv420p"
    stream.codec_context.gop_size = 12
    for i, img in enumerate(natural_frames(FRAMES, SIZE)):
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i
        container.mux(stream.encode(frame))
    container.mux(stream.encode())
    container.close()
    data = path.read_bytes()
    path.write_bytes(data.replace(b"QQQQQQQQ", b"\xe9t\xe9\xff\xfe\xc0ab"))
    return path


def make_cover_art_audio(path: str | os.PathLike) -> Path:
    """An mp3 with a JPEG cover (a video stream with disposition ``attached_pic``)."""
    path = Path(path)
    container = av.open(str(path), "w")
    audio = container.add_stream("libmp3lame", rate=16000)
    audio.layout = "mono"
    cover = container.add_stream("mjpeg")
    cover.width, cover.height, cover.pix_fmt = 64, 48, "yuvj420p"
    cover.disposition = av.stream.Disposition.attached_pic
    picture = av.VideoFrame.from_ndarray(natural_frames(1, (48, 64))[0], format="rgb24")
    picture.pts = 0
    container.mux(cover.encode(picture))
    container.mux(cover.encode())
    samples = (0.2 * np.sin(np.arange(8000) * 0.17)).astype(np.float32)
    for s in range(0, len(samples), 1152):
        frame = av.AudioFrame.from_ndarray(samples[None, s:s + 1152], format="flt", layout="mono")
        frame.sample_rate, frame.pts = 16000, s
        container.mux(audio.encode(frame))
    container.mux(audio.encode())
    container.close()
    return path


def make_images(directory: str | os.PathLike, size: tuple[int, int] = SIZE) -> dict[str, Path]:
    """One still per format users hand to zero-shot/embedding tasks (Pillow writes them)."""
    from PIL import Image

    directory = Path(directory)
    img = Image.fromarray(natural_frames(1, size)[0])
    out = {}
    for suffix, kwargs in [(".jpg", {"quality": 95}), (".png", {}), (".bmp", {}), (".tiff", {}),
                           (".webp", {"quality": 95}), (".gif", {})]:
        path = directory / f"still{suffix}"
        img.save(path, **kwargs)
        out[suffix] = path
    return out


def reference_frames(item: CorpusFile) -> tuple[list[float], np.ndarray, list[bool]]:
    """Decode everything in order, without seeking: ``(true times, frames, key flags)``.

    Frames are taken in the decoder's output order (display order) until the first error; each
    is dated by the index drawn in its pixels, so no container timestamp is trusted.
    """
    frames, keys = [], []
    with av.open(str(item.path), metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        try:
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                keys.append(bool(frame.key_frame))
        except av.FFmpegError:
            pass
    if not frames:
        raise AssertionError(f"{item.path.name}: the reference decoded nothing")
    rotation = 0
    with av.open(str(item.path), metadata_errors="ignore") as container:
        frame = next(container.decode(container.streams.video[0]))
        rotation = int(round(frame.rotation / 90)) % 4 if frame.rotation else 0
    arr = np.stack(frames)
    if rotation:
        arr = np.ascontiguousarray(np.rot90(arr, rotation, axes=(1, 2)))
    times = [item.times[frame_index_of(f)] for f in arr]
    return times, arr, keys
