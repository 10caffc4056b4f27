"""``mediaformers demo --search``: text search in four languages, offline, from nothing.

Generates pictures and short videos of coloured shapes (a video's shape moves), each with captions in
English, Spanish, German and French; trains a tokenizer and a tiny AltCLIP on them contrastively with
the project's :class:`~mediaformers.train.Recipe`; indexes *fresh* media (another seed) into a library;
then asks for every shape and colour in every language, with caption wordings held out of training,
and reports recall@5 (a file of the asked shape and colour among the first five files).
"""
from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

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


def write_media(root: Path, per_concept: int, seed: int, videos: bool) -> list[tuple[Path, str, str]]:
    """Pictures (and, with ``videos``, one short clip per concept in which the shape moves right)."""
    from PIL import Image

    from ..demo import write_video

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    made = []
    for shape in SHAPES:
        for colour in COLOURS:
            for i in range(per_concept):
                path = root / f"{colour}_{shape}_{i}.png"
                Image.fromarray(draw(shape, colour, rng)).save(path)
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


def make_checkpoint(folder: Path, corpus: list[str], seed: int) -> Path:
    """A tiny AltCLIP with a unigram tokenizer trained on the captions: nothing from a hub."""
    import torch
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors, trainers
    from tokenizers.models import Unigram

    import mediaformers as mf

    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator(corpus * 3, trainers.UnigramTrainer(vocab_size=200, special_tokens=specials,
                                                                unk_token="<unk>"))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                       special_tokens=[("<s>", 0), ("</s>", 2)])
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
              "image_size": 32, "patch_size": 8}
    mf.AltCLIPModel(mf.AltCLIPConfig(text_config=text, vision_config=vision, projection_dim=32)).save_pretrained(folder)
    return folder


def run_search_demo(folder: Path, *, seed: int = 0, quick: bool = False, out=None, log=None) -> dict[str, float]:
    """Generate, train, index fresh media, query in four languages; returns ``{"recall@5": ...}``."""
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
        train = write_media(folder / "data" / "search", 4 if quick else 8, seed, videos=False)
        rows, corpus = [], []
        for i, (path, shape, colour) in enumerate(train):
            for lang, templates in TRAIN_TEMPLATES.items():
                # manifest paths are relative to the manifest (data/), whatever folder the demo was given
                rows.append((str(Path(path).resolve().relative_to((folder / "data").resolve())),
                             caption(lang, templates[i % len(templates)], shape, colour)))
        corpus = [c for _, c in rows] + [caption(lang, HELD_OUT[lang], s, c) for lang in HELD_OUT
                                          for s in SHAPES for c in COLOURS]
        with (folder / "data" / "search.csv").open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([("path", "caption"), *rows])
        base = make_checkpoint(folder / "runs" / "clip-init", corpus, seed)
        say(f"data: {len(train)} pictures x 4 languages = {len(rows)} (picture, caption) pairs in data/search.csv",
            log)
        run = folder / "runs" / "clip"
        Recipe(model=str(base), data=str(folder / "data" / "search.csv"), output=str(run), task="contrastive",
               epochs=8 if quick else 20, batch_size=16, lr=2e-3, warmup_steps=5, seed=seed, keep_last=1,
               val_fraction=0.1).fit()
        say(f"trained: runs/clip/best ({time.perf_counter() - t0:.0f} s so far)", log)
        fresh = write_media(folder / "fresh" / "search", 2, seed + 1, videos=True)
        lib_dir = folder / "library"
        lib = Library(lib_dir, model=str(run / "best"), segment=1.0)
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
            f"(target 80%; it varies from run to run: the tokenizer's training is not deterministic)")
        say(f"done in {time.perf_counter() - t0:.0f} s. Try it:\n"
            f"  mediaformers search {lib_dir} \"{caption('es', HELD_OUT['es'], 'square', 'blue')}\" -k 3\n"
            f"  mediaformers serve {lib_dir}      # then open the printed address")
        return {"recall@5": recall, "queries": total}
    finally:
        torch.set_num_threads(threads)
