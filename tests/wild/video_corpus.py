"""A corpus of small video/image files of every codec and container the PyAV wheel can write.

Each file carries its frame index in its pixels (``tests.media.natural_frames``), so a test can
tell which frame a decoder returned without trusting any timestamp, and a decode-everything
reference (``reference_frames``) gives the exact pixels a time-addressed read must return.

    files = build_corpus(tmp_dir)          # {name: CorpusFile}
    ref = reference_frames(files["h264_gop12.mp4"])
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from fractions import Fraction
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


# -- files whose timing comes from the stream, not the header (issue 26) -------------------------------
STREAM_FRAMES = 40


class _NoSeek(io.RawIOBase):
    """A write-only file the muxer cannot seek in: Matroska then writes no Cues (no keyframe index)."""

    def __init__(self, f):
        self.f = f

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, b) -> int:
        return self.f.write(b)


def _encode(target, fmt: str | None, codec: str, rate, times: list[float], *, options=None, gop: int = 12,
            durations: list[float] | None = None, size=SIZE) -> None:
    """Encode ``natural_frames`` stamped at ``times`` (s); ``durations`` sets each packet's duration."""
    tb = Fraction(1, 90000)
    container = av.open(target, "w", format=fmt)
    try:
        stream = container.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height, stream.pix_fmt = size[1], size[0], "yuv420p"
        if not codec.startswith("mpeg"):  # MPEG-1/2 encoders take only 1/rate; PyAV rescales the frames
            stream.time_base = stream.codec_context.time_base = tb
        stream.codec_context.gop_size = gop
        ends = {round(t * 90000): round((t + d) * 90000) for t, d in zip(times, durations or [])}

        def mux(packets):
            for p in packets:
                if p.pts is not None and p.pts in ends:
                    p.duration = ends[p.pts] - p.pts
                container.mux(p)

        for i, img in enumerate(natural_frames(len(times), size)):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = round(times[i] * 90000), tb
            mux(stream.encode(frame))
        mux(stream.encode())
    finally:
        container.close()


def _patch_mpeg_rate(path: Path, code: int) -> None:
    """Rewrite every MPEG-1/2 sequence header's frame_rate_code (3: 25 fps), leaving the PES stamps."""
    data = bytearray(path.read_bytes())
    i = data.find(b"\x00\x00\x01\xb3")
    while i >= 0:
        data[i + 7] = (data[i + 7] & 0xF0) | code
        i = data.find(b"\x00\x00\x01\xb3", i + 4)
    path.write_bytes(data)


def build_stream_timing_corpus(directory: str | os.PathLike) -> dict[str, CorpusFile]:
    """Files whose frame times only the packets tell (name -> file, true time of frame i):

    - MPEG-1 PS and MPEG-2 TS whose headers say 25 fps over frames stamped 1/29.97 s apart (several
      pictures per PES packet, one stamp each);
    - MPEG-1 PS at 15 fps with a 0.53 s pause after frame 0;
    - a VFR MP4 whose last frame lasts 1.57 s (its packet's duration; the header's duration ends there);
    - WebM (VP8) and MKV (h264 with B-frames) muxed without Cues;
    - raw Annex-B H.264/HEVC (``.264``/``.265``: no timestamps; frame k at k / the rate FFmpeg assumes).
    """
    directory = Path(directory)
    out: dict[str, CorpusFile] = {}
    n = STREAM_FRAMES
    ntsc = [i * 1001 / 30000 for i in range(n)]
    for name, codec in (("mpeg1_header25.mpg", "mpeg1video"), ("mpeg2_header25.ts", "mpeg2video")):
        if encoder_available(codec):
            path = directory / name
            _encode(str(path), None, codec, Fraction(30000, 1001), ntsc, options={"bf": "2"})
            _patch_mpeg_rate(path, 3)
            out[name] = CorpusFile(path, ntsc)
    if encoder_available("mpeg1video"):
        paused = [0.0] + [(8 + k) / 15 for k in range(n - 1)]
        path = directory / "mpeg1_15fps_pause.mpg"
        _encode(str(path), None, "mpeg1video", 15, paused, options={"bf": "2", "strict": "-1"})
        out[path.name] = CorpusFile(path, paused)
    vfr = [0.0, 0.1, 0.2, 0.5, 0.6, 0.7, 1.0, 1.1, 1.2, 1.3]
    path = directory / "vfr_long_last.mp4"
    _encode(str(path), None, "libx264", 10, vfr, gop=4, options={"preset": "veryfast"},
            durations=[b - a for a, b in zip(vfr, vfr[1:])] + [1.57])
    out[path.name] = CorpusFile(path, vfr)
    tenth = [i / 10 for i in range(n)]
    for name, codec, fmt in (("nocues.webm", "libvpx", "webm"), ("nocues.mkv", "libx264", "matroska")):
        if encoder_available(codec):
            with open(directory / name, "wb") as raw:
                _encode(_NoSeek(raw), fmt, codec, 10, tenth, options={"bf": "2"} if codec == "libx264" else None)
            out[name] = CorpusFile(directory / name, tenth)
    for name, codec, options in (("h264.264", "libx264", {}), ("hevc.265", "libx265", {"x265-params": "log-level=error"})):
        if encoder_available(codec):
            path = make_video(directory / name, frames=n, size=SIZE, fps=FPS, gop=12, codec=codec, options=options)
            with av.open(str(path)) as c:
                rate = float(c.streams.video[0].average_rate or 25)
            out[name] = CorpusFile(path, [i / rate for i in range(n)])
    return out


def make_encrypted_mp4(path: str | os.PathLike) -> Path:
    """An h264 MP4 encrypted with CENC (AES-CTR) by FFmpeg's muxer: 'encv' sample entry, 'senc' boxes."""
    path = Path(path)
    options = {"encryption_scheme": "cenc-aes-ctr", "encryption_key": "00112233445566778899aabbccddeeff",
               "encryption_kid": "a7e61c373e219033c21091fa607bf3b8"}
    container = av.open(str(path), "w", options=options)
    try:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = SIZE[1], SIZE[0], "yuv420p"
        for i, img in enumerate(natural_frames(12, SIZE)):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    finally:
        container.close()
    return path


def make_damaged_keyframe(path: str | os.PathLike) -> CorpusFile:
    """An h264 MP4 (GOP 12, 36 frames) whose second keyframe's slice data is overwritten with noise: the
    decoder conceals it (``is_corrupt``), from the frame before when decoding forward, from nothing
    right after a seek, as with an IDR that cannot be decoded alone."""
    path = make_video(path, frames=36, size=SIZE, fps=FPS, gop=12, options={"preset": "veryfast"})
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        keys = [(p.pos, p.size) for p in container.demux(stream) if p.is_keyframe and p.size]
    pos, size = keys[1]
    data = bytearray(path.read_bytes())
    data[pos + size // 3:pos + size] = np.random.default_rng(1).integers(0, 256, size - size // 3, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return CorpusFile(path, [i / FPS for i in range(36)])
