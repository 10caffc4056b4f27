"""Inference precision for any model: fp32, bf16, int8, or auto (the fastest the hardware keeps accurate).

- bf16: weights and activations in bfloat16, which runs on the CPU's AVX512-BF16/AMX units and on
  GPU tensor cores (flash SDPA). Floating inputs are cast on the way in, so callers keep passing fp32.
  On the CPU the Linear weights are packed once for oneDNN (layers/packed.py) instead of per call.
- int8: dynamic quantisation of the encoder blocks' Linear layers, q/k/v included (int8 weights per
  channel, int8 activations scaled per call) through torch's own quantised kernels (oneDNN on x86,
  using VNNI/AMX where present); layer norms, softmax, embeddings and heads stay fp32, the attention
  product runs in bf16 where the CPU has it (fp32 elsewhere). CPU only.
- auto: bf16 where the device has native bf16 arithmetic, else fp32.

Agreement with fp32 is measured (tests/test_precision.py, benchmarks/bench_precision.py), not assumed.
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from .layers.attention import Attention
from .layers.blocks import Block, PostNormBlock
from .layers.packed import can_pack, pack_linears

PRECISIONS = ("fp32", "bf16", "int8", "auto")


def has_native_bf16(device: torch.device | str | None = None) -> bool:
    """True when ``device`` does bf16 arithmetic in hardware (CPU: AVX512-BF16 or AMX; GPU: Ampere+)."""
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(cpu, name, lambda: False)() for name in checks)
    return False


def resolve_precision(precision: str | None, device: torch.device | str | None = None) -> str:
    """Validate ``precision`` and turn ``auto``/None into a concrete one for ``device``."""
    if precision is None:
        return "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {list(PRECISIONS)}, got {precision!r}")
    device = torch.device(device or "cpu")
    if precision == "auto":
        return "bf16" if has_native_bf16(device) else "fp32"
    if precision == "int8" and device.type != "cpu":
        raise ValueError(f"precision: int8 runs on the CPU only (dynamic quantisation), got device {device}")
    if precision == "bf16" and device.type == "cpu" and not has_native_bf16(device):
        warnings.warn("precision: bf16 asked for, but this CPU has no native bf16 (AVX512-BF16 or AMX): it runs "
                      "emulated, usually slower than fp32; precision='auto' picks fp32 here", stacklevel=2)
    return precision


def _cast_inputs(module: nn.Module, args: tuple, kwargs: dict[str, Any]):
    dtype = module.precision_dtype

    def cast(v):
        return v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() and v.dtype != dtype else v

    return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}


def _attention_layers(model: nn.Module) -> list[Attention]:
    return [m for m in model.modules() if isinstance(m, Attention)]


_pack_linears = pack_linears  # the old name, kept for callers


def _quantise_blocks(model: nn.Module) -> int:
    """Swap the Linear layers inside transformer blocks for dynamic int8 ones; returns how many.

    Attention's fused q/k/v projection is quantised with its q/k/v biases folded in (the block then
    calls it as one layer). The attention product runs in bf16 where the CPU has native bf16 (fp32
    elsewhere): with int8 projections its inputs already carry int8's error, and fp32 attention
    would dominate the time on long sequences (ViViT's 3137 tokens).
    """
    engines = torch.backends.quantized.supported_engines
    if "onednn" in engines:  # oneDNN's int8 GEMM uses VNNI/AMX; measured ~2x fbgemm's here
        torch.backends.quantized.engine = "onednn"
    attention_dtype = torch.bfloat16 if has_native_bf16("cpu") else None
    for attn in _attention_layers(model):
        if isinstance(attn.qkv, nn.Linear) and attn.q_bias is not None:
            folded = nn.Linear(attn.qkv.in_features, attn.qkv.out_features, device=attn.qkv.weight.device)
            with torch.no_grad():
                folded.weight.copy_(attn.qkv.weight)
                folded.bias.copy_(torch.cat(attn.qkv_bias_parts()))
            attn.qkv = folded
            attn.qkv_bias_folded = True
        attn.compute_dtype = attention_dtype
    targets: dict[str, type] = {}
    for name, module in model.named_modules():
        if isinstance(module, (Block, PostNormBlock)):
            for sub, child in module.named_modules():
                if isinstance(child, nn.Linear):
                    targets[f"{name}.{sub}"] = nn.Linear
    if not targets:
        return 0
    with warnings.catch_warnings():  # torch marks its eager quantisation API deprecated in favour of torchao
        warnings.simplefilter("ignore")
        torch.ao.quantization.quantize_dynamic(model, set(targets), dtype=torch.qint8, inplace=True)
    return len(targets)


def apply_precision(model: nn.Module, precision: str | None, device: torch.device | str | None = None) -> nn.Module:
    """Put ``model`` (in eval mode, on ``device``) into ``precision``, in place; returns it.

    ``model.precision`` records the concrete choice. Only for inference: an int8 model cannot be
    trained or saved back to a transformers checkpoint.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    chosen = resolve_precision(precision, device)
    if chosen == "bf16":
        model.to(torch.bfloat16)
        model.precision_dtype = torch.bfloat16
        if can_pack(device):
            pack_linears(model)
        if not getattr(model, "_precision_hook", None):
            model._precision_hook = model.register_forward_pre_hook(_cast_inputs, with_kwargs=True)
    elif chosen == "int8":
        if next(model.parameters()).dtype != torch.float32:
            raise ValueError(f"precision: int8 quantises an fp32 model, got one in {next(model.parameters()).dtype}")
        model.eval()
        if _quantise_blocks(model) == 0:
            raise ValueError(f"precision: int8 found no transformer block Linear layers in {type(model).__name__}")
    model.precision = chosen
    return model
