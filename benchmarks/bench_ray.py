"""`mediaformers embed --ray` on a local Ray instance: files/s with 1 and 2 model actors, and their ratio.

    python benchmarks/bench_ray.py [--videos 32] [--actors 1 2] [--size small|tiny]

Generated 4 s videos (320x240, 10 fps) and an untrained VideoMAE (``small``: ViT-S, 16 frames of 224;
``tiny``: 2 layers of 96 at 112) are embedded end to end, as the command runs them: Ray tasks and actors
decode, prepare and run the model, Parquet partitions are written. Each figure is one complete job
(actor start and model load included) on a Ray instance started once with ``max(actors) + 1`` CPUs
(the partition writer takes one beside the actors); the single-process command over the same files
is the baseline.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import mediaformers as mf  # noqa: E402
from benchmarks.common import stopwatch  # noqa: E402

SIZES = {"small": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                       image_size=224, num_frames=16),
         "tiny": dict(hidden_size=96, num_hidden_layers=2, num_attention_heads=2, intermediate_size=192,
                      image_size=112, num_frames=8)}


def cpu_model() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=32)
    p.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    p.add_argument("--size", default="small", choices=list(SIZES))
    args = p.parse_args()
    import ray

    from mediaformers.cli import main as cli
    from tests.media import make_video

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = tmp / "videomae"
        mf.VideoMAEModel(mf.VideoMAEConfig(**SIZES[args.size])).save_pretrained(model)
        media = tmp / "media"
        media.mkdir()
        for i in range(args.videos):
            make_video(media / f"v{i:03d}.mp4", frames=40, size=(240, 320), fps=10)
        base = ["embed", str(model), str(media), "--quiet", "--batch-size", "4"]
        with stopwatch() as took, contextlib.redirect_stdout(open(os.devnull, "w")):  # noqa: SIM115
            cli([*base, "-o", str(tmp / "single.parquet")])
        rates = {"single process": args.videos / took[0]}
        src = Path(__file__).resolve().parents[1] / "src"
        path = os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])  # workers import this checkout
        ray.init(num_cpus=max(args.actors) + 1, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": path}})
        try:
            for n in args.actors:
                out = tmp / f"ray{n}"
                with stopwatch() as took, contextlib.redirect_stdout(open(os.devnull, "w")):  # noqa: SIM115
                    cli([*base, "--ray", "--ray-actors", str(n), "-o", str(out)])
                rates[f"--ray, {n} actor{'s' if n > 1 else ''}"] = args.videos / took[0]
                shutil.rmtree(out)
        finally:
            ray.shutdown()
    print(f"embed {args.videos} videos (4 s, 320x240) with VideoMAE {args.size}, {cpu_model()}, "
          f"{len(os.sched_getaffinity(0))} CPUs, ray {ray.__version__}:")
    for name, rate in rates.items():
        print(f"  {name:<22} {rate:6.2f} files/s")
    one, *more = [rates[k] for k in rates if k.startswith("--ray")]
    for n, rate in zip(args.actors[1:], more):
        print(f"  scaling {args.actors[0]} -> {n} actors: {rate / one:.2f}x")


if __name__ == "__main__":
    main()
