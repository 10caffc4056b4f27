"""Processors: parity with transformers' PIL processors, inputs, configs, TVLT masks, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mediaformers.processors.video_processors import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    CLIPImageProcessor,
    TvltVideoProcessor,
    VideoMAECheckpointProcessor,
    VideoMAEVideoProcessor,
    VivitVideoProcessor,
)
from tests.media import make_video, natural_frames

# Natural-looking 320x240 frames: gradients, shapes and mild noise (see tests/media.py).
FRAMES = natural_frames(6, (240, 320), seed=1)


def _pixel_diff(ours: torch.Tensor, ref: torch.Tensor, std, scale: float) -> tuple[float, float]:
    """Mean and max |difference| in 0..255 pixel levels, before normalisation."""
    d = (ours - ref).abs() * torch.tensor(std).view(3, 1, 1) * scale
    return d.mean().item(), d.max().item()


def _reference(name: str):
    transformers = pytest.importorskip("transformers")
    if name == "videomae":
        from transformers.models.videomae.image_processing_pil_videomae import (
            VideoMAEImageProcessorPil,
        )

        # transformers' class default is mean/std 0.5; VideoMAE checkpoints ship ImageNet's.
        return VideoMAEImageProcessorPil(image_mean=IMAGENET_DEFAULT_MEAN, image_std=IMAGENET_DEFAULT_STD)
    if name == "vivit":
        return transformers.VivitImageProcessor()
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    return CLIPImageProcessorPil()


@pytest.mark.parametrize("name,cls,scale", [
    ("videomae", VideoMAECheckpointProcessor, 255.0),
    ("vivit", VivitVideoProcessor, 127.5),
    ("clip", CLIPImageProcessor, 255.0),
])
def test_parity_with_transformers(name, cls, scale):
    ours = cls()
    ref = _reference(name)
    if name == "clip":
        ours_pv = ours(list(FRAMES))["pixel_values"]
        assert torch.allclose(ours(videos=FRAMES)["pixel_values"][0], ours_pv)
    else:
        ours_pv = ours(FRAMES)["pixel_values"][0]
    ref_pv = torch.as_tensor(np.asarray(ref(list(FRAMES), return_tensors="pt")["pixel_values"]))
    ref_pv = ref_pv.reshape(ours_pv.shape)
    mean, mx = _pixel_diff(ours_pv, ref_pv, ours.config["image_std"], scale)
    print(f"\n{cls.__name__} vs transformers: mean {mean:.4f} max {mx:.4f} pixel levels")
    assert mean < 1.0, f"mean |diff| {mean:.4f} pixel levels"  # i.e. under 1/255 in [0, 1] units
    assert mx <= 2.0, f"max |diff| {mx:.4f} pixel levels"


def test_transformers_reads_our_config_and_we_read_theirs(tmp_path):
    pytest.importorskip("transformers")
    from transformers.models.videomae.image_processing_pil_videomae import (
        VideoMAEImageProcessorPil,
    )

    ref = VideoMAEImageProcessorPil(image_mean=IMAGENET_DEFAULT_MEAN, image_std=IMAGENET_DEFAULT_STD,
                                    crop_size={"height": 160, "width": 160}, size={"shortest_edge": 170})
    ref.save_pretrained(tmp_path / "theirs")
    ours = VideoMAECheckpointProcessor.from_pretrained(tmp_path / "theirs")
    assert ours.transform.size == 170 and ours.transform.crop_size == (160, 160)
    ours.save_pretrained(tmp_path / "ours")
    back = VideoMAEImageProcessorPil.from_pretrained(tmp_path / "ours")
    assert back.size.shortest_edge == 170 and back.crop_size.height == 160
    a = ours(FRAMES[:2])["pixel_values"][0]
    b = torch.as_tensor(np.asarray(back(list(FRAMES[:2]), return_tensors="pt")["pixel_values"])).reshape(a.shape)
    assert (a - b).abs().mean() < 0.01


def test_old_style_config_ints(tmp_path):
    # Early checkpoints store ints: size = shortest edge, crop_size = a square.
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(
        {"size": 256, "crop_size": 224, "resample": 3, "image_mean": 0.5, "image_std": 0.5,
         "feature_extractor_type": "VideoMAEFeatureExtractor"}))
    p = VideoMAEVideoProcessor.from_pretrained(tmp_path)
    assert p.config["size"] == {"shortest_edge": 256} and p.config["crop_size"] == {"height": 224, "width": 224}
    assert p.transform.interpolation == "bicubic" and p.config["image_mean"] == [0.5] * 3
    p.save_pretrained(tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "preprocessor_config.json").read_text())
    assert saved["feature_extractor_type"] == "VideoMAEFeatureExtractor"  # unknown keys are kept
    assert saved["image_processor_type"] == "VideoMAEImageProcessor"
    assert VideoMAEVideoProcessor.from_pretrained(tmp_path / "out").config == p.config


def test_no_config_gives_defaults(tmp_path):
    assert VivitVideoProcessor.from_pretrained(tmp_path).config == VivitVideoProcessor().config


def test_input_forms_agree():
    p = VideoMAEVideoProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    ref = p(FRAMES)["pixel_values"]
    assert ref.shape == (1, 6, 3, 32, 32) and ref.dtype == torch.float32
    chw = torch.from_numpy(FRAMES).permute(0, 3, 1, 2).contiguous()
    for form in [torch.from_numpy(FRAMES), chw, list(FRAMES), [Image.fromarray(f) for f in FRAMES]]:
        assert torch.allclose(p(form)["pixel_values"], ref)
    batch = p(np.stack([FRAMES, FRAMES[::-1]]))["pixel_values"]
    assert batch.shape == (2, 6, 3, 32, 32) and torch.allclose(batch[0], ref[0])
    assert torch.allclose(p([FRAMES, FRAMES[::-1]])["pixel_values"], batch)


def test_paths_are_decoded_with_the_family_sampler(tmp_path):
    path = make_video(tmp_path / "v.mp4", frames=20, size=(48, 64), fps=10)
    out = VivitVideoProcessor(num_frames=5)([path, str(path)])["pixel_values"]
    assert out.shape == (2, 5, 3, 224, 224)
    assert VideoMAEVideoProcessor()(path)["pixel_values"].shape == (1, 16, 3, 224, 224)  # 16x4, padded
    clip_out = CLIPImageProcessor()(videos=path)["pixel_values"]
    assert clip_out.shape == (1, 8, 3, 224, 224)


def test_clip_images():
    p = CLIPImageProcessor()
    assert p(FRAMES[0])["pixel_values"].shape == (1, 3, 224, 224)
    assert p(FRAMES)["pixel_values"].shape == (6, 3, 224, 224)
    mixed = [FRAMES[0], natural_frames(1, (300, 200))[0]]
    out = p(mixed)["pixel_values"]
    assert out.shape == (2, 3, 224, 224) and torch.allclose(out[0], p(FRAMES[0])["pixel_values"][0])


def test_tvlt_pads_frames_and_masks_patches():
    p = TvltVideoProcessor()
    long, short = natural_frames(4, (60, 80)), natural_frames(2, (60, 80))
    out = p([long, short])
    pv, mask = out["pixel_values"], out["pixel_mask"]
    # Reference layout: (batch, max_frames * (224 // 16) ** 2), 1 for real frames' patches, frame-major.
    assert pv.shape == (2, 4, 3, 224, 224) and mask.shape == (2, 4 * 196) and mask.dtype == torch.long
    assert mask[0].sum() == 4 * 196 and mask[1, :2 * 196].all() and not mask[1, 2 * 196:].any()
    assert (pv[1, 2:] == 0).all() and torch.allclose(pv[1, :2], p(short)["pixel_values"][0])
    # mean = std = 0.5 on x / 255 gives [-1, 1]
    assert pv[0].min() >= -1 and pv[0].max() <= 1
    with pytest.raises(ValueError, match="number of frames must not be greater than the model's maximum num_frames=8, got 9"):
        p(natural_frames(9, (60, 80)))


@pytest.mark.parametrize("kwargs,message", [
    (dict(resample=1), r"resample: expected a PIL code in \[0, 2, 3\] \(0 nearest, 2 bilinear, 3 bicubic\), got 1"),
    (dict(size={"longest_edge": 3}), r"size: expected a positive int, \(height, width\).*got \{'longest_edge': 3\}"),
    (dict(crop_size={"shortest_edge": 3}), r"crop_size: expected \{'height', 'width'\}"),
    (dict(do_rescale=False), "offset: requires do_rescale=True"),
    (dict(image_mean=[0.1, 0.2]), r"image_mean: expected a number or 3 numbers, got \[0.1, 0.2\]"),
    (dict(frame_sampling="random"), "frame_sampling: expected one of"),
])
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VivitVideoProcessor(**kwargs)


def test_call_validation():
    p = VideoMAEVideoProcessor()
    with pytest.raises(ValueError, match="videos: expected at least one video, got an empty list"):
        p([])
    with pytest.raises(ValueError, match=r"videos: expected 3 channels in the last or third-last dim, got shape \(2, 5, 5, 5\)"):
        p(np.zeros((2, 5, 5, 5), np.uint8))
    with pytest.raises(ValueError, match="videos: expected a path, tensor/ndarray, PIL image or a list of them, got int"):
        p(3)
    with pytest.raises(ValueError, match=r"videos: processed clips differ in shape"):
        p([FRAMES, FRAMES[:2]])
    with pytest.raises(ValueError, match="images/videos: expected exactly one of them"):
        CLIPImageProcessor()(FRAMES, videos=FRAMES)
    with pytest.raises(ValueError, match=r"images: expected decoded images .* load 'a.jpg' first"):
        CLIPImageProcessor()("a.jpg")
