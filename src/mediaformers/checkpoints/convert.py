"""State-dict conversion between transformers' parameter names and ours, both directions.

A table is a list of rules ``(ours, theirs)``: ``ours`` is a regex matched against the end of
one of our keys (at a dot boundary); ``theirs`` is its replacement, or a list of replacements when
one of our tensors is several of theirs concatenated on dim 0 (fused qkv). The first rule that
matches wins; a key no rule matches keeps its name. Because our model enumerates its own keys,
only the forward direction is written; the reverse is derived, so the two cannot drift apart.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

import torch

Rule = tuple[str, "str | list[str]"]


def _compile(rules: Iterable[Rule]):
    return [(re.compile(r"(?:^|(?<=\.))" + ours + r"$"), theirs) for ours, theirs in rules]


def hf_names(key: str, rules) -> list[str]:
    """The transformers key(s) that hold our ``key``."""
    for pattern, theirs in rules:
        m = pattern.search(key)
        if m:
            prefix = key[: m.start()]
            targets = theirs if isinstance(theirs, list) else [theirs]
            return [prefix + m.expand(t) for t in targets]
    return [key]


class Converter:
    """Maps a model's state dict to transformers' layout and back."""

    def __init__(self, rules: Iterable[Rule], *, normalise=None):
        """``normalise``: state -> state, applied to checkpoints before matching, for other layouts
        of the same weights that transformers versions have written."""
        self.rules = _compile(rules)
        self.normalise = normalise

    def to_hf(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for key, value in state.items():
            names = hf_names(key, self.rules)
            parts = value.chunk(len(names), dim=0) if len(names) > 1 else (value,)
            out.update(zip(names, parts))
        return out

    def from_hf(
        self, hf_state: dict[str, torch.Tensor], our_keys: Iterable[str]
    ) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
        """Gather our tensors from a transformers state dict.

        Returns (state, missing, unexpected): ``missing`` lists transformers' names we needed and did
        not find; ``unexpected`` the checkpoint keys nothing consumed.
        """
        if self.normalise is not None:
            hf_state = self.normalise(hf_state)
        state, missing, used = {}, [], set()
        for key in our_keys:
            names = hf_names(key, self.rules)
            absent = [n for n in names if n not in hf_state]
            if absent:
                missing.extend(absent)
                continue
            parts = [hf_state[n] for n in names]
            state[key] = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
            used.update(names)
        unexpected = sorted(set(hf_state) - used)
        return state, missing, unexpected


# Shared by every ViT-style family in transformers' legacy layout (what save_pretrained writes).
def vit_layer_rules(ours: str, theirs: str) -> list[Rule]:
    """Rules for a pre-norm stack ``{ours}.N`` stored as ``{theirs}.N`` (encoder.layer / decoder_layers)."""
    a = rf"{theirs}.\1.attention"
    return [
        (rf"{ours}\.(\d+)\.attn\.qkv\.(weight|bias)", [rf"{a}.attention.query.\2", rf"{a}.attention.key.\2", rf"{a}.attention.value.\2"]),
        (rf"{ours}\.(\d+)\.attn\.(q_bias|v_bias)", rf"{a}.attention.\2"),
        (rf"{ours}\.(\d+)\.attn\.proj\.(weight|bias)", rf"{a}.output.dense.\2"),
        (rf"{ours}\.(\d+)\.norm1\.(weight|bias)", rf"{theirs}.\1.layernorm_before.\2"),
        (rf"{ours}\.(\d+)\.norm2\.(weight|bias)", rf"{theirs}.\1.layernorm_after.\2"),
        (rf"{ours}\.(\d+)\.mlp\.fc1\.(weight|bias)", rf"{theirs}.\1.intermediate.dense.\2"),
        (rf"{ours}\.(\d+)\.mlp\.fc2\.(weight|bias)", rf"{theirs}.\1.output.dense.\2"),
    ]
