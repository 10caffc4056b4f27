"""Exported models: onnxruntime (CPU) vs eager PyTorch throughput, same weights, same inputs, one run.

    python benchmarks/bench_export.py [--models videomae ast altclip-image] [--batch 1] [--threads 2]

Real base sizes with random weights (VideoMAE-B 16x224, AST 1024x128, AltCLIP ViT-L/14 image tower);
each model is exported with `mediaformers.export.export_model` (verified on the spot), then timed:
median seconds per forward, ratio eager / onnxruntime (>1: the ONNX file is faster).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench  # noqa: E402

import mediaformers as mf  # noqa: E402
from mediaformers.export import export_model  # noqa: E402

CASES = {
    "videomae": (lambda: mf.VideoMAEForVideoClassification(mf.VideoMAEConfig(num_labels=400)),
                 lambda b: {"pixel_values": torch.randn(b, 16, 3, 224, 224)}, "model"),
    "ast": (lambda: mf.ASTForAudioClassification(mf.ASTConfig(num_labels=527)),
            lambda b: {"input_values": torch.randn(b, 1024, 128)}, "model"),
    "altclip-image": (lambda: mf.AltCLIPModel(mf.AltCLIPConfig(vision_config=dict(
        hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=224,
        patch_size=14))), lambda b: {"pixel_values": torch.randn(b, 3, 224, 224),
                                     "input_ids": torch.randint(5, 1000, (b, 8))}, "image"),
}


def main() -> None:
    from mediaformers.export import quiet_onnxruntime

    quiet_onnxruntime()
    import onnxruntime as ort

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(CASES))
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, {args.threads} threads, batch {args.batch}")
    for name in args.models:
        factory, make, part = CASES[name]
        model = factory().eval()
        inputs = make(args.batch)
        with tempfile.TemporaryDirectory() as d:
            result = export_model(model, d, inputs, format="onnx", part=part)
            session = ort.InferenceSession(str(result.path), opts, providers=["CPUExecutionProvider"])
            feed = {n: inputs[n].numpy() for n in result.inputs}
            graph_inputs = {n: inputs[n] for n in result.inputs}
            call = model.get_image_features if part == "image" else model
            t_ort = bench(lambda: session.run(None, feed), repeat=3)
            t_eager = bench(lambda: call(**graph_inputs), repeat=3)
        print(f"{name:<14} eager {t_eager * 1e3:8.1f} ms   onnxruntime {t_ort * 1e3:8.1f} ms   ratio {t_eager / t_ort:5.2f}x"
              f"   (export check: max |diff| {result.max_abs_diff:.1e})", flush=True)


if __name__ == "__main__":
    main()
