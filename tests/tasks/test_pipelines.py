"""The Python task layer on tensors, files and folders."""
import numpy as np
import pytest
import torch

import mediaformers as mf


def test_video_classification_on_tensors_and_files(ckpts, media):
    clf = mf.pipeline("video-classification", model=ckpts["videomae"], top_k=3)
    frames = torch.randint(0, 255, (4, 48, 64, 3), dtype=torch.uint8)
    rec = clf(frames)
    assert rec["input"] == "input[0]" and [x["label"] for x in rec["labels"]] != []
    assert abs(sum(x["score"] for x in rec["labels"]) - 1) < 1e-5  # all 3 labels, softmax
    with pytest.raises(ValueError, match="b_corrupt.mp4"):
        clf(str(media / "b_corrupt.mp4"))  # one input: errors raise
    recs = clf([str(media / "a.mp4"), str(media / "b_corrupt.mp4")])  # a list: errors are records
    assert "labels" in recs[0] and "error" in recs[1]


def test_audio_classification_max_aggregate_and_tensor_input(ckpts, media):
    clf = mf.pipeline(model=ckpts["ast"], aggregate="max", top_k=2)
    assert clf.task == "audio-classification"
    wave = torch.from_numpy(np.sin(np.linspace(0, 3000, 16000 * 3)).astype(np.float32))
    rec = clf(wave, views=True)
    scores = torch.tensor([[x["score"] for x in sorted(v["labels"], key=lambda x: x["label"])] for v in rec["views"]])
    top = {x["label"]: x["score"] for x in rec["labels"]}
    assert top[sorted(top)[0]] == pytest.approx(float(scores[:, 0].max()), abs=1e-5)


def test_feature_extraction_every_family(ckpts, media):
    for family, source in [("videomae", media / "a.mp4"), ("vivit", media / "c.mp4"), ("ast", media / "tone.wav"),
                           ("tvlt", media / "a.mp4"), ("altclip", media / "still.png")]:
        rec = mf.pipeline("feature-extraction", model=ckpts[family])(str(source))
        assert len(rec["embedding"]) in (16, 32), family


def test_bad_options(ckpts):
    with pytest.raises(ValueError, match="task: expected one of"):
        mf.pipeline("translation", model=ckpts["videomae"])
    with pytest.raises(ValueError, match="aggregate: expected 'mean' or 'max'"):
        mf.pipeline(model=ckpts["videomae"], aggregate="median")
    with pytest.raises(ValueError, match="num_crops: expected 1 or 3"):
        mf.pipeline(model=ckpts["videomae"], num_crops=5)
    with pytest.raises(ValueError, match="hop: expected a positive number of frames, got 0"):
        mf.pipeline(model=ckpts["ast"], hop=0)
    with pytest.raises(ValueError, match="model: expected"):
        mf.pipeline("video-classification")


@pytest.mark.parametrize("task, family, source", [
    (None, "videomae", "a.mp4"), (None, "ast", "tone.wav"), (None, "tvlt", "a.mp4"),
    ("feature-extraction", "vivit", "c.mp4"), ("feature-extraction", "altclip", "still.png"),
    ("zero-shot-classification", "altclip", "still.png")])
def test_compile_reaches_every_forward(ckpts, media, monkeypatch, task, family, source):
    """With compile=True no forward of the model runs outside a torch.compile'd callable."""
    inside = []

    def fake_compile(fn, **_):
        def compiled(*args, **kwargs):
            inside.append(True)
            try:
                return fn(*args, **kwargs)
            finally:
                inside.pop()
        return compiled

    monkeypatch.setattr(torch, "compile", fake_compile)
    pipe = mf.pipeline(task, model=ckpts[family], compile=True)
    outside = []
    for module in pipe.model.modules():
        module.register_forward_pre_hook(lambda m, a: outside.append(type(m).__name__) if not inside else None)
    kwargs = {"candidate_labels": ["a", "b"]} if task == "zero-shot-classification" else {}
    pipe(str(media / source), **kwargs)
    assert not outside, f"ran uncompiled: {sorted(set(outside))}"
