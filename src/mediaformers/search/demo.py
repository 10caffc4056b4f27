"""``mediaformers demo --search``: text search in four languages, offline, from nothing.

Generates pictures and short videos of coloured shapes (a video's shape moves), each with captions in
English, Spanish, German and French; builds a tokenizer of the training captions' words and trains a
tiny AltCLIP on them contrastively with the project's :class:`~mediaformers.train.Recipe`; indexes
*fresh* media (another seed) into a library; then asks for every shape and colour in every language,
with caption wordings held out of training (and of the vocabulary), and reports recall@5 (a file of the
asked shape and colour among the first five files). Deterministic: a seed gives the same recall each run.
"""
from __future__ import annotations

import csv
import json
import re
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (40, 70, 220), "yellow": (235, 215, 40)}
WORDS = {  # shape and colour words per language (adjective agreement written out: a demo, not a grammar)
    "en": {"circle": "circle", "square": "square", "triangle": "triangle",
           "red": "red", "green": "green", "blue": "blue", "yellow": "yellow"},
    "es": {"circle": "círculo", "square": "cuadrado", "triangle": "triángulo",
           "red": "rojo", "green": "verde", "blue": "azul", "yellow": "amarillo"},
    "de": {"circle": "Kreis", "square": "Quadrat", "triangle": "Dreieck",
           "red": "rot", "green": "grün", "blue": "blau", "yellow": "gelb"},
    "fr": {"circle": "cercle", "square": "carré", "triangle": "triangle",
           "red": "rouge", "green": "vert", "blue": "bleu", "yellow": "jaune"},
}
TRAIN_TEMPLATES = {
    "en": ["a {c} {s}", "{c} {s}", "a picture of a {c} {s}"],
    "es": ["un {s} {c}", "{s} {c}", "una imagen de un {s} {c}"],
    "de": ["{s} in {c}", "ein {s}, {c}", "ein Bild: {s} in {c}"],
    "fr": ["un {s} {c}", "{s} {c}", "une image d'un {s} {c}"],
}
HELD_OUT = {"en": "the {c} {s} here", "es": "el {s} {c} aquí", "de": "hier ein {s}, {c}", "fr": "le {s} {c} ici"}
SIZE = 40
TARGET = 0.8  # recall@5 the full demo must reach on the held-out wordings (seeds 0, 1, 2 measured 1.0, 1.0, 0.92)


class Plan(NamedTuple):
    """Pictures per (shape, colour) and training. Batches of 32 hold several shapes of one colour (what makes
    a model look at the shape, not only the colour); lr 2e-3 collapsed a run (seed 1) to colour only."""

    per_concept: int
    epochs: int
    batch_size: int
    lr: float


# the full demo and --quick (a smoke run, not held to TARGET)
SETTINGS = {False: Plan(per_concept=8, epochs=30, batch_size=32, lr=1e-3),
            True: Plan(per_concept=4, epochs=12, batch_size=32, lr=1e-3)}
SHIFT = 8.0  # training pictures' shapes move sideways up to this many pixels, as a video's shape does
NOISE = 0.5  # chance of a made-up word before, and after, a training caption
LETTERS = "abcdefghijklmnopqrstuvwxyzáéíóúüäöàèç"  # made-up words' letters


def caption(lang: str, template: str, shape: str, colour: str) -> str:
    w = WORDS[lang]
    return template.format(s=w[shape], c=w[colour])


