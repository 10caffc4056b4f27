"""The package surface: cheap import, names from the declarations, the registry."""
import subprocess
import sys

import pytest

import mediaformers as mf
from mediaformers.family import Family, families, register_family


def test_import_is_cheap():
    """`import mediaformers` (and so `mediaformers --help`) loads neither torch nor a model."""
    code = "import sys, mediaformers; print('torch' in sys.modules, any('mediaformers.models' in m for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_every_declared_name_is_exported():
    names = {name for fam in families().values() for name in fam.names()}
    assert names <= set(mf.__all__) and {"pipeline", "from_pretrained", "list_models"} <= set(mf.__all__)
    for name in names:
        assert getattr(mf, name) is not None
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchModel'"):
        mf.NoSuchModel  # noqa: B018 (the attribute access is what is tested)


def test_list_models_by_task():
    everything = mf.list_models()
    assert everything == sorted(everything) and len(everything) == len(set(everything))
    video = mf.list_models("video-classification")
    assert video and set(video) < set(everything)
    assert mf.list_models("no-such-task") == []


def test_a_second_family_cannot_take_a_model_type_or_a_registry_name():
    fam = next(iter(families().values()))
    clone = Family(**{**{f: getattr(fam, f) for f in fam.__dataclass_fields__}, "name": "other"})
    with pytest.raises(ValueError, match="declared by"):
        register_family(clone)
    fam = next(f for f in families().values() if f.pretrained)
    other_config = type("OtherConfig", (fam.config,), {"model_type": "x-other"})
    other_model = type("OtherModel", (fam.backbone,), {"config_class": other_config})
    same_names = Family(**{**{f: getattr(fam, f) for f in fam.__dataclass_fields__}, "classes": (other_model,)})
    with pytest.raises(ValueError, match="registry names .* declared by"):
        register_family(same_names)
    assert "x-other" not in families()
    with pytest.raises(ValueError, match="task: expected one of"):
        Family(**{**{f: getattr(fam, f) for f in fam.__dataclass_fields__}, "task": "translation"})
