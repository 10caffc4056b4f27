"""Zero-shot classification and retrieval with a tiny random AltCLIP."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mediaformers.tasks.retrieval import Retriever, rank, recall_at_k, similarity
from mediaformers.tasks.zero_shot import ZeroShotClassifier, image_embeddings
from tests.altclip_tiny import IMAGE_SIZE, load, make_folder
from tests.parity import assert_close

LABELS = ["cat", "dog", "一只猫", "собака", "قطة"]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    return load(make_folder(tmp_path_factory.mktemp("altclip")))


def pixels(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(seed))


def test_probabilities_match_the_model(loaded):
    model, processor = loaded
    clf = ZeroShotClassifier(model, processor)
    px = pixels(3)
    probs = clf(labels=LABELS, pixel_values=px)
    assert probs.shape == (3, len(LABELS))
    assert_close(probs.sum(-1), torch.ones(3), "rows sum to 1")
    tokens = processor(text=[f"a photo of {label}" for label in LABELS], padding=True)
    with torch.no_grad():
        ref = model(**tokens, pixel_values=px).logits_per_image.softmax(-1)
    assert_close(probs, ref, "zero-shot vs AltCLIPModel.logits_per_image.softmax")


def test_text_cache(loaded):
    model, processor = loaded
    clf = ZeroShotClassifier(model, processor, template=None)
    first = clf(labels=LABELS[:3], pixel_values=pixels(2))
    assert clf.cache_misses == 3 and clf.cache_hits == 0 and set(clf.cache) == set(LABELS[:3])
    again = clf(labels=LABELS[:3], pixel_values=pixels(2))
    assert clf.cache_misses == 3 and clf.cache_hits == 3
    assert torch.equal(first, again)
    more = clf(labels=LABELS, pixel_values=pixels(2))  # two new labels: only they are encoded
    assert clf.cache_misses == 5 and clf.cache_hits == 6
    # Embeddings encoded in a different batch (other padding) give the same probabilities.
    assert_close(more, ZeroShotClassifier(model, processor, template=None)(labels=LABELS, pixel_values=pixels(2)))
    clf(labels=["cat"], pixel_values=pixels(1), template="a drawing of {}")
    assert "a drawing of cat" in clf.cache
    clf.clear_cache()
    assert not clf.cache


def test_raw_images_videos_and_predict(loaded):
    model, processor = loaded
    clf = ZeroShotClassifier(model, processor)
    g = np.random.default_rng(0)
    imgs = [g.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(2)]
    probs = clf(imgs, LABELS)
    assert_close(probs, clf(labels=LABELS, pixel_values=processor(images=imgs)["pixel_values"]))
    # A video of one repeated frame classifies like that frame; frames average otherwise.
    px = pixels(2)
    video = px[:, None].expand(2, 4, *px.shape[1:])
    assert_close(clf(labels=LABELS, pixel_values=video), clf(labels=LABELS, pixel_values=px), "static video")
    frames = pixels(3, seed=1)
    emb = image_embeddings(model, frames)
    assert_close(image_embeddings(model, frames[None]), F.normalize(emb.mean(0, keepdim=True), dim=-1))
    clip = np.stack(imgs * 4)  # (T, H, W, 3)
    assert clf(videos=[clip], labels=LABELS).shape == (1, len(LABELS))
    top = clf.predict(imgs, LABELS, top_k=2)
    assert len(top) == 2 and len(top[0]) == 2
    assert top[0][0]["score"] >= top[0][1]["score"] and top[0][0]["label"] in LABELS


def test_zero_shot_bad_inputs(loaded):
    model, processor = loaded
    with pytest.raises(ValueError, match="template: expected a format string"):
        ZeroShotClassifier(model, processor, template="a photo")
    clf = ZeroShotClassifier(model, processor)
    with pytest.raises(ValueError, match="labels: expected a non-empty list of strings"):
        clf(labels="cat", pixel_values=pixels(1))
    with pytest.raises(ValueError, match="exactly one"):
        clf(labels=LABELS)
    with pytest.raises(ValueError, match=r"pixel_values: expected \(N, 3, H, W\) images"):
        clf(labels=LABELS, pixel_values=torch.zeros(3, IMAGE_SIZE, IMAGE_SIZE))
    with pytest.raises(ValueError, match="needs a processor with a tokenizer"):
        ZeroShotClassifier(model)(labels=LABELS, pixel_values=pixels(1))


def test_recall_on_known_answers():
    images = torch.eye(4, 8)  # four orthogonal images
    # Two texts per image, each a copy of its image; text 7 is labelled image 3 but looks like image 0.
    texts = images.repeat_interleave(2, 0).clone()
    texts[7] = images[0]
    gt = [0, 0, 1, 1, 2, 2, 3, 3]
    scores = similarity(images, F.normalize(texts, dim=-1))
    r = recall_at_k(scores, gt, ks=(1, 2, 4))
    assert r["text_to_image"] == {1: 7 / 8, 2: 7 / 8, 4: 1.0}
    # Image 3 has text 6 at rank 1 still; image 0 ranks its own texts 0, 1 (ties keep index order).
    assert r["image_to_text"] == {1: 1.0, 2: 1.0, 4: 1.0}
    order = rank(scores, k=3)
    assert order["texts_for_image"].shape == (4, 3) and order["images_for_text"].shape == (8, 3)
    assert order["texts_for_image"][0].tolist() == [0, 1, 7]
    # Identical embeddings everywhere: perfect recall at k = number of candidates only.
    same = recall_at_k(torch.ones(3, 3), [0, 1, 2], ks=(1, 3))
    assert same["text_to_image"][3] == 1.0 and same["text_to_image"][1] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="text_to_image: expected 8 image indices"):
        recall_at_k(scores, gt[:-1])
    with pytest.raises(ValueError, match=r"text_to_image: expected indices in \[0, 4\)"):
        recall_at_k(scores, [0, 0, 1, 1, 2, 2, 3, 4])


def test_retriever_with_model(loaded):
    model, processor = loaded
    ret = Retriever(model, processor, batch_size=2)
    texts = ["a photo of a cat", "一只狗", "собака", "صورة"]
    t = ret.embed_texts(texts)
    px = pixels(3)
    i = ret.embed_images(pixel_values=px)
    assert t.shape == (4, 16) and i.shape == (3, 16)
    assert_close(t.norm(dim=-1), torch.ones(4), "unit text embeddings")
    tokens = processor(text=texts, padding=True)
    assert_close(ret.embed_texts(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]), t)
    with torch.no_grad():
        want = model(**tokens, pixel_values=px)
    out = ret.search(i, t, k=2)
    assert_close(out["scores"] * model.logit_scale.exp().item(), want.logits_per_image, "scores vs logits")
    assert out["texts_for_image"].shape == (3, 2)
    # Texts that are the images' own embeddings are found first.
    r = ret.evaluate(i, i, [0, 1, 2], ks=(1,))
    assert r == {"image_to_text": {1: 1.0}, "text_to_image": {1: 1.0}}
    with pytest.raises(ValueError, match="texts / input_ids"):
        ret.embed_texts()
