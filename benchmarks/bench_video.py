"""Video front-end benchmark: ratios against the common approach, measured in the same run.

    python benchmarks/bench_video.py                       # everything
    python benchmarks/bench_video.py --only decode --keep /tmp/vbench --files 1 2   # two files, cached

1. transform: 16 decoded 320x240 frames through our VideoMAE processor vs transformers'
   VideoMAEImageProcessorPil (target >= 5x faster).
2. decode: 16 uniformly sampled frames from generated h264 files of users' structure (see FILES:
   720p/1080p, GOP 0.5-10 s, with and without B-frames) with our reader (exact and keyframe
   modes) vs PyAV decoding every frame and picking, and vs decord2 where it installs.
3. pipeline: decode + transform in clips/s through a DataLoader with 0, 1 and 2 workers.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
import torch
from torch.utils.data import DataLoader

from mediaformers.processors.datasets import VideoClipDataset, collate_video_clips
from mediaformers.processors.sampling import ClipSampler, uniform
from mediaformers.processors.video_io import read_clip
from mediaformers.processors.video_processors import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    VideoMAEVideoProcessor,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import bench, set_threads, stopwatch  # noqa: E402
from tests.media import natural_frames  # noqa: E402


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
    parser.add_argument("--only", choices=["transform", "decode", "pipeline"], action="append",
                        help="run only these parts (repeatable; default: all)")
    parser.add_argument("--files", type=int, nargs="+", metavar="N",
                        help="decode: only these files of FILES (0-%d, in order)" % (len(FILES) - 1))
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="decode: make the files in DIR and keep them; reuse those already there")
    args = parser.parse_args()
    parts = args.only or ["transform", "decode", "pipeline"]
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


if __name__ == "__main__":
    main()
