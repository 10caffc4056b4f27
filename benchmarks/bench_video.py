"""Video front-end benchmark: ratios against the common approach, measured in the same run.

    python benchmarks/bench_video.py                       # everything
    python benchmarks/bench_video.py --only decode --keep /tmp/vbench --files 1 2   # two files, cached
    python benchmarks/bench_video.py --only wild            # issue 26's structures vs decode-all, decord2

1. transform: 16 decoded 320x240 frames through our VideoMAE processor vs transformers'
   VideoMAEImageProcessorPil (target >= 5x faster).
2. decode: 16 uniformly sampled frames from generated h264 files of users' structure (see FILES:
   720p/1080p, GOP 0.5-10 s, with and without B-frames) with our reader (exact and keyframe
   modes) vs PyAV decoding every frame and picking, and vs decord2 where it installs.
3. pipeline: decode + transform in clips/s through a DataLoader with 0, 1 and 2 workers.
4. wild: exact 16-frame reads (16 frames evenly spaced over the real frames, read by their times) on
   files with the structures of issue 26 (see WILD: WebM/MKV without Cues, VFR MP4, MPEG-TS, MPEG-PS,
   h264 4:4:4, long GOPs) with our reader vs PyAV decoding every frame (frame threads) vs decord2 where
   it installs; every read is checked frame for frame against decode-all. ``--small`` makes tiny files
   (a smoke run of the script, no figures).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from torch.utils.data import DataLoader

from mediaformers.processors.datasets import VideoClipDataset, collate_video_clips
from mediaformers.processors.sampling import ClipSampler, uniform
from mediaformers.processors.video import VideoReader, read_clip, read_frames_at
from mediaformers.processors.video_processors import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    VideoMAEVideoProcessor,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import bench, set_threads, stopwatch  # noqa: E402
from tests.media import natural_frames  # noqa: E402
from tests.wild.video_corpus import _NoSeek  # noqa: E402  (Matroska without Cues)


def best_of(fn, repeats: int = 5) -> float:
    """Best wall time (s) of ``repeats`` calls after one warm-up."""
    return bench(fn, warmup=1, repeat=repeats, reduce=min)


def make_long_video(path: Path, seconds: int, size: tuple[int, int], fps: int = 30, gop_s: float = 2.0,
                    preset: str = "ultrafast") -> Path:
    """h264 with simple moving content and a keyframe every ``gop_s`` seconds (``ultrafast``: no
    B-frames; ``veryfast``: 3 B-frames, as most encoders write)."""
    h, w = size
    base = natural_frames(1, (h, w), seed=0)[0]
    # A 2 s loop of a pan, converted to yuv420p once: real motion to code, cheap to make.
    loop = [av.VideoFrame.from_ndarray(np.roll(base, shift=(i * 7) % w, axis=1), format="rgb24").reformat(
        format="yuv420p") for i in range(2 * fps)]
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=fps, options={"preset": preset})
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    stream.codec_context.gop_size = int(gop_s * fps)
    for i in range(seconds * fps):
        frame = av.VideoFrame.from_ndarray(loop[i % len(loop)].to_ndarray(), format="yuv420p")
        frame.pts = i
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def decode_all_and_pick(path: Path, num_frames: int) -> np.ndarray:
    """The common approach: decode every frame, keep those at uniformly spaced indices."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        wanted = set(uniform(stream.frames, num_frames).tolist())
        frames = [f.to_ndarray(format="rgb24") for i, f in enumerate(container.decode(stream)) if i in wanted]
    return np.stack(frames)


def bench_transform() -> None:
    from transformers.models.videomae.image_processing_pil_videomae import VideoMAEImageProcessorPil

    frames = natural_frames(16, (240, 320), seed=1)
    ours = VideoMAEVideoProcessor(image_mean=IMAGENET_DEFAULT_MEAN, image_std=IMAGENET_DEFAULT_STD)
    ref = VideoMAEImageProcessorPil(image_mean=IMAGENET_DEFAULT_MEAN, image_std=IMAGENET_DEFAULT_STD)
    t_ours = best_of(lambda: ours(frames))
    t_ref = best_of(lambda: ref(list(frames), return_tensors="pt"), repeats=3)
    print(f"[1] transform 16x320x240 -> 16x3x224x224: ours {t_ours * 1e3:.1f} ms, "
          f"transformers PIL {t_ref * 1e3:.1f} ms, ratio {t_ref / t_ours:.1f}x (target >= 5x)")


