"""Training as an adversary and a new user try it: resume means the same run, bad manifests and numbers end
in one clear error before anything is built, a rejected run leaves nothing behind, a kill mid-write leaks
nothing (issue 25)."""
import json
import os
import signal
import subprocess
import sys

import pytest

from mediaformers.errors import DataError, NonFiniteLossError, ResumeError, TrainingError
from mediaformers.train import Recipe, fit

from .conftest import TINY_AUDIO, write_audio_classes


def _fit(data, run, **kw):
    kw = {"model": "ast", "config": TINY_AUDIO, "batch_size": 4, **kw}
    return fit(Recipe(data=str(data), output=str(run), **kw))


def _rows(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


# ---- resume is the same run ----------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_resume_refuses_other_data_model_or_options_and_names_the_field(audio_classes, tmp_path):
    run = tmp_path / "run"
    _fit(audio_classes, run, max_steps=2)
    other = write_audio_classes(tmp_path / "other", n_per_class=6)
    (other / "tone").rename(other / "cat")
    (other / "noise").rename(other / "dog")
    with pytest.raises(ResumeError, match=r"trained with labels \['noise', 'tone'\], got \['cat', 'dog'\]"):
        _fit(other, run, max_steps=3, resume=True)
    (audio_classes / "tone" / "tone0.wav").rename(audio_classes / "tone" / "extra.wav")  # same labels, other files
    with pytest.raises(ResumeError, match=r"trained with training files 10 files \(digest \w+\), got 10 files"):
        _fit(audio_classes, run, max_steps=3, resume=True)
    (audio_classes / "tone" / "extra.wav").rename(audio_classes / "tone" / "tone0.wav")
    with pytest.raises(ResumeError, match="trained with lr 0.0001, got 0.5.*--epochs"):
        _fit(audio_classes, run, max_steps=3, resume=True, lr=0.5)
    with pytest.raises(ResumeError, match="trained with model config hidden_size 32, got 48"):
        _fit(audio_classes, run, max_steps=3, resume=True, config={**TINY_AUDIO, "hidden_size": 48})
    with pytest.raises(ResumeError, match="trained with augment False, got True"):
        _fit(audio_classes, run, max_steps=3, resume=True, augment=True)
    out = _fit(audio_classes, run, max_steps=3, resume=True, epochs=5)  # may change: how long it goes on
    steps = [r["step"] for r in _rows(run) if "lr" in r]
    assert steps == [1, 2, 3] and out["evaluated"] >= 1


def test_resume_with_a_checkpoint_of_another_shape_is_one_line(audio_classes, tmp_path):
    """run.json lost: the checkpoint's own record still refuses; with none, the state load names the run."""
    run = tmp_path / "run"
    _fit(audio_classes, run, max_steps=1)
    (run / "run.json").unlink()
    with pytest.raises(ResumeError, match="model config hidden_size 32, got 48"):
        _fit(audio_classes, run, max_steps=2, resume=True, config={**TINY_AUDIO, "hidden_size": 48})
    import torch

    from mediaformers.train import checkpointing as ck

    path = ck.list_states(run)[-1]
    state = torch.load(path, weights_only=False)
    del state["run"]
    torch.save(state, path)
    with pytest.raises(ResumeError, match=r"checkpoint in .*checkpoints does not fit this model \(.*size"):
        _fit(audio_classes, run, max_steps=2, resume=True, config={**TINY_AUDIO, "hidden_size": 48})


# ---- numbers checked before anything is read or built --------------------------------------------
@pytest.mark.parametrize("field,value,message", [
    ("grad_accum", 0, "grad_accum: expected a whole number >= 1, got 0"),
    ("label_smoothing", 5.0, r"label_smoothing: expected a finite number in \[0, 1\), got 5.0"),
    ("lr", float("inf"), "lr: expected a finite number > 0, got inf"),
    ("lr", float("nan"), "lr: expected a finite number > 0, got nan"),
    ("batch_size", 2.5, "batch_size: expected a whole number >= 1, got 2.5"),
    ("max_bad_fraction", -0.1, r"max_bad_fraction: expected a finite number in \[0, 1\]"),
])
def test_recipe_numbers_fail_before_anything_loads(tmp_path, field, value, message):
    with pytest.raises(ValueError, match=message):  # the data path does not even exist: checked first
        _fit(tmp_path / "nothing", tmp_path / "run", **{field: value})
    assert not (tmp_path / "run").exists()


# ---- manifests -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name,text,message", [
    ("m.csv", "path,label\ndata/tone/tone0.wav\n", r"row 2: expected a label, got an empty field"),
    ("m.csv", "path,label\ndata/tone/tone0.wav, ; \n", r"row 2: expected at least one label"),
    ("m.jsonl", '5\n', r"row 1: expected a JSON object with 'path', got 5"),
    ("m.jsonl", '{"path": 5, "label": "a"}\n', r"row 1: expected 'path' to be a file path \(text\), got 5"),
    ("m.jsonl", '{"path": "data/tone/tone0.wav", "label": null}\n', "row 1: expected a label, got null"),
    ("m.jsonl", '{"path": "data/tone/tone0.wav", "label": {"a": 1}}\n', r"row 1: expected a label \(text, a whole"),
    ("m.jsonl", '{"path": "data/tone/tone0.wav", "label": "tone"}\n{"path": "data/tone/tone1.wav", "label": 1}\n',
     "row 2: expected labels of one type, got numbers here and text in row 1"),
])
def test_bad_manifest_rows_are_one_clear_error(audio_classes, tmp_path, name, text, message):
    m = tmp_path / name
    m.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        _fit(m, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_numeric_labels_and_a_byte_order_mark_are_fine_utf16_is_named(audio_classes, tmp_path):
    from mediaformers.train.data import read_items

    m = tmp_path / "m.jsonl"
    m.write_text('{"path": "data/tone/tone0.wav", "label": 3}\n{"path": "data/noise/noise0.wav", "label": [1, 2]}\n')
    assert [it.labels for it in read_items(m)] == [("3",), ("1", "2")]
    c = tmp_path / "m.csv"
    c.write_text("\ufeffpath,label\ndata/tone/tone0.wav,tone\n", encoding="utf-8")  # as spreadsheets save it
    assert read_items(c)[0].labels == ("tone",)
    c.write_text("path,label\ndata/tone/tone0.wav,tone\n", encoding="utf-16")
    with pytest.raises(DataError, match=r"m.csv: expected a UTF-8 text manifest, .*\(it looks like UTF-16\)"):
        read_items(c)


# ---- bad files judged on an epoch, rejected runs leave nothing -----------------------------------
@pytest.mark.timeout(120)
def test_one_bad_file_in_the_first_batch_does_not_stop_the_run(tmp_path):
    data = write_audio_classes(tmp_path / "d", n_per_class=12)  # 24 + 1 files; limit 10%: 2.5 of an epoch
    (data / "tone" / "a-broken.wav").write_bytes(b"RIFF not a wav")
    out = _fit(data, tmp_path / "run", max_steps=1, batch_size=20, val_fraction=0.1, seed=0)
    assert [p.endswith("a-broken.wav") for p in out["skipped"]] == [True]
    for f in sorted((data / "noise").iterdir())[:4]:
        f.write_bytes(b"junk")
    with pytest.raises(TrainingError, match="at most 10% of the 23 training files to fail decoding"):
        _fit(data, tmp_path / "run2", max_steps=1, batch_size=20, val_fraction=0.1, seed=0)


def test_bad_file_limit_counts_distinct_files_against_an_epoch():
    from mediaformers.train.loop import _BadFiles

    bad = _BadFiles(0.1, 25, lambda msg: None)
    bad.add({"failed": [("a.wav", "e")]})  # the first batch of 4 holds 1 of 25 files: 4%, not 25%
    bad.add({"failed": [("b.wav", "e")]})
    bad.add({"failed": [("a.wav", "e")]})  # the next epoch: the same file again counts once
    assert bad.bad == ["a.wav", "b.wav"]
    with pytest.raises(TrainingError, match=r"at most 10% of the 25 training files .* got 3 \(first: a.wav\)"):
        bad.add({"failed": [("c.wav", "e")]})


def test_a_run_rejected_before_its_first_step_leaves_nothing(audio_classes, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(DataError, match="expected a folder of class subfolders"):
        _fit(tmp_path / "typo", run)
    assert not run.exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="output: expected a run folder, got a file"):
        _fit(audio_classes, tmp_path / "file")
    run.mkdir()  # a folder the user made: emptied again, not removed
    with pytest.raises(ValueError, match="hidden_size"):  # found when the model is built, after the folder is made
        _fit(audio_classes, run, config={**TINY_AUDIO, "hidden_size": 31})
    assert run.is_dir() and not any(run.iterdir())
    _fit(audio_classes, run, max_steps=1)  # the corrected rerun into the same -o
    assert (run / "final" / "config.json").is_file()


def test_non_finite_loss_without_a_checkpoint_does_not_name_one(audio_classes, tmp_path, monkeypatch):
    import mediaformers.train.objectives.classification as clf

    monkeypatch.setattr(clf, "_loss", lambda *a: clf.torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(NonFiniteLossError, match="at step 1; no checkpoint was written yet"):
        _fit(audio_classes, tmp_path / "run", max_steps=2)


# ---- kill -9 while a checkpoint is written -------------------------------------------------------
KILL = """
import json, os, signal, sys, torch
from mediaformers.train import Recipe, fit
save = torch.save
def save_then_die(obj, f, *a, **k):
    if isinstance(obj, dict) and obj.get("step") == int(sys.argv[3]):
        f.write(b"x" * 4096); f.flush(); os.kill(os.getpid(), signal.SIGKILL)  # mid-write
    return save(obj, f, *a, **k)
torch.save = save_then_die
fit(Recipe(model="ast", data=sys.argv[1], output=sys.argv[2], config=json.loads(sys.argv[5]), max_steps=4,
           batch_size=3, save_every=1, seed=1, resume=sys.argv[4] == "1"))
"""


@pytest.mark.timeout(240)
def test_kill_during_a_checkpoint_write_leaks_no_temp_file_and_no_duplicate_step(audio_classes, tmp_path):
    run, env = tmp_path / "run", {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def go(kill_at, resume):
        return subprocess.run([sys.executable, "-c", KILL, str(audio_classes), str(run), str(kill_at),
                               "1" if resume else "0", json.dumps(TINY_AUDIO)], env=env, capture_output=True,
                              text=True, timeout=120)

    assert go(3, False).returncode == -signal.SIGKILL
    assert list((run / "checkpoints").glob(".step-*.tmp"))  # what the kill left
    done = go(0, True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not list((run / "checkpoints").glob(".*.tmp"))
    steps = [r["step"] for r in _rows(run) if "lr" in r]
    assert steps == [1, 2, 3, 4]
    assert "removed .step-00000003.pt." in (run / "train.log").read_text()


def test_a_family_name_fits_the_audio_window_to_the_data_and_says_so(audio_classes, tmp_path):
    """0.7 s clips: a 70-frame window (10 ms hop) instead of the family's 1024 frames (10.24 s)."""
    config = {k: v for k, v in TINY_AUDIO.items() if k != "max_length"}
    _fit(audio_classes, tmp_path / "run", config=config, max_steps=1)
    assert json.loads((tmp_path / "run" / "final" / "config.json").read_text())["max_length"] == 70
    assert json.loads((tmp_path / "run" / "final" / "preprocessor_config.json").read_text())["max_length"] == 70
    assert "max_length: 70 frames (0.7 s, the longest of 10 training clips) instead of the family's 1024" in (
        tmp_path / "run" / "train.log").read_text()
