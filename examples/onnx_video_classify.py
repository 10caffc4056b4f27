"""Classify a video with an exported ONNX model: onnxruntime, numpy and PyAV only — no torch, no mediaformers.

    mediaformers export CHECKPOINT -o exported/ --format onnx
    python examples/onnx_video_classify.py exported/ clip.mp4 [--top-k 5]

Preprocessing reproduces `mediaformers classify` from the preprocessor_config.json that the export
copied beside the model (transformers' VideoMAEImageProcessor / VivitImageProcessor fields), so the
scores are classify's (tests/test_export.py checks them to 1e-4):
- frames: ``frame_sampling`` ``uniform`` (spread over the video), ``stride`` (``num_frames`` frames
  ``frame_step`` apart, centred) or ``segments`` (the centre of equal segments); a short video repeats
  its last frame. Indices count the decoded frames, which is classify's count on constant-frame-rate
  files (classify also turns frames upright by the display matrix, which this example does not).
- resize of the shortest edge (or to height x width) with torch's antialiased uint8 resampling
  (PIL's filters in int16 fixed point, bit-exact), centre crop, rescale (+ ViViT's offset), normalise.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import av
import numpy as np

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # onnxruntime >= 1.32 phones home from an import-time thread
import onnxruntime as ort  # noqa: E402


def frame_indices(total: int, cfg: dict, num_frames: int) -> np.ndarray:
    """The indices mediaformers' ClipSampler picks for evaluation (no randomness) among ``total`` frames."""
    strategy, step = cfg.get("frame_sampling", "uniform"), cfg.get("frame_step", 1)
    if strategy == "uniform":
        return np.linspace(0, total - 1, num_frames, dtype=np.float64).round().astype(np.int64)
    if strategy == "stride":
        start = max(total - ((num_frames - 1) * step + 1), 0) // 2
        return np.minimum(start + np.arange(num_frames) * step, total - 1)
    if strategy == "segments":
        length = total / num_frames
        centres = np.arange(num_frames, dtype=np.float64) * length + length / 2
        return np.clip(np.floor(centres).astype(np.int64), 0, total - 1)
    raise ValueError(f"frame_sampling: expected uniform, stride or segments, got {strategy!r}")


def sample_frames(path: str, cfg: dict, num_frames: int) -> np.ndarray:
    """uint8 ``(num_frames, H, W, 3)``: the sampled frames of the decoded video (every frame decoded once)."""
    with av.open(path, metadata_errors="ignore") as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    if not frames:
        raise ValueError(f"{path}: expected a video with frames, got none")
    return np.stack([frames[i] for i in frame_indices(len(frames), cfg, num_frames)])


def _filter(resample: int):
    if resample == 2:  # bilinear: support 1
        return 1.0, lambda x: np.maximum(0.0, 1.0 - np.abs(x))
    a = -0.5  # bicubic (Keys, as PIL and torch)

    def cubic(x):
        x = np.abs(x)
        return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                        np.where(x < 2, ((a * x - 5 * a) * x + 8 * a) * x - 4 * a, 0.0))
    return 2.0, cubic


def _resample(x: np.ndarray, axis: int, size: int, resample: int) -> np.ndarray:
    """One antialiased pass along ``axis`` of uint8 ``x``, as torch's uint8 kernel computes it: float64
    weights normalised per output pixel, scaled to int16 with the most bits the largest weight allows."""
    n = x.shape[axis]
    if resample == 0:  # nearest, PIL's accumulated float64 step
        step, pos, index = n / size, n / size * 0.5, []
        for _ in range(size):
            index.append(min(int(pos), n - 1))
            pos += step
        return np.take(x, index, axis=axis)
    half, f = _filter(resample)
    scale = n / size
    support, inv = (half * scale, 1.0 / scale) if scale >= 1.0 else (half, 1.0)
    centre = scale * (np.arange(size) + 0.5)
    lo = np.maximum((centre - support + 0.5).astype(np.int64), 0)
    hi = np.minimum((centre + support + 0.5).astype(np.int64), n)
    taps = np.arange(int((hi - lo).max()))
    w = np.where(taps < (hi - lo)[:, None], f((taps + lo[:, None] - centre[:, None] + 0.5) * inv), 0.0)
    total = w.sum(1, keepdims=True)
    w = np.divide(w, total, out=np.zeros_like(w), where=total != 0)
    bits = 0
    while bits < 22 and int(0.5 + w.max() * (1 << (bits + 1))) < (1 << 15):
        bits += 1
    wi = np.trunc(w * (1 << bits) + np.where(w < 0, -0.5, 0.5)).astype(np.int64)
    src = np.take(x.astype(np.int64), np.minimum(lo[:, None] + taps, n - 1), axis=axis)  # (..., size, taps, ...)
    shape = [1] * src.ndim
    shape[axis], shape[axis + 1] = wi.shape
    acc = (src * wi.reshape(shape)).sum(axis + 1) + (1 << (bits - 1))
    return np.clip(acc >> bits, 0, 255).astype(np.uint8)


