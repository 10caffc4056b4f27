"""AltCLIPProcessor: tokenizer + CLIP image processor -> AltCLIPModel's keyword arguments."""
import json

import numpy as np
import pytest
import torch
import transformers as tf

from mediaformers.processors.altclip_processor import AltCLIPProcessor
from mediaformers.processors.tokenizer import Tokenizer
from mediaformers.processors.video_processors import CLIPImageProcessor
from tests.altclip_tiny import IMAGE_SIZE, load, make_folder

TEXTS = ["a photo of a cat", "一只狗的照片", "фотография", "صورة قطة 🐱"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("altclip"))


def images(n: int, seed: int = 0) -> list[np.ndarray]:
    g = np.random.default_rng(seed)
    return [g.integers(0, 256, (40 + 4 * i, 50, 3), dtype=np.uint8) for i in range(n)]


def test_text_and_images_feed_the_model(folder):
    model, processor = load(folder)
    inputs = processor(text=TEXTS, images=images(4), padding=True, truncation=True)
    assert set(inputs) == {"input_ids", "attention_mask", "pixel_values"}
    assert inputs["pixel_values"].shape == (4, 3, IMAGE_SIZE, IMAGE_SIZE)
    ref_tok = tf.AutoTokenizer.from_pretrained(folder)
    want = ref_tok(TEXTS, padding=True, truncation=True, return_tensors="pt")
    assert torch.equal(inputs["input_ids"], want["input_ids"])
    assert torch.equal(inputs["attention_mask"], want["attention_mask"])
    ours_px = CLIPImageProcessor.from_pretrained(folder)(images(4))["pixel_values"]
    assert torch.equal(inputs["pixel_values"], ours_px)
    with torch.no_grad():
        out = model(**inputs, return_loss=True)
    assert out.logits_per_image.shape == (4, 4) and out.loss.ndim == 0


def test_single_modality_and_videos(folder):
    _, processor = load(folder)
    assert set(processor(text="a cat")) == {"input_ids", "attention_mask"}
    assert processor(text="a cat")["input_ids"].shape[0] == 1
    assert set(processor(images=images(1)[0])) == {"pixel_values"}
    video = np.stack(images(1) * 10)  # (T, H, W, 3)
    out = processor(videos=[video, video])
    assert out["pixel_values"].shape == (2, 10, 3, IMAGE_SIZE, IMAGE_SIZE)  # decoded clips keep their frames


def test_truncation_to_model_max_length(folder):
    _, processor = load(folder)
    long = "a photo of a cat " * 40
    assert processor(text=[long, "x"], padding=True, truncation=True)["input_ids"].shape == (2, 32)
    assert processor(text=long, max_length=10)["input_ids"].shape == (1, 10)


def test_save_round_trip(folder, tmp_path):
    _, processor = load(folder)
    processor.save_pretrained(tmp_path)
    again = AltCLIPProcessor.from_pretrained(tmp_path)
    kw = dict(padding=True, truncation=True)
    a, b = processor(text=TEXTS, images=images(2), **kw), again(text=TEXTS, images=images(2), **kw)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert again.batch_decode(a["input_ids"]) == processor.batch_decode(a["input_ids"])


def test_bad_inputs(folder, tmp_path):
    _, processor = load(folder)
    with pytest.raises(ValueError, match="expected text, images or videos"):
        processor()
    with pytest.raises(ValueError, match="pass one of them"):
        processor(images=images(1), videos=[np.stack(images(1) * 8)])
    with pytest.raises(ValueError, match="no image processor"):
        AltCLIPProcessor(tokenizer=Tokenizer.from_pretrained(folder))(images=images(1))
    with pytest.raises(ValueError, match="neither"):
        AltCLIPProcessor()
    with pytest.raises(FileNotFoundError, match="no tokenizer files and no preprocessor_config.json / processor_config.json"):
        AltCLIPProcessor.from_pretrained(tmp_path)


def _reference_processor(folder):
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    image = CLIPImageProcessorPil(size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    return tf.AltCLIPProcessor(image_processor=image, tokenizer=tf.AutoTokenizer.from_pretrained(folder))


@pytest.mark.parametrize("kwargs", [
    {"padding": True, "return_tensors": "pt"},
    {"padding": "max_length", "max_length": 20, "truncation": True, "return_tensors": "np"},
    {"padding": True, "return_tensors": "pt", "do_normalize": False, "crop_size": {"height": 20, "width": 20}},
    {"padding": True, "return_tensors": None, "size": {"shortest_edge": 40}, "do_center_crop": False},
])
def test_same_call_as_transformers(folder, tmp_path, kwargs):
    """transformers 5 writes only processor_config.json (+ tokenizer files): we load that, and the same
    call (transformers 5 argument order: images first) gives the same outputs."""
    ref = _reference_processor(folder)
    ref.save_pretrained(tmp_path)
    assert not (tmp_path / "preprocessor_config.json").exists() and (tmp_path / "processor_config.json").exists()
    ours = AltCLIPProcessor.from_pretrained(tmp_path)
    imgs = images(3)
    want = ref(imgs, TEXTS, **kwargs)
    got = ours(imgs, TEXTS, **kwargs)
    assert sorted(got) == sorted(want)
    for key in ("input_ids", "attention_mask"):
        assert np.asarray(got[key]).tolist() == np.asarray(want[key]).tolist()
    if kwargs["return_tensors"] is None:  # ragged: one array per image
        got["pixel_values"], want["pixel_values"] = [np.concatenate([np.ravel(x) for x in d["pixel_values"]])
                                                     for d in (got, want)]
    px_got, px_want = np.asarray(got["pixel_values"]), np.asarray(want["pixel_values"])
    assert px_got.shape == px_want.shape
    # pixel levels: resampling rounds differently from PIL by at most a level or two
    assert np.abs(px_got - px_want).mean() < 0.02 and np.abs(px_got - px_want).max() < 0.1


def test_transformers_reads_what_we_save(folder, tmp_path):
    _, ours = load(folder)
    ours.save_pretrained(tmp_path)
    ref = tf.AltCLIPProcessor.from_pretrained(tmp_path)
    got, want = ours(text=TEXTS, padding=True), ref(text=TEXTS, padding=True, return_tensors="pt")
    assert torch.equal(got["input_ids"], want["input_ids"])
    assert ref.image_processor.size["shortest_edge"] == IMAGE_SIZE


def test_pipeline_reads_processor_config_json(folder, tmp_path):
    """A checkpoint saved by transformers 5 (processor_config.json, no preprocessor_config.json)
    gets its image settings in the pipelines too, not defaults sized to the model."""
    import shutil

    from mediaformers.tasks.loading import load_model, processor

    for f in folder.iterdir():
        if f.name != "preprocessor_config.json":
            shutil.copy(f, tmp_path / f.name)
    (tmp_path / "processor_config.json").write_text(json.dumps({"image_processor": {
        "image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": IMAGE_SIZE + 6},
        "crop_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE}, "image_mean": [0.1, 0.2, 0.3]}}))
    proc = processor(load_model(tmp_path), "image")
    assert proc.config["size"] == {"shortest_edge": IMAGE_SIZE + 6} and proc.config["image_mean"] == [0.1, 0.2, 0.3]
