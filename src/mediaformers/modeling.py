"""The base of every model: from_pretrained / save_pretrained in transformers' format, loudly."""
from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from .checkpoints.convert import Converter
from .checkpoints.hub import resolve
from .checkpoints.io import load_state_dict, read_shapes, save_state_dict
from .config import CONFIG_NAME, Config
from .config_schema import check_sizes
from .errors import CheckpointError
from .layers.attention import check_attention_mode, set_attention
from .model_api import ModelAPI, hub_repo_id, loading_info, parse_shard_size, split_config_kwargs
from .model_api import push_to_hub as hub_push
from .model_compat import TransformersModelAttributes, check_attn_implementation

log = logging.getLogger("mediaformers")


@dataclass
class LoadReport:
    """What loading did, key by key (transformers' names)."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # (name, checkpoint, model)
    reinitialised: list[str] = field(default_factory=list)
    dropped_prefix: list[str] = field(default_factory=list)  # other task's heads, left out on purpose

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        lines = []
        if self.missing:
            lines.append(f"missing ({len(self.missing)}): " + ", ".join(self.missing))
        if self.unexpected:
            lines.append(f"unexpected ({len(self.unexpected)}): " + ", ".join(self.unexpected))
        if self.mismatched:
            lines.append(
                f"mis-shaped ({len(self.mismatched)}): "
                + ", ".join(f"{k} checkpoint {list(a)} vs model {list(b)}" for k, a, b in self.mismatched)
            )
        if self.reinitialised:
            lines.append("re-initialised: " + ", ".join(self.reinitialised))
        return "\n".join(lines) or "all keys matched"


def _parse_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16, "half": torch.float16, "float": torch.float32}
    dtype = dtype.removeprefix("torch.")
    if dtype not in names:
        raise ValueError(f"dtype: expected one of {sorted(names)} or a torch.dtype, got {dtype!r}")
    return names[dtype]


def parse_device(device: torch.device | str | None) -> torch.device | None:
    """A torch.device, refusing an accelerator this torch build or machine does not have."""
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device: expected 'cpu', 'cuda', 'cuda:N', 'mps', ..., got {device!r}") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} asked for, but this torch build or machine has no CUDA device; use 'cpu'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device: {device!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device: {device!r} asked for, but MPS is not available here; use 'cpu'")
    return dev


def _memory_limit() -> int | None:
    """Bytes this process may hold: physical memory, or a lower address-space limit."""
    try:
        limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            limit = min(limit, soft)
    except (ImportError, OSError, ValueError):
        pass
    return limit


def check_fits_memory(model: nn.Module) -> None:
    """CheckpointError when materialising ``model`` (meta-built) would take more than this machine has."""
    need = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    limit = _memory_limit()
    if limit is not None and need > limit:
        raise CheckpointError(f"config: expected a model that fits in memory ({limit / 2**30:.1f} GiB), got "
                              f"{type(model).__name__} of {need / 2**30:.1f} GiB from its sizes")


class PreTrainedModel(TransformersModelAttributes, ModelAPI, nn.Module):
    """Adds checkpoint I/O to a family model.

    Subclasses set ``config_class``, ``base_model_prefix`` (transformers' attribute name of the
    backbone inside task models, e.g. "videomae") and ``converter``; task models hold the backbone
    under that attribute, so our key layout and theirs nest the same way.
    """

    config_class: ClassVar[type[Config]] = Config
    base_model_prefix: ClassVar[str] = ""
    # Where a backbone's weights sit inside a larger checkpoint, when not under base_model_prefix
    # (AltCLIP's towers: ``text_model.`` / ``vision_model.`` of the full model).
    checkpoint_prefix: ClassVar[str] = ""
    converter: ClassVar[Converter] = Converter([])
    is_backbone: ClassVar[bool] = False  # True for XxxModel, whose keys carry no prefix

    def __init__(self, config: Config):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise ValueError(f"config: expected {self.config_class.__name__}, got {type(config).__name__}")
        check_sizes(config)  # deferred from the config, as transformers defers it to the model
        self.config = config

    # ---- weights init -------------------------------------------------------------------
    # from_pretrained builds on the meta device (no memory, no init), checks the checkpoint against
    # it, then materialises once: buffers computed, weights loaded, transformers' init only when the
    # checkpoint leaves something out. A model built in Python is initialised by its __init__.
    def init_weights(self) -> None:
        """Initialise every weight (families call it last in __init__); nothing on the meta device.
        Heads the config lists as pruned are removed first, as transformers' post_init does."""
        if self.prunable and getattr(self.config, "pruned_heads", None):
            self.prune_heads(self.config.pruned_heads)
        if not self.is_meta:
            self._init_weights()

    @property
    def is_meta(self) -> bool:
        return any(t.is_meta for t in self.parameters())

    def _init_buffers(self) -> None:
        """Compute the non-persistent buffers (derived from the config, never in a checkpoint) after a
        meta build; they start at zero, families with computed tables override this."""

    def _init_weights(self) -> None:
        """transformers' init: normal(0, initializer_range) linears/convs, zero biases, unit norms.

        Families with more to initialise override this and call super() first.
        """
        std = getattr(self.config, "initializer_range", 0.02)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv3d)):
                nn.init.trunc_normal_(m.weight, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # ---- state dict in transformers' layout -----------------------------------------------
    def hf_state_dict(self, state: dict[str, torch.Tensor] | None = None, *, layout: str = "file") -> dict[str, torch.Tensor]:
        """Our weights (or ``state``, in our names) under transformers' names: those of its files
        (``layout="file"``, what save_pretrained writes) or of its modules (``"memory"``: what
        ``hf_model.load_state_dict`` takes in the installed transformers 5). load_hf_state_dict takes either."""
        return self.converter.to_hf(self.state_dict() if state is None else state, layout)

    def as_hf_names(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``state`` under transformers' names: converted when it is in ours (all its keys are ours)."""
        return self.hf_state_dict(dict(state)) if state and set(state) <= set(self.state_dict()) else dict(state)

    def load_hf_state_dict(
        self, hf_state: dict[str, torch.Tensor], *, strict: bool = True, ignore_mismatched_sizes: bool = False
    ) -> LoadReport:
        """Load transformers-named tensors; raise CheckpointError listing every problem when strict.

        Meta tensors in ``hf_state`` (shapes from a file's header) only check: the report comes back
        and nothing is allocated. A model on the meta device is materialised by the first real load.
        """
        report = LoadReport()
        prefix = (self.checkpoint_prefix or self.base_model_prefix) + "."
        ckpt_has_prefix = any(k.startswith(prefix) for k in hf_state)
        if self.is_backbone and ckpt_has_prefix:
            # A task checkpoint into the bare backbone: keep the backbone, leave the heads out.
            report.dropped_prefix = sorted(k for k in hf_state if not k.startswith(prefix))
            hf_state = {k[len(prefix):]: v for k, v in hf_state.items() if k.startswith(prefix)}
        elif not self.is_backbone and not ckpt_has_prefix:
            # A bare-backbone checkpoint into a task model: the backbone nests under the prefix.
            hf_state = {prefix + k: v for k, v in hf_state.items()}
        own = self.state_dict()
        state, report.missing, report.unexpected = self.converter.from_hf(hf_state, own.keys())
        parts = []  # transformers' tensors of each misfit of ours: all re-initialised, the misfits reported
        for key in [k for k, v in state.items() if v.shape != own[k].shape]:
            state.pop(key)  # a tensor of another shape is never copied; the model's own stays
            parts += self._hf_shapes(key, hf_state, own[key])
        if ignore_mismatched_sizes:
            report.reinitialised = [k for k, _, _ in parts]
        else:
            report.mismatched = [p for p in parts if p[1] != p[2]]
        if strict and not report.ok:
            raise CheckpointError(
                f"checkpoint does not fit {type(self).__name__}:\n{report}\n"
                "(pass ignore_mismatched_sizes=True to re-initialise heads of another size, "
                "or strict=False to load what fits and keep the rest as initialised)"
            )
        if any(v.is_meta for v in state.values()):
            return report  # a check of shapes only
        if not report.ok:
            log.warning("loading %s: %s", type(self).__name__, report)
        if self.is_meta:
            self._materialise(init=len(state) < len(own))
        own_dtype = {k: v.dtype for k, v in own.items()}
        self.load_state_dict({k: v.to(own_dtype[k]) for k, v in state.items()}, strict=False)
        return report

    def _hf_shapes(self, key: str, hf_state: dict, ours: torch.Tensor) -> list[tuple[str, tuple, tuple]]:
        """(transformers' name, checkpoint shape, model shape) of each tensor our ``key`` is made of."""
        names = self.converter.hf_names(key)
        hf_state = self.converter.as_file(hf_state)
        model_parts = ours.chunk(len(names)) if len(names) > 1 else (ours,)
        return [(n, tuple(hf_state[n].shape), tuple(p.shape)) for n, p in zip(names, model_parts)]

    def _materialise(self, *, init: bool) -> None:
        """Real (uninitialised) memory for a meta-built model, its buffers computed; ``init``: the
        checkpoint leaves something out, which gets transformers' init."""
        check_fits_memory(self)
        self.to_empty(device="cpu")
        with torch.no_grad():
            for t in (*self.parameters(), *self.buffers()):
                t.zero_()  # what constructors make with torch.zeros and _init_weights leaves as it is
            self._init_buffers()
            if init:
                self._init_weights()

    # ---- folders ----------------------------------------------------------------------------
    @classmethod
    def build_on_meta(cls, config: Config, source: str = "config"):
        """The model's structure on the meta device (no memory, no init); a config the model cannot be
        built from is a CheckpointError naming ``source``."""
        try:
            with torch.device("meta"):
                return cls(config)
        except (ValueError, RuntimeError, TypeError, IndexError, ZeroDivisionError) as err:
            raise CheckpointError(f"{source}: {err}") from None

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike | None,
        *,
        config: Config | str | os.PathLike | None = None,
        state_dict: dict[str, torch.Tensor] | None = None,
        attn_implementation: str | dict[str, str] | None = None,
        dtype: torch.dtype | str | None = None,
        torch_dtype: torch.dtype | str | None = None,
        device: torch.device | str | None = None,
        device_map: torch.device | str | None = None,
        strict: bool = True,
        ignore_mismatched_sizes: bool = False,
        output_loading_info: bool = False,
        precision: str | None = None,
        attention: str | None = None,
        subfolder: str = "",
        revision: str | None = None,
        cache_dir: str | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        **config_overrides: Any,
    ):
        """Load from a checkpoint folder, the hub cache or a hub id, with transformers' keywords.

        ``precision`` ("fp32", "bf16", "int8", "auto"; see mediaformers.precision) is applied after
        loading, for inference. ``attention`` ("auto", "sdpa", "math"; see mediaformers.layers.attention)
        picks the attention kernel (None: the default). ``config_overrides`` are config fields set
        before the model is built (``num_labels=10`` with
        ``ignore_mismatched_sizes=True`` to fine-tune with a new head, ``output_hidden_states=True``);
        any other keyword is a TypeError. ``dtype`` / ``torch_dtype``: a torch.dtype, its name, or
        "auto" for the checkpoint's own. The load report is kept on ``model.load_report``;
        ``output_loading_info=True`` returns ``(model, info)`` with transformers' keys as well.
        ``state_dict`` (transformers' names, or ours) replaces the folder's weight files; with it the
        folder may be None, the model then built from ``config`` alone (transformers' ``from_pretrained(None,
        config=cfg, state_dict=sd)``). ``attn_implementation``: "eager" or "sdpa", as in transformers.
        """
        ref = pretrained_model_name_or_path
        if torch.get_default_device().type == "meta":  # weights loaded under it would be lost; transformers' words
            raise RuntimeError("You are using `from_pretrained` with a meta device context manager: expected real "
                               "memory for the weights; build with Model(config) under torch.device('meta') instead")
        if dtype is not None and torch_dtype is not None and dtype != torch_dtype:
            raise ValueError(f"dtype / torch_dtype: give one (torch_dtype is its old name), got {dtype!r} and {torch_dtype!r}")
        dtype = dtype if dtype is not None else torch_dtype
        if precision is not None:  # before anything loads: two ways to say the same thing
            from .precision import resolve_precision

            if dtype is not None:
                raise ValueError(f"precision/dtype: give one of them, got precision={precision!r} and dtype={dtype!r}")
            resolve_precision(precision)  # a bad name is refused here too
        check_attention_mode(attention)
        if attn_implementation is not None and not isinstance(attn_implementation, dict):
            check_attn_implementation(attn_implementation)
        if ref is None and (state_dict is None or config is None):
            raise ValueError("pretrained_model_name_or_path: None needs both config= and state_dict= "
                             f"(got config={type(config).__name__}, state_dict={type(state_dict).__name__})")
        if device is not None and device_map is not None and device != device_map:
            raise ValueError(f"device / device_map: give one, got {device!r} and {device_map!r}")
        device = parse_device(device if device is not None else device_map)
        overrides = split_config_kwargs(cls.config_class, config_overrides, f"{cls.__name__}.from_pretrained")
        folder = None if ref is None else resolve(ref, revision=revision, cache_dir=cache_dir,
                                                  local_files_only=local_files_only, token=token)
        if subfolder and folder is not None:
            folder = os.path.join(folder, subfolder)
            if not os.path.isdir(folder):
                raise FileNotFoundError(f"subfolder: {subfolder!r} is not a folder of {os.fspath(ref)}")
        if isinstance(config, Config):
            config = config.replace(**overrides) if overrides else copy.deepcopy(config)
        elif config is not None:
            config = cls.config_class.from_pretrained(config, **overrides)
        else:
            config = cls.config_class.from_pretrained(folder, **overrides)
        if not isinstance(config, cls.config_class):
            raise ValueError(f"config: expected {cls.config_class.__name__}, got {type(config).__name__}")
        config._name_or_path = "" if ref is None else os.fspath(ref)
        model = cls.build_on_meta(config, "config" if folder is None else os.path.join(folder, CONFIG_NAME))
        if state_dict is None:
            shapes = read_shapes(folder)
        else:
            state_dict = model.as_hf_names(state_dict)
            shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
        meta_state = {k: torch.empty(shape, device="meta") for k, shape in shapes.items()}
        # Shapes from the files' headers against the meta model: a misfit is refused before allocating.
        model.load_hf_state_dict(meta_state, strict=strict, ignore_mismatched_sizes=ignore_mismatched_sizes)
        state = load_state_dict(folder) if state_dict is None else state_dict
        if dtype == "auto":
            dtype = config.dtype or next((str(v.dtype) for v in state.values() if v.is_floating_point()), None)
        dtype = _parse_dtype(dtype)
        model.load_report = model.load_hf_state_dict(
            state, strict=strict, ignore_mismatched_sizes=ignore_mismatched_sizes
        )
        model.eval()
        model = model.to(device=device, dtype=dtype)
        if precision is not None:
            from .precision import apply_precision

            apply_precision(model, precision, device)
        if attention is not None:
            set_attention(model, attention)
        if attn_implementation is not None:
            model.set_attn_implementation(attn_implementation)
        return (model, loading_info(model.load_report)) if output_loading_info else model

    def save_pretrained(
        self,
        folder: str | os.PathLike,
        *,
        state_dict: dict[str, torch.Tensor] | None = None,
        safe_serialization: bool = True,
        max_shard_size: int | str | None = None,
        is_main_process: bool = True,
        push_to_hub: bool = False,
        token: str | bool | None = None,
        **hub_kwargs: Any,
    ) -> None:
        """Write config.json and the weights (model.safetensors, or pytorch_model.bin with
        ``safe_serialization=False``) in transformers' layout; weight files of another layout left in
        the folder are removed, so the folder holds one set. ``state_dict`` (ours or transformers' names)
        replaces the model's tensors. ``push_to_hub`` then uploads (``repo_id``, ``private``,
        ``commit_message``), failing at once when the hub is out of reach.
        """
        unknown = set(hub_kwargs) - {"repo_id", "private", "commit_message", "revision"}
        if unknown:
            raise TypeError(f"save_pretrained: got unexpected keyword argument(s) {', '.join(map(repr, sorted(unknown)))}")
        if not is_main_process:
            return
        folder = os.fspath(folder)
        if os.path.isfile(folder):
            raise ValueError(f"save_pretrained: expected a folder, got the file {folder}")
        config = self.config.replace(architectures=[type(self).__name__])
        config.save_pretrained(folder, dtype=str(self.dtype).removeprefix("torch."))
        hf_state = self.hf_state_dict() if state_dict is None else self.as_hf_names(state_dict)
        save_state_dict(hf_state, folder, max_shard_bytes=parse_shard_size(max_shard_size), safe=safe_serialization)
        if push_to_hub:
            hub_push(folder, hub_repo_id(folder, hub_kwargs), token=token, **hub_kwargs)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
