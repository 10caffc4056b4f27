"""Where a classifier looked: attention rollout (Abnar & Zuidema, 2020) over the patch grid of one input.

Per layer the heads' attention is averaged, the identity added (the residual path) and rows renormalised;
the layers' matrices are multiplied from the first to the last. A model that reads a class token (AST's two
leading tokens) is explained by that token's row; a mean-pooled one (VideoMAE) by the mean of all rows. The
patch grid comes from the model's patch embedding, so no family is named here.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ..layers.embeddings import PatchEmbed
from .embedding import model_inputs
from .pipelines import _scores


def attention_rollout(attentions: Sequence[torch.Tensor]) -> torch.Tensor:
    """``(batch, heads, tokens, tokens)`` per layer -> ``(batch, tokens, tokens)``: how much each output token
    draws on each input token through all the layers."""
    if not attentions:
        raise ValueError("attentions: expected one (batch, heads, tokens, tokens) tensor per layer, got none")
    out: torch.Tensor | None = None
    for a in attentions:
        a = a.float().mean(1)
        a = a + torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        a = a / a.sum(-1, keepdim=True)
        out = a if out is None else a @ out
    assert out is not None  # at least one layer, checked above
    return out


def patch_heat(attentions: Sequence[torch.Tensor], grid: Sequence[int]) -> torch.Tensor:
    """The first sample's rollout onto its patches, ``grid``-shaped and scaled to [0, 1]: the row of the class
    token where tokens precede the patches (they are the pooled ones), else the mean of all rows."""
    rollout = attention_rollout(attentions)[0]
    patches = math.prod(grid)
    special = rollout.shape[-1] - patches
    if special < 0:
        raise ValueError(f"explain: {rollout.shape[-1]} tokens attend, fewer than the {patches} patches of the grid")
    heat = (rollout[0, special:] if special else rollout.mean(0)).reshape(tuple(grid))
    return (heat - heat.min()) / (heat.max() - heat.min() + 1e-12)


class _Patches:
    """A forward pre-hook on the model's first patch embedding: what entered it, and its patch grid."""

    def __init__(self, model: torch.nn.Module) -> None:
        embed = next((m for m in model.modules() if isinstance(m, PatchEmbed)), None)
        if embed is None:
            raise ValueError(f"explain: {type(model).__name__} has no patch embedding to map attention onto")
        self.embed = embed
        self.input: torch.Tensor | None = None
        self.grid: tuple[int, ...] = ()
        self.handle = embed.register_forward_pre_hook(self)

    def __call__(self, module: PatchEmbed, args: tuple) -> None:
        if self.input is None:  # the first call: a two-tower model's later calls are not this input
            self.input = args[0].detach()
            self.grid = module.grid(tuple(self.input.shape[2:]))


def explain(pipe: Any, source: Any, *, view: int = 0) -> dict[str, Any]:
    """One view of ``source`` through a classification pipeline's model, with its attention rollout.

    Returns ``{"label", "score", "heat" (grid...) in [0, 1], "input" (channels, *spatial) as the patch
    embedding saw it, "grid"}``.
    """
    if not hasattr(pipe, "labels"):
        raise ValueError(f"explain: takes classification models; got the {pipe.task!r} task")
    batch = pipe.views(source)
    n = next(iter(batch.values())).shape[0]
    if not 0 <= view < n:
        raise ValueError(f"view: expected 0 to {n - 1} ({n} views of this input), got {view}")
    inputs = pipe._to_model({k: v[view:view + 1] for k, v in model_inputs(batch).items()})
    model = pipe.model
    hook = _Patches(model)
    try:
        with torch.inference_mode():
            out = model(**inputs, output_attentions=True)
    finally:
        hook.handle.remove()
    if not out.attentions or hook.input is None:
        raise ValueError(f"explain: {type(model).__name__} returned no attention weights over its patches")
    heat = patch_heat(out.attentions, hook.grid)
    best = pipe.labels(_scores(out.logits[0], pipe.loaded.config.problem_type, pipe.activation), 1)[0]
    return {"label": best["label"], "score": best["score"], "heat": heat.cpu(), "input": hook.input[0].float().cpu(),
            "grid": tuple(hook.grid)}
