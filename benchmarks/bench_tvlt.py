"""TVLT base: ours vs transformers 4.57.1 (the last release with TVLT), forward and one pre-training step.

The reference lives in its own venv (``bash tools/make_tvlt_venv.sh``), so every measurement runs in
a fresh subprocess — ours with this interpreter, the reference with tools/.venv-tvlt/bin/python —
on the same machine, in the same run, with the same config (TvltConfig defaults: 8 frames of
224x224, 1024x128 mel audio, pixel and audio masks) and the same seeded inputs. One process per
(implementation, phase) so ``ru_maxrss`` is that phase's peak resident memory.

    .venv/bin/python benchmarks/bench_tvlt.py [--batch 1] [--repeats 1]   # about 10 min on 2 busy CPU cores

Phases: ``forward`` = TvltModel under no_grad; ``step`` = TvltForPreTraining in train mode
(matching on pixel_values_mixed + MAE masking on both streams), forward + backward. float32 both
(no bf16), eager attention in the reference (its only kind), SDPA in ours, no gradient checkpointing.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REF_PYTHON = ROOT / "tools" / ".venv-tvlt" / "bin" / "python"


def inputs(batch: int):
    import torch

    g = torch.Generator().manual_seed(0)
    audio_patches = (1024 // 16) * (128 // 16)
    return dict(
        pixel_values=torch.randn(batch, 8, 3, 224, 224, generator=g),
        audio_values=torch.randn(batch, 1, 1024, 128, generator=g),
        pixel_mask=torch.ones(batch, 8 * 196),
        audio_mask=torch.ones(batch, audio_patches),
    )


def worker(impl: str, phase: str, batch: int, repeats: int) -> dict:
    import torch

    sys.path.insert(0, str(ROOT))
    from benchmarks.common import timed

    warnings.filterwarnings("ignore")
    if impl == "ref":
        import transformers as lib
    else:
        import mediaformers as lib
    torch.manual_seed(0)
    config = lib.TvltConfig()
    x = inputs(batch)
    times = []
    model = (lib.TvltModel if phase == "forward" else lib.TvltForPreTraining)(config)
    base_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # interpreter + torch + weights + inputs
    if phase == "forward":
        model.eval()
        for i in range(repeats + 1):  # the first call warms up
            with torch.no_grad():
                times.append(timed(lambda: model(**x))[0])
    else:
        model.train()
        x["pixel_values_mixed"] = x["pixel_values"].flip(0)
        x["pixel_mask_mixed"] = x["pixel_mask"]
        x["labels"] = torch.ones(batch, 1)
        for i in range(repeats):  # no warm-up: a step is long enough that it barely matters
            model.zero_grad(set_to_none=True)
            torch.manual_seed(1)  # same masking noise in both implementations
            times.append(timed(lambda: model(**x).loss.backward())[0])
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"times": times[1:] if phase == "forward" else times, "peak_rss_mib": rss_kib / 1024,
            "run_mib": (rss_kib - base_kib) / 1024, "threads": torch.get_num_threads()}


def measure(impl: str, phase: str, batch: int, repeats: int) -> dict:
    python = str(REF_PYTHON) if impl == "ref" else sys.executable
    cmd = [python, __file__, "--worker", impl, "--phase", phase, "--batch", str(batch), "--repeats", str(repeats)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") if impl == "ours" else ""}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(f"{impl} {phase} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1, help="timed calls after one warm-up (median reported)")
    ap.add_argument("--worker", choices=["ours", "ref"], help=argparse.SUPPRESS)
    ap.add_argument("--phase", choices=["forward", "step"], default="forward", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.phase, args.batch, args.repeats)))
        return
    if not REF_PYTHON.exists():
        raise SystemExit("reference venv missing: run `bash tools/make_tvlt_venv.sh` first")
    print(f"TVLT base (TvltConfig defaults), batch {args.batch}, 8x3x224x224 frames + 1x1024x128 audio, float32")
    print(f"{'phase':<9}{'ours s':>9}{'ref s':>9}{'speed-up':>10}{'ours MiB':>10}{'ref MiB':>10}{'mem ratio':>11}"
          f"{'ours +MiB':>11}{'ref +MiB':>10}{'ratio':>8}")
    for phase in ("forward", "step"):
        ours, ref = (measure(impl, phase, args.batch, args.repeats) for impl in ("ours", "ref"))
        t_ours, t_ref = sorted(ours["times"])[len(ours["times"]) // 2], sorted(ref["times"])[len(ref["times"]) // 2]
        print(f"{phase:<9}{t_ours:>9.2f}{t_ref:>9.2f}{t_ref / t_ours:>9.2f}x{ours['peak_rss_mib']:>10.0f}"
              f"{ref['peak_rss_mib']:>10.0f}{ours['peak_rss_mib'] / ref['peak_rss_mib']:>10.2f}x"
              f"{ours['run_mib']:>11.0f}{ref['run_mib']:>10.0f}{ours['run_mib'] / max(ref['run_mib'], 1):>7.2f}x")
    print(f"(median of {args.repeats} timed call(s), forward after a warm-up; MiB = peak RSS of each phase's own "
          f"process; +MiB = peak above the RSS after building the model and inputs; {ours['threads']} torch threads)")


if __name__ == "__main__":
    main()
