"""State-dict conversion between transformers' parameter names and ours, both directions.

A table is a list of rules ``(ours, theirs)``: ``ours`` is a regex matched against the end of
one of our keys (at a dot boundary); ``theirs`` is its replacement, or a list of replacements when
one of our tensors is several of theirs concatenated on dim 0 (fused qkv). The first rule that
matches wins; a key no rule matches keeps its name. Because our model enumerates its own keys,
only the forward direction is written; the reverse is derived, so the two cannot drift apart.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import torch

Rule = tuple[str, "str | list[str]"]
# (file name, in-memory name) pieces of transformers' own modules where the installed release names its
# modules otherwise than its files (transformers 5 renames on load and back on save); "{n}" is a layer index.
MemoryRule = tuple[str, str]
LAYOUTS = ("file", "memory")


def _memory_rules(pairs: Iterable[MemoryRule], to_memory: bool):
    rules = []
    for file, memory in pairs:
        src, dst = (file, memory) if to_memory else (memory, file)
        rules.append((re.compile(r"(?:^|(?<=\.))" + re.escape(src).replace(r"\{n\}", r"(\d+)")), dst.replace("{n}", r"\1")))
    return rules


def _rename(state: dict[str, torch.Tensor], rules) -> dict[str, torch.Tensor]:
    """Each key renamed by the first rule that matches it (others kept)."""
    out = {}
    for key, value in state.items():
        for pattern, repl in rules:
            new, hits = pattern.subn(repl, key, count=1)
            if hits:
                key = new
                break
        out[key] = value
    return out


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

    def __init__(self, rules: Iterable[Rule], *, normalise=None, memory: Iterable[MemoryRule] = ()):
        """``normalise``: state -> state, applied to checkpoints before matching, for other layouts
        of the same weights that transformers versions have written. ``memory``: how transformers' modules
        name what its files hold (``model.state_dict()`` of the installed release), accepted on loading
        and written with ``layout="memory"``."""
        self.rules = _compile(rules)
        self.normalise = normalise
        self.memory = tuple(memory)
        self._to_memory, self._from_memory = _memory_rules(self.memory, True), _memory_rules(self.memory, False)

    def as_file(self, hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A transformers state dict (file or in-memory names) under the file names the table uses."""
        hf_state = _rename(hf_state, self._from_memory) if self._from_memory else hf_state
        return hf_state if self.normalise is None else self.normalise(hf_state)

    def hf_names(self, key: str) -> list[str]:
        """transformers' name(s) of our ``key`` (several where we fuse their tensors)."""
        return hf_names(key, self.rules)

    def to_hf(self, state: dict[str, torch.Tensor], layout: str = "file") -> dict[str, torch.Tensor]:
        """Our state dict under transformers' names: those of its files (``layout="file"``, what
        save_pretrained writes) or of its modules (``"memory"``, for ``hf_model.load_state_dict``)."""
        if layout not in LAYOUTS:
            raise ValueError(f"layout: expected one of {list(LAYOUTS)}, got {layout!r}")
        out: dict[str, torch.Tensor] = {}
        for key, value in state.items():
            names = hf_names(key, self.rules)
            parts = value.chunk(len(names), dim=0) if len(names) > 1 else (value,)
            out.update(zip(names, parts))
        return _rename(out, self._to_memory) if layout == "memory" else out

    def from_hf(
        self, hf_state: dict[str, torch.Tensor], our_keys: Iterable[str]
    ) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
        """Gather our tensors from a transformers state dict.

        Returns (state, missing, unexpected): ``missing`` lists transformers' names we needed and did
        not find; ``unexpected`` the checkpoint keys nothing consumed.
        """
        hf_state = self.as_file(hf_state)
        state, missing, used = {}, [], set()
        for key in our_keys:
            names = hf_names(key, self.rules)
            absent = [n for n in names if n not in hf_state]
            if absent:
                missing.extend(absent)
                continue
            parts = [hf_state[n] for n in names]
            state[key] = parts[0] if len(parts) == 1 else _cat_rows(parts)
            used.update(names)
        unexpected = sorted(set(hf_state) - used)
        return state, missing, unexpected


