"""The parts of transformers' PreTrainedModel API that users call on a model, beyond loading and saving.

Kept apart from modeling.py (checkpoint I/O) so each stays small: embeddings access, gradient
checkpointing, parameter counts, the keyword handling of from_pretrained/save_pretrained, push_to_hub.
"""
from __future__ import annotations

import os
import re
import socket
import threading
from typing import Any, ClassVar
from urllib.parse import urlparse

import torch
from torch import nn

# from_pretrained keywords of transformers that have nothing to do here, accepted so user code runs:
# we never run remote code, always load with low memory, and pick SDPA or the explicit path ourselves.
IGNORED_LOAD_OPTIONS = frozenset({"trust_remote_code", "low_cpu_mem_usage", "attn_implementation", "force_download",
                                  "proxies", "resume_download", "use_safetensors", "weights_only", "_fast_init"})


def parse_shard_size(size: int | str | None) -> int | None:
    """transformers' max_shard_size: bytes, or "5GB" (10**9), "5GiB" (2**30), "500MB", "10KB"; a lower-case
    final "b" means bits."""
    if size is None or isinstance(size, int):
        return size
    units = {"GIB": 2**30, "MIB": 2**20, "KIB": 2**10, "GB": 10**9, "MB": 10**6, "KB": 10**3}
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]{2,3})\s*", str(size))
    if m and m.group(2).upper() in units:
        n = int(float(m.group(1)) * units[m.group(2).upper()])
        return n // 8 if m.group(2).endswith("b") else n
    raise ValueError(f"max_shard_size: expected bytes (int) or a size such as '5GB', '500MB', '2GiB', got {size!r}")


def split_config_kwargs(config_class: type, kwargs: dict[str, Any], where: str) -> dict[str, Any]:
    """Keep the keywords that name config fields; a TypeError names any other (transformers passes them to
    the model constructor, which refuses them too), so nothing unknown reaches config.json."""
    unknown = sorted(k for k in kwargs if k not in IGNORED_LOAD_OPTIONS and not config_class.has_field(k))
    if unknown:
        raise TypeError(f"{where}: got unexpected keyword argument(s) {', '.join(map(repr, unknown))}: "
                        f"neither an option nor a field of {config_class.__name__}")
    return {k: v for k, v in kwargs.items() if k not in IGNORED_LOAD_OPTIONS}


def loading_info(report) -> dict[str, Any]:
    """transformers' output_loading_info dict, from a LoadReport (transformers' key names)."""
    return {
        "missing_keys": set(report.missing),
        "unexpected_keys": set(report.unexpected),
        "mismatched_keys": {(k, tuple(a), tuple(b)) for k, a, b in report.mismatched}
        | {(k, None, None) for k in report.reinitialised},
        "error_msgs": [],
    }