# name: (seconds, (height, width), fps, GOP seconds, x264 preset)
FILES = {
    "60 s 720p, GOP 2 s, no B-frames": (60, (720, 1280), 25, 2.0, "ultrafast"),
    "60 s 720p, GOP 10 s, B-frames": (60, (720, 1280), 25, 10.0, "veryfast"),
    "30 s 1080p, GOP 2 s, B-frames": (30, (1080, 1920), 30, 2.0, "veryfast"),
    "60 s 480p, GOP 0.5 s, B-frames": (60, (480, 854), 30, 0.5, "veryfast"),
}


def decord_pick(path: Path, num_frames: int):
    import decord

    vr = decord.VideoReader(str(path), num_threads=0)
    return vr.get_batch(uniform(len(vr), num_frames).tolist()).asnumpy()


def bench_decode(tmp: Path, only: list[int] | None = None, keep: bool = False) -> None:
    try:
        import decord  # noqa: F401
        have_decord = True
    except ImportError:
        have_decord = False
        print("    (decord2 is not installed here: pip install decord2 to compare)")
    sampler = ClipSampler("uniform", num_frames=16)
    for i, (name, (secs, size, fps, gop, preset)) in enumerate(FILES.items()):
        if only is not None and i not in only:
            continue
        path = tmp / f"long{i}.mp4"
        if not (keep and path.exists()):
            make_long_video(path, seconds=secs, size=size, fps=fps, gop_s=gop, preset=preset)
        ours = read_clip(path, sampler)[0].numpy()
        ref = decode_all_and_pick(path, 16)
        same = np.abs(ours.astype(int) - ref.astype(int)).max()
        t_ref = best_of(lambda: decode_all_and_pick(path, 16), repeats=1)
        t_ours = best_of(lambda: read_clip(path, sampler), repeats=2)
        t_key = best_of(lambda: read_clip(path, sampler, seek_mode="keyframe"), repeats=2)
        line = (f"[2] {name} ({path.stat().st_size / 1e6:.0f} MB): decode-all {t_ref * 1e3:.0f} ms | exact "
                f"{t_ours * 1e3:.0f} ms = {t_ref / t_ours:.1f}x | keyframe {t_key * 1e3:.0f} ms = {t_ref / t_key:.1f}x")
        if have_decord:
            t_dec = best_of(lambda: decord_pick(path, 16), repeats=2)
            line += f" | decord2 {t_dec * 1e3:.0f} ms = {t_ref / t_dec:.1f}x"
        print(line + f" | exact frames = decode-all's: {same == 0}", flush=True)
        if not keep:
            path.unlink()


# name: (file suffix, encoder, pix_fmt, GOP seconds, VFR, no index, encoder options)
WILD = {
    "WebM VP8, no Cues": (".webm", "libvpx", "yuv420p", 2.0, False, True, {"deadline": "realtime", "cpu-used": "8"}),
    "MKV h264, no Cues, B-frames": (".mkv", "libx264", "yuv420p", 2.0, False, True, {"preset": "veryfast"}),
    "MP4 h264 VFR, B-frames": (".mp4", "libx264", "yuv420p", 2.0, True, False, {"preset": "veryfast"}),
    "MPEG-TS h264, B-frames": (".ts", "libx264", "yuv420p", 2.0, False, False, {"preset": "veryfast"}),
    "MPEG-PS mpeg2video": (".mpg", "mpeg2video", "yuv420p", 0.5, False, False, {"bf": "2"}),
    "MP4 h264 High 4:4:4": (".mp4", "libx264", "yuv444p", 2.0, False, False, {"preset": "veryfast"}),
    "MP4 h264 GOP 10 s, B-frames": (".mp4", "libx264", "yuv420p", 10.0, False, False, {"preset": "veryfast"}),
}


def make_wild_video(path: Path, seconds: float, size: tuple[int, int], fps: int, spec) -> Path:
    """A file of one WILD structure: a panning picture, VFR as jittered frame times, no index by muxing
    to a non-seekable output."""
    _, codec, pix_fmt, gop_s, vfr, no_index, options = spec
    h, w = size
    base = natural_frames(1, (h, w), seed=0)[0]
    loop = [np.roll(base, shift=(i * 7) % w, axis=1) for i in range(2 * fps)]
    rng = np.random.default_rng(0)
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(open(path, "wb")) if no_index else None
        fmt = ("webm" if path.suffix == ".webm" else "matroska") if raw else None
        container = stack.enter_context(av.open(_NoSeek(raw) if raw else str(path), "w", format=fmt))
        stream = container.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        stream.codec_context.gop_size = max(1, int(gop_s * fps))
        if vfr:  # frame i at i/fps plus up to half a frame of jitter, in a fine time base
            stream.time_base = stream.codec_context.time_base = Fraction(1, 1000 * fps)
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(loop[i % len(loop)], format="rgb24")
            frame.pts = i * 1000 + int(rng.integers(0, 500)) if vfr else i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def decode_all_at(path: Path, indices: list[int]) -> np.ndarray:
    """The common approach: decode every frame with frame threads, keep those at ``indices``."""
    wanted = set(indices)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = {i: f.to_ndarray(format="rgb24") for i, f in enumerate(container.decode(stream)) if i in wanted}
    return np.stack([frames[i] for i in indices])


