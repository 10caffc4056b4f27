"""The peer harness' swap, checked cheaply (no download): transformers' names become ours where test files
and auto mappings look, the check notices a module that kept transformers' class, and restore undoes it."""
import importlib

import pytest

import mediaformers as mf
from tests.peer import run, swap

transformers = pytest.importorskip("transformers")


@pytest.fixture
def swapped():
    yield swap.install("videomae")
    swap.restore()


def test_install_swaps_top_level_family_module_and_auto_mapping(swapped):
    import sys

    tf = sys.modules["transformers"]
    assert {"VideoMAEConfig", "VideoMAEModel", "VideoMAEForPreTraining", "VideoMAEImageProcessor"} <= set(swapped)
    assert tf.VideoMAEModel is mf.VideoMAEModel and tf.VideoMAEConfig is mf.VideoMAEConfig
    assert importlib.import_module("transformers.models.videomae").VideoMAEForVideoClassification \
        is mf.VideoMAEForVideoClassification
    from transformers.models.auto import MODEL_FOR_VIDEO_CLASSIFICATION_MAPPING, get_values

    assert mf.VideoMAEForVideoClassification in get_values(MODEL_FOR_VIDEO_CLASSIFICATION_MAPPING)
    assert "AltCLIPModel" not in swapped  # only the family's own names


def test_check_notices_a_name_left_as_transformers(swapped):
    stale = {"VideoMAEModel": object(), "VideoMAEConfig": mf.VideoMAEConfig, "unrelated": 1}
    assert swap.swapped_in(stale, swapped) == ["VideoMAEModel"]


def test_restore_gives_transformers_its_classes_back():
    import sys

    before = sys.modules["transformers"].VideoMAEModel
    swap.install("videomae")
    swap.restore()
    assert sys.modules["transformers"].VideoMAEModel is before is not mf.VideoMAEModel


def test_compare_counts_only_tests_transformers_passes():
    base = {"a": ("passed", ""), "b": ("passed", ""), "c": ("failed", "x"), "d": ("skipped", "")}
    ours = {"a": ("passed", ""), "b": ("failed", "TypeError: boom"), "c": ("passed", "")}
    assert run.compare(base, ours) == (2, 1, {"b": "TypeError: boom"})
    assert "| videomae | 2 | 1 | 50% |" in run.table([("videomae", 2, 1)])


def test_a_test_that_kills_the_process_is_recorded_and_the_rest_still_run(tmp_path):
    (tmp_path / "test_demo.py").write_text(
        "import os\n\n"
        "def test_a():\n    pass\n\n"
        "def test_b():\n    os._exit(3)\n\n"
        "def test_c():\n    assert 1 == 2\n")
    got = run.run_pytest(tmp_path, tmp_path, tmp_path / "test_demo.py", None, 1)
    assert got["test_a"] == ("passed", "")
    assert got["test_b"][0] == "failed" and "died" in got["test_b"][1]
    assert got["test_c"][0] == "failed" and "assert 1 == 2" in got["test_c"][1]
