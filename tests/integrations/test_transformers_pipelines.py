"""transformers' own pipelines run our models and processors: video and audio classification give the
scores transformers' classes give on the same tiny checkpoint, with any mix of their processor and ours."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from mediaformers.family import get_family
from mediaformers.processors import ASTFeatureExtractor, VideoMAEImageProcessor
from tests.media import make_video
from tests.parity import hf_load, perturb

transformers = pytest.importorskip("transformers")


def _pair(tmp_path, model_type: str):
    fam = get_family(model_type)
    cls = fam.head()
    torch.manual_seed(0)
    ours = perturb(cls(fam.config(**fam.tiny, num_labels=3)))
    ours.save_pretrained(tmp_path)
    return ours, hf_load(getattr(transformers, cls.__name__), str(tmp_path))


def _scores(result) -> dict[str, float]:
    return {r["label"]: r["score"] for r in result}


def _run(task: str, model, inputs, **components):
    with warnings.catch_warnings():  # transformers' deprecation notes about image_processor / torchvision
        warnings.simplefilter("ignore")
        pipe = transformers.pipeline(task, model=model, **components)
        return _scores(pipe(inputs, **({"num_frames": 4} if task == "video-classification" else {})))


def test_video_classification_pipeline(tmp_path):
    ours, theirs = _pair(tmp_path, "videomae")
    video = str(make_video(tmp_path / "v.mp4"))
    sizes = {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}}
    our_proc = VideoMAEImageProcessor(**sizes)
    features = our_proc([np.zeros((32, 32, 3), np.uint8)] * 4)
    assert features.to(torch.float16)["pixel_values"].dtype == torch.float16  # the pipeline's cast
    want = _run("video-classification", theirs, video, image_processor=transformers.VideoMAEImageProcessor(**sizes))
    assert len(want) == 3
    for model, proc in [(ours, our_proc), (theirs, our_proc), (ours, transformers.VideoMAEImageProcessor(**sizes))]:
        got = _run("video-classification", model, video, image_processor=proc)
        assert got.keys() == want.keys()
        np.testing.assert_allclose(list(got.values()), list(want.values()), atol=1e-4)


def test_audio_classification_pipeline(tmp_path):
    ours, theirs = _pair(tmp_path, "audio-spectrogram-transformer")
    c = ours.config
    kw = {"num_mel_bins": c.num_mel_bins, "max_length": c.max_length}
    wave = np.random.default_rng(0).standard_normal(16000 // 4).astype(np.float32) * 0.1
    want = _run("audio-classification", theirs, wave, feature_extractor=transformers.ASTFeatureExtractor(**kw))
    for model, proc in [(ours, ASTFeatureExtractor(**kw)), (theirs, ASTFeatureExtractor(**kw)),
                        (ours, transformers.ASTFeatureExtractor(**kw))]:
        got = _run("audio-classification", model, wave, feature_extractor=proc)
        assert got.keys() == want.keys()
        np.testing.assert_allclose(list(got.values()), list(want.values()), atol=1e-4)