def _reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub's host opens within ``timeout`` seconds (name lookup included,
    which socket timeouts do not bound, hence the thread)."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def push_to_hub(folder: str, repo_id: str, *, token: str | bool | None = None, private: bool | None = None,
                commit_message: str | None = None, revision: str | None = None) -> Any:
    """Upload a saved folder with huggingface_hub; fails at once, with the reason, when the hub is out of reach."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise ConnectionError(f"push_to_hub: HF_HUB_OFFLINE is set, so nothing can be uploaded; "
                              f"the model was saved in {folder}")
    if not _reachable(constants.ENDPOINT):
        raise ConnectionError(f"push_to_hub: the hub ({constants.ENDPOINT}) cannot be reached from here; "
                              f"the model was saved in {folder}")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=commit_message or "Upload model",
                             revision=revision)


def _output_requires_grad(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
    output.requires_grad_(True)


class ModelAPI:
    """Methods of transformers' PreTrainedModel, for an nn.Module with a ``config`` and ``base_model_prefix``.

    ``input_embeddings`` names, relative to the base model, the module transformers' get_input_embeddings
    returns (patch embedding, word embedding).
    """

    base_model_prefix: ClassVar[str] = ""
    main_input_name: ClassVar[str] = "pixel_values"
    input_embeddings: ClassVar[str] = "patch_embed"
    supports_gradient_checkpointing: ClassVar[bool] = True
    # Parameters transformers holds in nn.Embedding modules although ours are plain Parameters;
    # num_parameters(exclude_embeddings=True) leaves them out as transformers does.
    embedding_parameters: ClassVar[tuple[str, ...]] = ()
    # The base model's Encoder whose heads prune_heads removes; "" where the reference has no prune_heads
    # (transformers 5 dropped it; TVLT's 4.57 reference has it).
    prunable: ClassVar[str] = ""

    @property
    def base_model(self) -> nn.Module:
        return getattr(self, self.base_model_prefix, self)

    # ---- embeddings ---------------------------------------------------------------------------
    def get_input_embeddings(self) -> nn.Module:
        base = self.base_model
        if base is not self:
            return base.get_input_embeddings()
        if not self.input_embeddings:
            raise NotImplementedError(f"{type(self).__name__}: has no single input embedding (as in transformers); "
                                      "ask one of its towers")
        return self.get_submodule(self.input_embeddings)

    def set_input_embeddings(self, value: nn.Module) -> None:
        base = self.base_model
        if base is not self:
            return base.set_input_embeddings(value)
        old = self.get_input_embeddings()
        parent, _, name = self.input_embeddings.rpartition(".")
        if isinstance(old, nn.Embedding) and isinstance(value, nn.Embedding) and value.padding_idx is None:
            value.padding_idx = old.padding_idx  # the position ids are computed from it
        setattr(self.get_submodule(parent) if parent else self, name, value)

    def resize_token_embeddings(self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None,
                                mean_resizing: bool = True) -> nn.Embedding:
        """Grow or shrink the word embedding to ``new_num_tokens`` rows (rounded up to ``pad_to_multiple_of``).

        Kept rows are copied; new rows get the mean of the old ones with ``mean_resizing`` (transformers
        samples them around that mean with a 1e-5-scaled covariance), else the model's init.
        ``config.vocab_size`` follows.
        """
        old = self.get_input_embeddings()
        if not isinstance(old, nn.Embedding):
            raise NotImplementedError(f"{type(self).__name__}: has no token embedding to resize")
        if new_num_tokens is None and pad_to_multiple_of is None:
            return old
        n = old.num_embeddings if new_num_tokens is None else int(new_num_tokens)
        if pad_to_multiple_of is not None:
            if not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of < 1:
                raise ValueError(f"pad_to_multiple_of: expected a positive int, got {pad_to_multiple_of!r}")
            n = -(-n // pad_to_multiple_of) * pad_to_multiple_of
        if n < 1:
            raise ValueError(f"new_num_tokens: expected at least 1, got {new_num_tokens}")
        new = nn.Embedding(n, old.embedding_dim, padding_idx=old.padding_idx if (old.padding_idx or 0) < n else None,
                           device=old.weight.device, dtype=old.weight.dtype)
        with torch.no_grad():
            keep = min(n, old.num_embeddings)
            if n > keep:
                if mean_resizing:
                    new.weight[keep:] = old.weight.mean(0)
                else:
                    std = getattr(self.config, "initializer_range", 0.02)
                    nn.init.normal_(new.weight[keep:], std=std)
            new.weight[:keep] = old.weight[:keep]
        new.weight.requires_grad_(old.weight.requires_grad)
        self.set_input_embeddings(new)
        self.base_model.config.vocab_size = n
        if self.config is not self.base_model.config and hasattr(self.config, "vocab_size"):
            self.config.vocab_size = n
        return new

    # ---- gradient checkpointing ------------------------------------------------------------------
    def _checkpointed(self) -> list[nn.Module]:
        return [m for m in self.modules() if hasattr(m, "gradient_checkpointing")]

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs: dict | None = None,
                                        every_n_layers: int = 1, offload: bool = False) -> None:
        """Recompute the blocks' activations in backward (transformers 5's name and keywords; its Trainer
        calls this for ``gradient_checkpointing=True``).

        ``activation_checkpointing_kwargs`` go to torch.utils.checkpoint (``use_reentrant`` defaults to
        False, as transformers 5 does); ``every_n_layers`` checkpoints blocks 0, n, 2n, ... of the whole
        model; ``offload`` keeps the saved activations in pinned host memory (a no-op on the CPU). As in
        transformers, a text model (and a PEFT-wrapped one) also makes its input embeddings require grad,
        which reentrant checkpointing needs to reach frozen-embedding adapters.
        """
        if isinstance(every_n_layers, bool) or not isinstance(every_n_layers, int) or every_n_layers < 1:
            raise ValueError(f"every_n_layers: expected a positive int, got {every_n_layers!r}")
        kwargs = {"use_reentrant": False, **(activation_checkpointing_kwargs or {})}
        seen = 0
        for m in self._checkpointed():
            m.gradient_checkpointing = True
            m.checkpoint_kwargs = kwargs
            m.checkpoint_every, m.checkpoint_offset, m.checkpoint_offload = every_n_layers, seen, bool(offload)
            seen += len(getattr(m, "blocks", ()))
        if self.main_input_name == "input_ids" or getattr(self, "_hf_peft_config_loaded", False):
            self.enable_input_require_grads()

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None, **kwargs: Any) -> None:
        """transformers' older name of :meth:`activation_checkpointing_enable` (``every_n_layers``,
        ``offload`` as keywords)."""
        self.activation_checkpointing_enable(gradient_checkpointing_kwargs, **kwargs)

    def activation_checkpointing_disable(self) -> None:
        for m in self._checkpointed():
            m.gradient_checkpointing = False
        if getattr(self, "_hf_peft_config_loaded", False):
            self.disable_input_require_grads()

    def gradient_checkpointing_disable(self) -> None:
        self.activation_checkpointing_disable()

    @property
    def is_activation_checkpointing(self) -> bool:
        return any(m.gradient_checkpointing for m in self._checkpointed())

    @property
    def is_gradient_checkpointing(self) -> bool:
        return self.is_activation_checkpointing

    def enable_input_require_grads(self) -> None:
        """Make the input embeddings' output require grad (transformers' method; PEFT calls it), so
        gradients reach adapters through reentrant checkpointing while the embeddings stay frozen. Every
        sub-model with an input embedding gets the hook (both AltCLIP towers)."""
        self.disable_input_require_grads()
        hooks, seen = [], set()
        for m in self.modules():
            if not isinstance(m, ModelAPI):
                continue
            try:
                embeddings = m.get_input_embeddings()
            except NotImplementedError:
                continue
            if id(embeddings) not in seen:
                seen.add(id(embeddings))
                hooks.append(embeddings.register_forward_hook(_output_requires_grad))
        self._require_grads_hooks = hooks

    def disable_input_require_grads(self) -> None:
        for hook in getattr(self, "_require_grads_hooks", ()):
            hook.remove()
        self._require_grads_hooks = []

    # ---- head pruning -------------------------------------------------------------------------
    def prune_heads(self, heads_to_prune: dict[int, list[int]]) -> None:
        """Remove attention heads, {layer: [head, ...]} (transformers 4.57's prune_heads); the union is
        kept in ``config.pruned_heads`` so save_pretrained/from_pretrained rebuild the pruned shapes."""
        base = self.base_model
        if not self.prunable:
            raise NotImplementedError(f"{type(self).__name__}: prune_heads exists only where the reference has it "
                                      "(TVLT); transformers 5 removed it for the other families")
        blocks = base.get_submodule(self.prunable).blocks
        for layer, heads in dict(heads_to_prune).items():
            if not 0 <= int(layer) < len(blocks):
                raise ValueError(f"heads_to_prune: expected layer indices in [0, {len(blocks)}), got {layer}")
            blocks[int(layer)].attn.prune_heads(heads)
            pruned = self.config.pruned_heads
            pruned[int(layer)] = sorted(set(pruned.get(int(layer), [])) | {int(h) for h in heads})

    # ---- counting ---------------------------------------------------------------------------------
    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Parameters, as transformers counts them (``exclude_embeddings`` drops token/position embeddings)."""
        excluded: set[str] = set()
        if exclude_embeddings:
            for name, m in self.named_modules():
                prefix = f"{name}." if name else ""
                if isinstance(m, nn.Embedding):
                    excluded.add(prefix + "weight")
                excluded.update(prefix + p for p in getattr(m, "embedding_parameters", ()))
        return sum(p.numel() for name, p in self.named_parameters()
                   if name not in excluded and (p.requires_grad or not only_trainable))

    # ---- outputs ------------------------------------------------------------------------------------
    @staticmethod
    def as_tuple(out) -> tuple:
        """What forward returns with return_dict=False: the non-None fields, as in transformers."""
        return out.to_tuple()


def hub_repo_id(folder: str, kwargs: dict[str, Any]) -> str:
    """transformers' default: the repository takes the folder's name."""
    return kwargs.pop("repo_id", None) or os.path.basename(os.path.normpath(folder))
