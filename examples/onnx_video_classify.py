"""Classify a video with an exported ONNX model: onnxruntime, numpy and PyAV only — no torch, no mediaformers.

    mediaformers export CHECKPOINT -o exported/ --format onnx
    python examples/onnx_video_classify.py exported/ clip.mp4 [--top-k 5]

Preprocessing follows the preprocessor_config.json that the export copied beside the model
(transformers' VideoMAEImageProcessor / VivitImageProcessor fields): uniformly spaced frames over
the whole video, resize of the shortest edge, center crop, rescale, normalise; (1, frames, 3, H, W).
Resizing uses FFmpeg's bilinear scaler, so inputs differ from mediaformers' antialiased resize by a
few pixel levels (logits agree closely; see tests/test_export.py).
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


def sample_frames(path: str, num_frames: int) -> list[av.VideoFrame]:
    """``num_frames`` frames at uniformly spaced indices over the decoded video (every frame decoded once)."""
    with av.open(path, metadata_errors="ignore") as container:
        frames = list(container.decode(video=0))
    if not frames:
        raise ValueError(f"{path}: expected a video with frames, got none")
    idx = np.linspace(0, len(frames) - 1, num_frames).round().astype(int)
    return [frames[i] for i in idx]


def preprocess(frames: list[av.VideoFrame], cfg: dict) -> np.ndarray:
    """Frames -> float32 (1, frames, 3, crop_h, crop_w), as the processor file says."""
    short = cfg.get("size", {}).get("shortest_edge", 224)
    crop = cfg.get("crop_size", {"height": 224, "width": 224})
    out = []
    for f in frames:
        w, h = f.width, f.height
        scale = short / min(w, h)
        rgb = f.reformat(width=round(w * scale), height=round(h * scale), format="rgb24",
                         interpolation="BILINEAR").to_ndarray()
        top, left = (rgb.shape[0] - crop["height"]) // 2, (rgb.shape[1] - crop["width"]) // 2
        out.append(rgb[top:top + crop["height"], left:left + crop["width"]])
    x = np.stack(out).astype(np.float32) * cfg.get("rescale_factor", 1 / 255)
    mean = np.asarray(cfg.get("image_mean", [0.5, 0.5, 0.5]), np.float32)
    std = np.asarray(cfg.get("image_std", [0.5, 0.5, 0.5]), np.float32)
    x = (x - mean) / std
    return x.transpose(0, 3, 1, 2)[None]  # (1, frames, 3, H, W)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("exported", type=Path, help="folder written by `mediaformers export --format onnx`")
    p.add_argument("video")
    p.add_argument("--top-k", type=int, default=5)
    args = p.parse_args()
    meta = json.loads((args.exported / "export.json").read_text())
    config = json.loads((args.exported / "config.json").read_text())
    processor = json.loads((args.exported / "preprocessor_config.json").read_text())
    session = ort.InferenceSession(str(args.exported / meta["file"]), providers=["CPUExecutionProvider"])
    num_frames = session.get_inputs()[0].shape[1]
    x = preprocess(sample_frames(args.video, num_frames), processor)
    logits = session.run(["logits"], {meta["inputs"][0]: x})[0][0]
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    labels = config.get("id2label", {})
    for i in np.argsort(-probs)[: args.top_k]:
        print(json.dumps({"label": labels.get(str(i), str(i)), "score": round(float(probs[i]), 6)}))


if __name__ == "__main__":
    main()
