"""Multi-head self-attention: one fused qkv projection, SDPA unless weights are asked for.

The attention product itself runs one of two kernels: ``"sdpa"`` (torch's fused
scaled_dot_product_attention) or ``"math"`` (two GEMMs around a softmax). ``"auto"`` times both
once per (device, dtype, query/key length, head size, heads, mask, threads) and keeps the faster;
it is the default for bf16/fp16 on the CPU, where the fused kernel is not always the faster. Set it
per model with ``set_attention(model, mode)`` / ``from_pretrained(attention=...)`` or for the process
with the ``MEDIAFORMERS_ATTENTION`` environment variable.
"""
from __future__ import annotations

import os
import threading
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.module import _global_forward_hooks, _global_forward_pre_hooks

from .packed import PackedLinear, pack_linears

ATTENTION_MODES = ("auto", "sdpa", "math")
ATTENTION_ENV = "MEDIAFORMERS_ATTENTION"
_choices: dict[tuple, str] = {}  # selector key -> "sdpa" | "math", measured once per process
_choices_lock = threading.Lock()


def check_attention_mode(mode: str | None, name: str = "attention") -> str | None:
    """``mode`` if it is one of ATTENTION_MODES (or None), else a ValueError."""
    if mode is not None and mode not in ATTENTION_MODES:
        raise ValueError(f"{name}: expected one of {list(ATTENTION_MODES)}, got {mode!r}")
    return mode


def set_attention(model: nn.Module, mode: str | None) -> nn.Module:
    """Run every attention layer of ``model`` with ``mode`` ("auto", "sdpa", "math"; None: the default)."""
    check_attention_mode(mode)
    for module in model.modules():
        if isinstance(module, Attention):
            module.attention_mode = mode
    return model


def attention_choices() -> dict[tuple, str]:
    """The selector's measured choices so far: (device, dtype, queries, keys, head_dim, heads, masked, threads) -> kernel."""
    with _choices_lock:
        return dict(_choices)


def clear_attention_choices() -> None:
    """Forget the measured choices (the next "auto" call of each shape measures again)."""
    with _choices_lock:
        _choices.clear()


