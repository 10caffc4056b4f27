"""Reading and writing weight files in the layouts transformers uses."""
from __future__ import annotations

import json
import os
import re

import torch
from safetensors.torch import load_file, save_file

SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
PT_WEIGHTS = "pytorch_model.bin"
PT_INDEX = "pytorch_model.bin.index.json"
WEIGHT_FILES = (SAFE_WEIGHTS, SAFE_INDEX, PT_WEIGHTS, PT_INDEX)


def _load_bin(path: str) -> dict[str, torch.Tensor]:
    # weights_only: a .bin is a pickle, and an untrusted pickle can run code; tensors are all we need.
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file named
        raise ValueError(f"{path}: not a loadable weights-only PyTorch checkpoint ({err})") from err


def _load_one(path: str) -> dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        try:
            return load_file(path)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"{path}: not a readable safetensors file ({err})") from err
    return _load_bin(path)


def load_state_dict(folder: str) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint folder: model.safetensors, a sharded index, or pytorch_model.bin.

    safetensors wins where both exist, as in transformers.
    """
    for name in WEIGHT_FILES:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        if not name.endswith(".index.json"):
            return _load_one(path)
        with open(path, encoding="utf-8") as fh:
            shards = sorted(set(json.load(fh)["weight_map"].values()))
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            shard_path = os.path.join(folder, shard)
            if not os.path.isfile(shard_path):
                raise ValueError(f"{path}: names shard {shard!r}, which is not in {folder}")
            state.update(_load_one(shard_path))
        return state
    raise FileNotFoundError(f"{folder}: no weights found; expected one of {', '.join(WEIGHT_FILES)}")


def _remove_stale_weights(folder: str) -> None:
    """Delete weight files of an earlier save: a loader would prefer a stale model.safetensors to a new .bin."""
    for name in os.listdir(folder):
        if name in WEIGHT_FILES or re.fullmatch(r"(model|pytorch_model)-\d{5}-of-\d{5}\.(safetensors|bin)", name):
            os.remove(os.path.join(folder, name))


def save_state_dict(
    state: dict[str, torch.Tensor], folder: str, max_shard_bytes: int | None = None, *, safe: bool = True
) -> None:
    """Write model.safetensors (``safe``) or pytorch_model.bin, or shards plus their index above
    ``max_shard_bytes``; weight files already in ``folder`` are replaced."""
    os.makedirs(folder, exist_ok=True)
    _remove_stale_weights(folder)
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    meta = {"format": "pt"}

    def write(tensors: dict[str, torch.Tensor], name: str) -> None:
        if safe:
            save_file(tensors, os.path.join(folder, name), metadata=meta)
        else:
            torch.save(tensors, os.path.join(folder, name))

    stem, ext, index = ("model", "safetensors", SAFE_INDEX) if safe else ("pytorch_model", "bin", PT_INDEX)
    total = sum(v.numel() * v.element_size() for v in state.values())
    if max_shard_bytes is None or total <= max_shard_bytes:
        write(state, SAFE_WEIGHTS if safe else PT_WEIGHTS)
        return
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key in sorted(state):
        nbytes = state[key].numel() * state[key].element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = state[key]
        size += nbytes
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        name = f"{stem}-{i:05d}-of-{len(shards):05d}.{ext}"
        write(shard, name)
        weight_map.update({k: name for k in shard})
    with open(os.path.join(folder, index), "w", encoding="utf-8") as fh:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, fh, indent=2)
