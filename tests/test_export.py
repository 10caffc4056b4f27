"""Exports (ONNX through onnxruntime, torch.export programs) reproduce eager outputs, for every family."""
from __future__ import annotations

import json

import pytest
import torch

from mediaformers.export import ExportError, export_model
from tests.tiny_families import tiny_cases

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def cases():
    return tiny_cases()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", ["videomae", "vivit", "ast", "tvlt", "altclip"])
def test_onnx_matches_eager(cases, name, tmp_path):
    model, inputs = cases[name]
    result = export_model(model, tmp_path, inputs, format="onnx")
    assert result.path.is_file() and result.max_abs_diff <= 1e-4
    meta = json.loads((tmp_path / "export.json").read_text())
    assert meta["inputs"] == list(inputs) and meta["outputs"] == result.outputs


@pytest.mark.timeout(120)
@pytest.mark.parametrize("part, inputs_kept, outputs", [
    ("text", ["input_ids", "attention_mask"], ["text_embeds"]),
    ("image", ["pixel_values"], ["image_embeds"]),
])
def test_two_tower_parts(cases, tmp_path, part, inputs_kept, outputs):
    model, inputs = cases["altclip"]
    result = export_model(model, tmp_path, inputs, format="onnx", part=part, dynamic_batch=True)
    assert result.inputs == inputs_kept and result.outputs == outputs
    assert (tmp_path / f"model_{part}.onnx").is_file()


@pytest.mark.timeout(120)
def test_dynamic_batch_runs_other_batch_sizes(cases, tmp_path):
    import numpy as np
    import onnxruntime as ort

    model, inputs = cases["ast"]
    export_model(model, tmp_path, inputs, format="onnx", dynamic_batch=True, check_batches=(1, 5))
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(4, *inputs["input_values"].shape[1:])
    got = session.run(["logits"], {"input_values": x.numpy()})[0]
    with torch.no_grad():
        want = model(input_values=x).logits.numpy()
    assert got.shape == (4, 10) and np.abs(got - want).max() <= 1e-4


@pytest.mark.timeout(120)
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_exported_program(cases, tmp_path, precision):
    model, inputs = cases["videomae"]
    import copy

    result = export_model(copy.deepcopy(model), tmp_path, inputs, format="exported-program",
                          precision=precision, dynamic_batch=True)
    program = torch.export.load(str(result.path)).module()
    x = inputs["pixel_values"][:1].to(result.path and {"fp32": torch.float32, "bf16": torch.bfloat16}[precision])
    assert program(x)[0].shape == (1, 10)


def test_fp16_onnx_within_its_tolerance(cases, tmp_path):
    import copy

    model, inputs = cases["videomae"]
    result = export_model(copy.deepcopy(model), tmp_path, inputs, format="onnx", precision="fp16")
    assert result.max_abs_diff <= result.tolerance


@pytest.mark.parametrize("kwargs, message", [
    (dict(format="onnx", precision="bf16"), "onnxruntime's CPU provider has no bfloat16"),
    (dict(format="tflite"), r"format: expected one of \['onnx', 'exported-program'\], got 'tflite'"),
    (dict(precision="int4"), r"precision: expected one of \['fp32', 'fp16', 'bf16'\], got 'int4'"),
    (dict(part="text"), "has no separate text tower"),
    (dict(check_batches=(3,)), "needs dynamic_batch=True"),
])
def test_clear_errors(cases, tmp_path, kwargs, message):
    model, inputs = cases["ast"]
    with pytest.raises(ExportError, match=message):
        export_model(model, tmp_path, inputs, **kwargs)


def test_output_must_be_a_directory(cases, tmp_path):
    model, inputs = cases["ast"]
    (tmp_path / "f").write_text("mine")
    with pytest.raises(ExportError, match="expected a directory"):
        export_model(model, tmp_path / "f", inputs)
    assert (tmp_path / "f").read_text() == "mine"
