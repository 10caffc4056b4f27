"""--precision on the task commands and pipelines; `mediaformers export` for every family."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mediaformers.tasks.loading import load_model
from mediaformers.tasks.pipelines import pipeline


def _cli(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mediaformers", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_classify_precision_agrees_with_fp32(ckpts, media, precision):
    base = _cli("classify", ckpts["videomae"], media / "a.mp4", "--top-k", "3", "--quiet")
    low = _cli("classify", ckpts["videomae"], media / "a.mp4", "--top-k", "3", "--quiet", "--precision", precision)
    assert base.returncode == 0 and low.returncode == 0, low.stderr
    a = {r["label"]: r["score"] for r in json.loads(base.stdout)["labels"]}
    b = {r["label"]: r["score"] for r in json.loads(low.stdout)["labels"]}
    assert a.keys() == b.keys() and max(abs(a[k] - b[k]) for k in a) < 0.02


@pytest.mark.timeout(240)
@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_zero_shot_and_embed_precision_agree_with_fp32(ckpts, media, tmp_path, precision):
    import numpy as np

    ask = ("zero-shot", ckpts["altclip"], media / "still.png", "--labels", "cat", "dog", "car", "--quiet")
    base, low = _cli(*ask), _cli(*ask, "--precision", precision)
    assert base.returncode == 0 and low.returncode == 0, low.stderr
    a = {r["label"]: r["score"] for r in json.loads(base.stdout)["labels"]}
    b = {r["label"]: r["score"] for r in json.loads(low.stdout)["labels"]}
    assert a.keys() == b.keys() and max(abs(a[k] - b[k]) for k in a) < 0.02
    rows = {}
    for p in ("fp32", precision):
        done = _cli("embed", ckpts["ast"], media / "tone.wav", "-o", tmp_path / f"{p}.npy", "--quiet", "--precision", p)
        assert done.returncode == 0, done.stderr
        rows[p] = np.load(tmp_path / f"{p}.npy")
    x, y = rows["fp32"].ravel(), rows[precision].ravel()
    assert float(x @ y / np.linalg.norm(x) / np.linalg.norm(y)) > 0.99


def test_pipeline_precision_is_applied(ckpts):
    pipe = pipeline(model=ckpts["ast"], precision="bf16")
    assert pipe.model.precision == "bf16" and str(pipe.model.dtype) == "torch.bfloat16"


def test_precision_and_dtype_are_exclusive(ckpts):
    with pytest.raises(ValueError, match="precision/dtype: give one of them"):
        load_model(ckpts["ast"], dtype="bfloat16", precision="bf16")
    with pytest.raises(ValueError, match=r"precision: expected one of \['fp32', 'bf16', 'int8', 'auto'\]"):
        load_model(ckpts["ast"], precision="half")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("family", ["videomae", "vivit", "ast", "tvlt"])
def test_export_command_every_family(ckpts, tmp_path, family):
    run = _cli("export", ckpts[family], "-o", tmp_path, "--dynamic-batch")
    assert run.returncode == 0, run.stderr
    assert "max |exported - eager|" in run.stdout and (tmp_path / "model.onnx").is_file()
    assert json.loads((tmp_path / "config.json").read_text())["model_type"]


@pytest.mark.timeout(300)
def test_export_two_towers_all_parts(ckpts, tmp_path):
    run = _cli("export", ckpts["altclip"], "-o", tmp_path, "--part", "all")
    assert run.returncode == 0, run.stderr
    assert {p.name for p in tmp_path.glob("model*.onnx")} == {"model.onnx", "model_text.onnx", "model_image.onnx"}
    assert (tmp_path / "tokenizer.json").is_file() and (tmp_path / "preprocessor_config.json").is_file()


@pytest.mark.parametrize("args, message", [
    (["--part", "text"], "has one tower; use --part model"),
    (["--precision", "bf16"], "onnxruntime's CPU provider has no bfloat16"),
    (["--batch", "0"], "--batch: expected a positive batch size, got 0"),
])
def test_export_errors_exit_2(ckpts, tmp_path, args, message):
    run = _cli("export", ckpts["ast"], "-o", tmp_path, *args)
    assert run.returncode == 2 and message in run.stderr, run.stderr
