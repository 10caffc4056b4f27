"""Checkpoints whose preprocessor_config.json was written by transformers' own classes (issue 12, bug 1).

transformers writes no frame count (VideoMAE, ViViT), and TVLT's file holds the processor's
defaults (2048 mel frames) whatever the model's size: what a file leaves out comes from the model
config, and what the model caps is capped. Every family at non-default sizes, end to end through
``pipeline()`` and the ``mediaformers`` command line.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import mediaformers as mf
from mediaformers.tasks.loading import load_model, processor

transformers = pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[2]
LABELS = {0: "walk", 1: "run", 2: "jump"}
SMALL = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=48)


def tvlt_file_of_transformers_4_57() -> dict:
    """What transformers 4.57.1's TvltProcessor.save_pretrained leaves in preprocessor_config.json: its
    feature extractor's dict, saved last (transformers 5 has no TVLT; the dict is the one the golden
    tool recorded from 4.57.1, tools/make_tvlt_feature_goldens.py)."""
    meta = np.load(ROOT / "tests" / "fixtures" / "tvlt" / "audio_features.npz")["meta_json"]
    recorded = json.loads(meta.tobytes().decode())
    assert recorded["transformers"].startswith("4.57")
    return {**recorded["config"], "processor_class": "TvltProcessor"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf-processor-files")
    torch.manual_seed(0)
    out = {}

    out["videomae"] = root / "videomae"  # 8 frames of 64 px (the processor's default: 16 of 224)
    mf.VideoMAEForVideoClassification(mf.VideoMAEConfig(
        **SMALL, image_size=64, num_frames=8, id2label=LABELS)).save_pretrained(out["videomae"])
    transformers.VideoMAEImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64}
                                        ).save_pretrained(out["videomae"])

    out["vivit"] = root / "vivit"  # 8 frames of 112 px (default: 32 of 224)
    mf.VivitForVideoClassification(mf.VivitConfig(
        **SMALL, image_size=112, num_frames=8, tubelet_size=[2, 16, 16], id2label=LABELS)).save_pretrained(out["vivit"])
    transformers.VivitImageProcessor(size={"shortest_edge": 128}, crop_size={"height": 112, "width": 112}
                                     ).save_pretrained(out["vivit"])

    out["ast"] = root / "ast"  # 0.64 s windows (default 10.24 s)
    mf.ASTForAudioClassification(mf.ASTConfig(
        **SMALL, max_length=64, id2label={0: "tone", 1: "noise"})).save_pretrained(out["ast"])
    transformers.ASTFeatureExtractor(max_length=64).save_pretrained(out["ast"])

    out["tvlt"] = root / "tvlt"  # 4 frames of 32 px, 64 mel frames (the file says 8 frames, 2048 mel frames)
    mf.TvltForAudioVisualClassification(mf.TvltConfig(
        **SMALL, image_size=32, num_frames=4, spectrogram_length=64, id2label=LABELS)).save_pretrained(out["tvlt"])
    (out["tvlt"] / "preprocessor_config.json").write_text(json.dumps(tvlt_file_of_transformers_4_57()))

    from tests.altclip_tiny import IMAGE_SIZE, make_folder

    out["altclip"] = make_folder(root / "altclip")  # 30 px images (default 224)
    transformers.CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                                    crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(out["altclip"])
    return out


def written_by_transformers(folder: Path) -> dict:
    saved = json.loads((folder / "preprocessor_config.json").read_text())
    assert "num_frames" not in saved or saved.get("feature_extractor_type") == "TvltFeatureExtractor"
    return saved


def test_settings_come_from_the_model_config(folders):
    video = processor(load_model(folders["videomae"]), "video")
    assert "num_frames" not in written_by_transformers(folders["videomae"])
    assert video.sampler.num_frames == 8 and video.transform.crop_size == (64, 64)
    video = processor(load_model(folders["vivit"]), "video")
    assert video.sampler.num_frames == 8 and video.transform.crop_size == (112, 112)
    assert processor(load_model(folders["ast"]), "audio").max_length == 64
    tvlt = load_model(folders["tvlt"])
    assert written_by_transformers(folders["tvlt"])["spectrogram_length"] == 2048
    assert processor(tvlt, "audio").spectrogram_length == 64  # capped by the model
    assert processor(tvlt, "video").sampler.num_frames == 4


def test_a_file_that_leaves_a_length_out(folders, tmp_path):
    """A minimal file (no max_length) takes the model's, not the extractor's default 1024."""
    import shutil

    folder = shutil.copytree(folders["ast"], tmp_path / "ast")
    (folder / "preprocessor_config.json").write_text(json.dumps({"feature_extractor_type": "ASTFeatureExtractor"}))
    assert processor(load_model(folder), "audio").max_length == 64


@pytest.mark.parametrize("family, source", [("videomae", "a.mp4"), ("vivit", "c.mp4"), ("ast", "long.wav"),
                                            ("tvlt", "a.mp4")])
def test_pipeline(folders, media, family, source):
    rec = mf.pipeline(model=folders[family], top_k=2)(str(media / source))
    assert len(rec["labels"]) == 2, rec


def test_tvlt_audio_longer_than_the_model_takes_is_truncated(folders, media):
    loaded = load_model(folders["tvlt"])
    from mediaformers.processors.audio_io import load_audio

    fe = processor(loaded, "audio")
    wave = load_audio(media / "a.mp4", fe.sampling_rate)
    assert wave.shape[-1] // fe.hop_length > 64  # 1.2 s: ~103 mel frames
    assert fe(wave, sampling_rate=fe.sampling_rate)["audio_values"].shape[2] == 64


def test_tvlt_patch_sizes_that_differ_come_from_the_model(folders, media, tmp_path):
    """One preprocessor_config.json holds one patch_size for TVLT's two parts (4.57 writes the feature
    extractor's last): a model whose image patches are 8 px must get 8 px pixel masks, whatever the file says."""
    folder = tmp_path / "tvlt-8-16"
    mf.TvltForAudioVisualClassification(mf.TvltConfig(
        **SMALL, image_size=32, num_frames=4, spectrogram_length=64, image_patch_size=[8, 8],
        audio_patch_size=[16, 16], id2label=LABELS)).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(tvlt_file_of_transformers_4_57()))
    loaded = load_model(folder)
    assert processor(loaded, "video").config["patch_size"] == [8, 8]
    assert processor(loaded, "audio").patch_size == [16, 16]
    rec = mf.pipeline(model=folder, top_k=1)(str(media / "a.mp4"))
    assert len(rec["labels"]) == 1, rec


def test_zero_shot_pipeline(folders, media):
    rec = mf.pipeline(model=folders["altclip"])(str(media / "still.png"), candidate_labels=["a", "b"])
    assert [x["label"] for x in rec["labels"]] != []


def cli(*args):
    return subprocess.run([sys.executable, "-m", "mediaformers", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.timeout(300)
def test_command_line(folders, media):
    for family, source in [("videomae", "a.mp4"), ("vivit", "c.mp4"), ("ast", "long.wav"), ("tvlt", "a.mp4")]:
        proc = cli("classify", folders[family], media / source, "--top-k", 1)
        assert proc.returncode == 0, f"{family}: {proc.stderr}"
        assert len(json.loads(proc.stdout)["labels"]) == 1
    proc = cli("zero-shot", folders["altclip"], media / "still.png", "--labels", "a", "b")
    assert proc.returncode == 0, proc.stderr
