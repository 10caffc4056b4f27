"""transformers' PreTrainedModel class attributes and the small methods its tooling reads (the common test
mixin, PEFT, accelerate, Trainer), set truthfully for what mediaformers supports.

Kept apart from modeling.py (checkpoint I/O) and model_api.py (what users call) so each stays small.
"""
from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
from torch import nn

from .layers.attention import set_attention

# transformers' attn_implementation names -> our attention mode: "eager" is the explicit softmax path,
# "sdpa" our default (torch's fused kernel; on the CPU in bf16/fp16 it may time the explicit path against it,
# which computes the same function).
ATTN_IMPLEMENTATIONS: dict[str, str | None] = {"eager": "math", "sdpa": None}


def check_attn_implementation(name: Any, where: str = "attn_implementation") -> str:
    """``name`` if it is one transformers has and we run, else a ValueError naming the choices."""
    if name not in ATTN_IMPLEMENTATIONS:
        # transformers' opening words (its tests match them), then what was expected.
        raise ValueError(f"{where}: Specified `attn_implementation=\"{name}\"` is not supported; expected one of "
                         f"{sorted(ATTN_IMPLEMENTATIONS)} (flash/flex attention and hub kernels are not implemented here)")
    return name


class TransformersModelAttributes:
    """Mixed into PreTrainedModel: what transformers' model classes declare, as we honour it."""

    # Attention: torch SDPA and the explicit path, switchable per model; no flash/flex kernels and no
    # registry of attention functions (transformers' "attention backend").
    _supports_sdpa: ClassVar[bool] = True
    _supports_flash_attn: ClassVar[bool] = False
    _supports_flex_attn: ClassVar[bool] = False
    _supports_attention_backend: ClassVar[bool] = False
    _compatible_flash_implementations: ClassVar[list[str] | None] = None
    _supports_context_parallel: ClassVar[bool] = False
    # torch.compile(fullgraph=True) traces our forwards without a break (tests/models/test_compile.py).
    _can_compile_fullgraph: ClassVar[bool] = True
    # Our forwards build hidden_states / attentions themselves; nothing is recorded through hooks.
    _can_record_outputs: ClassVar[dict | None] = None
    _is_stateful: ClassVar[bool] = False
    _auto_class: ClassVar[str | None] = None
    model_tags: ClassVar[list[str] | None] = None
    # None where transformers' loader would act on a list: no device_map splitting (accelerate), no fp32
    # islands, no tied weights, and loading is strict (nothing may go missing quietly).
    _no_split_modules: ClassVar[Any] = None
    _skip_keys_device_placement: ClassVar[Any] = None
    _keep_in_fp32_modules: ClassVar[Any] = None
    _keep_in_fp32_modules_strict: ClassVar[Any] = None
    _tied_weights_keys: ClassVar[dict[str, str] | None] = None
    _keys_to_ignore_on_load_missing: ClassVar[Any] = None
    _keys_to_ignore_on_load_unexpected: ClassVar[Any] = None
    _keys_to_ignore_on_save: ClassVar[Any] = None

    @classmethod
    def can_generate(cls) -> bool:
        """Encoders only: nothing here generates."""
        return False

    def get_output_embeddings(self) -> nn.Module | None:
        """None: no language-model head (as transformers answers for these families)."""
        return None

    @property
    def all_tied_weights_keys(self) -> dict[str, str]:
        return {}

    def tie_weights(self, missing_keys: set[str] | None = None, recompute_mapping: bool = True) -> None:
        """Nothing to tie: no family here shares an input and an output embedding."""

    def post_init(self) -> None:
        """transformers' end of __init__: the declared key lists become instance sets, then weights init."""
        for name in ("_keep_in_fp32_modules", "_keep_in_fp32_modules_strict", "_no_split_modules",
                     "_skip_keys_device_placement", "_keys_to_ignore_on_load_unexpected",
                     "_keys_to_ignore_on_load_missing", "_keys_to_ignore_on_save"):
            setattr(self, name, set(getattr(type(self), name) or ()))
        self.init_weights()
        self._apply_config_attn()

    # ---- attention implementation ------------------------------------------------------------------
    @classmethod
    def _can_set_attn_implementation(cls) -> bool:
        return True

    @classmethod
    def _can_set_experts_implementation(cls) -> bool:
        return False  # no mixture-of-experts layers

    def _attention_towers(self) -> dict[str, nn.Module]:
        """{sub-config name: the submodel it configures}; composite models (AltCLIP) override this."""
        return {}

    def set_attn_implementation(self, attn_implementation: str | dict[str, str]) -> None:
        """Switch attention as transformers does: "eager" (the explicit softmax path) or "sdpa"; a dict
        {sub-config name or "": name} sets towers apart. ``config._attn_implementation`` follows."""
        towers = self._attention_towers()
        if isinstance(attn_implementation, dict):
            unknown = set(attn_implementation) - set(towers) - {""}
            if unknown:
                raise ValueError(f"attn_implementation: expected keys among {sorted(towers) + ['']}, "
                                 f"got {sorted(unknown)}")
            default = attn_implementation.get("", None)
            for key, tower in towers.items():
                name = attn_implementation.get(key, default)
                if name is not None:
                    tower.set_attn_implementation(name)
            if default is not None:
                check_attn_implementation(default)
                set_attention(self, ATTN_IMPLEMENTATIONS[default])
                _set_config_attn(self.config, default)
            return
        check_attn_implementation(attn_implementation)
        set_attention(self, ATTN_IMPLEMENTATIONS[attn_implementation])
        _set_config_attn(self.config, attn_implementation)
        for tower in towers.values():
            _set_config_attn(tower.config, attn_implementation)

    def _apply_config_attn(self) -> None:
        """At construction: honour ``config._attn_implementation`` (transformers' ``attn_implementation=``)."""
        name = getattr(self.config, "_attn_implementation", None)
        if name is None:  # what transformers resolves an unset choice to; sub-configs keep their own
            self.config._attn_implementation = "sdpa"
        else:
            check_attn_implementation(name, "config.attn_implementation")
            set_attention(self, ATTN_IMPLEMENTATIONS[name])

    @classmethod
    def _from_config(cls, config, **kwargs: Any):
        """transformers' private constructor the test mixin and PEFT call: a copy of ``config`` with
        ``attn_implementation`` / ``dtype`` / ``torch_dtype`` applied."""
        attn = kwargs.pop("attn_implementation", None)
        dtype = kwargs.pop("dtype", None) or kwargs.pop("torch_dtype", None)
        if kwargs:
            raise TypeError(f"{cls.__name__}._from_config: got unexpected keyword argument(s) {sorted(kwargs)}")
        config = copy.deepcopy(config)
        if attn is not None:
            _set_config_attn(config, check_attn_implementation(attn))
        model = cls(config)
        if dtype is not None:
            if isinstance(dtype, str):
                dtype = getattr(torch, dtype.removeprefix("torch."))
            model = model.to(dtype)
        return model

    @property
    def name_or_path(self) -> str:
        """What from_pretrained was given ("" for a model built from a config), as transformers keeps it."""
        return getattr(self.config, "_name_or_path", "")

    def get_position_embeddings(self) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__}: get_position_embeddings is not implemented, as in "
                                  "transformers (other input sizes: interpolate_pos_encoding=True, AST's pos_mode)")

    def resize_position_embeddings(self, new_num_position_embeddings: int) -> None:
        raise NotImplementedError(f"{type(self).__name__}: resize_position_embeddings is not implemented, as in "
                                  "transformers (other input sizes: interpolate_pos_encoding=True, AST's pos_mode)")

    def get_memory_footprint(self, return_buffers: bool = True) -> int:
        """Bytes of the parameters (and buffers), as transformers counts them."""
        tensors = [*self.parameters(), *(self.buffers() if return_buffers else ())]
        return sum(t.numel() * t.element_size() for t in tensors)


def _set_config_attn(config, name: str) -> None:
    """Record the choice on a config (and its text/vision sub-configs), as transformers' setter does."""
    for c in (config, getattr(config, "text_config", None), getattr(config, "vision_config", None)):
        if c is not None:
            c._attn_implementation = name
