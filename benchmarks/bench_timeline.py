"""Timelines and live streams: real-time factor, live latency and peak memory (CPU).

- Real-time factor (seconds of media per second of compute) of ``Timeline.iter_records`` over a long file:
  AST (base shape, 527 labels) in bf16 on 10 s windows with 50% overlap; VideoMAE-S (384 x 12, 400 labels)
  in bf16 at one 16-frame clip every 2 s.
- Live: the same media as MPEG-TS, sent over a loopback TCP socket at real-time pace; latency per window
  p50/p95 as the records give it (from the decode of the media completing it to its record) and behind the
  sender (from when the sender's real-time clock passed the window's end to its record: this one also
  counts media queued in the socket while the model is slower than real time).
- Peak memory above the loaded model (peak RSS of a child process minus its RSS after loading and one
  window) on a long audio file and a long 720p video: each measured in its own process.

- The reference, timed in the same run: the same windows through transformers' own ASTFeatureExtractor +
  ASTForAudioClassification and VideoMAEImageProcessor + VideoMAEForVideoClassification (the same weights
  and preprocessor_config.json, read from the same folder), in a plain loop of ``--batch`` windows, media
  decoded by a plain PyAV loop (transformers has no long-media reader); decode, preprocessing and model
  seconds are printed apart. The two sides alternate batch by batch (background load hits both);
  ``--max-windows`` runs the first N windows only (a sample) when a full pass would take too long.

Weights are random (timing and memory do not depend on them). Media are generated once into --work:
audio 16 kHz mono PCM WAV; video H.264 (libx264 veryfast, CRF 23, yuv420p, keyframe every 2 s, 25 fps), a
20 s piece encoded once and repeated by remuxing (encoding an hour of 720p would take an hour).
Every figure's line carries the 1-minute load average (the machine may be shared).

    python benchmarks/bench_timeline.py [--minutes 30] [--audio-hours 2] [--video-hours 1] [--live-seconds 120]
    python benchmarks/bench_timeline.py --smoke      # tiny models and seconds of media: checks the script runs
    python benchmarks/bench_timeline.py --cases rtf --precision int8 --max-windows 40   # a part, a sample
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import itertools
import math

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
    _reference_configs(out, 64 if smoke else 224)
    return out


def _reference_configs(models: dict[str, Path], size: int) -> None:
    """preprocessor_config.json as transformers writes it (VideoMAE: ImageNet mean/std, as MCG-NJU's
    checkpoints ship), so both sides preprocess from the same file."""
    if (models["videomae"] / "preprocessor_config.json").exists():
        return
    from transformers import ASTFeatureExtractor, VideoMAEImageProcessor

    ASTFeatureExtractor().save_pretrained(models["ast"])
    VideoMAEImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                           image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]
                           ).save_pretrained(models["videomae"])


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


PIECE_S = 20  # seconds encoded; longer files repeat it (10 GOPs)
FPS, GOP = 25, 50
X264 = {"preset": "veryfast", "crf": "23", "x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0"}


def make_video(path: Path, seconds: float, size: tuple[int, int], fps: int = FPS) -> Path:
    """A moving gradient with a moving textured block, H.264 (see X264); files longer than PIECE_S repeat an
    encoded piece by remuxing with shifted timestamps (each piece starts on a keyframe)."""
    if path.exists():
        return path
    piece = path.with_name(f"piece-{min(seconds, PIECE_S):g}s-{size[0]}p.mp4")
    if not piece.exists():
        _encode(piece, min(seconds, PIECE_S), size, fps)
    part = path.with_name("part-" + path.name)  # renamed when complete: an interrupted run leaves no bad file
    if seconds <= PIECE_S:
        shutil.copyfile(piece, part)
    else:
        with av.open(str(piece)) as i, av.open(str(part), "w") as o:
            src = i.streams.video[0]
            dst = o.add_stream_from_template(src)
            per = int(round(PIECE_S / src.time_base))  # one piece in the stream's time base
            for k in range(int(math.ceil(seconds / PIECE_S))):
                i.seek(0)
                for packet in i.demux(src):
                    if packet.dts is None:
                        continue
                    if packet.pts is not None and (packet.pts + k * per) * src.time_base >= seconds:
                        continue
                    packet.pts = None if packet.pts is None else packet.pts + k * per
                    packet.dts += k * per
                    packet.stream = dst
                    o.mux(packet)
    os.replace(part, path)
    return path


def _encode(path: Path, seconds: float, size: tuple[int, int], fps: int) -> None:
    h, w = size
    part = path.with_name("part-" + path.name)
    c = av.open(str(part), "w")
    s = c.add_stream("libx264", rate=fps, options=X264)
    s.width, s.height, s.pix_fmt = w, h, "yuv420p"
    base = np.add.outer(np.arange(h) // 4, np.arange(w) // 4).astype(np.int64)
    rng = np.random.default_rng(0)
    tex = rng.integers(0, 255, (h // 4, w // 4, 3), dtype=np.uint8)  # detail for the encoder to spend bits on
    for i in range(int(seconds * fps)):
        frame = np.stack([base + i, base * 2 - i, np.full_like(base, i // fps)], -1).astype(np.uint8)
        y, x = (i * 3) % (h - h // 4), (i * 7) % (w - w // 4)
        frame[y:y + h // 4, x:x + w // 4] = tex
        for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    os.replace(part, path)


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


PRECISION = "fp32"  # --precision
BATCH = 4  # --batch: windows per model call, ours and the reference's


def timeline(model: Path, **kw):
    return mf.pipeline(model=str(model), timeline=True, precision=PRECISION, batch_size=BATCH, **kw)


def load() -> dict:
    return {"load_1min": round(os.getloadavg()[0], 2)}


# Each side is a generator: its first next() loads and warms up (untimed), every later one runs one batch of
# windows and returns how many (0: done). paired() alternates the two batch by batch, so a machine whose
# background load drifts slows both sides alike.

def ours_batches(model: Path, media: Path, limit: int | None, parts: dict[str, float], **kw) -> Iterator[int]:
    tl = timeline(model, **kw)
    next(iter(tl.iter_records(media)))  # warm-up: first call costs
    windows = (r for r in tl.iter_records(media) if r["kind"] == "window")
    yield 0
    n = 0
    while limit is None or n < limit:
        got = sum(1 for _ in itertools.islice(windows, BATCH))
        n += got
        yield got
        if not got:
            return


def ref_audio(model: Path, media: Path, limit: int | None, parts: dict[str, float]) -> Iterator[int]:
    """transformers, the plain way: decode the file (PyAV), slice the same windows (10.24 s every 5.12 s),
    ASTFeatureExtractor + ASTForAudioClassification on ``BATCH`` windows at a time. The whole file's decode
    is timed once and counted pro rata (its share for the windows run)."""
    from transformers import ASTFeatureExtractor, ASTForAudioClassification

    fe = ASTFeatureExtractor.from_pretrained(model)
    net = ASTForAudioClassification.from_pretrained(model).eval()
    rate = fe.sampling_rate
    t0 = time.perf_counter()
    with av.open(str(media)) as c:
        resample = av.AudioResampler(format="flt", layout="mono", rate=rate)
        wave = np.concatenate([f.to_ndarray()[0] for fr in c.decode(audio=0) for f in resample.resample(fr)]
                              + [f.to_ndarray()[0] for f in resample.resample(None)])
    decode_all = time.perf_counter() - t0
    window, hop = (fe.max_length - 1) * 160 + 400, fe.max_length // 2 * 160  # as our Timeline's geometry
    starts = list(range(0, max(1, len(wave) - window + 1), hop))
    total = len(starts)
    starts = starts[:limit] if limit else starts

    def batch(chunk: list[int]) -> None:
        t = time.perf_counter()
        feats = fe([wave[i:i + window] for i in chunk], sampling_rate=rate, return_tensors="pt")
        t1 = time.perf_counter()
        with torch.no_grad():
            net(**feats).logits.sigmoid()
        parts["features"] = parts.get("features", 0.0) + t1 - t
        parts["model"] = parts.get("model", 0.0) + time.perf_counter() - t1

    batch(starts[:BATCH])  # warm-up, as ours
    parts.clear()
    yield 0
    for k in range(0, len(starts), BATCH):
        batch(starts[k:k + BATCH])
        parts["decode"] = decode_all * min(k + BATCH, len(starts)) / total
        yield len(starts[k:k + BATCH])
    yield 0


def ref_video(model: Path, media: Path, limit: int | None, parts: dict[str, float], stride: float) -> Iterator[int]:
    """transformers, the plain way: a forward PyAV decode, the frames of each clip (16 frames, step
    round(stride * fps / 16), one clip per ``stride`` s: ours) converted to RGB, VideoMAEImageProcessor +
    VideoMAEForVideoClassification on ``BATCH`` clips at a time."""
    from transformers import VideoMAEForVideoClassification, VideoMAEImageProcessor

    proc = VideoMAEImageProcessor.from_pretrained(model)
    net = VideoMAEForVideoClassification.from_pretrained(model).eval()
    n = net.config.num_frames

    def batch(clips: list[list[np.ndarray]]) -> None:
        t = time.perf_counter()
        x = proc(clips, return_tensors="pt")
        t1 = time.perf_counter()
        with torch.no_grad():
            net(**x).logits.softmax(-1)
        parts["preprocess"] = parts.get("preprocess", 0.0) + t1 - t
        parts["model"] = parts.get("model", 0.0) + time.perf_counter() - t1

    def clips() -> Iterator[list[np.ndarray]]:
        with av.open(str(media)) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            fps = float(s.average_rate)
            per, step = int(round(stride * fps)), max(1, round(stride * fps / n))
            wanted = {k * step for k in range(n)}
            clip: list[np.ndarray] = []
            for i, frame in enumerate(c.decode(s)):
                if i % per in wanted:
                    clip.append(frame.to_ndarray(format="rgb24"))
                    if len(clip) == n:
                        yield clip
                        clip = []

    source = clips()

    def decoded() -> list[list[np.ndarray]]:
        t = time.perf_counter()
        out = list(itertools.islice(source, BATCH))
        parts["decode"] = parts.get("decode", 0.0) + time.perf_counter() - t
        return out

    batch(decoded())  # warm-up, as ours (not counted: both sides then start again from 0)
    source = clips()
    parts.clear()
    yield 0
    done = 0
    while limit is None or done < limit:
        got = decoded()
        if got:
            batch(got)
        done += len(got)
        yield len(got)
        if not got:
            return


def paired(sides: dict[str, Iterator[int]], advance: float, seconds: float,
           untimed: dict[str, dict[str, float]] | None = None) -> dict[str, dict]:
    """Run the sides' batches in turn; each side's windows, seconds and real-time factor. ``untimed[side]["decode"]``:
    seconds a side spent outside its batches (the reference's whole-file audio decode, its share) to add."""
    for side in sides.values():
        next(side)
    took = {k: 0.0 for k in sides}
    windows = {k: 0 for k in sides}
    running = dict(sides)
    while running:
        for k, side in list(running.items()):
            t = time.perf_counter()
            got = next(side, 0)
            took[k] += time.perf_counter() - t
            windows[k] += got
            if not got:
                del running[k]
    for k, parts in (untimed or {}).items():
        if k in took:
            took[k] += parts.get("decode", 0.0)
    out = {}
    for k in sides:
        covered = min(windows[k] * advance, seconds)
        out[k] = {"media_s": round(covered, 1), "windows": windows[k], "compute_s": round(took[k], 2),
                  "real_time_factor": round(covered / took[k], 3)}
    return out


def live(model: Path, ts: Path, seconds: float, **kw) -> dict:
    data = ts.read_bytes()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    sent: list[float] = []  # when the first byte went out: the sender's media clock starts there

    def send():  # real-time pace: the bytes of one second every second
        conn, _ = srv.accept()
        with conn:
            per = max(188, int(len(data) / seconds / 10) // 188 * 188)
            t0 = time.monotonic()
            sent.append(t0)
            for i in range(0, len(data), per):  # paced by bytes sent (a whole number of TS packets per send
                conn.sendall(data[i:i + per])     # is not the tenth of a second's bytes: a fixed 0.1 s step ran slow)
                time.sleep(max(0.0, t0 + min(i + per, len(data)) / len(data) * seconds - time.monotonic()))
        srv.close()

    threading.Thread(target=send, daemon=True).start()
    from mediaformers.processors.live import LiveOptions
    from mediaformers.tasks.stream import stream_records

    tl = timeline(model, **kw)
    lat, lag = [], []
    for r in stream_records(tl, f"tcp://127.0.0.1:{srv.getsockname()[1]}", LiveOptions(read_timeout=5, reconnect=0),
                            log=lambda line: None):
        if r["kind"] == "window":
            lat.append(r["latency"])  # from the decode of the window's last media to its record
            lag.append(time.monotonic() - sent[0] - r["end"])  # from when the sender's clock reached its end
    if not lat:
        return {"windows": 0}

    def p(xs: list[float], q: int) -> float:
        return round(statistics.quantiles(xs, n=100, method="inclusive")[q - 1] if len(xs) > 1 else xs[0], 3)
    return {"windows": len(lat), "latency_p50_s": p(lat, 50), "latency_p95_s": p(lat, 95),
            "behind_sender_p50_s": p(lag, 50), "behind_sender_p95_s": p(lag, 95),
            "behind_sender_last_s": round(lag[-1], 3)}


def _status_mb(field: str) -> float:
    """VmRSS / VmHWM (peak) of this process from /proc (ru_maxrss would carry the parent's peak over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_child(model: str, media: str, kw: str, limit: str) -> None:
    """In a child process: peak RSS over a whole file (or its first ``limit`` windows) minus RSS after
    loading the model (so the windows' decode, features and activations count, the weights do not)."""
    tl = timeline(Path(model), **json.loads(kw))
    loaded = _status_mb("VmRSS")
    it = (r for r in tl.iter_records(media) if r["kind"] == "window")
    next(it)
    first = _status_mb("VmRSS")
    windows = 1 + sum(1 for _ in itertools.islice(it, int(limit) - 1 if int(limit) else None))
    peak = _status_mb("VmHWM")
    print(json.dumps({"windows": windows, "after_load_mb": round(loaded), "after_first_window_mb": round(first),
                      "end_mb": round(_status_mb("VmRSS")), "peak_mb": round(peak),
                      "peak_above_model_mb": round(peak - loaded)}))


def memory(model: Path, media: Path, limit: int | None = None, **kw) -> dict:
    argv = [sys.executable, __file__, "--memory-child", str(model), str(media), json.dumps(kw), PRECISION,
            str(limit or 0), str(BATCH)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return {**json.loads(out.stdout.strip().splitlines()[-1]), **load()}


def emit(**record) -> None:
    print(json.dumps(record), flush=True)


CASES = ("rtf", "ref", "live", "memory", "memory-tiny")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="bench-timeline", help="folder for the models and generated media (reused)")
    p.add_argument("--minutes", type=float, default=30.0, help="length of the real-time-factor files")
    p.add_argument("--audio-hours", type=float, default=2.0, help="the long audio file of the memory check")
    p.add_argument("--video-hours", type=float, default=1.0, help="the long 720p video of the memory check")
    p.add_argument("--live-seconds", type=float, default=120.0, help="length of the live loopback streams")
    p.add_argument("--smoke", action="store_true", help="tiny models, seconds of media: checks the script")
    p.add_argument("--precision", default="auto", choices=["bf16", "fp32", "int8", "auto"],
                   help="ours (the reference is transformers' fp32); the issue's targets are bf16, fast only "
                        "with AVX512-BF16/AMX (auto picks bf16 there, fp32 elsewhere)")
    p.add_argument("--batch", type=int, default=4, help="windows per model call (both sides)")
    p.add_argument("--cases", default="rtf,ref,live,memory",
                   help=f"comma-separated, of {','.join(CASES)} (memory-tiny: tiny models over the long files, "
                        "the decode and windowing's memory without hours of model compute)")
    p.add_argument("--models", default="ast,videomae", help="comma-separated, of ast,videomae")
    p.add_argument("--max-windows", type=int,
                   help="rtf/ref: the first N windows only (a sample; both sides run the same windows)")
    p.add_argument("--memory-windows", type=int, help="memory with the real models: the first N windows only")
    p.add_argument("--memory-child", nargs=6, help=argparse.SUPPRESS)
    args = p.parse_args()
    global PRECISION, BATCH
    PRECISION, BATCH = args.precision, args.batch
    if args.memory_child:
        *rest, PRECISION, limit, batch = args.memory_child
        BATCH = int(batch)
        return memory_child(*rest, limit)
    if PRECISION == "auto":
        from mediaformers.precision import resolve_precision
        PRECISION = resolve_precision("auto", torch.device("cpu"))
    cases, which = set(args.cases.split(",")), set(args.models.split(","))
    if cases - set(CASES) or which - {"ast", "videomae"}:
        p.error(f"--cases: expected some of {CASES}; --models: some of ast,videomae; got {args.cases} / {args.models}")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        args.minutes, args.audio_hours, args.video_hours, args.live_seconds = 0.25, 0.01, 0.005, 6
    size = (64, 96) if args.smoke else (720, 1280)
    models = make_models(work, args.smoke)
    emit(cpu=_cpu(), threads=torch.get_num_threads(), torch=torch.__version__, pyav=av.__version__,
         ffmpeg=av.library_versions["libavcodec"], smoke=args.smoke, precision=PRECISION, batch=BATCH,
         video=f"H.264 {X264} {FPS} fps {size[1]}x{size[0]}", audio="PCM16 WAV 16 kHz mono", **load())
    secs = args.minutes * 60
    audio = make_audio(work / f"audio-{secs:g}s.wav", secs) if "ast" in which else None
    video = make_video(work / f"video-{secs:g}s-{size[0]}p.mp4", secs, size) if "videomae" in which else None
    stride = 2.0
    if video is not None:
        emit(case="media", file=video.name, mb=round(video.stat().st_size / 2**20, 1),
             mbit_s=round(video.stat().st_size * 8 / secs / 1e6, 2))
    if cases & {"rtf", "ref"}:
        for name, media in (("ast", audio), ("videomae", video)):
            if media is None:
                continue
            ours_parts: dict[str, float] = {}
            ref_parts: dict[str, float] = {}
            kw = {} if name == "ast" else {"stride": stride}
            sides = {"ours": ours_batches(models[name], media, args.max_windows, ours_parts, **kw)}
            if "ref" in cases:
                sides["ref"] = (ref_audio(models[name], media, args.max_windows, ref_parts) if name == "ast"
                                else ref_video(models[name], media, args.max_windows, ref_parts, stride))
            r = paired(sides, 5.12 if name == "ast" else stride, secs, {"ref": ref_parts} if name == "ast" else None)
            label = ("ast" if name == "ast" else "videomae") + ("-tiny" if args.smoke else "")
            label = {"ast": "ast-base", "videomae": "videomae-s"}.get(label, label)
            emit(case="rtf", model=f"{label}-{PRECISION}", **r["ours"], **load())
            if "ref" in r:
                emit(case="ref", model=f"{label}-transformers-fp32", **r["ref"],
                     **{f"{k}_s": round(v, 2) for k, v in ref_parts.items()},
                     ours_vs_ref=round(r["ours"]["real_time_factor"] / r["ref"]["real_time_factor"], 3), **load())
    live_s = args.live_seconds
    if "live" in cases and audio is not None:
        a_live = to_ts(make_audio(work / f"audio-{live_s:g}s.wav", live_s), work / f"audio-{live_s:g}s.ts")
        emit(case="live", model=f"ast{'-tiny' if args.smoke else '-base'}-{PRECISION}", media_s=live_s,
             **live(models["ast"], a_live, live_s), **load())
    if "live" in cases and video is not None:
        v_live = to_ts(make_video(work / f"video-{live_s:g}s-{size[0]}p.mp4", live_s, size),
                       work / f"video-{live_s:g}s-{size[0]}p.ts")
        emit(case="live", model=f"videomae{'-tiny' if args.smoke else '-s'}-{PRECISION}", media_s=live_s,
             **live(models["videomae"], v_live, live_s, stride=stride), **load())
    if cases & {"memory", "memory-tiny"}:
        long_audio = make_audio(work / f"audio-{args.audio_hours:g}h.wav", args.audio_hours * 3600)
        long_video = make_video(work / f"video-{args.video_hours:g}h-{size[0]}p.mp4", args.video_hours * 3600, size)
        runs = []
        if "memory" in cases:
            runs.append((models, args.memory_windows, "tiny" if args.smoke else "real"))
        if "memory-tiny" in cases:
            runs.append((make_models(work, True), None, "tiny"))
        for chosen, limit, kind in runs:
            if "ast" in which:
                emit(case="memory", model=f"ast-{kind}-{PRECISION}", media_h=args.audio_hours,
                     **memory(chosen["ast"], long_audio, limit))
            if "videomae" in which:
                emit(case="memory", model=f"videomae-{kind}-{PRECISION}", media_h=args.video_hours,
                     **memory(chosen["videomae"], long_video, limit, stride=stride))


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
