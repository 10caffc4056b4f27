"""Training throughput (samples/s): our Recipe/fit vs a plain loop over transformers' model, one run (CPU).

An AST-S-like config (hidden 384, 4 layers, 6 heads, 2.56 s of 128 mel bins -> 290 tokens, 2 labels),
the same starting weights, batch, AdamW (lr 1e-4, weight decay 0.05), clipping at 1.0 and data: both
read the same generated wav files through mediaformers' data pipeline (decode + fbank in the loop's
process, no workers), so the difference is the model and the loop. Ours is timed at fit's own
metrics rows (one per optimizer step) between step ``--warmup`` and the last step, so validation and
checkpoints after the last step do not count; the reference over the same steps. Both wall and CPU
seconds of this process are measured: on a loaded machine the CPU figure is the steadier one. Runs
alternate (ours, ref, ours, ...); medians of ``--runs`` and the median ratio of adjacent pairs are reported.

    python benchmarks/bench_train.py [--batch 4] [--warmup 1] [--steps 3] [--runs 2] [--threads N]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import soundfile as sf
import torch
import transformers as tf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import set_threads, timed  # noqa: E402

CONFIG = dict(hidden_size=384, num_hidden_layers=4, num_attention_heads=6, intermediate_size=1536, max_length=256,
              num_mel_bins=128)
LABELS = ("noise", "tone")


def write_clips(root: Path, n_per_class: int, seconds: float = 2.6, sr: int = 16000) -> Path:
    """root/tone/*.wav and root/noise/*.wav."""
    rng = np.random.default_rng(0)
    t = np.arange(int(sr * seconds)) / sr
    for label in LABELS:
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            wave = 0.4 * np.sin(2 * np.pi * rng.uniform(300, 1500) * t) if label == "tone" else 0.3 * rng.standard_normal(len(t))
            sf.write(root / label / f"{label}{i}.wav", wave.astype(np.float32), sr)
    return root


def ours(ckpt: Path, data: Path, val: Path, out: Path, a) -> tuple[float, float]:
    """(wall, CPU) seconds of fit's steps warmup+1 .. warmup+steps, clocked at its per-step metrics rows."""
    from mediaformers.train import Recipe
    from mediaformers.train.report import Reporter

    total, marks, write = a.warmup + a.steps, {}, Reporter.row

    def row(self, r):
        if "lr" in r:  # a training step just ended
            marks[r["step"]] = (time.perf_counter(), time.process_time())
        write(self, r)

    with mock.patch.object(Reporter, "row", row):
        Recipe(model=str(ckpt), data=str(data), val=str(val), output=str(out), batch_size=a.batch, max_steps=total,
               lr=1e-4, weight_decay=0.05, clip_grad=1.0, epochs=1).fit()
    return marks[total][0] - marks[a.warmup][0], marks[total][1] - marks[a.warmup][1]


def reference(ckpt: Path, data: Path, a) -> tuple[float, float]:
    """(wall, CPU) seconds of the same steps as a plain loop over transformers' ASTForAudioClassification."""
    from mediaformers.tasks.loading import load_model
    from mediaformers.tasks.views import make_views
    from mediaformers.train.data import MediaDataset, collate, read_items

    torch.manual_seed(0)
    model = tf.ASTForAudioClassification.from_pretrained(ckpt).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    ds = MediaDataset(read_items(data), make_views(load_model(ckpt)), list(LABELS), False)
    loader = iter(torch.utils.data.DataLoader(ds, batch_size=a.batch, shuffle=True, collate_fn=collate))

    def step() -> None:
        batch = next(loader)
        loss = torch.nn.functional.cross_entropy(model(**batch["inputs"]).logits, batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(a.warmup):
        step()
    return timed(lambda: [step() for _ in range(a.steps)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args()
    threads = set_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n = a.batch * (a.warmup + a.steps) // 2 + 1  # one epoch holds every timed step
        data, val = write_clips(tmp / "train", n), write_clips(tmp / "val", 1)
        torch.manual_seed(0)
        config = tf.ASTConfig(**CONFIG, id2label=dict(enumerate(LABELS)), label2id={k: i for i, k in enumerate(LABELS)})
        tf.ASTForAudioClassification(config).save_pretrained(tmp / "ckpt")
        print(f"AST-S-like: hidden {CONFIG['hidden_size']}, {CONFIG['num_hidden_layers']} layers, "
              f"{CONFIG['max_length']}x{CONFIG['num_mel_bins']} input; batch {a.batch}, {a.steps} timed steps after "
              f"{a.warmup}; torch {torch.__version__}, transformers {tf.__version__}, {threads} threads")
        n_samples = a.steps * a.batch
        rates: dict[str, list[tuple[float, float]]] = {"ours": [], "ref": []}  # samples per (wall, CPU) second
        for i in range(a.runs):
            for name, secs in (("ours", ours(tmp / "ckpt", data, val, tmp / f"run{i}", a)),
                               ("ref", reference(tmp / "ckpt", data, a))):
                rates[name].append((n_samples / secs[0], n_samples / secs[1]))
            (ow, oc), (rw, rc) = rates["ours"][-1], rates["ref"][-1]
            print(f"  run {i + 1}: ours {ow:.2f} samples/s ({oc:.2f} per CPU s), ref {rw:.2f} samples/s "
                  f"({rc:.2f} per CPU s); ratio ours/ref {ow / rw:.2f} wall, {oc / rc:.2f} CPU", flush=True)
    for k, what in ((0, "samples/s"), (1, "samples per CPU second")):
        o, r = (statistics.median(x[k] for x in rates[n]) for n in ("ours", "ref"))
        ratio = statistics.median(x[k] / y[k] for x, y in zip(rates["ours"], rates["ref"]))
        print(f"median {what}: mediaformers Recipe {o:.2f}, transformers plain loop {r:.2f}; "
              f"median ratio of adjacent runs ours/ref {ratio:.2f}x")


if __name__ == "__main__":
    main()
