import json

import pytest

from mediaformers.train import Recipe, fit

from .conftest import TINY_AUDIO


def _losses(run):
    return [r["train_loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "top1" not in r]


@pytest.mark.timeout(120)
def test_audio_classification_loss_falls_and_classify_loads(audio_classes, tmp_path):
    run = tmp_path / "run"
    out = fit(Recipe(model="ast", data=str(audio_classes), output=str(run), config=TINY_AUDIO,
                     epochs=6, batch_size=4, lr=3e-3, val_fraction=0.25, augment=True,
                     drop_path_rate=0.1, mixup=0.2))
    losses = _losses(run)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    assert out["top1"] >= 0.5
    assert (run / "best" / "config.json").is_file() and (run / "best" / "preprocessor_config.json").is_file()
    from mediaformers.tasks.loading import load_model

    loaded = load_model(run / "final")
    assert set(loaded.config.id2label.values()) == {"noise", "tone"}


def test_drop_path_default_unchanged_and_active_in_training():
    import torch

    from mediaformers.layers.blocks import Encoder

    torch.manual_seed(0)
    enc = Encoder.stack(4, 16, 2, 32)
    x = torch.randn(8, 5, 16)
    enc.train()
    base = enc(x).last_hidden_state
    enc.set_drop_path(0.5)
    assert [b.drop_path for b in enc.blocks] == [0.0, 0.5 / 3, 1.0 / 3, 0.5]
    assert not torch.equal(enc(x).last_hidden_state, base)
    enc.eval()
    assert torch.equal(enc(x).last_hidden_state, base)
    with pytest.raises(ValueError, match=r"drop_path_rate: expected a number in \[0, 1\), got 1.5"):
        enc.set_drop_path(1.5)
