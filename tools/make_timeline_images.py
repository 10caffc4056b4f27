"""The pictures in docs/timelines.md, made by the demo's models (rerun after changing the demo or plots).

1. ``mediaformers demo WORK`` (unless WORK/runs holds its models): trains the tiny AST and VideoMAE.
2. A 40 s sound strung together from fresh demo sounds (tone, chirp, noise in runs of a few seconds) ->
   ``mediaformers classify WORK/runs/ast/best long.wav --timeline --plot docs/images/timeline.png``.
3. A 24 s video strung together from demo clips (shapes moving left, up, right, down) -> the VideoMAE
   timeline, docs/images/timeline-video.png, and ``mediaformers explain`` on one clip,
   docs/images/explain.png.
4. A few steps of MAE pre-training of the demo's VideoMAE on the demo's videos: the training loop writes
   reconstructions/step-N.png; the last becomes docs/images/reconstruction.png.
5. A few steps of MAE pre-training of a small TVLT on demo clips with a sound track (a moving shape and two
   of the demo's sounds): frames and spectrogram, docs/images/reconstruction-tvlt.png. Needs no demo run
   (``--only tvlt`` makes only this one).

    python tools/make_timeline_images.py [--work /tmp/mf-images] [--quick] [--only tvlt]
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
# TVLT for the picture: the demo's 32 px frames and 8 px patches; 1.5 s of 64 mel bins in 16x16 patches.
# Half of the audio time steps are masked (the config's default, 0.15, hides one stripe of eight); MAE only
# (no matching head), so the few steps go to the reconstruction.
TVLT = dict(image_size=32, image_patch_size=[8, 8], num_frames=4, spectrogram_length=128, frequency_length=64,
            hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
            decoder_hidden_size=64, decoder_num_hidden_layers=1, decoder_num_attention_heads=4,
            decoder_intermediate_size=128, audio_mask_ratio=0.5, task_matching=False)


def long_sound(path: Path) -> Path:
    rng = np.random.default_rng(7)
    parts = [demo.sound(label, rng, path.parent) for label, seconds in SOUND_PLAN for _ in range(seconds)]
    sf.write(path, np.concatenate(parts), demo.RATE)
    return path


def long_video(path: Path) -> Path:
    rng = np.random.default_rng(7)
    demo.write_video(path, np.concatenate([demo.shape_clip(label, rng) for label in VIDEO_PLAN]), demo.FPS)
    return path


def sounding_clips(folder: Path, per_class: int = 8) -> Path:
    """Demo clips (2 s) with a sound track: two of the demo's one-second sounds, tone/chirp/noise by class."""
    folder.mkdir(parents=True, exist_ok=True)
    for c, label in enumerate(demo.VIDEO_CLASSES):
        for i in range(per_class):
            rng = np.random.default_rng([7, c, i])
            kind = demo.AUDIO_CLASSES[(c + i) % len(demo.AUDIO_CLASSES)]
            audio = np.concatenate([demo.sound(kind, rng, folder) for _ in range(2)])
            demo.write_video(folder / f"{label}-{i}.mp4", demo.shape_clip(label, rng), demo.FPS, audio=audio,
                             rate=demo.RATE)
    return folder


def tvlt_reconstruction(work: Path) -> Path:
    mae = work / "mae-tvlt"
    shutil.rmtree(mae, ignore_errors=True)
    clips = sounding_clips(work / "sounding-clips")
    Recipe(model="tvlt", task="pretraining", data=str(clips), output=str(mae), config=TVLT, max_steps=150,
           batch_size=8, lr=2e-3, warmup_steps=10, val_fraction=0.1, seed=0).fit()
    last = max((mae / "reconstructions").glob("step-*.png"), key=lambda p: int(p.stem.split("-")[1]))
    return Path(shutil.copy(last, DOCS / "reconstruction-tvlt.png"))


def run(argv: list[str]) -> None:
    print("+ mediaformers " + " ".join(argv), flush=True)
    if cli(argv) != 0:
        sys.exit(f"failed: mediaformers {' '.join(argv)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="/tmp/mf-images")
    p.add_argument("--quick", action="store_true", help="the demo's quick plan (less accurate models)")
    p.add_argument("--only", choices=["tvlt"], help="only this picture (tvlt: step 5, no demo run)")
    args = p.parse_args()
    work = Path(args.work)
    DOCS.mkdir(parents=True, exist_ok=True)
    if args.only == "tvlt":
        image = tvlt_reconstruction(work)
        print(f"{image}: {image.stat().st_size // 1024} KB")
        return
    if not (work / "runs" / "ast" / "best").is_dir():
        subprocess.run([sys.executable, "-m", "mediaformers", "demo", str(work), *(["--quick"] if args.quick else [])],
                       check=True)
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
    tvlt_reconstruction(work)
    for image in sorted(DOCS.glob("*.png")):
        print(f"{image}: {image.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
