"""The offline search demo's material: shapes a small model can tell apart, captions in four languages
whose held-out wordings never occur in training, a tokenizer built the same on every run (and read by
transformers as by us), and an exit status that fails under the recall target. (The whole demo, ~2 minutes
on 2 cores, runs with MEDIAFORMERS_SLOW_TESTS=1: recall@5 >= 0.8 on the held-out wordings.)"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pytest

from mediaformers.search import demo

TRAINED = [demo.caption(lang, t, s, c) for lang, ts in demo.TRAIN_TEMPLATES.items() for t in ts
           for s in demo.SHAPES for c in demo.COLOURS]
HELD = [demo.caption(lang, demo.HELD_OUT[lang], s, c) for lang in demo.HELD_OUT for s in demo.SHAPES
        for c in demo.COLOURS]


def test_pictures_show_the_shape_and_colour_their_captions_name():
    rng = np.random.default_rng(0)
    masks = {}
    for shape in demo.SHAPES:
        img = demo.draw(shape, "red", rng).astype(int)
        red = (img[..., 0] > 170) & (img[..., 1] < 110)
        masks[shape] = red
        assert red.sum() > 150, shape  # a large red shape on grey
    # the filled share of the shape's bounding box tells them apart: square > circle > triangle
    fill = {}
    for s, m in masks.items():  # bounding box of the rows/columns the shape crosses (not a stray noisy pixel)
        rows, cols = np.nonzero(m.sum(1) >= 3)[0], np.nonzero(m.sum(0) >= 3)[0]
        fill[s] = m.sum() / ((np.ptp(rows) + 1) * (np.ptp(cols) + 1))
    assert fill["square"] > 0.9 > fill["circle"] > 0.65 > fill["triangle"], fill  # 1, pi/4, 1/2


def test_held_out_wordings_are_not_trained_on():
    trained, held = set(TRAINED), set(HELD)
    assert len(held) == 48 and not held & trained
    assert demo.caption("de", demo.HELD_OUT["de"], "circle", "green") == "hier ein Kreis, grün"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_checkpoint_is_the_same_on_every_run(tmp_path):
    """tokenizers' Unigram trainer gave another vocabulary each run (recall 77-96%): the tokenizer is built."""
    shuffled = list(np.random.default_rng(1).permutation(TRAINED))
    a = demo.make_checkpoint(tmp_path / "a", TRAINED, seed=0)
    b = demo.make_checkpoint(tmp_path / "b", shuffled, seed=0)  # the order captions come in does not matter
    for name in ("tokenizer.json", "model.safetensors"):
        assert _digest(a / name) == _digest(b / name), name
    assert _digest(demo.make_checkpoint(tmp_path / "c", TRAINED, seed=1) / "model.safetensors") != \
        _digest(a / "model.safetensors")  # the seed reaches the weights


def test_the_tokenizer_keeps_caption_words_whole_and_spells_out_the_rest(tmp_path):
    from mediaformers.processors.text.tokenizer import Tokenizer

    folder = demo.make_checkpoint(tmp_path / "ck", TRAINED, seed=0)
    tok = Tokenizer.from_pretrained(folder)  # as AltCLIP's processor loads it (XLMRobertaTokenizer)
    vocab = tok.get_vocab()
    unk = vocab["<unk>"]
    assert [vocab[t] for t in ("<s>", "<pad>", "</s>", "<unk>")] == [0, 1, 2, 3]  # fairseq's ids
    held_only = {w for q in HELD for w in q.replace(",", "").split()} - {w for c in TRAINED for w in
                                                                         c.replace(",", "").split()}
    assert held_only == {"the", "here", "el", "aquí", "hier", "le", "ici"}
    assert not {"▁" + w for w in held_only} & set(vocab)  # held-out words are not in the vocabulary
    for q in HELD:
        ids = tok(q)["input_ids"]
        assert unk not in ids, q
        pieces = tok.tokenize(q)
        for w in q.replace(",", " ").split():  # every shape and colour word is one piece
            if w not in held_only:
                assert "▁" + w in pieces, (q, pieces)
    assert tok.tokenize("hier ein Kreis, grün") == ["▁", "h", "i", "e", "r", "▁ein", "▁Kreis", ",", "▁grün"]


def test_transformers_reads_the_tokenizer_as_we_do(tmp_path):
    transformers = pytest.importorskip("transformers")
    from mediaformers.processors.text.tokenizer import Tokenizer

    folder = demo.make_checkpoint(tmp_path / "ck", TRAINED, seed=0)
    ref = transformers.AutoTokenizer.from_pretrained(str(folder))
    ours = Tokenizer.from_pretrained(folder)
    for q in HELD[::5] + TRAINED[::7] + ["zq a red circle úy"]:
        assert ours(q)["input_ids"] == ref(q)["input_ids"], q


def test_made_up_words_only_surround_a_caption():
    rng = np.random.default_rng(0)
    out = [demo.add_noise("ein Bild: Kreis in rot", rng, 0.5) for _ in range(200)]
    assert all("ein Bild: Kreis in rot" in o for o in out)
    extra = [len(o.split()) - 5 for o in out]
    assert set(extra) == {0, 1, 2}  # none, before or after, both
    assert all(set(w) <= set(demo.LETTERS) for o in out for w in o.replace("ein Bild: Kreis in rot", "").split())
    assert demo.add_noise("a red circle", rng, 0.0) == "a red circle"


@pytest.mark.parametrize("quick, recall, status", [(False, 0.79, 1), (False, 0.8, 0), (True, 0.3, 0)])
def test_the_exit_status_fails_under_the_recall_target(tmp_path, monkeypatch, capsys, quick, recall, status):
    """Deterministic now, so recall under target is a regression (exit 1); --quick is not held to it."""
    from mediaformers import cli

    monkeypatch.setattr(demo, "run_search_demo", lambda folder, **kw: {"recall@5": recall, "queries": 48})
    assert cli.main(["demo", str(tmp_path / "d"), "--search", *(["--quick"] if quick else [])]) == status
    assert ("under its 80% target" in capsys.readouterr().err) == bool(status)


@pytest.mark.timeout(600)
@pytest.mark.skipif(not os.environ.get("MEDIAFORMERS_SLOW_TESTS"), reason="the whole demo: set MEDIAFORMERS_SLOW_TESTS=1")
def test_demo_search_finds_held_out_captions(tmp_path, capsys):
    from mediaformers import cli

    status = cli.main(["demo", str(tmp_path / "d"), "--search"])
    out = capsys.readouterr().out
    assert "recall@5 on held-out captions" in out and (tmp_path / "d" / "library" / "library.json").is_file()
    recall = int(re.search(r"recall@5 on held-out captions .*= (\d+)%", out).group(1))
    assert recall >= 80 and status == 0, f"recall@5 {recall}% under the 80% target (seeds 0, 1, 2 gave 100, 100, 92%)"
    # every language asks (and is answered): the printed queries cover the four
    assert {m for m in re.findall(r"\[(\w\w)\]", out)} == set(demo.HELD_OUT)
