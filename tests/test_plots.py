"""Pictures: the plot extra's message, timelines, training curves and confusion, MAE reconstruction grids
(checked against the model's own targets), and the training loop writing them."""
import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import mediaformers as mf
from mediaformers.family import families
from mediaformers.models.mae import patchify
from mediaformers.cli import main
from mediaformers.plots import check_picture_path, require_matplotlib
from mediaformers.plots.mae import reconstruct, unpatchify
from mediaformers.plots.timeline import plot_timeline
from mediaformers.plots.training import epoch_pictures, plot_confusion, plot_curves
from mediaformers.tasks.explain import attention_rollout, explain, patch_heat
from mediaformers.train import Recipe
from tests.media import make_video, natural_frames

PNG = b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with pytest.raises(ValueError, match=r"--plot: drawing pictures needs matplotlib; install it with "
                                         r"pip install 'mediaformers\[plot\]'"):
        check_picture_path("t.png")


def test_timeline_picture(tmp_path):
    windows = [(float(s), s + 2.0, np.array([0.9, 0.1, 0.0]) if s < 4 else np.array([0.1, 0.2, 0.7]))
               for s in range(8)]
    out = plot_timeline(windows, {0: "speech", 1: "music", 2: "dog"}, tmp_path / "t.png", lanes=2,
                        segments=[{"label": "speech", "start": 0.0, "end": 5.0}])
    assert out.read_bytes().startswith(PNG)
    with pytest.raises(ValueError, match=r"plot: no windows to draw"):
        plot_timeline([], {}, tmp_path / "e.png")


def test_curves_and_confusion(tmp_path):
    rows = [{"step": s, "epoch": 0, "train_loss": 1.0 / s, "lr": 1e-3, "samples_per_s": 3.0} for s in range(1, 5)]
    rows.append({"step": 4, "epoch": 1, "train_loss": 0.4, "val_loss": 0.5, "top1": 0.75, "top5": 1.0, "score": 0.75})
    (tmp_path / "metrics.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n{\"cut")  # a torn last line
    assert plot_curves(tmp_path / "metrics.jsonl", tmp_path / "curves.png").read_bytes().startswith(PNG)
    assert plot_confusion([[3, 1], [0, 4]], ["a", "b"], tmp_path / "c.svg").read_text().lstrip().startswith("<?xml")
    with pytest.raises(ValueError, match=r"confusion: expected a 3x3 matrix, got shape \(2, 2\)"):
        plot_confusion([[3, 1], [0, 4]], ["a", "b", "c"], tmp_path / "c.png")


def test_unpatchify_inverts_patchify():
    x = torch.randn(2, 4, 3, 8, 12)
    torch.testing.assert_close(unpatchify(patchify(x, 2, 4), 4, 8, 12, 2, 4), x, rtol=0, atol=0)


def test_reconstruction_puts_back_the_visible_patches_and_predicts_the_model_targets():
    torch.manual_seed(0)
    model = mf.VideoMAEForPreTraining(mf.VideoMAEConfig(**families()["videomae"].tiny)).eval()
    c = model.config
    pv = torch.randn(1, c.num_frames, 3, c.image_size, c.image_size)
    mask = model.make_mask(1, 0.75)
    inp, hidden, recon = reconstruct(model, pv, mask)
    torch.testing.assert_close(inp, pv[0])
    patches = lambda v: patchify(v[None], c.tubelet_size, c.patch_size)[0]  # noqa: E731
    m = mask[0]
    assert torch.isnan(patches(hidden)[m]).all() and not torch.isnan(patches(hidden)[~m]).any()
    torch.testing.assert_close(patches(recon)[~m], patches(pv[0])[~m])
    # normalised back with the true patch's statistics, the reconstruction is the model's prediction, in the
    # space of its own targets (made from [0, 1] pixels: per-patch normalisation cancels the processor's)
    true, got = patches(pv[0])[m], patches(recon)[m]
    renorm = (got - true.mean(-2, keepdim=True)) / (true.var(-2, unbiased=True, keepdim=True).sqrt() + 1e-6)
    with torch.no_grad():
        logits = model(pixel_values=pv, bool_masked_pos=mask).logits
        target = model.targets(pv, mask)
    torch.testing.assert_close(renorm.flatten(1), logits[0], rtol=1e-4, atol=1e-4)
    assert c.norm_pix_loss
    normalised = (true - true.mean(-2, keepdim=True)) / (true.var(-2, unbiased=True, keepdim=True).sqrt() + 1e-6)
    torch.testing.assert_close(normalised.flatten(1), target[0], rtol=1e-4, atol=1e-4)


