"""Resolve a model reference to a local folder: a path, the hub cache, or a hub id."""
from __future__ import annotations

import os

# What from_pretrained reads: configs, weights, processor and tokenizer files; never the whole repo.
ALLOW = ["*.json", "*.safetensors", "pytorch_model*.bin", "*.model", "*.txt"]


def resolve(
    ref: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> str:
    """Return a local folder for ``ref``.

    A path that exists is used as it is. Anything else is taken for a hub id (``org/name``):
    huggingface_hub serves it from its cache when present (always, with ``local_files_only=True``
    or ``HF_HUB_OFFLINE=1``), else downloads it.
    """
    ref = os.fspath(ref)
    if os.path.isdir(ref):
        return ref
    if os.path.exists(ref):
        raise ValueError(f"{ref}: expected a checkpoint folder (with config.json), got a file")
    # A hub id is "name" or "org/name"; anything else is a path that does not exist.
    # "org/name" whose "org" is a local folder is a mistyped path (demo/videomaee), not a hub id.
    local_parent = "/" in ref and os.path.isdir(ref.split("/", 1)[0])
    if ref.startswith((".", "/", "~")) or ref.count("/") > 1 or os.sep in ref.replace("/", "") or local_parent:
        raise FileNotFoundError(f"{ref}: no such checkpoint folder")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return snapshot_download(
            ref,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            allow_patterns=ALLOW,
            token=token,
        )
    except LocalEntryNotFoundError as err:
        raise FileNotFoundError(
            f"{ref}: not a local folder, and not in the hub cache"
            + ("" if local_files_only else " (the hub could not be reached)")
            + f": {err}"
        ) from err
    except HfHubHTTPError as err:
        raise FileNotFoundError(f"{ref}: the hub refused it ({err})") from err
