"""Video front-end benchmark: ratios against the common approach, measured in the same run.

    python benchmarks/bench_video.py

1. transform: 16 decoded 320x240 frames through our VideoMAE processor vs transformers'
   VideoMAEImageProcessorPil (target >= 5x faster).
2. decode: 16 uniform frames (sparse) and a 16x4 stride clip (dense) from h264 files made on the
   fly (long GOP 250 with B-frames, GOP 2 s, GOP 0.5 s, 1080p, VFR) with our exact reader vs
   PyAV decoding every frame and picking, and decord2 when installed (target >= 5x on sparse).
3. pipeline: decode + transform in clips/s through a DataLoader with 0, 1 and 2 workers.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
from torch.utils.data import DataLoader

from mediaformers.processors.datasets import VideoClipDataset, collate_video_clips
from mediaformers.processors.sampling import ClipSampler
from mediaformers.processors.video_io import VideoReader, read_clip
from mediaformers.processors.video_processors import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    VideoMAEVideoProcessor,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.media import natural_frames  # noqa: E402


def best_of(fn, repeats: int = 5) -> float:
    """Best wall time (s) of ``repeats`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def make_long_video(path: Path, seconds: int, size: tuple[int, int], fps: int = 30, gop_s: float = 2.0,
                    bframes: bool = False, vfr: bool = False) -> Path:
    """h264 with simple moving content and a keyframe every ``gop_s`` seconds.

    ``bframes`` encodes with preset veryfast (3 B-frames, as phone/web encoders do) instead of
    ultrafast (no B-frames); ``vfr`` drops every third frame (timestamps stay those of 30 fps).
    """
    h, w = size
    base = natural_frames(1, (h, w), seed=0)[0]
    # A 2 s loop of a pan, converted to yuv420p once: real motion to code, cheap to make.
    loop = [av.VideoFrame.from_ndarray(np.roll(base, shift=(i * 7) % w, axis=1), format="rgb24").reformat(
        format="yuv420p") for i in range(2 * fps)]
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=fps, options={"preset": "veryfast" if bframes else "ultrafast"})
    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
    stream.codec_context.gop_size = int(gop_s * fps)
    for i in range(seconds * fps):
        if vfr and i % 3 == 2:
            continue
        frame = av.VideoFrame.from_ndarray(loop[i % len(loop)].to_ndarray(), format="yuv420p")
        frame.pts = i
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def decode_all_and_pick(path: Path, indices: list[int]) -> np.ndarray:
    """The common approach: decode every frame, keep those at ``indices`` (in order)."""
    wanted = set(indices)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        kept = {i: f.to_ndarray(format="rgb24") for i, f in enumerate(container.decode(stream)) if i in wanted}
    return np.stack([kept[i] for i in indices])


def bench_transform() -> None:
    from transformers.models.videomae.image_processing_pil_videomae import VideoMAEImageProcessorPil

    frames = natural_frames(16, (240, 320), seed=1)
    ours = VideoMAEVideoProcessor()
    ref = VideoMAEImageProcessorPil(image_mean=IMAGENET_DEFAULT_MEAN, image_std=IMAGENET_DEFAULT_STD)
    t_ours = best_of(lambda: ours(frames))
    t_ref = best_of(lambda: ref(list(frames), return_tensors="pt"), repeats=3)
    print(f"[1] transform 16x320x240 -> 16x3x224x224: ours {t_ours * 1e3:.1f} ms, "
          f"transformers PIL {t_ref * 1e3:.1f} ms, ratio {t_ref / t_ours:.1f}x (target >= 5x)")


# (name, seconds, (height, width), GOP in seconds, B-frames, VFR): long GOPs as cameras and web
# encoders write them, short GOPs as editing formats, 1080p, and variable frame rate.
DECODE_FILES = [
    ("60 s 720p, GOP 250 (8.3 s), B-frames", 60, (720, 1280), 250 / 30, True, False),
    ("60 s 720p, GOP 2 s, no B-frames", 60, (720, 1280), 2.0, False, False),
    ("60 s 720p, GOP 0.5 s, B-frames", 60, (720, 1280), 0.5, True, False),
    ("20 s 1080p, GOP 250, B-frames", 20, (1080, 1920), 250 / 30, True, False),
    ("60 s 480p VFR (20 fps avg), GOP 2 s, B-frames", 60, (480, 854), 2.0, True, True),
]


def _maybe_decord():
    try:
        import decord  # optional anchor: pip install decord2

        return decord
    except ImportError:
        return None


def bench_decode(tmp: Path) -> None:
    decord = _maybe_decord()
    print("[2] decode: exact frames (ours) vs PyAV decode-all-and-pick"
          + (" vs decord2" if decord else " (decord2 not installed: pip install decord2)")
          + "; torchcodec 0.17 installs but cannot load its FFmpeg libraries with torch 2.13 here: not measured")
    for name, seconds, size, gop_s, bframes, vfr in DECODE_FILES:
        path = make_long_video(tmp / "long.mp4", seconds=seconds, size=size, fps=30, gop_s=gop_s,
                               bframes=bframes, vfr=vfr)
        with VideoReader(path) as reader:
            times = reader.frame_times()
        n = times.numel()
        for label, sampler in [("16 uniform (sparse)", ClipSampler("uniform", num_frames=16)),
                               ("16x4 stride clip (dense)", ClipSampler("stride", num_frames=16, step=4))]:
            indices = sampler(n)[0].tolist()
            ours = read_clip(path, sampler, exact_times=True)[0].numpy()
            ref = decode_all_and_pick(path, indices)
            same = int(np.abs(ours.astype(int) - ref.astype(int)).max())
            t_ours = best_of(lambda: read_clip(path, sampler, exact_times=True), repeats=2)
            t_key = best_of(lambda: read_clip(path, sampler, exact_times=True, seek_mode="keyframe"), repeats=2)
            t_ref = best_of(lambda: decode_all_and_pick(path, indices), repeats=1)
            line = (f"    {name} | {label}: ours {t_ours * 1e3:.0f} ms ({t_ref / t_ours:.1f}x), keyframe mode "
                    f"{t_key * 1e3:.0f} ms ({t_ref / t_key:.1f}x), decode-all {t_ref * 1e3:.0f} ms")
            if decord is not None:
                def run_decord():
                    vr = decord.VideoReader(str(path), ctx=decord.cpu(0))
                    return vr.get_batch(indices).asnumpy()
                t_dec = best_of(run_decord, repeats=2)
                line += f", decord2 {t_dec * 1e3:.0f} ms (ours {t_dec / t_ours:.2f}x of decord2's speed)"
            print(line + f"; max |ours - decode-all| {same}")


def bench_pipeline(tmp: Path) -> None:
    files = [make_long_video(tmp / f"clip{i}.mp4", seconds=10, size=(360, 640), gop_s=2.0) for i in range(4)]
    processor = VideoMAEVideoProcessor()
    ds = VideoClipDataset(files * 4, processor=processor)  # 16 clips of 16x4 frames
    for workers in (0, 1, 2):
        loader = DataLoader(ds, batch_size=4, num_workers=workers, collate_fn=collate_video_clips)
        t = time.perf_counter()
        n = sum(b["pixel_values"].shape[0] for b in loader)
        dt = time.perf_counter() - t
        print(f"[3] pipeline (decode 16x4 from 10 s 640x360 + VideoMAE transform), {workers} workers: "
              f"{n / dt:.1f} clips/s")


def main() -> None:
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    print(f"torch {torch.__version__}, av {av.__version__}, {torch.get_num_threads()} threads")
    bench_transform()
    with tempfile.TemporaryDirectory() as d:
        bench_decode(Path(d))
        bench_pipeline(Path(d))


if __name__ == "__main__":
    main()
