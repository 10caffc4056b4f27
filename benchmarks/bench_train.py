"""Training throughput (samples/s) and memory: our Recipe/fit vs a plain loop over transformers' model (CPU).

For each model (VideoMAE-B: 16x224 clips, hidden 768, 12 layers; AST base: 1024x128, hidden 768, 12
layers; ``--quick``: small configs of both for a dry run) one run measures, each configuration in a
fresh subprocess:

1. fp32 and bf16 (autocast; ``Recipe(bf16=True)``): ``Recipe.fit`` against a plain loop over
   transformers' ``VideoMAEForVideoClassification`` / ``ASTForAudioClassification`` with the same
   starting weights, batch, AdamW (lr 1e-4, weight decay 0.05), clipping at 1.0 and data. Both are fed
   the same pre-decoded tensors from memory (decoded once beforehand through mediaformers' data
   pipeline), so this is model + loop only. Runs alternate (ours, ref, ours, ref, ...).
2. Data loading: ``Recipe.fit`` with ``num_workers=2`` decoding the files themselves, against the
   model-only rate of 1 (fp32, the same steps fed from memory).
3. Gradient checkpointing (VideoMAE only): peak resident memory of the fp32 model-only run with and
   without ``gradient_checkpointing=True``. Memory is the growth of the process's peak RSS over its
   RSS just before the first step (model and data loaded; the peak is reset there by writing 5 to
   /proc/self/clear_refs, then read as VmHWM from /proc/self/status after the last step): activations,
   gradients and AdamW state, of the training process (DataLoader workers are other processes).

Timing: ours at fit's own metrics rows (one per optimizer step) between step ``--warmup`` and the
last step; the reference over the same steps. Validation and checkpoint writes after the last step
are stubbed out (they would not be timed anyway). Both wall and CPU seconds are recorded; on a
loaded machine the CPU figure is the steadier one.

The media represent users' data: H.264 .mp4 videos (640x360, 30 fps, 3 s; moving shapes over
gradients with noise) and 10 s stereo 44.1 kHz FLAC (speech-like formants + noise), two classes.

    python benchmarks/bench_train.py --quick                         # ~4 min on 2 cores, small configs
    python benchmarks/bench_train.py [--models videomae,ast] [--batch 4] [--warmup 1] [--steps 3] [--runs 1]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import soundfile as sf
import torch
import transformers as tf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from common import set_threads, timed  # noqa: E402

LABELS = ("a", "b")
MODELS = {  # name -> (transformers class, full config, quick config, media kind, label)
    "videomae": ("VideoMAEForVideoClassification", {},  # the defaults are ViT-B, 16 frames of 224x224
                 dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=3, intermediate_size=768,
                      image_size=112, num_frames=8), "video", "VideoMAE-B (16x224, hidden 768, 12 layers)"),
    "ast": ("ASTForAudioClassification", {},  # the defaults are AST base: 1024x128, hidden 768, 12 layers
            dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=3, intermediate_size=768,
                 max_length=256), "audio", "AST base (1024x128, hidden 768, 12 layers)"),
}


def cpu_info() -> tuple[str, list[str]]:
    """(lscpu model name, the bf16/AMX flags the CPU has)."""
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in out.splitlines() if ln.startswith("Flags")), [])
    return model, [f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f in flags]


def write_media(root: Path, kind: str, n_per_class: int) -> Path:
    """root/<label>/*.mp4 or *.flac, different content per file."""
    from tests.audio_media import noise, speech_like
    from tests.media import make_video, natural_frames

    base = natural_frames(90, (360, 640), seed=0) if kind == "video" else None
    voices = [speech_like(10.0, 44100, seed=c) for c in range(len(LABELS))] if kind == "audio" else None
    for c, label in enumerate(LABELS):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            if kind == "video":  # shift in time and space, mirror one class: each file differs
                frames = np.roll(base, (7 * i, 37 * i), axis=(0, 2))
                make_video(root / label / f"{label}{i}.mp4", frames=np.ascontiguousarray(frames[:, :, ::-1]) if c else frames, fps=30,
                           options={"preset": "veryfast"})
            else:
                left = np.roll(voices[c], 16411 * i) + noise(10.0, 44100, seed=i, amp=0.05 * (c + 1))
                right = np.roll(voices[c], 16411 * i + 3001) + noise(10.0, 44100, seed=i + 99, amp=0.05)
                sf.write(root / label / f"{label}{i}.flac", np.stack([left, right], 1).astype(np.float32), 44100)
    return root


def status_kb(field: str) -> int:
    """A memory figure of this process from /proc/self/status (VmRSS: now, VmHWM: peak) in KiB."""
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith(field + ":"))


def reset_peak() -> int:
    """Reset this process's peak RSS (VmHWM) to its current RSS; returns that RSS in KiB."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return status_kb("VmRSS")


# ---------------------------------------------------------------- one configuration (child process)

def run_ours(s: dict) -> dict:
    """Recipe.fit; (wall, CPU) seconds between the metrics rows of step ``warmup`` and the last step."""
    from mediaformers.train import Recipe
    from mediaformers.train import checkpointing as ck
    from mediaformers.train.data import MediaDataset
    from mediaformers.train.distributed import Dist
    from mediaformers.train.report import Reporter
    from mediaformers.train.objectives import ClassificationTask

    total, marks, out = s["warmup"] + s["steps"], {}, {}
    write, start = Reporter.row, Reporter.start

    def row(self, r):
        if "lr" in r:  # a training step just ended
            marks[r["step"]] = (time.perf_counter(), time.process_time())
        write(self, r)

    def on_start(self, *a):
        out["rss0_kb"] = reset_peak()
        start(self, *a)
        marks[0] = (time.perf_counter(), time.process_time())  # --warmup 0: timed from the loop's start

    patches = [mock.patch.object(Reporter, "row", row), mock.patch.object(Reporter, "start", on_start),
               mock.patch.object(ck, "save_state", lambda *a, **k: None),
               mock.patch.object(Dist, "save_model_folder", lambda *a, **k: None),
               mock.patch.object(ClassificationTask, "evaluate", lambda *a, **k: {"score": 0.0})]
    if s["feed"] == "memory":  # the dataset hands out the rows decoded beforehand
        cache = dict(torch.load(s["cache"], weights_only=False))
        patches.append(mock.patch.object(MediaDataset, "__getitem__", lambda self, i: cache[self.items[i].path]))
    for p in patches:
        p.start()
    try:
        Recipe(model=s["ckpt"], data=s["data"], val=s["val"], output=s["out"], batch_size=s["batch"],
               max_steps=total, lr=1e-4, weight_decay=0.05, clip_grad=1.0, epochs=1, bf16=s["bf16"],
               num_workers=s["workers"], gradient_checkpointing=s["checkpointing"]).fit()
    finally:
        for p in patches:
            p.stop()
    (w1, c1), (w0, c0) = marks[total], marks[s["warmup"]]
    walls = [marks[k][0] - marks[k - 1][0] for k in range(s["warmup"] + 1, total + 1)]
    return {"wall": w1 - w0, "cpu": c1 - c0, "walls": walls, **out}


def run_ref(s: dict) -> dict:
    """A plain loop over transformers' model on the same pre-decoded rows."""
    from mediaformers.train.data import collate

    rows = [r for _, r in torch.load(s["cache"], weights_only=False)]
    torch.manual_seed(0)
    model = getattr(tf, MODELS[s["model"]][0]).from_pretrained(s["ckpt"]).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    b, i = s["batch"], iter(range(10**9))

    def step() -> None:
        k = next(i) % (len(rows) // b)
        batch = collate(rows[k * b:(k + 1) * b])
        with torch.autocast("cpu", torch.bfloat16, enabled=s["bf16"]):
            logits = model(**batch["inputs"]).logits
        loss = torch.nn.functional.cross_entropy(logits.float(), batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    rss0 = reset_peak()
    for _ in range(s["warmup"]):
        step()
    walls, cpus = zip(*(timed(step) for _ in range(s["steps"])))
    return {"wall": sum(walls), "cpu": sum(cpus), "walls": walls, "rss0_kb": rss0}


def child(spec: str) -> None:
    s = json.loads(spec)
    set_threads(s["threads"])
    res = run_ours(s) if s["impl"] == "ours" else run_ref(s)
    res["peak_kb"] = status_kb("VmHWM")
    print("RESULT " + json.dumps(res), flush=True)


def spawn(s: dict) -> dict | None:
    """One configuration in a fresh process; None (and its error printed) when it failed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, __file__, "--child", json.dumps(s)], capture_output=True, text=True, env=env)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not lines:
        print(f"  {s['impl']} {s['model']}: FAILED ({p.returncode}):\n{p.stderr[-3000:]}", flush=True)
        return None
    r = json.loads(lines[-1][7:])
    r["rate"], r["cpu_rate"] = s["steps"] * s["batch"] / r["wall"], s["steps"] * s["batch"] / r["cpu"]
    r["best"] = s["batch"] / min(r["walls"])  # the fastest step: the least disturbed by other processes
    r["grow_mb"] = (r["peak_kb"] - r["rss0_kb"]) / 1024
    return r


# ---------------------------------------------------------------- the run (parent)

def prepare(name: str, tmp: Path, a) -> dict:
    """Media, checkpoint and the pre-decoded rows of one model; the spec shared by its configurations."""
    from mediaformers.tasks.loading import load_model
    from mediaformers.tasks.views import make_views
    from mediaformers.train.data import MediaDataset, read_items

    cls, full, quick, kind, _ = MODELS[name]
    d = tmp / name
    n = math.ceil(a.batch * (a.warmup + a.steps) / len(LABELS))  # one epoch holds every step
    t0 = time.perf_counter()
    data, val = write_media(d / "train", kind, n), write_media(d / "val", kind, 1)
    torch.manual_seed(0)
    config_cls = getattr(tf, cls.replace("ForVideoClassification", "Config").replace("ForAudioClassification", "Config"))
    config = config_cls(**(quick if a.quick else full), id2label=dict(enumerate(LABELS)),
                        label2id={k: i for i, k in enumerate(LABELS)})
    getattr(tf, cls)(config).save_pretrained(d / "ckpt")
    items = read_items(data)
    ds = MediaDataset(items, make_views(load_model(d / "ckpt")), list(LABELS), False)
    t1 = time.perf_counter()
    rows = [(it.path, ds[i]) for i, it in enumerate(items)]
    decode = (time.perf_counter() - t1) / len(rows)
    torch.save(rows, d / "rows.pt")
    shapes = {k: tuple(v.shape) for k, v in rows[0][1]["inputs"].items()}
    print(f"{name}: {len(rows)} training files made and decoded in {time.perf_counter() - t0:.0f} s "
          f"({decode:.2f} s per file to decode in this process); one sample {shapes}", flush=True)
    return dict(model=name, ckpt=str(d / "ckpt"), data=str(data), val=str(val), cache=str(d / "rows.pt"),
                batch=a.batch, warmup=a.warmup, steps=a.steps, threads=a.threads, bf16=False, feed="memory",
                workers=0, checkpointing=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="videomae,ast", help="comma-separated: videomae, ast")
    p.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--runs", type=int, default=1, help="alternating ours/ref pairs per precision")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the data-loading run (0: skip it)")
    p.add_argument("--no-memory", action="store_true", help="skip the gradient checkpointing run")
    p.add_argument("--quick", action="store_true", help="small configs of the same models (a dry run)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return child(a.child)
    a.threads = set_threads(a.threads)
    cpu, flags = cpu_info()
    print(f"CPU: {cpu}; bf16 instructions: {', '.join(flags) or 'none'}; torch {torch.__version__}, "
          f"transformers {tf.__version__}, {a.threads} threads; batch {a.batch}, {a.steps} timed steps after "
          f"{a.warmup}{' (--quick: small configs)' if a.quick else ''}", flush=True)
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models.split(","):
            spec = prepare(name, Path(tmp), a)
            label = MODELS[name][4] if not a.quick else f"{name} (quick config)"
            res: dict[tuple[str, str], list[dict]] = {}
            for run in range(a.runs):
                for prec in a.precisions.split(","):
                    for impl in ("ours", "ref"):
                        s = {**spec, "impl": impl, "bf16": prec == "bf16", "out": f"{tmp}/{name}/run-{prec}-{run}"}
                        r = spawn(s)
                        if r is None:
                            continue
                        res.setdefault((prec, impl), []).append(r)
                        print(f"  {name} {prec} {impl}: {r['rate']:.3f} samples/s ({r['cpu_rate']:.3f} per CPU s, "
                              f"fastest step {r['best']:.3f}), peak RSS +{r['grow_mb']:.0f} MB", flush=True)
            med = {k: statistics.median(x["rate"] for x in v) for k, v in res.items()}
            cmed = {k: statistics.median(x["cpu_rate"] for x in v) for k, v in res.items()}
            bmed = {k: statistics.median(x["best"] for x in v) for k, v in res.items()}
            for prec in a.precisions.split(","):
                if (prec, "ours") not in med or (prec, "ref") not in med:
                    continue
                o, r = med[prec, "ours"], med[prec, "ref"]
                pairs = statistics.median(x["rate"] / y["rate"] for x, y in zip(res[prec, "ours"], res[prec, "ref"]))
                summary.append(f"{label} {prec}: ours {o:.3f} samples/s, transformers {r:.3f}: {pairs:.2f}x "
                               f"(per CPU s {cmed[prec, 'ours']:.3f} vs {cmed[prec, 'ref']:.3f}: "
                               f"{cmed[prec, 'ours'] / cmed[prec, 'ref']:.2f}x; fastest step "
                               f"{bmed[prec, 'ours']:.3f} vs {bmed[prec, 'ref']:.3f}: "
                               f"{bmed[prec, 'ours'] / bmed[prec, 'ref']:.2f}x)")
            if ("bf16", "ours") in med and ("fp32", "ours") in med:
                summary.append(f"{label}: our bf16 / our fp32 {med['bf16', 'ours'] / med['fp32', 'ours']:.2f}x "
                               f"(fastest steps {bmed['bf16', 'ours'] / bmed['fp32', 'ours']:.2f}x)")
            base = res.get(("fp32", "ours"))
            s = {**spec, "impl": "ours", "feed": "files", "workers": a.workers, "out": f"{tmp}/{name}/workers"}
            r = spawn(s) if a.workers and base else None
            if r:
                m = statistics.median(x["rate"] for x in base)
                b = statistics.median(x["best"] for x in base)
                print(f"  {name} fp32 ours, {a.workers} workers decoding files: {r['rate']:.3f} samples/s "
                      f"(fastest step {r['best']:.3f})", flush=True)
                summary.append(f"{label} fp32, {a.workers} DataLoader workers decoding the files: {r['rate']:.3f} "
                               f"samples/s = {r['rate'] / m:.0%} of the model-only {m:.3f} (fastest steps "
                               f"{r['best']:.3f} vs {b:.3f}: {r['best'] / b:.0%})")
            # one timed step: the peak (activations + gradients + AdamW state) is reached in step 2
            s = {**spec, "impl": "ours", "checkpointing": True, "steps": 1, "out": f"{tmp}/{name}/ckpting"}
            r = spawn(s) if name == "videomae" and not a.no_memory and base else None
            if r:
                g0 = statistics.median(x["grow_mb"] for x in base)
                print(f"  {name} fp32 ours, gradient checkpointing: {r['rate']:.3f} samples/s, "
                      f"peak RSS +{r['grow_mb']:.0f} MB", flush=True)
                summary.append(f"{label} fp32 batch {a.batch}, peak RSS growth over the pre-step RSS: "
                               f"{g0:.0f} MB without, {r['grow_mb']:.0f} MB with gradient checkpointing "
                               f"(-{1 - r['grow_mb'] / g0:.0%}; speed {r['rate']:.3f} vs "
                               f"{statistics.median(x['rate'] for x in base):.3f} samples/s)")
    print(f"\nsummary ({cpu}; {a.threads} threads; batch {a.batch}, {a.steps} timed steps after {a.warmup}):")
    for line in summary:
        print("  " + line)


if __name__ == "__main__":
    main()
