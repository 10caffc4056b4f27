"""Reading and writing weight files in the layouts transformers uses."""
from __future__ import annotations

import json
import os
import re

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError

SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
PT_WEIGHTS = "pytorch_model.bin"
PT_INDEX = "pytorch_model.bin.index.json"
WEIGHT_FILES = (SAFE_WEIGHTS, SAFE_INDEX, PT_WEIGHTS, PT_INDEX)


def _load_bin(path: str, mmap: bool = False) -> dict[str, torch.Tensor]:
    # weights_only: a .bin is a pickle, and an untrusted pickle can run code; tensors are all we need.
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # noqa: BLE001 - re-raised with the file named
        raise CheckpointError(f"{path}: not a loadable weights-only PyTorch checkpoint ({err})") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a dict of tensors, got {type(state).__name__}")
    return state


def _load_one(path: str) -> dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        try:
            return load_file(path)
        except Exception as err:  # noqa: BLE001
            raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from err
    return _load_bin(path)


def _shapes_one(path: str) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of one weight file, read from its header (safetensors) or a memory map (.bin):
    no tensor data is loaded."""
    if path.endswith(".safetensors"):
        try:
            with safe_open(path, framework="pt") as fh:
                return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118 - a safe_open handle, not a dict
        except Exception as err:  # noqa: BLE001
            raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from err
    try:
        state = _load_bin(path, mmap=True)
    except CheckpointError:  # the legacy (pre-zip) format cannot be memory-mapped: read it whole
        state = _load_bin(path)
    return {k: tuple(v.shape) for k, v in state.items()}


def _shard_paths(folder: str, index: str) -> list[str]:
    """The shards an index names, each checked to lie inside ``folder`` (after resolving symlinks)."""
    try:
        with open(index, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{index}: not a readable JSON index ({err})") from err
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        got = type(weight_map).__name__ if isinstance(data, dict) and "weight_map" in data else "no weight_map"
        raise CheckpointError(f"{index}: weight_map: expected a non-empty {{tensor name: shard file}} dict, got {got}")
    root = os.path.realpath(folder)
    paths = []
    for shard in sorted(set(map(str, weight_map.values()))):
        path = os.path.realpath(os.path.join(root, shard))
        if os.path.isabs(shard) or os.path.dirname(path) != root:
            raise CheckpointError(f"{index}: weight_map: expected shard files inside {folder}, got {shard!r}")
        if not os.path.isfile(path):
            raise CheckpointError(f"{index}: weight_map: names shard {shard!r}, which is not in {folder}")
        paths.append(path)
    return paths


def weight_files(folder: str) -> list[str]:
    """The weight files of a checkpoint folder: model.safetensors, a sharded index's shards, or
    pytorch_model.bin (safetensors wins where both exist, as in transformers)."""
    for name in WEIGHT_FILES:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return _shard_paths(folder, path) if name.endswith(".index.json") else [path]
    raise FileNotFoundError(f"{folder}: no weights found; expected one of {', '.join(WEIGHT_FILES)}")


def _remove_stale_weights(folder: str) -> None:
    """Delete weight files of an earlier save: a loader would prefer a stale model.safetensors to a new .bin."""
    for name in os.listdir(folder):
        if name in WEIGHT_FILES or re.fullmatch(r"(model|pytorch_model)-\d{5}-of-\d{5}\.(safetensors|bin)", name):
            os.remove(os.path.join(folder, name))


def read_shapes(folder: str) -> dict[str, tuple[int, ...]]:
    """Every tensor name of a checkpoint folder with its shape, without loading tensor data."""
    shapes: dict[str, tuple[int, ...]] = {}
    for path in weight_files(folder):
        shapes.update(_shapes_one(path))
    return shapes


def load_state_dict(folder: str) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint folder (see :func:`weight_files`)."""
    state: dict[str, torch.Tensor] = {}
    for path in weight_files(folder):
        state.update(_load_one(path))
    return state


def _file_mode() -> int:
    """The mode ``open()`` gives a new file (0666 less the umask): safetensors writes 0600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


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
        path = os.path.join(folder, name)
        if safe:
            save_file(tensors, path, metadata=meta)
        else:
            torch.save(tensors, path)
        os.chmod(path, _file_mode())  # as config.json is written (safetensors creates 0600)

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
