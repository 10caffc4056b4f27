"""`mediaformers demo`: generated labelled media, trained models, fresh files classified."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mediaformers import demo

MODELS = {f.name: demo._modality(f) for f in demo.demo_families()}


def cli(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mediaformers", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def results(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


def classes(kind: str, speech: bool) -> set[str]:
    return set(demo.VIDEO_CLASSES if kind == "video" else demo.AUDIO_CLASSES + ((demo.SPEECH_CLASS,) if speech else ()))


def check_run(folder: Path, stdout: str, speech: bool, plan: str) -> list[dict]:
    """Training ran for every model, accuracy is reported, every fresh file has a label from the class set."""
    assert set(MODELS) == {"ast", "videomae"}  # one audio and one video model declare a demo config
    recs = results(folder)
    for model, kind in MODELS.items():
        run = folder / "runs" / model
        steps = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "lr" in r]
        assert steps and all(np.isfinite(r["train_loss"]) for r in steps)  # optimizer steps were taken
        assert (run / "best" / "config.json").is_file() and (run / "best" / "preprocessor_config.json").is_file()
        config = json.loads((run / "best" / "config.json").read_text())
        assert set(config["id2label"].values()) == classes(kind, speech)
        mine = [r for r in recs if r["model"] == model]
        assert len(mine) == len(classes(kind, speech)) * demo.PLANS[plan][kind].fresh_per_class
        for r in mine:
            assert not os.path.isabs(r["input"]) and r["input"].startswith(f"fresh/{kind}/{r['true']}/")
            assert r["true"] in classes(kind, speech) and r["labels"][0]["label"] in classes(kind, speech)
        right = sum(r["labels"][0]["label"] == r["true"] for r in mine)
        assert f"# {model}: {kind} classification" in stdout
        assert f"fresh accuracy: {right}/{len(mine)} = " in stdout
    assert stdout.count("held-out accuracy ") == len(MODELS)
    return recs


@pytest.mark.timeout(200)
def test_quick_demo_trains_classifies_fresh_files_and_repeats_itself(tmp_path):
    first = cli("demo", tmp_path / "d", "--quick")
    assert first.returncode == 0, first.stderr
    recs = check_run(tmp_path / "d", first.stdout, bool(demo.espeak()), "quick")
    second = cli("demo", "--workdir", tmp_path / "d", "--quick")  # the same folder again: cleared, redone
    assert second.returncode == 0 and second.stdout == first.stdout  # seeded: the same bytes
    assert results(tmp_path / "d") == recs


@pytest.mark.timeout(200)
def test_demo_without_espeak_says_so_and_defaults_to_a_new_folder(tmp_path, monkeypatch, capsys):
    import tempfile

    from mediaformers.cli import main

    monkeypatch.setattr(demo, "espeak", lambda: None)
    real = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda suffix=None, prefix=None, dir=None: str(tmp_path / f"{prefix}x")
                        if prefix == "mediaformers-demo-" else real(suffix, prefix, dir))
    assert main(["demo", "--quick"]) == 0
    out = capsys.readouterr()
    folder = tmp_path / "mediaformers-demo-x"
    assert f"working in {folder}/" in out.err
    assert "espeak-ng is not installed, so the audio data has no spoken-word class" in out.out
    check_run(folder, out.out, False, "quick")
    assert not (folder / "data" / "audio" / demo.SPEECH_CLASS).exists()


def test_demo_names_one_folder():
    run = cli("demo", "a", "--workdir", "b")
    assert run.returncode == 2 and "expected one work folder, got a and --workdir b" in run.stderr


@pytest.mark.parametrize("label", demo.VIDEO_CLASSES)
def test_generated_clips_move_the_way_their_label_says(label):
    for i in range(5):
        clip = demo.shape_clip(label, np.random.default_rng([0, i]))
        (y0, x0), (y1, x1) = (np.argwhere(clip[t].max(-1) == 255).mean(0) for t in (0, -1))  # the shape
        dy, dx = y1 - y0, x1 - x0
        assert {"left": dx < -15 and abs(dy) < 1, "right": dx > 15 and abs(dy) < 1,
                "up": dy < -15 and abs(dx) < 1, "down": dy > 15 and abs(dx) < 1}[label], (dy, dx)
    with pytest.raises(ValueError, match="label: expected one of"):
        demo.shape_clip("sideways", np.random.default_rng(0))


def test_generated_sounds_are_one_second_and_differ_by_class(tmp_path):
    waves = {label: demo.sound(label, np.random.default_rng(0), tmp_path) for label in demo.AUDIO_CLASSES}
    for wave in waves.values():
        assert wave.shape == (demo.RATE,) and wave.dtype == np.float32 and 0.1 < np.abs(wave).max() <= 1
    power = {k: np.sort(np.abs(np.fft.rfft(w)) ** 2)[::-1] for k, w in waves.items()}
    peaky = {k: p[:50].sum() / p.sum() for k, p in power.items()}  # share of the 50 strongest of 8001 bins
    frames = {k: np.sqrt((w.reshape(50, -1) ** 2).mean(1)) for k, w in waves.items()}  # 20 ms loudness
    pauses = {k: f.min() < 0.1 * f.max() for k, f in frames.items()}
    assert peaky["tone"] > 0.8 and peaky["noise"] < 0.1, peaky  # a held note vs broadband noise
    assert pauses == {"tone": False, "noise": False, "chirp": True}  # chirps come and go
    with pytest.raises(ValueError, match="label: expected one of"):
        demo.sound("music", np.random.default_rng(0), tmp_path)


@pytest.mark.timeout(400)
def test_full_demo_labels_fresh_files_right(tmp_path):
    run = cli("demo", tmp_path / "d", timeout=390)
    assert run.returncode == 0, run.stderr
    recs = check_run(tmp_path / "d", run.stdout, bool(demo.espeak()), "full")
    for model in MODELS:
        mine = [r for r in recs if r["model"] == model]
        accuracy = sum(r["labels"][0]["label"] == r["true"] for r in mine) / len(mine)
        assert accuracy >= 0.8, (model, accuracy)


def test_demo_decodes_and_encodes_through_the_processors_only():
    """No `import av` in the demo: video files are written by processors.video_writer, read by the processors."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(demo))
    names = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "av" not in names and "av" not in modules


def test_top_level_help_examples_name_paths_the_demo_makes():
    from mediaformers.cli import build_parser

    epilog = build_parser().epilog
    made = {f"demo/runs/{m}/best" for m in MODELS} | {f"demo/fresh/{kind}" for kind in MODELS.values()}
    named = {w for line in epilog.splitlines() if line.strip().startswith("mediaformers ")
             for w in line.split()[2:] if w.startswith("demo/") and w != "demo/"}
    assert named and named <= made, named - made
