"""Red-team regressions for training (issue 25): each case failed before its fix; all fail before a model is
built or a step runs, so they are fast."""
import pytest

from mediaformers.errors import DataError, ResumeError
from mediaformers.train import Recipe, fit

from .conftest import TINY_AUDIO


def _fit(data, run, **kw):
    kw = {"model": "ast", "config": TINY_AUDIO, "batch_size": 4, **kw}
    return fit(Recipe(data=str(data), output=str(run), **kw))


def test_resume_into_a_folder_that_is_not_a_run_is_refused_and_left_alone(audio_classes, tmp_path):
    mine = tmp_path / "my-checkpoint"  # a user's folder, not a training run: resume must not write into it
    mine.mkdir()
    (mine / "config.json").write_text("{}")
    with pytest.raises(ResumeError, match="expected a run folder made by `mediaformers train`"):
        _fit(audio_classes, mine, resume=True, max_steps=1)
    assert sorted(p.name for p in mine.iterdir()) == ["config.json"]


def test_resume_into_a_new_folder_starts_the_run_and_says_so(audio_classes, tmp_path):
    """A requeued job passes --resume from its first start (docs/training.md): it starts, not silently."""
    _fit(audio_classes, tmp_path / "run", resume=True, max_steps=1)
    assert "resume: no checkpoint in" in (tmp_path / "run" / "train.log").read_text()


def test_an_unknown_config_keyword_is_one_line_naming_the_config(audio_classes, tmp_path):
    with pytest.raises(ValueError, match=r"config: expected keywords of ASTConfig, got .*'no_such_key'"):
        _fit(audio_classes, tmp_path / "run", config={**TINY_AUDIO, "no_such_key": 1})
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text,message", [
    ("path,label\n{a},cat,extra\n{b},dog\n", r"row 2: expected 2 fields \(the header's\), got 3"),
    ("path,label,label\n{a},cat,x\n{b},dog,y\n", r"row 1: expected each column name once, got 'label' twice"),
])
def test_csv_rows_that_do_not_fit_the_header_are_refused(audio_classes, tmp_path, text, message):
    a, b = audio_classes / "tone" / "tone0.wav", audio_classes / "noise" / "noise0.wav"
    manifest = tmp_path / "m.csv"
    manifest.write_text(text.format(a=a, b=b))
    with pytest.raises(DataError, match=message):
        _fit(manifest, tmp_path / "run")


def test_thousands_of_labels_make_a_short_message(audio_classes, tmp_path):
    train, val = tmp_path / "train.csv", tmp_path / "val.csv"
    wav = audio_classes / "tone" / "tone0.wav"
    train.write_text("path,label\n" + "".join(f"{wav},t{i}\n" for i in range(2000)))
    val.write_text("path,label\n" + "".join(f"{wav},v{i}\n" for i in range(2000)))
    with pytest.raises(DataError, match="and 1990 more") as err:
        _fit(train, tmp_path / "run", val=str(val))
    assert len(str(err.value)) < 400


@pytest.mark.parametrize("resume", [False, True])
def test_a_second_training_into_the_same_folder_is_refused_while_the_first_runs(audio_classes, tmp_path, resume):
    import fcntl
    import os

    run = tmp_path / "run"
    run.mkdir()
    fd = os.open(run, os.O_RDONLY)  # what a running `mediaformers train` holds on its -o
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(DataError, match="another mediaformers train is writing"):
            _fit(audio_classes, run, max_steps=1, resume=resume)
    finally:
        os.close(fd)
    assert list(run.iterdir()) == []


@pytest.mark.timeout(120)
def test_a_finished_run_extended_on_resume_trains_at_the_new_schedules_lr(audio_classes, tmp_path):
    """--max-steps may change on resume: the first resumed step used the old schedule's last lr (0 after the
    cosine), so extending a finished run by one step changed no weight."""
    import torch
    from safetensors.torch import load_file

    run = tmp_path / "run"
    _fit(audio_classes, run, max_steps=2, save_every=1)
    before = load_file(run / "final" / "model.safetensors")
    _fit(audio_classes, run, max_steps=3, save_every=1, resume=True)
    after = load_file(run / "final" / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.timeout(120)
def test_allow_partial_trains_on_the_part_of_a_cut_file_that_decodes(tmp_path):
    from mediaformers.errors import TrainingError

    from .conftest import write_audio_classes

    audio_classes = write_audio_classes(tmp_path / "data", n_per_class=3, seconds=0.4)
    for name in ("tone/tone0.wav", "noise/noise0.wav"):  # cut mid-stream: a damaged file, not garbage
        data = (audio_classes / name).read_bytes()
        (audio_classes / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(TrainingError, match="fail decoding"):
        _fit(audio_classes, tmp_path / "strict", epochs=1, max_bad_fraction=0.0, val_fraction=0.34)
    metrics = _fit(audio_classes, tmp_path / "partial", epochs=1, max_bad_fraction=0.0, val_fraction=0.34,
                   allow_partial=True)
    assert metrics["skipped"] == [] and metrics["val_failed"] == 0


@pytest.mark.timeout(120)
def test_resume_past_a_damaged_newest_checkpoint_uses_the_one_before_and_says_so(audio_classes, tmp_path):
    """A truncated step-*.pt (not a kill mid-write: those are atomic) was a 20-line RuntimeError from torch."""
    run = tmp_path / "run"
    _fit(audio_classes, run, max_steps=2, save_every=1)
    states = sorted((run / "checkpoints").glob("step-*.pt"))
    assert [p.name for p in states] == ["step-00000001.pt", "step-00000002.pt"]
    states[-1].write_bytes(states[-1].read_bytes()[:1000])
    _fit(audio_classes, run, max_steps=2, save_every=1, resume=True)
    log = (run / "train.log").read_text()
    assert "step-00000002.pt is unreadable" in log and "resumed at step 1" in log
    for p in (run / "checkpoints").glob("step-*.pt"):
        p.write_bytes(b"not a checkpoint")
    with pytest.raises(ResumeError, match="expected a readable checkpoint in .*, got 2 unreadable"):
        _fit(audio_classes, run, max_steps=3, resume=True)