def math_attention(q, k, v, bias=None, dropout: float = 0.0, training: bool = False) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + bias) v as two GEMMs, the same arithmetic as SDPA's math.

    The softmax stays in the input dtype: torch's CPU and CUDA kernels accumulate bf16/fp16 in fp32
    and round once, as the fused kernel does.
    """
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if bias is not None:
        scores = scores.masked_fill(~bias, float("-inf")) if bias.dtype == torch.bool else scores + bias
    return F.dropout(scores.softmax(-1), dropout, training) @ v


def _sdpa(q, k, v, bias=None, dropout: float = 0.0, training: bool = False) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout if training else 0.0)


KERNELS = {"sdpa": _sdpa, "math": math_attention}


def _compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return compiler is not None and compiler.is_compiling()


def _measurable(q: torch.Tensor) -> bool:
    """Real tensors outside tracing/compiling (timing a fake or traced call means nothing)."""
    if q.device.type not in ("cpu", "cuda") or torch.jit.is_tracing() or torch.jit.is_scripting():
        return False
    return not _compiling()


def _time_kernel(fn, args, iters: int, budget: float = 0.02, give_up: float | None = None) -> float:
    """Best-of wall seconds of ``fn(*args)`` after a warm-up: ``iters`` calls, more (up to 50) while
    under ``budget`` seconds, so microsecond kernels are sampled enough to outvote a busy machine;
    stops after one call slower than ``give_up`` (a clear loser need not be timed again)."""
    sync = torch.cuda.synchronize if args[0].is_cuda else (lambda: None)
    fn(*args)  # warm-up (allocations, kernel selection)
    best, spent, calls = float("inf"), 0.0, 0
    while calls < iters or (spent < budget and calls < 50):
        sync()
        t0 = time.perf_counter()
        fn(*args)
        sync()
        took = time.perf_counter() - t0
        best, spent, calls = min(best, took), spent + took, calls + 1
        if give_up is not None and best > give_up:
            break
    return best


def select_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None,
                  iters: int = 3) -> str:
    """The faster of "sdpa" and "math" for these shapes, timed once (best of ``iters`` or more calls each)
    and cached for the process."""
    key = (str(q.device), q.dtype, q.shape[-2], k.shape[-2], q.shape[-1], q.shape[-3], bias is not None,
           torch.get_num_threads())
    choice = _choices.get(key)
    if choice is not None:
        return choice
    if not _measurable(q):
        return "sdpa"
    with torch.no_grad():
        args = (q.detach(), k.detach(), v.detach(), None if bias is None else bias.detach())
        times: dict[str, float] = {}
        for name, fn in KERNELS.items():  # a kernel 1.5x slower than the best so far is out after one call
            times[name] = _time_kernel(fn, args, iters, give_up=1.5 * min(times.values()) if times else None)
    choice = min(times, key=times.get)
    with _choices_lock:
        _choices.setdefault(key, choice)
    return _choices[key]


def resolve_kernel(mode: str | None, q, k, v, bias=None) -> str:
    """The kernel to run: the module's ``mode``, else $MEDIAFORMERS_ATTENTION, else "auto" for bf16/fp16
    on the CPU and "sdpa" elsewhere; "auto" becomes the measured choice."""
    if mode is None:
        mode = check_attention_mode(os.environ.get(ATTENTION_ENV) or None, ATTENTION_ENV)
    if _compiling():  # no timing (and no graph break) inside torch.compile / export: "auto" is "sdpa"
        return mode if mode in KERNELS else "sdpa"
    if mode is None:
        mode = "auto" if q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16) else "sdpa"
    return select_kernel(q, k, v, bias) if mode == "auto" else mode


def attend(mode: str | None, q, k, v, bias=None, dropout: float = 0.0, training: bool = False) -> torch.Tensor:
    """(batch, heads, queries, head_dim) attention output through the kernel ``mode`` resolves to."""
    return KERNELS[resolve_kernel(mode, q, k, v, bias)](q, k, v, bias, dropout, training)


def padding_mask_to_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Turn a key-padding mask (batch, keys), 1/True = attend, into an additive bias (batch, 1, 1, keys).

    Masked keys get the dtype's most negative value, as transformers does, so a fully padded row
    softmaxes to uniform weights instead of NaN.
    """
    if mask.dim() != 2:
        raise ValueError(f"attention mask: expected (batch, keys), got shape {tuple(mask.shape)}")
    keep = mask.to(torch.bool)[:, None, None, :]
    bias = torch.zeros(keep.shape, dtype=dtype, device=mask.device)
    return bias.masked_fill(~keep, torch.finfo(dtype).min)


def head_mask_per_layer(head_mask: torch.Tensor | None, layers: int, heads: int) -> list[torch.Tensor | None]:
    """transformers' head_mask, (heads,) for every layer or (layers, heads), as one (1, heads, 1, 1) factor per layer.

    It multiplies the attention probabilities (1 keeps a head, 0 silences it).
    """
    if head_mask is None:
        return [None] * layers
    if not isinstance(head_mask, torch.Tensor):
        head_mask = torch.as_tensor(head_mask)
    if head_mask.dim() == 1:
        head_mask = head_mask[None].expand(layers, -1)
    if head_mask.dim() != 2 or tuple(head_mask.shape) != (layers, heads):
        raise ValueError(f"head_mask: expected shape ({heads},) or ({layers}, {heads}), got {tuple(head_mask.shape)}")
    return [m.reshape(1, heads, 1, 1) for m in head_mask]


