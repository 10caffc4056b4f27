"""The training tasks besides classification: MAE pre-training (VideoMAE, TVLT), contrastive media-text
training (AltCLIP), manifest time ranges, AST normalisation statistics from the data, recall@k."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import mediaformers as mf
from mediaformers.family import families
from mediaformers.train import DataError, Recipe
from tests.media import make_video, natural_frames

FAMILIES = {f.name: f for f in families().values()}


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _train_losses(run: Path) -> list[float]:
    return [m["train_loss"] for m in _metrics(run) if "val_loss" not in m]


def _falls(losses: list[float]) -> bool:
    k = max(2, len(losses) // 4)
    return sum(losses[-k:]) / k < 0.9 * sum(losses[:k]) / k


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory) -> Path:
    """A flat folder of short videos with a sound track, all of one content (a fixed batch repeated)."""
    root = tmp_path_factory.mktemp("unlabelled")
    (root / "media").mkdir()
    frames = natural_frames(8, (32, 32), seed=1)
    for i in range(4):
        make_video(root / "media" / f"{i}.mp4", frames=frames, size=(32, 32), fps=8, audio=True)
    (root / "val.csv").write_text("path\nmedia/0.mp4\n")  # a manifest with only `path`
    return root


@pytest.mark.timeout(120)
@pytest.mark.parametrize("family", ["videomae", "tvlt"])
def test_mae_pretraining_loss_falls_and_reloads(family, unlabelled, tmp_path):
    run = tmp_path / "run"
    out = Recipe(model=family, data=str(unlabelled / "media"), val=str(unlabelled / "val.csv"), output=str(run),
                 config=FAMILIES[family].tiny, max_steps=10, batch_size=4, lr=3e-3, seed=0).fit()
    assert _falls(_train_losses(run)), _train_losses(run)
    val = [m["val_loss"] for m in _metrics(run) if "val_loss" in m]
    assert val[-1] < val[0]  # the same masks at every evaluation: comparable
    assert out["evaluated"] == 1 and out["score"] == -out["val_loss"]
    cls = next(c for c in FAMILIES[family].classes if getattr(c, "is_pretraining", False))
    assert json.loads((run / "final" / "config.json").read_text())["architectures"] == [cls.__name__]
    last = torch.load(sorted((run / "checkpoints").glob("step-*.pt"))[-1], weights_only=False)["model"]
    reloaded = cls.from_pretrained(run / "final").state_dict()
    assert reloaded.keys() == last.keys()
    for k, v in reloaded.items():
        torch.testing.assert_close(v, last[k])
    saved = json.loads((run / "final" / "preprocessor_config.json").read_text())
    if family == "tvlt":  # one file holds both parts' fields, as transformers' TvltProcessor writes it
        assert {"image_processor_type", "feature_extractor_type", "num_frames", "spectrogram_length"} <= saved.keys()


CAPTIONS = {"red": "a red picture", "green": "ein grünes Bild", "blue": "une vidéo bleue", "white": "un video blanco"}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    """path,caption manifest: two still images and two videos of one colour each, captions in four languages."""
    from PIL import Image

    root = tmp_path_factory.mktemp("pairs")
    rows = ["path,caption"]
    for i, (colour, caption) in enumerate(CAPTIONS.items()):
        rgb = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "white": (235, 235, 235)}[colour]
        picture = np.zeros((30, 30, 3), np.uint8) + np.array(rgb, np.uint8)
        if i < 2:
            Image.fromarray(picture).save(root / f"{colour}.png")
            rows.append(f"{colour}.png,{caption}")
        else:
            make_video(root / f"{colour}.mp4", frames=np.repeat(picture[None], 4, 0), size=(30, 30), fps=4)
            rows.append(f"{colour}.mp4,{caption}")
    (root / "pairs.csv").write_text("\n".join(rows) + "\n")
    return root / "pairs.csv"


@pytest.fixture(scope="module")
def altclip(tmp_path_factory) -> Path:
    """A tiny AltCLIP checkpoint with its tokenizer (tests/altclip_tiny.py)."""
    from tests.altclip_tiny import make_folder

    ckpt = make_folder(tmp_path_factory.mktemp("altclip"))
    for name, part, change in (("config.json", "text_config", {"hidden_dropout_prob": 0.0}),  # a steady descent
                               ("preprocessor_config.json", None, {"num_frames": 2})):  # 2 frames a video: quick
        cfg = json.loads((ckpt / name).read_text())
        (cfg[part] if part else cfg).update(change)
        (ckpt / name).write_text(json.dumps(cfg))
    return ckpt


@pytest.mark.timeout(120)
def test_contrastive_loss_falls_recall_and_reloads(altclip, pairs, tmp_path):
    ckpt = altclip
    run = tmp_path / "run"
    out = Recipe(model=str(ckpt), data=str(pairs), val=str(pairs), output=str(run), max_steps=30, batch_size=4,
                 lr=3e-3, seed=0).fit()
    losses = _train_losses(run)
    # a tiny random model starts at chance (log 4: its captions embed alike) and must get below it
    assert _falls(losses) and sum(losses[-3:]) / 3 < 0.9 * math.log(4), losses
    assert {f"{a}_R@{k}" for a in ("media_to_text", "text_to_media") for k in (1, 5, 10)} <= set(out)
    assert out["evaluated"] == 4
    from mediaformers.processors.altclip_processor import AltCLIPProcessor

    model, processor = mf.AltCLIPModel.from_pretrained(run / "final"), AltCLIPProcessor.from_pretrained(run / "final")
    original = AltCLIPProcessor.from_pretrained(ckpt)
    text = list(CAPTIONS.values())
    assert torch.equal(processor(text=text, padding=True)["input_ids"], original(text=text, padding=True)["input_ids"])
    last = torch.load(sorted((run / "checkpoints").glob("step-*.pt"))[-1], weights_only=False)["model"]
    torch.testing.assert_close(model.logit_scale, last["logit_scale"])


@pytest.mark.timeout(60)
def test_images_train_through_the_models_own_loss_and_videos_match_it(altclip, pairs, tmp_path):
    """The contrastive step (frames averaged per item, the unit DDP / FSDP wrap) gives the model's own
    ``return_loss=True`` loss on a batch of images (one frame each)."""
    from mediaformers.train.objectives import ContrastiveStep, make_task

    task = make_task(Recipe(model=str(altclip), data=str(pairs), output=str(tmp_path / "r")))
    assert task.name == "contrastive"
    items, _ = task.read_data()
    loaded = task.build()
    model = loaded.model.eval()
    ds = task.dataset([it for it in items if it.path.endswith(".png")], task.views(loaded))
    batch = task.collate([ds[i] for i in range(len(ds))])
    assert batch["frames"] == [1] * len(ds) and len(ds) >= 2
    step = task.train_module(model)
    assert isinstance(step, ContrastiveStep) and step.world == 1
    torch.testing.assert_close(task.loss(step, batch), model(**batch["inputs"], return_loss=True).loss)


def test_contrastive_recall_is_the_one_recall_at_k():
    """Training's recall@k is tasks.retrieval's (one meaning): pair i is media i with text i."""
    from mediaformers.tasks.retrieval import recall_at_k
    from mediaformers.train.objectives.contrastive import _recall

    sim = torch.tensor([[0.9, 0.1, 0.0],   # media 0: its text first
                        [0.8, 0.5, 0.1],   # media 1: its text second
                        [0.7, 0.6, 0.2]])  # media 2: its text third
    r = _recall(sim, ks=(1, 2, 3))
    assert r["media_to_text_R@1"] == pytest.approx(1 / 3)
    assert r["media_to_text_R@2"] == pytest.approx(2 / 3)
    assert r["media_to_text_R@3"] == 1.0
    # columns: text 0 -> media 0 first; text 1 -> media 2 (0.6), media 1 (0.5): second; text 2 -> media 2 first
    assert r["text_to_media_R@1"] == pytest.approx(2 / 3) and r["text_to_media_R@2"] == 1.0
    ref = recall_at_k(sim, [0, 1, 2], ks=(1, 2, 3))
    assert [r[f"media_to_text_R@{k}"] for k in (1, 2, 3)] == [ref["image_to_text"][k] for k in (1, 2, 3)]


def test_one_clip_loss_for_model_and_training():
    from mediaformers.models import altclip
    from mediaformers.train import objectives

    assert altclip.contrastive_loss is objectives.clip_loss
    logits = torch.randn(4, 4)
    t = torch.arange(4)
    want = (torch.nn.functional.cross_entropy(logits, t) + torch.nn.functional.cross_entropy(logits.t(), t)) / 2
    torch.testing.assert_close(objectives.clip_loss(logits), want)


@pytest.mark.timeout(60)
def test_manifest_start_end_are_honoured_by_decoding(tmp_path):
    """A clip dark in its first half second and bright in its second, with a silent then loud sound track
    beside it: each half of the manifest decodes only its own half."""
    from mediaformers.processors.audio_io import load_audio
    from mediaformers.tasks.loading import Loaded
    from mediaformers.tasks.views import make_views
    from mediaformers.train.data import read_items

    frames = np.zeros((8, 32, 32, 3), np.uint8)
    frames[4:] = 230
    make_video(tmp_path / "clip.mp4", frames=frames, size=(32, 32), fps=8)
    wave = np.zeros(16000, np.float32)
    wave[8000:] = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)
    sf.write(tmp_path / "clip.wav", wave, 16000)
    (tmp_path / "m.csv").write_text("path,start,end\nclip.mp4,0,0.5\nclip.mp4,0.5,\nclip.wav,,0.5\nclip.wav,0.5,1.0\n")
    items = read_items(tmp_path / "m.csv", None)
    assert [(it.start, it.end) for it in items] == [(0.0, 0.5), (0.5, None), (None, 0.5), (0.5, 1.0)]
    fam = FAMILIES["videomae"]
    views = make_views(Loaded(fam.classes[0](fam.config(**fam.tiny)), str(tmp_path), fam.model_type))
    first, second = (views(it.source)["pixel_values"].mean().item() for it in items[:2])
    whole = views(str(tmp_path / "clip.mp4"))["pixel_values"].mean().item()
    assert first < whole < second and second - first > 2.0  # normalised pixels: dark vs bright
    quiet, loud = (load_audio(it.source, 16000) for it in items[2:])
    assert len(quiet) == len(loud) == 8000
    assert quiet.abs().max() == 0 and loud.abs().max() > 0.4
    (tmp_path / "bad.csv").write_text("path,start,end\nclip.mp4,0.5,0.25\n")
    with pytest.raises(DataError, match=r"row 2: expected 'end' after 'start', got start=0.5, end=0.25"):
        read_items(tmp_path / "bad.csv", None)
    (tmp_path / "bad.csv").write_text("path,start\nclip.mp4,soon\n")
    with pytest.raises(DataError, match=r"row 2: expected 'start' in seconds \(a number >= 0\), got 'soon'"):
        read_items(tmp_path / "bad.csv", None)
    from mediaformers.processors.time_range import ClipPath

    with pytest.raises(Exception, match="no frame between 5.0s and None"):
        views(ClipPath(tmp_path / "clip.mp4", 5.0))


@pytest.mark.timeout(60)
def test_norm_stats_from_data_are_the_features_mean_and_std(audio_classes, tmp_path):
    from mediaformers.processors.ast_features import ASTFeatureExtractor
    from mediaformers.processors.fbank import kaldi_num_frames
    from mediaformers.tasks.loading import load_model, processor

    from .conftest import TINY_AUDIO

    run = tmp_path / "run"
    Recipe(model="ast", data=str(audio_classes), val=str(audio_classes), output=str(run), config=TINY_AUDIO,
           max_steps=1, batch_size=4, norm_stats_from_data=True).fit()
    saved = json.loads((run / "final" / "preprocessor_config.json").read_text())
    # directly: the extractor's un-normalised features of every training file, real frames only
    fe = ASTFeatureExtractor(num_mel_bins=TINY_AUDIO["num_mel_bins"], max_length=4096, do_normalize=False)
    feats = []
    for f in sorted(audio_classes.rglob("*.wav")):
        wave, rate = sf.read(f, dtype="float32")
        feats.append(fe(wave, sampling_rate=rate)["input_values"][0, : kaldi_num_frames(len(wave), rate)])
    x = torch.cat(feats).double()
    assert saved["mean"] == pytest.approx(x.mean().item(), rel=1e-5)
    assert saved["std"] == pytest.approx(x.std(unbiased=False).item(), rel=1e-5)
    assert saved["mean"] != pytest.approx(ASTFeatureExtractor().mean)  # not AudioSet's
    assert "spectrogram statistics from 12 training files" in (run / "train.log").read_text()
    reloaded = processor(load_model(run / "final"), "audio")
    assert (reloaded.mean, reloaded.std) == (saved["mean"], saved["std"])


@pytest.mark.timeout(60)
def test_norm_stats_need_a_model_normalising_with_mean_std(unlabelled, tmp_path):
    with pytest.raises(ValueError, match=r"expected a model whose audio features alone are normalised with mean/std "
                                         r"\(AST\), got videomae"):
        Recipe(model="videomae", data=str(unlabelled / "media"), output=str(tmp_path / "r"),
               config=FAMILIES["videomae"].tiny, norm_stats_from_data=True).fit()


def test_task_is_chosen_from_the_family_declarations_and_the_data(unlabelled, pairs, audio_classes):
    from mediaformers.train.data import data_fields
    from mediaformers.train.objectives import choose_task, trainable

    assert trainable(FAMILIES["videomae"]) == trainable(FAMILIES["tvlt"]) == ["classification", "pretraining"]
    assert trainable(FAMILIES["altclip"]) == ["contrastive"] and trainable(FAMILIES["ast"]) == ["classification"]
    assert data_fields(audio_classes) == {"label"} and data_fields(unlabelled / "media") == set()
    assert data_fields(pairs) == {"path", "caption"} and data_fields(unlabelled / "val.csv") == {"path"}
    assert choose_task(FAMILIES["videomae"], "auto", {"label"}) == "classification"
    assert choose_task(FAMILIES["videomae"], "auto", set()) == "pretraining"
    assert choose_task(FAMILIES["tvlt"], "auto", {"path"}) == "pretraining"
    assert choose_task(FAMILIES["altclip"], "auto", {"path", "caption"}) == "contrastive"
    assert choose_task(FAMILIES["videomae"], "pretraining", {"label"}) == "pretraining"
    with pytest.raises(ValueError, match=r"task: ast models train \['classification'\], got 'pretraining'"):
        choose_task(FAMILIES["ast"], "pretraining", set())
    with pytest.raises(ValueError, match=r"task: expected one of \['auto', 'classification', 'pretraining', "
                                         r"'contrastive'\], got 'mae'"):
        choose_task(FAMILIES["ast"], "mae", set())
    from mediaformers.train.objectives import make_task

    with pytest.raises(ValueError, match=r"mask_ratio: expected a number between 0 and 1, got 1.5"):
        make_task(Recipe(model="videomae", data=str(unlabelled / "media"), output="unused", mask_ratio=1.5))
    with pytest.raises(ValueError, match=r"mask_ratio: applies to pre-training; this run trains classification"):
        make_task(Recipe(model="ast", data=str(audio_classes), output="unused", mask_ratio=0.5))
    with pytest.raises(DataError, match="expected a .csv/.jsonl manifest with 'path' and 'caption' fields"):
        from mediaformers.train.data import read_items

        read_items(unlabelled / "media", "caption")


def test_cli_flags_fill_the_recipe():
    from dataclasses import fields

    from mediaformers.train.cli import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "videomae", "clips.csv", "-o", "run", "--task", "pretraining",
                              "--mask-ratio", "0.75", "--norm-stats-from-data"])
    r = Recipe(**{k: v for k, v in vars(args).items() if k in {f.name for f in fields(Recipe)}})
    assert (r.task, r.mask_ratio, r.norm_stats_from_data) == ("pretraining", 0.75, True)
    defaults = parser.parse_args(["train", "m", "d", "-o", "o"])
    assert (defaults.task, defaults.mask_ratio, defaults.norm_stats_from_data) == ("auto", None, False)
    help_text = parser._subparsers._group_actions[0].choices["train"].format_help()
    for words in ("--norm-stats-from-data", "--task", "--mask-ratio", "path,caption", "start,end"):
        assert words in help_text


def test_pretraining_inputs_mask_and_mismatch_as_declared():
    """VideoMAE: a tube mask of 0.9 (the recipe's default) or --mask-ratio; TVLT: mismatched samples get the
    previous sample's frames and label 0; one seeded generator gives the same inputs again (evaluation)."""
    def tiny(name):
        fam = FAMILIES[name]
        cls = next(c for c in fam.classes if getattr(c, "is_pretraining", False))
        config = fam.config(**fam.tiny)
        return cls(config), fam.dummy_inputs(fam.backbone, config, 4)

    videomae, inputs = tiny("videomae")
    per_slice = videomae.config.grid[1] * videomae.config.grid[2]
    mask = videomae.pretraining_inputs(inputs)["bool_masked_pos"]
    assert mask.shape == (4, videomae.config.num_patches) and (mask.sum(1) == int(0.9 * per_slice) * 2).all()
    assert (videomae.pretraining_inputs(inputs, 0.5)["bool_masked_pos"].sum(1) == int(0.5 * per_slice) * 2).all()
    tvlt, inputs = tiny("tvlt")
    extra = tvlt.pretraining_inputs(inputs, generator=torch.Generator().manual_seed(1))
    again = tvlt.pretraining_inputs(inputs, generator=torch.Generator().manual_seed(1))
    assert torch.equal(extra["labels"], again["labels"]) and extra["generator"] is not None
    labels, pixels = extra["labels"], inputs["pixel_values"]
    assert 0 < labels.sum() < 4, labels  # this seed mixes both kinds
    for i, match in enumerate(labels.tolist()):
        assert torch.equal(extra["pixel_values_mixed"][i], pixels[i] if match else pixels[i - 1])


def test_old_objectives_path_still_imports():
    import mediaformers.train.objectives as new
    import mediaformers.train.tasks as old

    assert old.ContrastiveStep is new.ContrastiveStep and old.make_task is new.make_task