def _cat_rows(parts: list[torch.Tensor]) -> torch.Tensor:
    # torch.cat on meta tensors goes through torch._dynamo's import (1.5 s of every command's start-up)
    if all(t.is_meta for t in parts) and len({(t.shape[1:], t.dtype) for t in parts}) == 1:
        return torch.empty((sum(t.shape[0] for t in parts), *parts[0].shape[1:]), dtype=parts[0].dtype, device="meta")
    return torch.cat(parts, dim=0)


# The sub-modules of our transformer block under each naming scheme: ours -> theirs (a list where
# we fuse their tensors, as the qkv projection).
VIT_BLOCK = {"attn.qkv": ["attention.attention.query", "attention.attention.key", "attention.attention.value"],
             "attn.proj": "attention.output.dense", "norm1": "layernorm_before", "norm2": "layernorm_after",
             "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"}
BERT_BLOCK = {"attn.qkv": ["attention.self.query", "attention.self.key", "attention.self.value"],
              "attn.proj": "attention.output.dense", "norm1": "attention.output.LayerNorm",
              "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense", "norm2": "output.LayerNorm"}
CLIP_BLOCK = {"attn.qkv": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"], "attn.proj": "self_attn.out_proj",
              "norm1": "layer_norm1", "norm2": "layer_norm2", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}


# transformers' ViT embeddings: the patch projection and the token/position parameters under ``embeddings.``.
VIT_EMBEDDINGS = {"cls_token": "cls_token", "dist_token": "distillation_token", "pos_embed": "position_embeddings"}


def vit_embedding_rules(*params: str) -> list[Rule]:
    """Rules for ``patch_embed.proj`` and the named parameters of VIT_EMBEDDINGS a family has."""
    return [(r"patch_embed\.proj\.(weight|bias)", r"embeddings.patch_embeddings.projection.\1"),
            *((p, f"embeddings.{VIT_EMBEDDINGS[p]}") for p in params)]


def block_rules(ours: str, theirs: str, names: Mapping[str, str | Sequence[str]]) -> list[Rule]:
    """Rules for a stack ``{ours}.N.<sub>.weight|bias`` stored as ``{theirs}.N.<their sub>.weight|bias``."""
    rules: list[Rule] = []
    for sub, their in names.items():
        targets = [rf"{theirs}.\1.{t}.\2" for t in ([their] if isinstance(their, str) else their)]
        rules.append((rf"{ours}\.(\d+)\.{re.escape(sub)}\.(weight|bias)", targets if len(targets) > 1 else targets[0]))
    return rules


# transformers 5's in-memory names of the ViT-style layers (AST, ViViT): ``encoder.layer.N`` is ``layers.N``
# and the attention/MLP projections are q/k/v/o_proj and mlp.fc1/fc2 (its files keep the old names).
VIT_MEMORY: tuple[MemoryRule, ...] = (
    *((f"encoder.layer.{{n}}.attention.attention.{w}.", f"layers.{{n}}.attention.{w[0]}_proj.") for w in ("query", "key", "value")),
    ("encoder.layer.{n}.attention.output.dense.", "layers.{n}.attention.o_proj."),
    ("encoder.layer.{n}.intermediate.dense.", "layers.{n}.mlp.fc1."),
    ("encoder.layer.{n}.output.dense.", "layers.{n}.mlp.fc2."),
    ("encoder.layer.{n}.", "layers.{n}."),
)


def vit_layer_rules(ours: str, theirs: str) -> list[Rule]:
    """Rules for a pre-norm stack ``{ours}.N`` stored as ``{theirs}.N`` (encoder.layer / decoder_layers),
    VideoMAE's separate q/v biases included; shared by every ViT-style family in transformers' legacy layout."""
    q_v_biases = (rf"{ours}\.(\d+)\.attn\.(q_bias|v_bias)", rf"{theirs}.\1.attention.attention.\2")
    return [*block_rules(ours, theirs, VIT_BLOCK), q_v_biases]
