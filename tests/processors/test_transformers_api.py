"""The processors as transformers users call them: class names, constructor defaults, per-call
overrides, return_tensors, argument order, and the files transformers 5 (and 4.57) write.

Each test runs the same inputs through transformers' class and ours. Pixel outputs are compared in
pixel levels (our uint8 resize rounds like PIL: mean < 1 level, max <= 2 levels); features and ids
exactly or to the documented feature tolerance.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import transformers as tf
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
from transformers.models.videomae.image_processing_pil_videomae import (
    VideoMAEImageProcessorPil,
)

from mediaformers.processors.ast_features import ASTFeatureExtractor
from mediaformers.processors.clip_image_processor import CLIPImageProcessor
from mediaformers.processors.tvlt_audio import TvltFeatureExtractor
from mediaformers.processors.tvlt_processor import TvltProcessor
from mediaformers.processors.video_processors import (
    TvltImageProcessor,
    VideoMAECheckpointProcessor,
    VideoMAEImageProcessor,
    VideoMAEVideoProcessor,
    VivitImageProcessor,
)
from tests.audio_media import noise, speech_like, tone
from tests.media import natural_frames

FRAMES = natural_frames(4, (60, 80), seed=3)
AUDIO_ATOL = 1e-3  # normalised AST features; see test_fbank.py


def _levels(ours, ref, scale: float = 255.0, std=0.5) -> tuple[float, float]:
    d = np.abs(np.asarray(ours, dtype=np.float64) - np.asarray(ref, dtype=np.float64)) * np.mean(std) * scale
    return float(d.mean()), float(d.max())


# ---- image/video processors ------------------------------------------------------------------------
PAIRS = [
    ("videomae", VideoMAEImageProcessor, VideoMAEImageProcessorPil),
    ("vivit", VivitImageProcessor, tf.VivitImageProcessor),
    ("clip", CLIPImageProcessor, CLIPImageProcessorPil),
]
FIELDS = ("do_resize", "size", "resample", "do_center_crop", "crop_size", "do_rescale", "rescale_factor",
          "do_normalize", "image_mean", "image_std", "offset")


@pytest.mark.parametrize("name,ours,theirs", PAIRS)
def test_constructor_defaults_are_transformers(name, ours, theirs):
    want = theirs().to_dict()
    got = ours().to_dict()
    for key in FIELDS:
        if key in want:
            assert np.allclose(got[key], want[key]) if "mean" in key or "std" in key else got[key] == want[key], key
    assert got["image_processor_type"] == want["image_processor_type"]


def test_videomae_checkpoint_defaults_stay_imagenet():
    """VideoMAECheckpointProcessor (what a checkpoint without preprocessor_config.json gets) keeps the
    ImageNet statistics every VideoMAE checkpoint ships; transformers' class defaults are 0.5, under
    both of its names."""
    from transformers.models.videomae.video_processing_videomae import VideoMAEVideoProcessor as Theirs

    assert VideoMAEImageProcessor().config["image_mean"] == VideoMAEVideoProcessor().config["image_mean"] == [0.5] * 3
    assert list(Theirs().image_mean) == [0.5] * 3
    assert VideoMAECheckpointProcessor().config["image_mean"] == [0.485, 0.456, 0.406]


OVERRIDES = [
    {},
    {"size": {"shortest_edge": 48}, "crop_size": {"height": 40, "width": 40}},
    {"do_center_crop": False, "size": {"height": 32, "width": 36}},
    {"do_normalize": False},
    {"do_rescale": False, "do_normalize": False, "do_resize": False, "do_center_crop": False},
    {"image_mean": [0.2, 0.3, 0.4], "image_std": 0.25, "resample": 3},
    {"resample": 0, "size": {"shortest_edge": 50}, "crop_size": {"height": 50, "width": 50}},
]


@pytest.mark.parametrize("overrides", OVERRIDES)
@pytest.mark.parametrize("name,ours,theirs", PAIRS)
def test_per_call_overrides_match(name, ours, theirs, overrides):
    kwargs = {"size": {"shortest_edge": 64}, "crop_size": {"height": 56, "width": 56}}
    ref, mine = theirs(**kwargs), ours(**kwargs)
    if name == "vivit" and overrides.get("do_rescale") is False:
        overrides = {**overrides, "offset": False}  # ViViT's offset needs rescaling (both refuse otherwise)
    want = np.asarray(ref(list(FRAMES), return_tensors="np", **overrides)["pixel_values"])
    got = mine(FRAMES if name != "clip" else list(FRAMES), return_tensors="np", **overrides)["pixel_values"]
    got = got.reshape(want.shape)
    std = overrides.get("image_std", mine.config["image_std"]) if overrides.get("do_normalize", True) else 1.0
    scale = 1.0 if overrides.get("do_rescale") is False else (127.5 if name == "vivit" else 255.0)
    mean, mx = _levels(got, want, scale, std)
    assert mean < 1.0 and mx <= 2.001, (mean, mx)  # nearest (resample=0) picks PIL's very pixels
    # the processor itself is unchanged by a call's overrides
    assert mine.to_dict() == ours(**kwargs).to_dict()


@pytest.mark.parametrize("name,ours,theirs", PAIRS)
def test_return_tensors(name, ours, theirs):
    p = ours(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    frames = FRAMES if name != "clip" else list(FRAMES)
    pt = p(frames)["pixel_values"]
    assert isinstance(pt, torch.Tensor)
    np_out = p(frames, return_tensors="np")["pixel_values"]
    assert isinstance(np_out, np.ndarray) and np.array_equal(np_out, pt.numpy())
    listed = p(frames, return_tensors=None)["pixel_values"]
    assert isinstance(listed, list) and len(listed) == pt.shape[0] and np.array_equal(listed[0], pt[0].numpy())
    assert torch.equal(p.preprocess(frames)["pixel_values"], pt)  # transformers' method name
    with pytest.raises(ValueError, match="return_tensors: expected 'pt', 'np' or None, got 'tf'"):
        p(frames, return_tensors="tf")
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        p(frames, sizee=3)


@pytest.mark.parametrize("name,ours,theirs", PAIRS)
def test_files_written_by_transformers_5(name, ours, theirs, tmp_path):
    ref = theirs(size={"shortest_edge": 72}, crop_size={"height": 64, "width": 60}, do_normalize=True,
                 image_mean=[0.1, 0.2, 0.3], resample=3)
    ref.save_pretrained(tmp_path)
    mine = ours.from_pretrained(tmp_path)
    want = np.asarray(ref(list(FRAMES), return_tensors="np")["pixel_values"])
    got = mine(FRAMES if name != "clip" else list(FRAMES), return_tensors="np")["pixel_values"].reshape(want.shape)
    mean, mx = _levels(got, want, 127.5 if name == "vivit" else 255.0, mine.config["image_std"])
    assert mean < 1.0 and mx <= 2.001
    mine.save_pretrained(tmp_path / "back")  # and transformers reads ours back with the same settings
    assert theirs.from_pretrained(tmp_path / "back").to_dict()["crop_size"] == {"height": 64, "width": 60}


# transformers 4.57's VideoMAEImageProcessor.save_pretrained (image_processor_type, no processor_class)
VIDEOMAE_457 = {
    "crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "do_normalize": True, "do_rescale": True,
    "do_resize": True, "image_mean": [0.485, 0.456, 0.406], "image_processor_type": "VideoMAEImageProcessor",
    "image_std": [0.229, 0.224, 0.225], "resample": 2, "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 224},
}
# the MCG-NJU hub files (written by the 4.2x feature-extractor era): ints, feature_extractor_type
VIDEOMAE_HUB = {"do_center_crop": True, "do_normalize": True, "do_resize": True,
                "feature_extractor_type": "VideoMAEFeatureExtractor", "image_mean": [0.485, 0.456, 0.406],
                "image_std": [0.229, 0.224, 0.225], "resample": 2, "size": 224}


@pytest.mark.parametrize("config", [VIDEOMAE_457, VIDEOMAE_HUB])
def test_videomae_457_and_hub_files(tmp_path, config):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(config))
    mine = VideoMAEImageProcessor.from_pretrained(tmp_path)
    ref = VideoMAEImageProcessorPil.from_pretrained(tmp_path)
    want = np.asarray(ref(list(FRAMES), return_tensors="np")["pixel_values"])[0]
    got = mine(FRAMES, return_tensors="np")["pixel_values"][0]
    mean, mx = _levels(got, want, 255.0, config["image_std"])
    assert got.shape == want.shape == (4, 3, 224, 224) and mean < 1.0 and mx <= 2.0


# ---- AST -------------------------------------------------------------------------------------------
def test_ast_defaults_files_and_call_order(tmp_path):
    ref = tf.ASTFeatureExtractor(num_mel_bins=64, max_length=200, mean=-3.0, std=4.0)
    ref.save_pretrained(tmp_path)
    mine = ASTFeatureExtractor.from_pretrained(tmp_path)
    for key in ("feature_size", "sampling_rate", "num_mel_bins", "max_length", "padding_value", "do_normalize",
                "mean", "std", "return_attention_mask"):
        assert getattr(mine, key) == getattr(ref, key) == getattr(ASTFeatureExtractor(**{
            k: getattr(ref, k) for k in ("num_mel_bins", "max_length", "mean", "std")}), key), key
    clips = [speech_like(0.7, 16000), noise(3.0, 16000, 1)]
    want = ref(clips, 16000, "np")["input_values"]  # positional: raw_speech, sampling_rate, return_tensors
    got = mine(clips, 16000, "np")["input_values"]
    np.testing.assert_allclose(got, want, atol=AUDIO_ATOL, rtol=0)
    listed_ref, listed = ref(clips, 16000)["input_values"], mine(clips, 16000, None)["input_values"]
    assert isinstance(listed, list) and len(listed) == len(listed_ref) == 2
    np.testing.assert_allclose(listed[1], listed_ref[1], atol=AUDIO_ATOL, rtol=0)
    # per-call max_length and attention mask (transformers ignores a per-call max_length: ours applies it)
    short = mine(clips, 16000, "np", max_length=50, return_attention_mask=True)
    assert short["input_values"].shape == (2, 50, 64) and short["attention_mask"].shape == (2, 50)
    np.testing.assert_array_equal(short["input_values"], got[:, :50])
    with pytest.raises(ValueError, match="padding: expected True or 'max_length'"):
        mine(clips, 16000, padding="longest")


def test_ast_457_file(tmp_path):
    """transformers 4.57 writes no padding_side; older files name processor_class."""
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "feature_extractor_type": "ASTFeatureExtractor", "feature_size": 1,
        "max_length": 1024, "mean": -4.2677393, "num_mel_bins": 128, "padding_value": 0.0,
        "return_attention_mask": False, "sampling_rate": 16000, "std": 4.5689974,
        "processor_class": "ASTFeatureExtractor"}))
    x = tone(0.5, 16000)
    np.testing.assert_allclose(ASTFeatureExtractor.from_pretrained(tmp_path)(x, 16000, "np")["input_values"],
                               tf.ASTFeatureExtractor.from_pretrained(tmp_path)(x, 16000, "np")["input_values"],
                               atol=AUDIO_ATOL, rtol=0)


# ---- TVLT (transformers 4.57.1 only; its files written by hand from that source) ---------------------
# ZinengTang/tvlt-base's preprocessor_config.json layout: image and audio fields in one file.
TVLT_457 = {
    "crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "do_normalize": True, "do_rescale": True,
    "do_resize": True, "feature_extractor_type": "TvltFeatureExtractor", "feature_size": 128,
    "hop_length": 512, "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "TvltImageProcessor",
    "image_std": [0.5, 0.5, 0.5], "n_fft": 2048, "num_channels": 1, "num_frames": 8, "padding_side": "right",
    "padding_value": 0.0, "patch_size": [16, 16], "processor_class": "TvltProcessor", "resample": 2,
    "rescale_factor": 0.00392156862745098, "return_attention_mask": True, "sampling_rate": 44100,
    "size": {"shortest_edge": 224}, "spectrogram_length": 2048,
}


def test_tvlt_processor_reads_the_457_file_and_round_trips(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(TVLT_457))
    proc = TvltProcessor.from_pretrained(tmp_path)
    assert proc.image_processor.to_dict()["num_frames"] == 8 and proc.feature_extractor.hop_length == 512
    assert TvltImageProcessor().config == {**proc.image_processor.config}
    audio = [noise(0.5, 44100), tone(0.3, 44100)]
    out = proc(list(FRAMES[:3]), audio, sampling_rate=44100)  # 4.57 order: images, audio, images_mixed, sampling_rate
    assert set(out) == {"pixel_values", "pixel_mask", "audio_values", "audio_mask"}
    assert out["pixel_values"].shape == (1, 3, 3, 224, 224) and out["audio_values"].shape[:2] == (2, 1)
    mixed = proc(images=list(FRAMES[:2]), images_mixed=list(FRAMES[:3]), mask_pixel=True)
    assert mixed["pixel_values_mixed"].shape == (1, 3, 3, 224, 224) and "pixel_mask_mixed" in mixed
    small = proc(images=list(FRAMES[:2]), size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                 return_tensors="np")
    assert isinstance(small["pixel_values"], np.ndarray) and small["pixel_values"].shape[-1] == 32
    proc.save_pretrained(tmp_path / "saved")
    again = TvltProcessor.from_pretrained(tmp_path / "saved")
    assert again.image_processor.config == proc.image_processor.config
    assert again.feature_extractor.to_dict() == proc.feature_extractor.to_dict()


def test_tvlt_feature_extractor_457_call_order():
    fe = TvltFeatureExtractor()
    x = noise(0.3, 44100)
    a = fe(x, "np", True, 44100)  # raw_speech, return_tensors, return_attention_mask, sampling_rate
    b = fe(x, return_tensors="np", sampling_rate=44100, mask_audio=True)
    assert np.array_equal(a["audio_values"], b["audio_values"]) and "audio_mask" in a
    with pytest.raises(ValueError, match="sampling_rate: expected 44100 with resample=False, got 16000"):
        fe(noise(0.3, 16000), sampling_rate=16000, resample=False)
    with pytest.raises(ValueError, match="return_tensors: expected 'pt', 'np' or None, got 16000"):
        fe(x, 16000)  # the second positional is return_tensors, as in transformers


@pytest.mark.parametrize("name,ours,theirs", PAIRS)
def test_layout_keywords_and_valid_kwargs(name, ours, theirs):
    """data_format / input_data_format / do_convert_rgb per call, as transformers takes them; valid_kwargs
    lists what the constructor and call take (transformers' image-processing tests read it)."""
    kw = dict(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    p = ours(**kw)
    frames = FRAMES if name != "clip" else list(FRAMES)
    first = p(frames)["pixel_values"]
    last = p(frames, data_format="channels_last", input_data_format="channels_last", do_convert_rgb=True)
    assert torch.equal(last["pixel_values"], first.movedim(-3, -1))
    # transformers 5's processors take data_format but return channels-first (ViViT's fails on it); ours do
    # as asked, as 4.x did
    assert {"size", "crop_size", "data_format", "do_convert_rgb", "image_mean"} <= set(ours.valid_kwargs.__annotations__)
    assert set(ours.valid_kwargs.__annotations__) - {"offset"} <= set(theirs.valid_kwargs.__annotations__) | {"offset"}
    with pytest.raises(ValueError, match="data_format: expected one of"):
        p(frames, data_format="HWC")
    with pytest.raises(ValueError, match="do_convert_rgb: frames are always converted to RGB"):
        p(frames, do_convert_rgb=False)
