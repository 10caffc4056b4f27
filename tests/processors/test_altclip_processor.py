"""AltCLIPProcessor: tokenizer + CLIP image processor -> AltCLIPModel's keyword arguments."""
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
    inputs = processor(text=TEXTS, images=images(4))
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
    assert processor(text=[long, "x"])["input_ids"].shape == (2, 32)
    assert processor(text=long, max_length=10)["input_ids"].shape == (1, 10)


def test_save_round_trip(folder, tmp_path):
    _, processor = load(folder)
    processor.save_pretrained(tmp_path)
    again = AltCLIPProcessor.from_pretrained(tmp_path)
    a, b = processor(text=TEXTS, images=images(2)), again(text=TEXTS, images=images(2))
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
    with pytest.raises(FileNotFoundError, match="no tokenizer files and no preprocessor_config.json"):
        AltCLIPProcessor.from_pretrained(tmp_path)