def preprocess(frames: np.ndarray, cfg: dict) -> np.ndarray:
    """uint8 ``(T, H, W, 3)`` -> float32 ``(1, T, 3, crop_h, crop_w)``, as the processor file says."""
    x, (h, w) = frames, frames.shape[1:3]
    size, resample = cfg.get("size", {"shortest_edge": 224}), cfg.get("resample", 2)
    if cfg.get("do_resize", True):
        if "shortest_edge" in size:  # the long side truncated, transformers' rule
            s = size["shortest_edge"]
            out = (s, int(s * w / h)) if h <= w else (int(s * h / w), s)
        else:
            out = (size["height"], size["width"])
        if out[1] != w:
            x = _resample(x, 2, out[1], resample)
        if out[0] != h:
            x = _resample(x, 1, out[0], resample)
    if cfg.get("do_center_crop", True):
        ch, cw = cfg.get("crop_size", {}).get("height", 224), cfg.get("crop_size", {}).get("width", 224)
        ph, pw = max(ch - x.shape[1], 0), max(cw - x.shape[2], 0)  # too small: zero-pad, ceil(pad / 2) before
        x = np.pad(x, ((0, 0), ((ph + 1) // 2, ph // 2), ((pw + 1) // 2, pw // 2), (0, 0)))
        top, left = (x.shape[1] - ch) // 2, (x.shape[2] - cw) // 2
        x = x[:, top:top + ch, left:left + cw]
    scale = np.float64(cfg.get("rescale_factor", 1 / 255) if cfg.get("do_rescale", True) else 1.0)
    bias = np.float64(-1.0 if cfg.get("offset") else 0.0)
    if cfg.get("do_normalize", True):
        mean = np.asarray(cfg.get("image_mean", [0.5] * 3), np.float64)
        std = np.asarray(cfg.get("image_std", [0.5] * 3), np.float64)
        scale, bias = scale / std, (bias - mean) / std
    scale, bias = np.broadcast_to(scale, 3), np.broadcast_to(bias, 3)
    y = x.astype(np.float32) * scale.astype(np.float32) + bias.astype(np.float32)  # one multiply-add, as classify
    return y.transpose(0, 3, 1, 2)[None]  # (1, frames, 3, H, W)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("exported", type=Path, help="folder written by `mediaformers export --format onnx`")
    p.add_argument("video")
    p.add_argument("--top-k", type=int, default=5)
    args = p.parse_args()
    meta = json.loads((args.exported / "export.json").read_text())
    config = json.loads((args.exported / "config.json").read_text())
    processor_file = args.exported / "preprocessor_config.json"
    processor = json.loads(processor_file.read_text()) if processor_file.exists() else {}
    session = ort.InferenceSession(str(args.exported / meta["file"]), providers=["CPUExecutionProvider"])
    batch, num_frames = session.get_inputs()[0].shape[:2]
    x = preprocess(sample_frames(args.video, processor, num_frames), processor)
    if isinstance(batch, int) and batch > 1:  # exported with a fixed batch (export's --batch): fill it
        x = np.repeat(x, batch, axis=0)
    logits = session.run(["logits"], {meta["inputs"][0]: x})[0][0].astype(np.float64)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    labels = config.get("id2label", {})
    for i in np.argsort(-probs)[: args.top_k]:
        print(json.dumps({"label": labels.get(str(i), str(i)), "score": round(float(probs[i]), 6)}))


if __name__ == "__main__":
    main()
