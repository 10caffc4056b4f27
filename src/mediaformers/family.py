"""What a model family is, declared once at the end of its module in ``mediaformers/models/``.

Each ``models/<family>.py`` ends with ``register_family(Family(...))`` (as timm's
``@register_model`` registers a model). Everything that needs "for each family" -- the auto
classes, the registry of known checkpoints, pipelines, ``info``, the CLI, the demo, the public
exports and the generic tests -- asks :func:`families` and holds no family name of its own.

This module imports neither torch nor any model: :func:`families` imports the modules of
``mediaformers.models`` on first use, so ``import mediaformers`` and ``mediaformers --help`` stay
cheap and a family's code loads only when something asks for families.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TASKS = ("video-classification", "audio-classification", "audio-visual-classification",
         "zero-shot-classification", "feature-extraction")
MEDIA = ("video", "audio", "image", "text")


@dataclass(frozen=True)
class Pretrained:
    """A known checkpoint: short registry name -> hub id, what ``classify`` does with it, a note."""

    hub_id: str
    task: str
    note: str = ""


@dataclass(frozen=True, eq=False)
class Processor:
    """A processor class, named lazily (``"module:Class"`` under ``mediaformers.processors``) so
    declaring it imports nothing, and the settings a model config implies for it.

    ``settings(config)`` fills what a checkpoint's ``preprocessor_config.json`` leaves out (frames,
    image size, lengths), as transformers' pipelines take them from the model config. ``limits``
    names settings the file may set lower but never above the config's value (the model takes no
    more, e.g. a most frame count or spectrogram length). ``fixed`` names settings the model's structure
    decides (a patch size sets the mask's shape): the config's value wins over the file's.
    """

    path: str
    settings: Callable[[Any], dict[str, Any]] = lambda config: {}
    limits: tuple[str, ...] = ()
    fixed: tuple[str, ...] = ()

    def load(self) -> Any:  # a processor class
        module, _, name = self.path.partition(":")
        return getattr(importlib.import_module(f"mediaformers.processors.{module}"), name)


@dataclass(frozen=True, eq=False)
class Family:
    """One model family.

    name: short name (the module's; demo folder names).
    classes: the model classes, the backbone first; its ``config_class`` is the family's config (whose
    ``model_type``, config.json's, identifies the family) and its ``converter`` the weight-name table. task: what ``mediaformers classify`` runs
    (the pipeline's default); every family also serves "feature-extraction".
    processors: media kind ("video", "audio", "image", "text") -> :class:`Processor`; the kinds
    decide how a file becomes model views (tasks/views.py). accepts: file kinds it takes.
    pooled(model, batch) -> (views, dim): the embedding without a task head.
    dummy_inputs(cls, config, batch_size) -> the keyword inputs of ``cls`` (random, model-sized).
    input_doc(config) -> one line on what the model takes (``mediaformers info``).
    tiny: config keywords of a small model (generic tests); variants: named changes to ``tiny``
    the generic tests also run (options that take other code paths). demo: config keywords of the
    small model ``mediaformers demo`` trains on its generated media, or None. pretrained: registry
    name -> :class:`Pretrained`.
    exports: more public names than the config and classes (``mediaformers.<name>``).
    """

    name: str
    classes: tuple[Any, ...]  # model classes (Any: their config_class/converter are class attributes)
    task: str
    processors: dict[str, Processor]
    accepts: frozenset[str]
    pooled: Callable[[Any, dict], Any]
    dummy_inputs: Callable[[type, Any, int], dict]
    input_doc: Callable[[Any], str]
    tiny: dict[str, Any]
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    demo: dict[str, Any] | None = None
    pretrained: dict[str, Pretrained] = field(default_factory=dict)
    exports: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"{self.name}: task: expected one of {TASKS}, got {self.task!r}")
        if not set(self.processors) <= set(MEDIA) or not set(self.accepts) <= set(MEDIA):
            raise ValueError(f"{self.name}: processors/accepts: expected kinds among {MEDIA}, "
                             f"got {sorted(self.processors)} / {sorted(self.accepts)}")

    @property
    def config(self) -> Any:  # the family's config dataclass
        return self.classes[0].config_class

    @property
    def converter(self) -> Any:
        return self.classes[0].converter

    @property
    def model_type(self) -> str:
        return self.config.model_type

    @property
    def tasks(self) -> frozenset[str]:
        return frozenset({self.task, "feature-extraction"})

    @property
    def backbone(self) -> type:
        return self.classes[0]

    def head(self) -> type | None:
        """The class with a classification head, if the family has one."""
        return next((c for c in self.classes if getattr(c, "is_classifier", False)), None)

    def config_for(self, cls: Any, config: Any) -> Any:
        """The config ``cls`` is built from: ``config`` itself, or the sub-config of its class inside it
        (a tower of a two-tower model)."""
        if isinstance(config, cls.config_class):
            return config
        for value in vars(config).values():
            if isinstance(value, cls.config_class):
                return value
        raise ValueError(f"config: expected a {cls.config_class.__name__} or a config holding one, "
                         f"got {type(config).__name__}")

    def names(self) -> dict[str, Any]:
        """Public name -> object: the config, the classes, the extra exports."""
        return {obj.__name__: obj for obj in (self.config, *self.classes, *self.exports)}


_FAMILIES: dict[str, Family] = {}
_discovered = False


def register_family(family: Family) -> Family:
    """Add a declaration (called at the end of its model module); returns it."""
    old = _FAMILIES.get(family.model_type)
    if old is not None and old.name != family.name:
        raise ValueError(f"model_type {family.model_type!r}: declared by {old.name} and {family.name}")
    for other in _FAMILIES.values():
        if other.model_type != family.model_type:
            clash = set(other.pretrained) & set(family.pretrained)
            if clash:
                raise ValueError(f"registry names {sorted(clash)}: declared by {other.name} and {family.name}")
    _FAMILIES[family.model_type] = family
    return family


def families() -> dict[str, Family]:
    """model_type -> Family for every family in ``mediaformers.models`` (imported on first call)."""
    global _discovered
    if not _discovered:
        models = importlib.import_module("mediaformers.models")
        for info in pkgutil.iter_modules(models.__path__):
            importlib.import_module(f"{models.__name__}.{info.name}")
        _discovered = True
    return dict(_FAMILIES)


def get_family(model_type: str | None) -> Family:
    fams = families()
    if model_type not in fams:
        raise ValueError(f"model_type: expected one of {sorted(fams)}, got {model_type!r}")
    return fams[model_type]


def find_class(name: str) -> tuple[Family, type] | None:
    """The family and class of a class name (config.json's "architectures")."""
    for fam in families().values():
        for cls in fam.classes:
            if cls.__name__ == name:
                return fam, cls
    return None