class Attention(nn.Module):
    """Self-attention over (batch, tokens, dim).

    ``qkv_bias`` puts a bias on q, k and v; ``qv_bias`` is VideoMAE's variant: learnable q and v
    biases with a fixed zero k bias (as in BEiT/timm), concatenated once per forward.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        qkv_bias: bool = True,
        qv_bias: bool = False,
        proj_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"hidden size {dim} is not a multiple of the number of heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias and not qv_bias)
        if qv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
            self.register_buffer("k_bias", torch.zeros(dim), persistent=False)
        else:
            self.q_bias = self.v_bias = None
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.proj_drop = nn.Dropout(proj_drop)
        self.pruned_heads: set[int] = set()  # original indices of removed heads, as transformers keeps them
        self.attention_mode: str | None = None  # "auto" | "sdpa" | "math"; None: see resolve_kernel
        # The dtype the attention product runs in when not the projections' (int8 models: bf16 where native).
        self.compute_dtype: torch.dtype | None = None
        # Whether calling ``qkv`` already adds the q/k/v biases (set by our packing and int8 code, which fold
        # them in). Never inferred from the module's type: a wrapper (PEFT's LoRA, torch's quantize_dynamic,
        # pruning) of the unfolded Linear still needs them added.
        self.qkv_bias_folded = False

    def qkv_bias_parts(self) -> tuple[torch.Tensor, ...]:
        """The q/k/v projection's bias as stored: (q, zero k, v) for VideoMAE's variant, else (bias,) or ()."""
        if self.q_bias is not None:
            return (self.q_bias, self.k_bias, self.v_bias)
        return () if self.qkv.bias is None else (self.qkv.bias,)

    def _qkv_bias(self) -> torch.Tensor | None:
        if self.q_bias is None:
            return self.qkv.bias
        return torch.cat(self.qkv_bias_parts())

    def project_qkv(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, tokens, dim) -> (batch, tokens, 3 * heads * head_dim): q, k, v with their biases.

        A bare Linear runs as one GEMM with the biases joined; anything else (LoRA, pruning's weight hook,
        quantisation) is called as a module, and the biases kept outside it (VideoMAE's q_bias/v_bias)
        are added unless our packing/int8 code folded them in.
        """
        if bare(self.qkv):
            return F.linear(x, self.qkv.weight, self._qkv_bias())
        qkv = self.qkv(x)
        if self.q_bias is not None and not self.qkv_bias_folded:
            qkv = qkv + self._qkv_bias().to(qkv.dtype)
        return qkv

    def prune_heads(self, heads) -> None:
        """Remove heads (indices as in the unpruned layer; already removed ones are ignored), as
        transformers' prune_heads: the q/k/v rows and the output columns of those heads go."""
        alive = [h for h in range(self.num_heads + len(self.pruned_heads)) if h not in self.pruned_heads]
        drop = {int(h) for h in heads} - self.pruned_heads
        if not drop:
            return
        if not drop <= set(alive):
            raise ValueError(f"heads: expected indices in [0, {len(alive) + len(self.pruned_heads)}), got {sorted(drop)}")
        packed = isinstance(self.qkv, PackedLinear)
        if not (packed or isinstance(self.qkv, nn.Linear)) or not isinstance(self.proj, (nn.Linear, PackedLinear)):
            raise NotImplementedError(
                f"prune_heads: this attention's projections are {type(self.qkv).__name__}/{type(self.proj).__name__} "
                "(int8 from apply_precision); prune the fp32 model, then apply the precision")
        keep = torch.tensor([i for i, h in enumerate(alive) if h not in drop], device=self.qkv.weight.device)
        inner = self.num_heads * self.head_dim
        cols = (keep[:, None] * self.head_dim + torch.arange(self.head_dim, device=keep.device)).flatten()
        rows = torch.cat([cols + part * inner for part in range(3)])
        self.qkv = _pruned(self.qkv, rows, dim=0)
        self.proj = _pruned(self.proj, cols, dim=1)
        for name in ("q_bias", "v_bias"):
            if getattr(self, name) is not None:
                setattr(self, name, nn.Parameter(getattr(self, name).detach()[cols].clone()))
        if self.q_bias is not None:
            self.k_bias = self.k_bias[cols].clone()
        if packed:  # bf16 packed for oneDNN: pack the pruned weights again, as apply_precision does
            pack_linears(self)
        self.num_heads = len(keep)
        self.pruned_heads |= drop

    def forward(
        self,
        x: torch.Tensor,
        attn_bias: torch.Tensor | None = None,
        need_weights: bool = False,
        num_queries: int | None = None,
        head_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (batch, tokens, dim); attn_bias: additive, broadcastable to (batch, heads, tokens, tokens).

        Returns the output (batch, tokens, dim) and, only when ``need_weights``, the attention
        probabilities (batch, heads, tokens, tokens). With ``num_queries`` only the first
        ``num_queries`` tokens attend (keys and values are still all tokens): the output is
        (batch, num_queries, dim), for heads that read a few leading tokens only. ``head_mask``
        (broadcastable to (batch, heads, 1, 1)) multiplies the attention probabilities, as transformers'
        head_mask does; it takes the explicit path, since SDPA has no hook between softmax and values.
        """
        b, n, _ = x.shape
        c = self.num_heads * self.head_dim  # the width of q/k/v: the model's width unless heads were pruned
        m = n if num_queries is None else num_queries
        if num_queries is None or not bare(self.qkv):
            qkv = self.project_qkv(x).view(b, n, 3, self.num_heads, self.head_dim)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
            q = q[:, :, :m]
        else:  # only the leading tokens attend: their queries alone, from the q rows
            (wq, wkv), (bq, bkv) = self.qkv.weight.split((c, 2 * c)), (None, None)
            bias = self._qkv_bias()
            if bias is not None:
                bq, bkv = bias.split((c, 2 * c))
            q = F.linear(x[:, :m], wq, bq).view(b, m, self.num_heads, self.head_dim).transpose(1, 2)
            kv = F.linear(x, wkv, bkv).view(b, n, 2, self.num_heads, self.head_dim)
            k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
        drop = self.attn_drop if self.training else 0.0
        weights = None
        out_dtype = q.dtype
        if self.compute_dtype is not None and q.dtype != self.compute_dtype:
            q, k, v = q.to(self.compute_dtype), k.to(self.compute_dtype), v.to(self.compute_dtype)
            if attn_bias is not None and attn_bias.is_floating_point():  # fp32's min would round to -inf
                attn_bias = attn_bias.clamp_min(torch.finfo(self.compute_dtype).min).to(self.compute_dtype)
        if need_weights or head_mask is not None:
            scores = (q * self.scale) @ k.transpose(-2, -1)
            if attn_bias is not None:
                scores = scores + attn_bias
            weights = scores.softmax(dim=-1, dtype=torch.float32).to(q.dtype)
            probs = F.dropout(weights, drop, self.training)
            if head_mask is not None:
                head_mask = head_mask.to(probs.dtype)
                probs, weights = probs * head_mask, weights * head_mask
            out = probs @ v
            weights = weights.to(out_dtype) if need_weights else None
        else:
            out = attend(self.attention_mode, q, k, v, attn_bias, drop, self.training)
        out = out.transpose(1, 2).reshape(b, m, c).to(out_dtype)
        return self.proj_drop(self.proj(out)), weights


def bare(module: nn.Module, cls: type[nn.Module] = nn.Linear) -> bool:
    """``module`` is a ``cls`` itself (not a subclass, as parametrize and FSDP make) with no hook (pruning
    recomputes ``weight`` in one): reading its weights is what calling it does. Anything else is called."""
    return (type(module) is cls and not module._forward_pre_hooks and not module._forward_hooks
            and not _global_forward_pre_hooks and not _global_forward_hooks)


def _pruned(layer: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A copy of ``layer`` keeping ``index`` along the weight's ``dim`` (0: outputs, 1: inputs)."""
    weight = layer.weight.detach().index_select(dim, index).clone()
    bias = layer.bias
    if bias is not None and dim == 0:
        bias = bias.detach()[index].clone()
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device, dtype=weight.dtype)
    new.weight = nn.Parameter(weight, requires_grad=layer.weight.requires_grad)
    if bias is not None:
        new.bias = nn.Parameter(bias.detach().clone(), requires_grad=layer.bias.requires_grad)
    return new