@pytest.mark.timeout(180)
def test_training_writes_curves_and_reconstructions(tmp_path):
    require_matplotlib()
    media = tmp_path / "media"
    media.mkdir()
    for i in range(2):
        make_video(media / f"{i}.mp4", frames=natural_frames(8, (32, 32), seed=i), size=(32, 32), fps=8)
    run = tmp_path / "mae"
    Recipe(model="videomae", data=str(media), val=str(media), output=str(run),
           config=families()["videomae"].tiny, max_steps=1, batch_size=2).fit()
    assert [p.name for p in (run / "reconstructions").iterdir()] == ["step-1.png"]
    assert (run / "curves.png").read_bytes().startswith(PNG) and not (run / "confusion.png").exists()


def test_a_classification_evaluation_draws_its_confusion(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "epoch": 1, "val_loss": 0.5, "top1": 0.5}) + "\n")
    task = SimpleNamespace(name="classification", labels=["tone", "noise"])
    epoch_pictures(tmp_path, task, None, None, {"confusion": [[1, 1], [0, 2]]}, 1, print)
    assert (tmp_path / "confusion.png").read_bytes().startswith(PNG)


# ---- explain --------------------------------------------------------------------------------------
def test_rollout_multiplies_the_layers_residual_included():
    a1, a2 = torch.rand(1, 2, 3, 3).softmax(-1), torch.rand(1, 2, 3, 3).softmax(-1)
    eye = torch.eye(3)

    def layer(a):
        m = a[0].mean(0) + eye
        return m / m.sum(-1, keepdim=True)

    got = attention_rollout([a1, a2])[0]
    torch.testing.assert_close(got, layer(a2) @ layer(a1))
    torch.testing.assert_close(got.sum(-1), torch.ones(3))
    with pytest.raises(ValueError, match=r"attentions: expected one .* per layer, got none"):
        attention_rollout([])


def test_heat_follows_the_attended_patch_with_and_without_class_tokens():
    grid, j = (2, 3, 4), 17  # 24 patches; every token attends to patch 17 in every layer
    for special in (0, 2):
        n = special + 24
        a = torch.zeros(1, 2, n, n)
        a[..., special + j] = 1.0
        heat = patch_heat([a, a], grid)
        assert heat.shape == grid and heat.max() == 1.0
        assert np.unravel_index(int(heat.argmax()), grid) == np.unravel_index(j, grid)
    with pytest.raises(ValueError, match=r"explain: 20 tokens attend, fewer than the 24 patches"):
        patch_heat([torch.rand(1, 1, 20, 20)], grid)


def test_explain_maps_onto_the_reference_patch_grid_and_draws(tmp_path):
    from transformers import ASTConfig as RefConfig
    from transformers.models.audio_spectrogram_transformer.modeling_audio_spectrogram_transformer import (
        ASTEmbeddings)

    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48, max_length=100,
                 num_mel_bins=32, id2label={0: "tone", 1: "noise"})
    mf.ASTForAudioClassification(mf.ASTConfig(**small)).save_pretrained(tmp_path / "ast")
    wav = tmp_path / "a.wav"
    import soundfile as sf

    sf.write(wav, (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32), 16000)
    result = explain(mf.pipeline(model=tmp_path / "ast"), wav)
    ref = ASTEmbeddings(RefConfig(**small)).get_shape(RefConfig(**small))  # (frequency patches, time patches)
    assert result["grid"] == tuple(ref) and result["input"].shape == (1, 32, 100)
    assert result["label"] in ("tone", "noise")
    assert main(["explain", str(tmp_path / "ast"), str(wav), "-o", str(tmp_path / "x.png")]) == 0
    assert (tmp_path / "x.png").read_bytes().startswith(PNG)


def test_explain_cli_checks_the_picture_first(capsys):
    assert main(["explain", "no-such-model", "x.wav", "-o", "x.jpg"]) == 2
    assert "-o: expected a .png or .svg file, got 'x.jpg'" in capsys.readouterr().err


def test_explain_a_video_classifier(tmp_path):
    cfg = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=48, image_size=32,
               num_frames=4, id2label={0: "a", 1: "b"})
    mf.VideoMAEForVideoClassification(mf.VideoMAEConfig(**cfg)).save_pretrained(tmp_path / "m")
    video = make_video(tmp_path / "v.mp4", frames=8, size=(32, 32), fps=8)
    result = explain(mf.pipeline(model=tmp_path / "m"), video)
    assert result["grid"] == (2, 2, 2) and result["input"].shape == (3, 4, 32, 32)  # (C, T, H, W) into Conv3d
    assert main(["explain", str(tmp_path / "m"), str(video), "-o", str(tmp_path / "x.svg")]) == 0
