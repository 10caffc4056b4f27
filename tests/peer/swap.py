"""Which transformers names mediaformers replaces, and the patching itself.

Kept free of pytest and of the download so the main suite can test it cheaply (tests/peer/test_swap.py).
The patch goes on ``transformers`` and on the family's modules (and their submodules), so both
``from transformers import X`` in a test file and transformers' auto mappings (which resolve a class
name on the family module) hand out ours.
"""
from __future__ import annotations

import importlib
import sys
from typing import Any

# family -> transformers' model folders whose public names we replace (AltCLIP's processor holds an
# XLM-R tokenizer and a CLIP image processor).
FAMILY_MODULES: dict[str, tuple[str, ...]] = {
    "videomae": ("videomae",),
    "vivit": ("vivit",),
    "audio_spectrogram_transformer": ("audio_spectrogram_transformer",),
    "altclip": ("altclip", "xlm_roberta", "clip"),
}


def ours() -> dict[str, Any]:
    """mediaformers' public classes by transformers' name (models, configs, processors)."""
    import mediaformers
    import mediaformers.processors as processors

    out = {n: getattr(mediaformers, n) for n in dir(mediaformers) if n[:1].isupper() and n != "PreTrainedModel"}
    out.update({n: getattr(processors, n) for n in processors.__all__})
    return out


def swap_map(family: str) -> dict[str, Any]:
    """{name: our object} for every name the family's transformers modules define that we also define."""
    mine = ours()
    out = {}
    for folder in FAMILY_MODULES[family]:
        module = importlib.import_module(f"transformers.models.{folder}")
        for name in getattr(module, "__all__", None) or dir(module):
            if name in mine:
                out[name] = mine[name]
    return out


def install(family: str) -> dict[str, Any]:
    """Patch transformers so the family's names are ours; return the map. Raises if nothing was swapped."""
    # Importing testing_utils once puts a fresh transformers module into sys.modules; patch that one.
    importlib.import_module("transformers.testing_utils")
    transformers = sys.modules["transformers"]

    mapping = swap_map(family)
    if not mapping:
        raise RuntimeError(f"peer swap: no mediaformers class matches transformers' {family} names")
    targets = [transformers]
    for folder in FAMILY_MODULES[family]:
        prefix = f"transformers.models.{folder}"
        targets.append(importlib.import_module(prefix))
        targets += [m for k, m in list(sys.modules.items()) if k.startswith(prefix + ".") and m is not None]
    for module in targets:
        for name, obj in mapping.items():
            if module is transformers or name in vars(module) or _lazy_has(module, name):
                _SAVED.append((module, name, vars(module).get(name, _ABSENT)))
                setattr(module, name, obj)
    check(family, mapping)
    return mapping


_ABSENT = object()
_SAVED: list[tuple[Any, str, Any]] = []


def restore() -> None:
    """Undo ``install`` (the main suite's check of the swap runs in its own process's transformers)."""
    while _SAVED:
        module, name, old = _SAVED.pop()
        if old is _ABSENT:
            vars(module).pop(name, None)
        else:
            setattr(module, name, old)


def _lazy_has(module: Any, name: str) -> bool:
    return name in getattr(module, "_class_to_module", {}) or any(
        name in names for names in getattr(module, "_import_structure", {}).values() if isinstance(names, (list, set)))


def check(family: str, mapping: dict[str, Any]) -> None:
    """Assert the swap took effect where the test files look: ``transformers.X`` and the family module."""
    transformers = sys.modules["transformers"]

    for name, obj in mapping.items():
        if getattr(transformers, name) is not obj:
            raise AssertionError(f"peer swap: transformers.{name} is still transformers' own")
    module = importlib.import_module(f"transformers.models.{FAMILY_MODULES[family][0]}")
    for name, obj in mapping.items():
        if name in vars(module) and getattr(module, name) is not obj:
            raise AssertionError(f"peer swap: {module.__name__}.{name} is still transformers' own")


def swapped_in(namespace: dict[str, Any], mapping: dict[str, Any]) -> list[str]:
    """Names of a test module's globals that are transformers' own where ours should be (empty: swap held)."""
    return [n for n, obj in mapping.items() if n in namespace and namespace[n] is not obj]
