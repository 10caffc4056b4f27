"""A Linear whose bf16 weight oneDNN lays out once, for CPU inference.

``F.linear`` on a bf16 CPU tensor reorders the weight into oneDNN's blocked AMX/AVX512-BF16 layout
on every call; at ViT shapes (77-1568 tokens) that costs 1.2-1.5x the GEMM itself. Packing it once
(as inductor's freezing pass does) gives the same numbers, bit for bit, without the reorder.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def can_pack(device: torch.device | str = "cpu") -> bool:
    """Whether this torch build packs bf16 Linear weights for ``device`` (oneDNN on the CPU)."""
    if torch.device(device).type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    ops = torch.ops.mkldnn
    if not all(hasattr(ops, op) for op in ("_reorder_linear_weight", "_linear_pointwise", "_is_mkldnn_bf16_supported")):
        return False
    return bool(ops._is_mkldnn_bf16_supported())


class PackedLinear(nn.Module):
    """``x @ weight.T + bias`` with ``weight`` packed once; ``bias`` may be several tensors joined
    (attention's q, zero k and v biases).

    The packed copy follows the weights: it is rebuilt when they change in place (``load_state_dict``)
    and skipped under autograd, for other dtypes or devices and while compiling (inductor packs by
    itself), where plain ``F.linear`` runs. ``weight`` and a single ``bias`` stay registered under
    their usual names, so ``state_dict`` and saving are unchanged.
    """

    def __init__(self, weight: nn.Parameter, bias_parts: tuple[torch.Tensor, ...] = ()):
        super().__init__()
        self.weight = weight
        self.bias = bias_parts[0] if len(bias_parts) == 1 and isinstance(bias_parts[0], nn.Parameter) else None
        self._bias_parts = tuple(bias_parts)  # a tuple: registered by their owner, not here
        self._stamp: tuple | None = None
        self._packed: torch.Tensor | None = None
        self._joined_bias: torch.Tensor | None = None

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> PackedLinear:
        return cls(linear.weight, () if linear.bias is None else (linear.bias,))

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    def _current_bias(self) -> torch.Tensor | None:
        parts = self._bias_parts
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _fresh_pack(self) -> torch.Tensor:
        stamp = tuple((t.data_ptr(), t._version, t.dtype) for t in (self.weight, *self._bias_parts))
        if stamp != self._stamp:
            with torch.no_grad():
                self._packed = torch.ops.mkldnn._reorder_linear_weight(self.weight.detach(), None)
                bias = self._current_bias()
                self._joined_bias = None if bias is None else bias.detach().to(self.weight.dtype)
            self._stamp = stamp
        return self._packed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        fast = (x.dtype == w.dtype == torch.bfloat16 and x.device.type == w.device.type == "cpu"
                and not (torch.is_grad_enabled() and (x.requires_grad or w.requires_grad))
                and not torch.compiler.is_compiling())
        if not fast:
            return F.linear(x, w, self._current_bias())
        packed = self._fresh_pack()
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), packed, self._joined_bias, "none", [], "")

    def __getstate__(self):
        # The packed copy is an opaque oneDNN tensor (no storage to copy or pickle): rebuilt on next use.
        state = dict(super().__getstate__())
        state.update(_packed=None, _stamp=None, _joined_bias=None)
        return state

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={bool(self._bias_parts)}, packed bf16"


def pack_linears(model: nn.Module) -> None:
    """Swap every Linear of ``model`` for a PackedLinear (bf16 weights laid out once for oneDNN).

    An attention's fused q/k/v projection (a module with ``qkv_bias_parts``) gets its q/k/v biases folded
    in, and says so (``qkv_bias_folded``), so the attention no longer adds them. Weights and state_dict
    keys are unchanged, so a packed model still saves.
    """
    for module in model.modules():
        if hasattr(module, "qkv_bias_parts") and isinstance(module.qkv, nn.Linear):
            module.qkv = PackedLinear(module.qkv.weight, module.qkv_bias_parts())
            module.qkv_bias_folded = True
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.Linear:
                setattr(module, name, PackedLinear.from_linear(child))
