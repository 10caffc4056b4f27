"""The pictures in docs/timelines.md, made by the demo's models (rerun after changing the demo or plots).

1. ``mediaformers demo WORK`` (unless WORK/runs holds its models): trains the tiny AST and VideoMAE.
2. A 40 s sound strung together from fresh demo sounds (tone, chirp, noise in runs of a few seconds) ->
   ``mediaformers classify WORK/runs/ast/best long.wav --timeline --plot docs/images/timeline.png``.
3. A 24 s video strung together from demo clips (shapes moving left, up, right, down) -> the VideoMAE
   timeline, docs/images/timeline-video.png, and ``mediaformers explain`` on one clip,
   docs/images/explain.png.
4. A few steps of MAE pre-training of the demo's VideoMAE on the demo's videos: the training loop writes
   reconstructions/step-N.png; the last becomes docs/images/reconstruction.png.

    python tools/make_timeline_images.py [--work /tmp/mf-images] [--quick]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from mediaformers import demo
from mediaformers.cli import main as cli
from mediaformers.family import families
from mediaformers.train import Recipe

DOCS = Path(__file__).resolve().parent.parent / "docs" / "images"
SOUND_PLAN = [("tone", 6), ("chirp", 5), ("noise", 4), ("tone", 3), ("chirp", 8), ("noise", 6), ("tone", 8)]
VIDEO_PLAN = ["left", "left", "up", "up", "right", "right", "right", "down", "down", "left", "up", "up"]


def long_sound(path: Path) -> Path:
    rng = np.random.default_rng(7)
    parts = [demo.sound(label, rng, path.parent) for label, seconds in SOUND_PLAN for _ in range(seconds)]
    sf.write(path, np.concatenate(parts), demo.RATE)
    return path


def long_video(path: Path) -> Path:
    rng = np.random.default_rng(7)
    demo.write_video(path, np.concatenate([demo.shape_clip(label, rng) for label in VIDEO_PLAN]))
    return path


def run(argv: list[str]) -> None:
    print("+ mediaformers " + " ".join(argv), flush=True)
    if cli(argv) != 0:
        sys.exit(f"failed: mediaformers {' '.join(argv)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="/tmp/mf-images")
    p.add_argument("--quick", action="store_true", help="the demo's quick plan (less accurate models)")
    args = p.parse_args()
    work = Path(args.work)
    if not (work / "runs" / "ast" / "best").is_dir():
        subprocess.run([sys.executable, "-m", "mediaformers", "demo", str(work), *(["--quick"] if args.quick else [])],
                       check=True)
    DOCS.mkdir(parents=True, exist_ok=True)
    media = work / "timeline-media"
    media.mkdir(exist_ok=True)
    sound, video = long_sound(media / "sounds.wav"), long_video(media / "shapes.mp4")
    run(["classify", str(work / "runs" / "ast" / "best"), str(sound), "--timeline", "--top-k", "3",
         "--merge-gap", "0.5", "--overwrite", "-o", str(media / "sounds.jsonl"), "--plot", str(DOCS / "timeline.png")])
    run(["classify", str(work / "runs" / "videomae" / "best"), str(video), "--timeline", "--stride", "2", "--top-k",
         "4", "--overwrite", "-o", str(media / "shapes.jsonl"), "--plot", str(DOCS / "timeline-video.png")])
    clip = next((work / "fresh" / "video" / "up").glob("*.mp4"), None) or video
    run(["explain", str(work / "runs" / "videomae" / "best"), str(clip), "-o", str(DOCS / "explain.png")])
    mae = work / "mae"
    shutil.rmtree(mae, ignore_errors=True)
    config = {**families()["videomae"].demo, "norm_pix_loss": True}
    Recipe(model="videomae", task="pretraining", data=str(work / "data" / "video"), output=str(mae), config=config,
           max_steps=60, batch_size=8, lr=1e-3, mask_ratio=0.75, val_fraction=0.1, seed=0).fit()
    last = max((mae / "reconstructions").glob("step-*.png"), key=lambda p: int(p.stem.split("-")[1]))
    shutil.copy(last, DOCS / "reconstruction.png")
    for image in sorted(DOCS.glob("*.png")):
        print(f"{image}: {image.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
