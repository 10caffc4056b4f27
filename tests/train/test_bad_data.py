import pytest

from mediaformers.errors import TrainingError
from mediaformers.train import Recipe, fit

from .conftest import TINY_AUDIO, write_audio_classes


def _fit(data, run, **kw):
    return fit(Recipe(model="ast", data=str(data), output=str(run), config=TINY_AUDIO, batch_size=4, **kw))


def test_empty_class_folder(audio_classes, tmp_path):
    (audio_classes / "silence").mkdir()
    with pytest.raises(ValueError, match="silence.*empty folder"):
        _fit(audio_classes, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_single_class(tmp_path):
    import shutil

    data = write_audio_classes(tmp_path / "d", n_per_class=2)
    shutil.rmtree(data / "noise")
    with pytest.raises(ValueError, match="at least 2 classes.*'tone'"):
        _fit(data, tmp_path / "run")


def test_val_label_not_in_train(tmp_path):
    train = write_audio_classes(tmp_path / "train", n_per_class=2)
    val = write_audio_classes(tmp_path / "val", n_per_class=1)
    (val / "tone").rename(val / "chirp")
    with pytest.raises(ValueError, match=r"validation labels \['chirp'\] are not in the training labels"):
        fit(Recipe(model="ast", data=str(train), val=str(val), output=str(tmp_path / "run"), config=TINY_AUDIO))


def test_manifest_row_pointing_at_nothing(audio_classes, tmp_path):
    m = tmp_path / "train.csv"
    m.write_text("path,label\ndata/tone/tone0.wav,tone\ndata/tone/missing.wav,tone\n")
    with pytest.raises(ValueError, match="row 3: expected an existing file, got 'data/tone/missing.wav' \\(does not exist\\)"):
        _fit(m, tmp_path / "run")


@pytest.mark.timeout(60)
def test_corrupt_files_skipped_named_and_limited(audio_classes, tmp_path):
    (audio_classes / "tone" / "broken.wav").write_bytes(b"RIFF not a wav at all")
    out = _fit(audio_classes, tmp_path / "run", max_steps=3, val_fraction=0.2, seed=1, max_bad_fraction=0.5)
    log = (tmp_path / "run" / "train.log").read_text()
    assert "broken.wav" in log and any("broken.wav" in p for p in out["skipped"])
    for f in list((audio_classes / "noise").iterdir())[:4]:
        f.write_bytes(b"junk")
    with pytest.raises(RuntimeError, match="at most 10% of the 10 training files to fail decoding"):
        _fit(audio_classes, tmp_path / "run2", max_steps=3, max_bad_fraction=0.1)


@pytest.mark.timeout(60)
def test_nan_loss_names_step_and_keeps_checkpoint(audio_classes, tmp_path, monkeypatch):
    import mediaformers.train.objectives.classification as fitmod

    run = tmp_path / "run"
    real = fitmod._loss
    calls = {"n": 0}

    def loss(*a):
        calls["n"] += 1
        out = real(*a)
        return out * float("nan") if calls["n"] == 3 else out

    monkeypatch.setattr(fitmod, "_loss", loss)
    with pytest.raises(FloatingPointError, match="at step 3"):
        _fit(audio_classes, run, max_steps=5, save_every=1)
    assert sorted(p.name for p in (run / "checkpoints").glob("step-*.pt")) == ["step-00000001.pt", "step-00000002.pt"]


def test_failed_save_keeps_previous(tmp_path, monkeypatch):
    import torch

    from mediaformers.train import checkpointing as ck

    ck.save_state(tmp_path, {"w": torch.ones(2)}, 1, keep=2)

    def boom(obj, f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(TrainingError, match=r"could not write .*step-00000002.pt: No space left on device \(is the "
                                            r"disk full\?\); the previous checkpoints are kept"):
        ck.save_state(tmp_path, {"w": torch.zeros(2)}, 2, keep=1)
    monkeypatch.undo()
    assert [p.name for p in ck.list_states(tmp_path)] == ["step-00000001.pt"]
    assert torch.equal(ck.latest_state(tmp_path)["w"], torch.ones(2))
    assert not list((tmp_path / "checkpoints").glob(".*tmp"))
