"""``mediaformers demo``: a real job end to end in about a minute on a laptop CPU.

It generates a small labelled data set (moving shapes for video, tones / chirps / noise and, where
``espeak-ng`` is installed, spoken words for audio), trains a tiny model of every family that
declares a ``demo`` config on the media it reads (:class:`mediaformers.train.Recipe`), then
generates *fresh* files with another seed and classifies them with the trained checkpoints through
the classify command's own code (the CLI passes it in), so the labels it prints are answers.

Everything is seeded and runs on one thread, so a run prints the same bytes every time on the
same machine.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .processors.video.pyav.writer import write_video

# What the generated media show; class names are folder names, so the trained models' labels.
VIDEO_CLASSES = ("down", "left", "right", "up")  # which way a shape moves
AUDIO_CLASSES = ("chirp", "noise", "tone")
SPEECH_CLASS = "speech"  # added when espeak-ng is installed
WORDS = ("yes", "no", "up", "down", "left", "right", "stop", "go", "one", "two", "three", "hello",
         "seven", "cat", "house", "water")
VOICES = ("en", "en-us", "en+f3", "en+m3", "en+f2", "en-gb-x-rp")

FRAMES, SIZE, FPS = 32, 64, 16  # clips: 2 s; VideoMAE samples 8 frames 4 apart, so all of it
RATE, SECONDS = 16000, 1.0  # sounds: one second, one AST window


@dataclass(frozen=True)
class Plan:
    """How much to make and train, per modality."""

    per_class: int  # generated training files per class (a seeded 20% of them held out)
    fresh_per_class: int  # fresh files per class for the final check
    epochs: int
    lr: float


PLANS = {
    "full": {"video": Plan(per_class=40, fresh_per_class=6, epochs=10, lr=1e-3),
             "audio": Plan(per_class=32, fresh_per_class=6, epochs=10, lr=1e-3)},
    "quick": {"video": Plan(per_class=8, fresh_per_class=2, epochs=3, lr=1e-3),
              "audio": Plan(per_class=8, fresh_per_class=2, epochs=3, lr=1e-3)},
}
BATCH = 8


# ---- media ------------------------------------------------------------------------------------
def shape_clip(label: str, rng: np.random.Generator, n: int = FRAMES, size: int = SIZE) -> np.ndarray:
    """``(n, size, size, 3)`` uint8: a ball or a box of a random bright colour crossing a dark background
    in the direction ``label`` names (left, right, up or down), with random size, lane and speed."""
    if label not in VIDEO_CLASSES:
        raise ValueError(f"label: expected one of {VIDEO_CLASSES}, got {label!r}")
    y, x = np.mgrid[0:size, 0:size]
    bg = rng.integers(0, 90, 3)
    tilt = rng.uniform(-30, 30, 2)  # a gentle gradient, so the codec has something to do
    base = (bg + tilt[0] * x[..., None] / size + tilt[1] * y[..., None] / size).clip(0, 255)
    rgb = rng.integers(0, 256, 3)
    rgb[rng.integers(3)] = 255  # bright in one channel at least
    round_, s = rng.random() < 0.5, int(rng.integers(size // 4, size // 3 + 2))
    lane = int(rng.integers(size * 3 // 10, size * 7 // 10 + 1))  # the middle: where it ends says which way
    start, end = rng.uniform(0, 0.2), rng.uniform(0.8, 1.0)
    if label in ("left", "up"):
        start, end = 1 - start, 1 - end
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        px, py = s / 2 + (start + (end - start) * i / (n - 1)) * (size - s), lane
        if label in ("up", "down"):
            px, py = py, px
        if round_:
            inside = (x - px) ** 2 + (y - py) ** 2 <= (s / 2) ** 2
        else:
            inside = (np.abs(x - px) <= s / 2) & (np.abs(y - py) <= s / 2)
        out[i] = np.where(inside[..., None], rgb, base).astype(np.uint8)
    return out


def espeak() -> str | None:
    """The espeak-ng program, or None where it is not installed (the demo then has no speech class)."""
    return shutil.which("espeak-ng")


def _spoken(rng: np.random.Generator, scratch: Path) -> np.ndarray:
    from .processors.audio_io import load_audio

    word, voice = WORDS[rng.integers(len(WORDS))], VOICES[rng.integers(len(VOICES))]
    wav = scratch / "word.wav"
    cmd = [espeak(), "-v", voice, "-s", str(int(rng.integers(130, 200))), "-p", str(int(rng.integers(25, 75))),
           "-w", str(wav), word]
    if subprocess.run(cmd, capture_output=True).returncode != 0:  # a voice this build lacks
        done = subprocess.run([*cmd[:2], "en", *cmd[3:]], capture_output=True, text=True)
        if done.returncode != 0:
            raise OSError(f"espeak-ng: expected a recording of {word!r}, got exit status {done.returncode}: "
                          f"{done.stderr.strip()[:200]}")
    speech = load_audio(wav, RATE, return_numpy=True)
    loud = np.flatnonzero(np.abs(speech) > 0.02 * np.abs(speech).max())
    speech = speech[loud[0]:loud[-1] + 1][: int(RATE * SECONDS * 0.9)] if len(loud) else speech
    out = np.zeros(int(RATE * SECONDS), np.float32)
    at = int(rng.integers(0, len(out) - len(speech) + 1))
    out[at:at + len(speech)] = 0.5 * speech / max(np.abs(speech).max(), 1e-6)
    return out


def sound(label: str, rng: np.random.Generator, scratch: Path) -> np.ndarray:
    """One second of float32 audio at 16 kHz: a held note with overtones (``tone``), a bird's quick
    rising or falling sweeps (``chirp``), white ``noise``, or a word spoken by espeak-ng (``speech``),
    each with random pitch, timing and level and a little hiss."""
    n = int(RATE * SECONDS)
    t = np.arange(n) / RATE
    if label == "tone":
        f0, decay = rng.uniform(200, 800), rng.uniform(0.4, 0.8)  # a held note and its overtones
        wave = sum(decay ** k * np.sin(2 * np.pi * (k + 1) * f0 * t + rng.uniform(0, 2 * np.pi)) for k in range(6))
        wave /= np.abs(wave).max()
    elif label == "chirp":  # a bird's: a few quick sweeps with pauses between them
        wave = np.zeros(n)
        at = rng.uniform(0, 0.15)
        while at < SECONDS - 0.15:
            d, f0, f1 = rng.uniform(0.06, 0.14), rng.uniform(800, 1800), rng.uniform(2500, 4500)
            if rng.random() < 0.5:
                f0, f1 = f1, f0
            i, k = int(at * RATE), int(d * RATE)
            u = np.arange(k) / RATE
            wave[i:i + k] = np.sin(2 * np.pi * (f0 * u + (f1 - f0) * u ** 2 / (2 * d))) * np.hanning(k)
            at += d + rng.uniform(0.05, 0.2)
    elif label == "noise":
        wave = rng.standard_normal(n) * 0.5
    elif label == SPEECH_CLASS:
        wave = _spoken(rng, scratch) / 0.5
    else:
        raise ValueError(f"label: expected one of {AUDIO_CLASSES + (SPEECH_CLASS,)}, got {label!r}")
    wave = rng.uniform(0.2, 0.5) * wave + rng.uniform(0.002, 0.01) * rng.standard_normal(n)
    return wave.astype(np.float32)


def write_media(root: Path, modality: str, classes: Iterable[str], per_class: int, seed: int) -> int:
    """``root/<label>/<label>-<i>.mp4|wav`` for each class; each file seeded by (seed, class, i), so
    a file does not depend on how many others are made. Returns the number of files."""
    import soundfile as sf

    count = 0
    with tempfile.TemporaryDirectory() as scratch:
        for c, label in enumerate(classes):
            (root / label).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                rng = np.random.default_rng([seed, c, i])
                if modality == "video":
                    write_video(root / label / f"{label}-{i}.mp4", shape_clip(label, rng), FPS)
                else:
                    sf.write(root / label / f"{label}-{i}.wav", sound(label, rng, Path(scratch)), RATE)
                count += 1
    return count


# ---- the run ----------------------------------------------------------------------------------
def _modality(fam) -> str | None:
    kinds = set(fam.processors) - {"text"}
    return next(iter(kinds)) if len(kinds) == 1 and kinds <= {"video", "audio"} else None


def demo_families() -> list:
    """The families the demo trains: a classification head, a ``demo`` config and one medium."""
    from .family import families

    return [f for f in sorted(families().values(), key=lambda f: f.name)
            if f.demo is not None and f.head() is not None and _modality(f) is not None]


def prepare_folder(folder: Path) -> None:
    """Make ``folder`` ours: refuse a non-empty folder an earlier demo did not make (nothing of the
    user's is overwritten); clear what an earlier demo left there."""
    marker = folder / ".mediaformers-demo"
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"demo: expected a folder to build the demo in, got a file {folder}")
    if folder.exists() and any(folder.iterdir()) and not marker.exists():
        raise ValueError(f"{folder} exists and is not a mediaformers demo folder; name a new or empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    for old in ("data", "fresh", "runs"):
        shutil.rmtree(folder / old, ignore_errors=True)
    (folder / "results.jsonl").unlink(missing_ok=True)
    marker.write_text("made by `mediaformers demo`; safe to delete\n")


Classify = Callable[[Path, Path], Iterable[dict]]  # (checkpoint, media folder) -> classify's records


def run_demo(folder: Path, classify: Classify, *, quick: bool = False, seed: int = 0,
             out=None, log=None) -> dict[str, dict[str, float]]:
    """Generate, train, classify fresh files; print a summary to ``out`` (paths relative to
    ``folder``; default stdout) and progress to ``log`` (default stderr). Writes ``folder/results.jsonl`` (one record per fresh file:
    classify's record plus ``model`` and ``true``). Returns per model: ``held_out`` accuracy (of the
    checkpoint kept), ``fresh`` accuracy and the fresh files that failed (``errors``)."""
    import torch

    from .train import Recipe

    prepare_folder(folder)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same sums in the same order on every run
    try:
        return _run(folder, classify, quick, seed, out or sys.stdout, log or sys.stderr, Recipe)
    finally:
        torch.set_num_threads(threads)


def _say(stream, text: str = "") -> None:
    print(text, file=stream, flush=True)


def _run(folder, classify, quick, seed, out, log, Recipe) -> dict[str, dict[str, float]]:
    plans = PLANS["quick" if quick else "full"]
    classes = {"video": VIDEO_CLASSES, "audio": AUDIO_CLASSES + ((SPEECH_CLASS,) if espeak() else ())}
    _say(out, f"mediaformers demo: generate labelled media, train a small model on it, then classify fresh "
              f"media (seed {seed}{', quick' if quick else ''})")
    if not espeak():
        _say(out, "note: espeak-ng is not installed, so the audio data has no spoken-word class "
                  "(install espeak-ng to add one)")
    result: dict[str, dict[str, float]] = {"held_out": {}, "fresh": {}, "errors": {}}
    with (folder / "results.jsonl").open("w", encoding="utf-8") as results:
        for fam in demo_families():
            kind, plan = _modality(fam), plans[_modality(fam)]
            data, fresh, run = folder / "data" / kind, folder / "fresh" / kind, folder / "runs" / fam.name
            if not data.exists():  # one data set per medium, shared by the models that read it
                t0 = time.perf_counter()
                write_media(data, kind, classes[kind], plan.per_class, seed)
                write_media(fresh, kind, classes[kind], plan.fresh_per_class, seed + 1)
                _say(log, f"mediaformers demo: generated {kind} data in {data} ({time.perf_counter() - t0:.1f} s)")
            n_data = len(classes[kind]) * plan.per_class
            _say(out, f"\n# {fam.name}: {kind} classification, {len(classes[kind])} classes: "
                      f"{', '.join(classes[kind])}")
            _say(out, f"data: {n_data} generated files in data/{kind}/ (seed {seed}); 20% held out")
            t0 = time.perf_counter()
            # audio: spectrogram mean/std from the training data, not AudioSet's (the generated sounds are far
            # quieter): with AudioSet's the held-out accuracy swung between 46% and 85% epoch to epoch
            Recipe(model=fam.name, data=str(data), output=str(run), config=dict(fam.demo), epochs=plan.epochs,
                   batch_size=BATCH, lr=plan.lr, warmup_steps=4, seed=seed, keep_last=1,
                   norm_stats_from_data=kind == "audio").fit()
            _say(log, f"mediaformers demo: trained {fam.name} ({plan.epochs} epochs) in {run} "
                      f"({time.perf_counter() - t0:.1f} s)")
            val = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "top1" in r]
            best = max(val, key=lambda r: r["top1"])  # first best: the epoch best/ holds
            steps = val[-1]["step"]
            _say(out, f"trained {steps} steps; held-out accuracy {_frac(best['top1'], best['evaluated'])} "
                      f"(chance {1 / len(classes[kind]):.0%}); checkpoint runs/{fam.name}/best")
            _say(out, f"fresh files (seed {seed + 1}), as `mediaformers classify runs/{fam.name}/best fresh/{kind}` "
                      "labels them:")
            right = total = errors = 0
            for rec in classify(run / "best", fresh):
                rel = Path(rec["input"]).resolve().relative_to(folder.resolve())
                true = rel.parent.name
                pred = rec["labels"][0] if "labels" in rec else {"label": "(error)", "score": 0.0}
                ok = pred["label"] == true
                right, total, errors = right + ok, total + 1, errors + ("error" in rec)
                _say(out, f"  {str(rel):<34} true {true:<13} predicted {pred['label']:<13} "
                          f"{pred['score']:.2f}  {'ok' if ok else 'WRONG'}")
                results.write(json.dumps({"model": fam.name, **rec, "input": str(rel), "true": true}) + "\n")
            result["held_out"][fam.name], result["fresh"][fam.name] = best["top1"], right / max(total, 1)
            result["errors"][fam.name] = errors
            _say(out, f"fresh accuracy: {right}/{total} = {right / max(total, 1):.0%}")
    _say(out, "\nsummary: accuracy on fresh files: " + ", ".join(f"{m} {a:.0%}" for m, a in result["fresh"].items())
         + "; records in results.jsonl; try `mediaformers classify runs/<model>/best YOUR_FILES`")
    return result


def _frac(p: float, n: int) -> str:
    return f"{round(p * n)}/{n} = {p:.0%}"
