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
    assert got.shape == (4, model.config.num_labels) and np.abs(got - want).max() <= 1e-4


@pytest.mark.timeout(120)
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_exported_program(cases, tmp_path, precision):
    model, inputs = cases["videomae"]
    import copy

    result = export_model(copy.deepcopy(model), tmp_path, inputs, format="exported-program",
                          precision=precision, dynamic_batch=True)
    program = torch.export.load(str(result.path)).module()
    x = inputs["pixel_values"][:1].to({"fp32": torch.float32, "bf16": torch.bfloat16}[precision])
    assert program(x)[0].shape == (1, model.config.num_labels)


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


@pytest.mark.timeout(180)
def test_onnx_example_runs_without_torch_and_scores_as_classify(tmp_path):
    """The README's no-torch recipe: `mediaformers export`, then examples/onnx_video_classify.py under a
    torch-less Python gives classify's scores (stride sampling from the saved processor, static batch)."""
    import subprocess
    import sys
    from pathlib import Path

    import mediaformers as mf
    from mediaformers.cli import main
    from mediaformers.processors.video_processors import VideoMAEVideoProcessor
    from mediaformers.tasks.pipelines import pipeline
    from tests.media import make_video

    ckpt, out = tmp_path / "ckpt", tmp_path / "exported"
    config = mf.VideoMAEConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                               image_size=32, patch_size=16, num_frames=4, num_labels=3,
                               id2label={0: "cat", 1: "dog", 2: "owl"})
    torch.manual_seed(0)
    mf.VideoMAEForVideoClassification(config).save_pretrained(ckpt)
    # bicubic, a non-square crop of a resized frame, stride sampling 4 x 3 of 20 frames (not uniform's)
    VideoMAEVideoProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32}, resample=3,
                           num_frames=4, frame_sampling="stride", frame_step=3).save_pretrained(ckpt)
    video = make_video(tmp_path / "clip.mp4", frames=20, size=(40, 54))
    assert main(["export", str(ckpt), "-o", str(out), "--batch", "2"]) == 0  # a fixed batch of 2
    example = Path(__file__).parents[1] / "examples" / "onnx_video_classify.py"
    blocker = ("import sys, runpy; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; "
               "runpy.run_path(sys.argv[0], run_name='__main__')")
    run = subprocess.run([sys.executable, "-c", blocker, str(example), str(out), str(video), "--top-k", "3"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    theirs = {r["label"]: r["score"] for r in map(json.loads, run.stdout.splitlines())}
    ours = {r["label"]: r["score"] for r in pipeline(None, str(ckpt), top_k=3)(str(video))["labels"]}
    assert sorted(theirs) == ["cat", "dog", "owl"]
    assert max(abs(theirs[k] - ours[k]) for k in ours) <= 1e-4, (theirs, ours)


def test_onnx_example_preprocessing_equals_the_processors():
    """Its numpy frame indices and pixels are mediaformers' own (no torch in the example)."""
    import runpy
    from pathlib import Path

    import numpy as np

    from mediaformers.processors.sampling import ClipSampler
    from mediaformers.processors.video_processors import VideoMAEImageProcessor, VivitImageProcessor

    helpers = runpy.run_path(str(Path(__file__).parents[1] / "examples" / "onnx_video_classify.py"))
    for strategy in ("uniform", "stride", "segments"):
        for step in (1, 2, 5):
            for frames in (1, 3, 8):
                cfg = {"frame_sampling": strategy, "frame_step": step}
                for total in range(1, 60):
                    want = ClipSampler(strategy, frames, step)(total)[0].numpy()
                    assert np.array_equal(helpers["frame_indices"](total, cfg, frames), want), (cfg, frames, total)
    rng = np.random.default_rng(0)
    for proc in (VideoMAEImageProcessor(size={"shortest_edge": 30}, crop_size={"height": 28, "width": 24}),
                 VideoMAEImageProcessor(size={"shortest_edge": 50}, crop_size={"height": 40, "width": 40}, resample=3),
                 VivitImageProcessor(size={"height": 17, "width": 33}, crop_size={"height": 16, "width": 16}),
                 VideoMAEImageProcessor(size={"shortest_edge": 20}, crop_size={"height": 26, "width": 26}, resample=0)):
        frames = rng.integers(0, 256, (3, 37, 61, 3), dtype=np.uint8)
        frames[:, :10] = frames[:, :10] // 128 * 255  # hard edges: where rounding differences would show
        want = proc.prepare(torch.from_numpy(frames))["pixel_values"].numpy()
        got = helpers["preprocess"](frames, proc.to_dict())
        assert got.shape == want.shape and np.abs(got - want).max() <= 1e-6, proc
