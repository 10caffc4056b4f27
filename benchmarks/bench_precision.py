"""Inference precision: speed and agreement, ours (fp32, bf16, int8) vs transformers (fp32, bf16), one run.

    python benchmarks/bench_precision.py [--quick] [--models videomae vivit ast altclip-image altclip-text]
        [--batch 1] [--agree 8] [--device cpu|cuda] [--compile]

Real base sizes, random weights shared by both libraries (each reference model is saved with
transformers and loaded by us): VideoMAE-B 16x224 (K400 head), ViViT-B 32x224, AST 1024x128
(AudioSet head), AltCLIP ViT-L/14 image tower and XLM-R large text tower (77 tokens).

Speed: median seconds per forward, every variant called in turn each round; ratios are reference time / ours (>1: we are faster) and the
share of this machine's measured matmul peak for the dtype the arithmetic runs in.
Agreement (ours at the precision vs ours fp32, on ``--agree`` generated inputs): top-1 agreement,
max |delta prob| (classifiers), minimum cosine of the logits / embeddings.
"""
from __future__ import annotations

import argparse
import copy
import platform
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers as tf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternate, flops, matmul_peak, set_threads  # noqa: E402

import mediaformers as mf  # noqa: E402
from mediaformers.precision import apply_precision, has_native_bf16  # noqa: E402

VIT_L14 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
               image_size=224, patch_size=14)


def cases():
    """name -> (reference model factory, our class, input maker (batch, generator) -> kwargs, output field)."""
    video16 = lambda b, g: dict(pixel_values=torch.randn(b, 16, 3, 224, 224, generator=g))  # noqa: E731
    video32 = lambda b, g: dict(pixel_values=torch.randn(b, 32, 3, 224, 224, generator=g))  # noqa: E731
    return {
        "videomae": (lambda: tf.VideoMAEForVideoClassification(tf.VideoMAEConfig(num_labels=400)),
                     mf.VideoMAEForVideoClassification, video16, "logits"),
        "vivit": (lambda: tf.VivitForVideoClassification(tf.VivitConfig(num_labels=400)),
                  mf.VivitForVideoClassification, video32, "logits"),
        "ast": (lambda: tf.ASTForAudioClassification(tf.ASTConfig(num_labels=527)), mf.ASTForAudioClassification,
                lambda b, g: dict(input_values=torch.randn(b, 1024, 128, generator=g)), "logits"),
        "altclip-image": (lambda: tf.AltCLIPVisionModel(tf.AltCLIPVisionConfig(**VIT_L14)), mf.AltCLIPVisionModel,
                          lambda b, g: dict(pixel_values=torch.randn(b, 3, 224, 224, generator=g)), "pooler_output"),
        "altclip-text": (lambda: tf.AltCLIPTextModel(tf.AltCLIPTextConfig()), mf.AltCLIPTextModel,
                         lambda b, g: dict(input_ids=torch.randint(5, 250000, (b, 77), generator=g)),
                         "pooler_output"),
    }


def peak(dtype: torch.dtype, device: torch.device) -> float:
    return matmul_peak(dtype, n=4096 if device.type == "cuda" else 2048, device=device)


def _out(model, inputs, field):
    return getattr(model(**inputs), field).float()


def agreement(ours32, low, make, field, n: int, device) -> str:
    g = torch.Generator().manual_seed(1)
    top1, dprob, cos = [], [], []
    with torch.inference_mode():
        for _ in range(n):
            x = {k: v.to(device) for k, v in make(1, g).items()}
            a, b = _out(ours32, x, field), _out(low, x, field)
            cos.append(F.cosine_similarity(a.flatten(1), b.flatten(1)).min().item())
            if field == "logits":
                top1.append((a.argmax(-1) == b.argmax(-1)).float().mean().item())
                dprob.append((a.softmax(-1) - b.softmax(-1)).abs().max().item())
    s = f"cos min {min(cos):.5f}"
    if top1:
        s += f"  top-1 agree {sum(top1) / len(top1):6.1%}  max|dprob| {max(dprob):.2e}"
    return s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(cases()))
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--agree", type=int, default=8, help="generated inputs for the agreement figures")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--compile", action="store_true", help="also time torch.compile of our bf16 model")
    p.add_argument("--quick", action="store_true", help="two models, fewer repeats, 3 agreement inputs")
    args = p.parse_args()
    if args.quick:
        args.models, args.repeat, args.agree = ["videomae", "ast"], 2, 3
    set_threads(args.threads)
    dev = torch.device(args.device)
    bf16 = has_native_bf16(dev)
    peak32, peak16 = peak(torch.float32, dev), peak(torch.bfloat16, dev)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else (platform.processor() or platform.machine())
    print(f"{name} | torch {torch.__version__} | transformers {tf.__version__} | "
          f"{torch.get_num_threads()} threads | native bf16: {bf16} | matmul peak fp32 {peak32 / 1e9:.0f}, "
          f"bf16 {peak16 / 1e9:.0f} GFLOP/s | batch {args.batch}")
    table = cases()
    for name in args.models:
        ref_factory, ours_cls, make, field = table[name]
        with tempfile.TemporaryDirectory() as tmp:
            ref = ref_factory().eval()
            ref.save_pretrained(tmp)
            ours = ours_cls.from_pretrained(tmp).to(dev).eval()
        ref = ref.to(dev)
        x = {k: v.to(dev) for k, v in make(args.batch, torch.Generator().manual_seed(0)).items()}
        work = flops(lambda: ours(**x))
        variants = {"bf16": apply_precision(copy.deepcopy(ours), "bf16", dev)}
        if dev.type == "cpu":
            variants["int8"] = apply_precision(copy.deepcopy(ours), "int8", dev)
        ref16 = copy.deepcopy(ref).to(torch.bfloat16)
        x16 = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in x.items()}
        fns = {"ref fp32": lambda: ref(**x), "ours fp32": lambda: ours(**x)}
        fns.update({f"ours {prec}": (lambda m=model: m(**x)) for prec, model in variants.items()})
        if args.compile:
            compiled = torch.compile(variants["bf16"])
            fns["ours bf16+compile"] = lambda: compiled(**x)
        fns["ref bf16"] = lambda: ref16(**x16)
        # Called in turn, round after round: a machine whose speed drifts slows every variant alike.
        t = alternate(fns, repeat=args.repeat, warmup=2 if args.compile else 1)
        print(f"\n{name}: {work / 1e9:.0f} GFLOP per forward (matmuls; fused attention kernels are not counted)")
        for key, sec in t.items():
            top = peak16 if "bf16" in key else peak32
            line = (f"  {key:<18} {sec * 1e3:9.1f} ms   vs ref fp32 {t['ref fp32'] / sec:5.2f}x   "
                    f"vs ref bf16 {t['ref bf16'] / sec:5.2f}x   {work / sec / top:6.1%} of {('bf16' if 'bf16' in key else 'fp32')} peak")
            print(line, flush=True)
        for prec, model in variants.items():
            print(f"  agreement {prec:<5} {agreement(ours, model, make, field, args.agree, dev)}", flush=True)


if __name__ == "__main__":
    main()
