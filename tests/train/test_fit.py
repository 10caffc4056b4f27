import json

import pytest

from mediaformers.train import Recipe, fit

from .conftest import TINY_AUDIO


def _losses(run):
    return [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


@pytest.mark.timeout(120)
def test_audio_classification_loss_falls_and_classify_loads(audio_classes, tmp_path):
    run = tmp_path / "run"
    out = fit(Recipe(train=str(audio_classes), output=str(run), family="ast", config=TINY_AUDIO,
                     epochs=6, batch_size=4, lr=3e-3, val_fraction=0.25))
    losses = _losses(run)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    assert out["top1"] >= 0.5
    assert (run / "best" / "config.json").is_file() and (run / "best" / "preprocessor_config.json").is_file()
    from mediaformers.tasks.loading import load_model

    loaded = load_model(run / "final")
    assert set(loaded.config.id2label.values()) == {"noise", "tone"}