def bench_wild(tmp: Path, small: bool = False) -> None:
    try:
        import decord
    except ImportError:
        decord = None
        print("    (decord2 is not installed here: pip install decord2 to compare)")
    seconds, size, fps = (4, (96, 128), 10) if small else (40, (720, 1280), 25)
    for i, (name, spec) in enumerate(WILD.items()):
        path = tmp / f"wild{i}{spec[0]}"
        try:
            make_wild_video(path, seconds, size, fps, spec)
        except (av.FFmpegError, ValueError) as e:
            print(f"[4] {name}: this PyAV cannot write it ({e})")
            continue
        with VideoReader(path) as reader:
            times = reader.frame_times()
        indices = uniform(times.numel(), 16).tolist()
        targets = times[indices].tolist()
        ours = read_frames_at(path, targets).numpy()
        ref = decode_all_at(path, indices)
        same = ours.shape == ref.shape and bool((ours == ref).all())
        t_ref = best_of(lambda p=path, i=indices: decode_all_at(p, i), repeats=1 if small else 2)
        t_ours = best_of(lambda p=path, t=targets: read_frames_at(p, t), repeats=2 if small else 3)
        line = (f"[4] {name} ({path.stat().st_size / 1e6:.1f} MB, {times.numel()} frames): decode-all "
                f"{t_ref * 1e3:.0f} ms | ours {t_ours * 1e3:.0f} ms = {t_ref / t_ours:.2f}x")
        if decord is not None:
            def pick(p=path, i=indices):
                return decord.VideoReader(str(p), num_threads=0).get_batch(i).asnumpy()
            try:
                dec_same = bool((pick() == ref).all())
                t_dec = best_of(pick, repeats=2 if small else 3)
                line += f" | decord2 {t_dec * 1e3:.0f} ms = {t_ref / t_dec:.2f}x (frames = decode-all's: {dec_same})"
            except Exception as e:  # noqa: BLE001 (decord raises its own DECORDError on some files)
                line += f" | decord2 failed ({type(e).__name__}: {str(e)[:60]})"
        print(line + f" | our frames = decode-all's: {same}", flush=True)
        path.unlink()


def bench_pipeline(tmp: Path) -> None:
    files = [make_long_video(tmp / f"clip{i}.mp4", seconds=10, size=(360, 640), gop_s=2.0) for i in range(4)]
    processor = VideoMAEVideoProcessor()
    ds = VideoClipDataset(files * 4, processor=processor)  # 16 clips of 16x4 frames
    for workers in (0, 1, 2):
        loader = DataLoader(ds, batch_size=4, num_workers=workers, collate_fn=collate_video_clips)
        with stopwatch() as took:
            n = sum(b["pixel_values"].shape[0] for b in loader)
        dt = took[0]
        print(f"[3] pipeline (decode 16x4 from 10 s 640x360 + VideoMAE transform), {workers} workers: "
              f"{n / dt:.1f} clips/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["transform", "decode", "pipeline", "wild"], action="append",
                        help="run only these parts (repeatable; default: all)")
    parser.add_argument("--files", type=int, nargs="+", metavar="N",
                        help="decode: only these files of FILES (0-%d, in order)" % (len(FILES) - 1))
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="decode: make the files in DIR and keep them; reuse those already there")
    parser.add_argument("--small", action="store_true", help="wild: tiny files (a smoke run, no figures)")
    args = parser.parse_args()
    parts = args.only or ["transform", "decode", "pipeline", "wild"]
    set_threads(max(torch.get_num_threads(), 1))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"torch {torch.__version__}, av {av.__version__}, {torch.get_num_threads()} threads, {cores} cores usable")
    if "transform" in parts:
        bench_transform()
    with tempfile.TemporaryDirectory() as d:
        if "decode" in parts:
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
            bench_decode(args.keep or Path(d), args.files, keep=args.keep is not None)
        if "pipeline" in parts:
            bench_pipeline(Path(d))
        if "wild" in parts:
            bench_wild(Path(d), small=args.small)


if __name__ == "__main__":
    main()
