"""AltCLIP feature throughput, mediaformers vs transformers, measured in one run (CPU).

Image features (get_image_features) and text features (get_text_features) with the same weights in
both models. ``--size large`` is the issue's base: ViT-L/14 at 224 and XLM-R large (24 x 1024) at
77 tokens (BAAI/AltCLIP's shapes); ``--size default`` is AltCLIPConfig() as transformers ships it
(ViT-B/32 + XLM-R large). Runs alternate between the two models so background load hits both alike.
Prints median seconds per call, items/s, the ratio ref/ours (>1: we are faster) and the share of
this machine's fp32 matmul peak.

    python benchmarks/bench_altclip.py [--size large|default] [--image-batches 1 4] [--text-batches 1 8] [--runs 3] [--dtype float32|bfloat16]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import transformers as tf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternate, flops, matmul_peak, row  # noqa: E402

import mediaformers as mf  # noqa: E402

VIT_L14 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
               image_size=224, patch_size=14, projection_dim=768)


def configs(size: str) -> tuple[dict, dict]:
    vision = VIT_L14 if size == "large" else {}
    return {}, vision  # the text tower default is XLM-R large already


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=["large", "default"], default="large")
    p.add_argument("--image-batches", type=int, nargs="+", default=[1, 4])
    p.add_argument("--text-batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--tokens", type=int, default=77)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    args = p.parse_args()
    dtype = getattr(torch, args.dtype)

    torch.manual_seed(0)
    text, vision = configs(args.size)
    ours = mf.AltCLIPModel(mf.AltCLIPConfig(text_config=text, vision_config=vision)).eval()
    ref = tf.AltCLIPModel(tf.AltCLIPConfig(text_config=text, vision_config=vision)).eval()
    # Same weights: our tensors under transformers' in-memory names (the canonical `layers.N` table).
    missing, unexpected = ref.load_state_dict(ours.converter.to_hf(ours.state_dict()), strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    ours, ref = ours.to(dtype), ref.to(dtype)
    vc, tc = ours.config.vision_config, ours.config.text_config
    peak = matmul_peak(dtype)
    print(f"AltCLIP ({args.size}): vision {vc.num_hidden_layers}x{vc.hidden_size} patch {vc.patch_size} at "
          f"{vc.image_size}; text {tc.num_hidden_layers}x{tc.hidden_size} at {args.tokens} tokens; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.dtype}; "
          f"{args.dtype} matmul peak {peak / 1e9:.0f} GFLOP/s")

    for batch in args.image_batches:
        x = torch.randn(batch, 3, vc.image_size, vc.image_size, dtype=dtype)
        a, b = ours.get_image_features(x), ref.get_image_features(pixel_values=x)
        err = (a.pooler_output.float() - b.pooler_output.float()).abs().max().item()
        t = alternate({"ours": lambda: ours.get_image_features(x),
                       "ref": lambda: ref.get_image_features(pixel_values=x)}, repeat=args.runs)
        t_ours, t_ref = t["ours"], t["ref"]
        work = flops(lambda: ours.get_image_features(x))
        print(row(f"image features, batch {batch}", t_ours, t_ref, work, peak)
              + f"   {batch / t_ours:6.2f} vs {batch / t_ref:6.2f} img/s   max|diff| {err:.1e}")

    g = torch.Generator().manual_seed(0)
    for batch in args.text_batches:
        ids = torch.randint(5, tc.vocab_size, (batch, args.tokens), generator=g)
        ids[:, 0], ids[:, -1] = tc.bos_token_id, tc.eos_token_id
        mask = torch.ones_like(ids)
        if batch > 1:  # a realistic batch: the second half padded to half length
            half = args.tokens // 2
            ids[batch // 2:, half - 1], ids[batch // 2:, half:], mask[batch // 2:, half:] = tc.eos_token_id, 1, 0
        a = ours.get_text_features(ids, attention_mask=mask)
        b = ref.get_text_features(input_ids=ids, attention_mask=mask)
        err = (a.pooler_output.float() - b.pooler_output.float()).abs().max().item()
        t = alternate({"ours": lambda: ours.get_text_features(ids, attention_mask=mask),
                       "ref": lambda: ref.get_text_features(input_ids=ids, attention_mask=mask)}, repeat=args.runs)
        t_ours, t_ref = t["ours"], t["ref"]
        work = flops(lambda: ours.get_text_features(ids, attention_mask=mask))
        print(row(f"text features, batch {batch}", t_ours, t_ref, work, peak)
              + f"   {batch / t_ours:6.2f} vs {batch / t_ref:6.2f} txt/s   max|diff| {err:.1e}")


if __name__ == "__main__":
    main()