def draw(shape: str, colour: str, rng: np.random.Generator, shift: float = 0.0) -> np.ndarray:
    """One (SIZE, SIZE, 3) uint8 picture: the shape on a noisy grey ground; ``shift`` moves it right."""
    img = rng.normal(128, 18, (SIZE, SIZE, 3))
    y, x = np.mgrid[:SIZE, :SIZE]
    r = rng.uniform(12, 16)  # large and near the middle: a tiny model tells the shapes apart by their corners
    cy, cx = SIZE / 2 + rng.uniform(-3, 3), np.clip(SIZE / 2 + rng.uniform(-3, 3) + shift, r, SIZE - r)
    if shape == "circle":
        mask = (y - cy) ** 2 + (x - cx) ** 2 <= r ** 2
    elif shape == "square":
        mask = (abs(y - cy) <= r * 0.85) & (abs(x - cx) <= r * 0.85)
    else:
        mask = (y >= cy - r) & (y <= cy + r) & (abs(x - cx) <= (y - (cy - r)) / 2)
    img[mask] = np.array(COLOURS[colour]) + rng.normal(0, 10, (int(mask.sum()), 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def write_media(root: Path, per_concept: int, seed: int, videos: bool,
                shifts: float = 0.0) -> list[tuple[Path, str, str]]:
    """Pictures (and, with ``videos``, one short clip per concept in which the shape moves right); with
    ``shifts``, each picture's shape moved sideways by up to that many pixels, as a video's can be."""
    from PIL import Image

    from ..demo import write_video

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    made = []
    for shape in SHAPES:
        for colour in COLOURS:
            for i in range(per_concept):
                path = root / f"{colour}_{shape}_{i}.png"
                shift = rng.uniform(-shifts, shifts) if shifts else 0.0  # drawn only then: fresh media unchanged
                Image.fromarray(draw(shape, colour, rng, shift)).save(path)
                made.append((path, shape, colour))
            if videos:
                state = rng.bit_generator.state
                frames = []
                for t in range(8):
                    rng.bit_generator.state = state  # the same shape, moving
                    frames.append(draw(shape, colour, rng, shift=t * 2.0 - 8))
                path = root / f"{colour}_{shape}_moving.mp4"
                write_video(path, np.stack(frames), fps=4)
                made.append((path, shape, colour))
    return made


def add_noise(text: str, rng: np.random.Generator, p: float) -> str:
    """Before and after ``text``, each with probability ``p``, a made-up word (spelled out letter by letter by
    the tokenizer): the model learns that words it does not know name no shape or colour."""
    def word() -> str:
        return "".join(rng.choice(list(LETTERS), int(rng.integers(2, 6))))

    before, after = rng.random() < p, rng.random() < p
    return " ".join([word()] * before + [text] + [word()] * after)


def vocabulary(captions: list[str]) -> list[tuple[str, float]]:
    """Unigram pieces and scores from ``captions``, the same on every run: every word whole (a sentencepiece
    "▁" before a word's start; punctuation its own piece), sorted, then every character of the captions and
    of :data:`LETTERS` alone, sorted, scored far lower, so a word outside the vocabulary is spelled out
    rather than <unk>."""
    words, chars = set(), {"▁", *LETTERS}
    for text in captions:
        for word in text.split():
            chars.update(word)
            for i, part in enumerate(re.findall(r"\w+|[^\w\s]", word)):
                words.add(("▁" if i == 0 else "") + part)
    return [(w, -1.0) for w in sorted(words)] + [(c, -10.0) for c in sorted(chars - words)]


def make_tokenizer(captions: list[str]):
    """An XLM-R style Unigram tokenizer (what AltCLIP's loader reads) over :func:`vocabulary`: built, not
    trained (tokenizers' Unigram trainer gives another vocabulary on every run)."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import Unigram

    specials = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]  # fairseq's ids 0-3, <mask> last
    tok = Tokenizer(Unigram(specials + vocabulary(captions) + [("<mask>", 0.0)], 3, False))
    tok.add_special_tokens([t for t, _ in specials] + ["<mask>"])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                       special_tokens=[("<s>", 0), ("</s>", 2)])
    return tok


def make_checkpoint(folder: Path, captions: list[str], seed: int) -> Path:
    """A tiny AltCLIP with a tokenizer of the training captions' words (:func:`make_tokenizer`): nothing
    from a hub."""
    import torch

    import mediaformers as mf

    folder.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(captions)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 32, "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>"}))
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 32},
        "crop_size": {"height": 32, "width": 32}, "do_center_crop": True, "resample": 3}))
    torch.manual_seed(seed)
    text = {"vocab_size": tok.get_vocab_size(), "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2,
            "num_attention_heads": 4, "max_position_embeddings": 40, "project_dim": 32}
    vision = {"hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
              "image_size": 32, "patch_size": 4}
    mf.AltCLIPModel(mf.AltCLIPConfig(text_config=text, vision_config=vision, projection_dim=32,
                                    logit_scale_init_value=3.9)).save_pretrained(folder)
    return folder


def run_search_demo(folder: Path, *, seed: int = 0, quick: bool = False, out=None, log=None) -> dict[str, float]:
    """Generate, train, index fresh media, query in four languages; returns ``{"recall@5": ...}``. Every step
    is seeded and torch runs on one thread, so a seed gives the same tokenizer, weights and recall each run."""
    import shutil

    import torch

    from ..demo import prepare_folder
    from ..train import Recipe
    from .library import Library

    prepare_folder(folder)  # refuses a folder of the user's; clears an earlier demo's data, runs, fresh
    shutil.rmtree(folder / "library", ignore_errors=True)
    out, log = out or sys.stdout, log or sys.stderr
    say = lambda text="", stream=out: print(text, file=stream, flush=True)  # noqa: E731
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same sums in the same order on every run
    try:
        t0 = time.perf_counter()
        say("mediaformers demo --search: captioned shapes in four languages -> a tiny AltCLIP -> a library")
        cfg = SETTINGS[quick]
        train = write_media(folder / "data" / "search", cfg.per_concept, seed, videos=False, shifts=SHIFT)
        rows, clean = [], []
        rng = np.random.default_rng(seed + 100)
        for i, (path, shape, colour) in enumerate(train):
            for lang, templates in TRAIN_TEMPLATES.items():
                clean.append(caption(lang, templates[i % len(templates)], shape, colour))
                # manifest paths are relative to the manifest (data/), whatever folder the demo was given
                rows.append((str(Path(path).resolve().relative_to((folder / "data").resolve())),
                             add_noise(clean[-1], rng, NOISE)))
        with (folder / "data" / "search.csv").open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([("path", "caption"), *rows])
        base = make_checkpoint(folder / "runs" / "clip-init", clean, seed)
        say(f"data: {len(train)} pictures x 4 languages = {len(rows)} (picture, caption) pairs in data/search.csv",
            log)
        run = folder / "runs" / "clip"
        Recipe(model=str(base), data=str(folder / "data" / "search.csv"), output=str(run), task="contrastive",
               epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, warmup_steps=10, seed=seed,
               keep_last=1, val_fraction=0.1).fit()
        say(f"trained: runs/clip/final ({time.perf_counter() - t0:.0f} s so far)", log)
        fresh = write_media(folder / "fresh" / "search", 2, seed + 1, videos=True)
        lib_dir = folder / "library"
        # the last weights, not "best": that is picked on 38 validation pairs by which picture of a shape and
        # colour a caption finds, noise here (seed 0's best scored 79% on the held-out wordings, its last 100%)
        lib = Library(lib_dir, model=str(run / "final"), segment=1.0)
        counts: dict[str, int] = {}
        for rec in lib.add([folder / "fresh" / "search"]):
            counts[rec["status"]] = counts.get(rec["status"], 0) + 1
        say(f"indexed fresh media (seed {seed + 1}): {counts} into library/")
        truth = {str(p.resolve()): (s, c) for p, s, c in fresh}
        found = total = 0
        for lang, template in HELD_OUT.items():
            for shape in SHAPES:
                for colour in COLOURS:
                    q = caption(lang, template, shape, colour)
                    hits = lib.search(text=q, k=5, group=True)
                    ok = any(truth.get(h.path) == (shape, colour) for h in hits)
                    found, total = found + ok, total + 1
                    if shape == SHAPES[0] or not ok:
                        top = Path(hits[0].path).name if hits else "-"
                        say(f"  [{lang}] {q!r:<28} top: {top:<24} {'ok' if ok else 'MISSED'}")
        recall = found / total
        say(f"recall@5 on held-out captions ({total} queries, 4 languages): {found}/{total} = {recall:.0%} "
            f"(target {TARGET:.0%}{'; --quick trains too little to reach it' if quick else ''})")
        say(f"done in {time.perf_counter() - t0:.0f} s. Try it:\n"
            f"  mediaformers search {lib_dir} \"{caption('es', HELD_OUT['es'], 'square', 'blue')}\" -k 3\n"
            f"  mediaformers serve {lib_dir}      # then open the printed address")
        return {"recall@5": recall, "queries": total}
    finally:
        torch.set_num_threads(threads)
