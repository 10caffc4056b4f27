"""Timelines and live streams: real-time factor, live latency and peak memory (CPU).

- Real-time factor (seconds of media per second of compute) of ``Timeline.iter_records`` over a long file:
  AST (base shape, 527 labels) in bf16 on 10 s windows with 50% overlap; VideoMAE-S (384 x 12, 400 labels)
  in bf16 at one 16-frame clip every 2 s.
- Live: the same media as MPEG-TS, sent over a loopback TCP socket at real-time pace; latency per window
  (from the arrival of the media completing it to its record) p50/p95.
- Peak memory above the loaded model (peak RSS of a child process minus its RSS after loading and one
  window) on a long audio file and a long 720p video: each measured in its own process.

Weights are random (timing and memory do not depend on them). Media are generated once into --work.

    python benchmarks/bench_timeline.py [--minutes 30] [--audio-hours 2] [--video-hours 1] [--live-seconds 120]
    python benchmarks/bench_timeline.py --smoke      # tiny models and seconds of media: checks the script runs
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import torch

import mediaformers as mf

AST_BASE = dict(num_labels=527)  # ASTConfig() is the AudioSet base: 12 x 768, 1024 frames (10.24 s)
VIDEOMAE_S = dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                  num_frames=16, image_size=224, num_labels=400)
TINY = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=48)


def make_models(work: Path, smoke: bool) -> dict[str, Path]:
    out = {"ast": work / ("ast-tiny" if smoke else "ast-base"), "videomae": work / ("vmae-tiny" if smoke else "vmae-s")}
    torch.manual_seed(0)
    if not out["ast"].exists():
        cfg = dict(TINY, max_length=1024, num_labels=5) if smoke else AST_BASE
        mf.ASTForAudioClassification(mf.ASTConfig(**cfg)).save_pretrained(out["ast"])
    if not out["videomae"].exists():
        cfg = dict(TINY, num_frames=16, image_size=64, num_labels=5) if smoke else VIDEOMAE_S
        mf.VideoMAEForVideoClassification(mf.VideoMAEConfig(**cfg)).save_pretrained(out["videomae"])
    return out


def make_audio(path: Path, seconds: float, rate: int = 16000) -> Path:
    """Tones and noise changing every 20 s, written a minute at a time (never whole in memory)."""
    if path.exists():
        return path
    rng = np.random.default_rng(0)
    part = path.with_name("part-" + path.name)
    with sf.SoundFile(part, "w", rate, 1, "PCM_16") as f:
        done = 0
        while done < seconds:
            n = int(min(60, seconds - done) * rate)
            t = (np.arange(n) + done * rate) / rate
            tone = 0.3 * np.sin(2 * np.pi * (300 + 100 * (int(done) // 20 % 5)) * t)
            f.write((tone + 0.05 * rng.standard_normal(n)).astype(np.float32))
            done += n / rate
    os.replace(part, path)
    return path


def make_video(path: Path, seconds: float, size: tuple[int, int], fps: int = 25) -> Path:
    """A moving gradient, H.264 ultrafast (the encoder, not the decoder, is what takes time here)."""
    if path.exists():
        return path
    h, w = size
    part = path.with_name("part-" + path.name)  # renamed when complete: an interrupted run leaves no bad file
    c = av.open(str(part), "w")
    s = c.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
    s.width, s.height, s.pix_fmt = w, h, "yuv420p"
    base = np.add.outer(np.arange(h) // 4, np.arange(w) // 4).astype(np.int64)
    for i in range(int(seconds * fps)):
        frame = np.stack([base + i, base * 2 - i, np.full_like(base, i // fps)], -1).astype(np.uint8)
        for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    os.replace(part, path)
    return path


def to_ts(src: Path, dst: Path) -> Path:
    """Remux into MPEG-TS (what a live sender would send)."""
    if dst.exists():
        return dst
    with av.open(str(src)) as i, av.open(str(dst), "w", format="mpegts") as o:
        if i.streams.video:
            streams = {i.streams.video[0]: o.add_stream_from_template(i.streams.video[0])}
        else:  # PCM WAV is not TS material: AAC, as a live audio feed would be
            a = o.add_stream("aac", rate=16000)
            a.layout = "mono"
            for frame in i.decode(audio=0):
                frame.pts = None
                for p in a.encode(frame):
                    o.mux(p)
            for p in a.encode():
                o.mux(p)
            return dst
        for packet in i.demux(*streams):
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream]
            o.mux(packet)
    return dst


PRECISION = "bf16"  # --precision


def timeline(model: Path, **kw):
    return mf.pipeline(model=str(model), timeline=True, precision=PRECISION, batch_size=4, **kw)


def rtf(model: Path, media: Path, seconds: float, **kw) -> dict:
    tl = timeline(model, **kw)
    next(iter(tl.iter_records(media)))  # warm-up: first call costs
    t0 = time.perf_counter()
    windows = sum(r["kind"] == "window" for r in tl.iter_records(media))
    took = time.perf_counter() - t0
    return {"media_s": round(seconds, 1), "windows": windows, "compute_s": round(took, 2),
            "real_time_factor": round(seconds / took, 2)}


def live(model: Path, ts: Path, seconds: float, **kw) -> dict:
    data = ts.read_bytes()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def send():  # real-time pace: the bytes of one second every second
        conn, _ = srv.accept()
        with conn:
            per = max(188, int(len(data) / seconds / 10) // 188 * 188)
            t0 = time.monotonic()
            for k, i in enumerate(range(0, len(data), per)):
                conn.sendall(data[i:i + per])
                time.sleep(max(0.0, t0 + (k + 1) * 0.1 - time.monotonic()))
        srv.close()

    threading.Thread(target=send, daemon=True).start()
    from mediaformers.processors.live import LiveOptions
    from mediaformers.tasks.stream import stream_records

    tl = timeline(model, **kw)
    lat = [r["latency"] for r in stream_records(tl, f"tcp://127.0.0.1:{srv.getsockname()[1]}",
                                                LiveOptions(read_timeout=5, reconnect=0), log=lambda line: None)
           if r["kind"] == "window"]
    if not lat:
        return {"windows": 0}
    q = statistics.quantiles(lat, n=20) if len(lat) > 1 else [lat[0]] * 19
    return {"windows": len(lat), "latency_p50_s": round(statistics.median(lat), 3), "latency_p95_s": round(q[18], 3)}


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_child(model: str, media: str, kw: str) -> None:
    """In a child process: peak RSS over a whole file minus RSS after loading and one window."""
    tl = timeline(Path(model), **json.loads(kw))
    it = tl.iter_records(media)
    next(it)
    base = rss_mb()
    windows = 1 + sum(r["kind"] == "window" for r in it)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"windows": windows, "after_load_mb": round(base), "peak_mb": round(peak),
                      "peak_above_model_mb": round(peak - base)}))


def memory(model: Path, media: Path, **kw) -> dict:
    argv = [sys.executable, __file__, "--memory-child", str(model), str(media), json.dumps(kw), PRECISION]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="bench-timeline", help="folder for the models and generated media (reused)")
    p.add_argument("--minutes", type=float, default=30.0, help="length of the real-time-factor files")
    p.add_argument("--audio-hours", type=float, default=2.0, help="the long audio file of the memory check")
    p.add_argument("--video-hours", type=float, default=1.0, help="the long 720p video of the memory check")
    p.add_argument("--live-seconds", type=float, default=120.0, help="length of the live loopback streams")
    p.add_argument("--smoke", action="store_true", help="tiny models, seconds of media: checks the script")
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp32", "int8", "auto"],
                   help="the issue's figures are bf16 (needs AVX512-BF16/AMX to be fast)")
    p.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    global PRECISION
    PRECISION = args.precision
    if args.memory_child:
        PRECISION = args.memory_child[3]
        return memory_child(*args.memory_child[:3])
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        args.minutes, args.audio_hours, args.video_hours, args.live_seconds = 0.25, 0.01, 0.005, 6
    size = (64, 96) if args.smoke else (720, 1280)
    models = make_models(work, args.smoke)
    print(json.dumps({"cpu": _cpu(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "smoke": args.smoke, "precision": PRECISION}), flush=True)
    secs = args.minutes * 60
    audio = make_audio(work / f"audio-{secs:g}s.wav", secs)
    video = make_video(work / f"video-{secs:g}s-{size[0]}p.mp4", secs, size)
    video_kw = {"stride": 2.0}
    print(json.dumps({"case": "rtf", "model": f"ast-{PRECISION}", **rtf(models["ast"], audio, secs)}), flush=True)
    vmae = rtf(models["videomae"], video, secs, **video_kw)
    print(json.dumps({"case": "rtf", "model": f"videomae-s-{PRECISION}", **vmae}), flush=True)
    live_s = args.live_seconds
    a_live = to_ts(make_audio(work / f"audio-{live_s:g}s.wav", live_s), work / f"audio-{live_s:g}s.ts")
    v_live = to_ts(make_video(work / f"video-{live_s:g}s-{size[0]}p.mp4", live_s, size),
                   work / f"video-{live_s:g}s-{size[0]}p.ts")
    print(json.dumps({"case": "live", "model": f"ast-{PRECISION}", **live(models["ast"], a_live, live_s)}), flush=True)
    print(json.dumps({"case": "live", "model": f"videomae-s-{PRECISION}", **live(models["videomae"], v_live, live_s,
                                                                        **video_kw)}), flush=True)
    long_audio = make_audio(work / f"audio-{args.audio_hours:g}h.wav", args.audio_hours * 3600)
    long_video = make_video(work / f"video-{args.video_hours:g}h-{size[0]}p.mp4", args.video_hours * 3600, size)
    print(json.dumps({"case": "memory", "model": f"ast-{PRECISION}", "media_h": args.audio_hours,
                      **memory(models["ast"], long_audio)}), flush=True)
    print(json.dumps({"case": "memory", "model": f"videomae-s-{PRECISION}", "media_h": args.video_hours,
                      **memory(models["videomae"], long_video, **video_kw)}), flush=True)


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
