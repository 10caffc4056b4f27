"""The offline search demo's material: shapes a small model can tell apart, captions in four languages
whose held-out wordings never occur in training. (The whole demo, ~1 minute on 2 cores, runs with
MEDIAFORMERS_SLOW_TESTS=1: recall@5 >= 0.8 on the held-out wordings.)"""
from __future__ import annotations

import os

import numpy as np
import pytest

from mediaformers.search import demo


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
    trained = {demo.caption(lang, t, s, c) for lang, ts in demo.TRAIN_TEMPLATES.items() for t in ts
               for s in demo.SHAPES for c in demo.COLOURS}
    held = {demo.caption(lang, demo.HELD_OUT[lang], s, c) for lang in demo.HELD_OUT for s in demo.SHAPES
            for c in demo.COLOURS}
    assert len(held) == 48 and not held & trained
    assert demo.caption("de", demo.HELD_OUT["de"], "circle", "green") == "hier ein Kreis, grün"


@pytest.mark.timeout(600)
@pytest.mark.skipif(not os.environ.get("MEDIAFORMERS_SLOW_TESTS"), reason="the whole demo: set MEDIAFORMERS_SLOW_TESTS=1")
def test_demo_search_finds_held_out_captions(tmp_path, capsys):
    from mediaformers import cli

    assert cli.main(["demo", str(tmp_path / "d"), "--search"]) == 0
    out = capsys.readouterr().out
    assert "recall@5 on held-out captions" in out and (tmp_path / "d" / "library" / "library.json").is_file()
    import re

    recall = int(re.search(r"recall@5 on held-out captions .*= (\d+)%", out).group(1))
    assert recall >= 80, f"recall@5 {recall}% under the 80% target (it varies from run to run: 77-96% measured)"
