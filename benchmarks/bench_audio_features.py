"""AST features: our batched torch fbank vs transformers' ASTFeatureExtractor, measured in one run.

    .venv/bin/python benchmarks/bench_audio_features.py [--clips 100] [--seconds 10] [--threads N]

Both get the same clips (ten-second 16 kHz speech-like/noise signals). transformers runs its numpy
path (no torchaudio here: a Python loop over frames, float64); ours runs the whole batch at once,
float64 FFT by default (parity ~1e-7) and float32 (parity <= 7e-4, faster). Prints both times, the
ratio (reference / ours, >1 = we are faster) and the largest difference between the two outputs.
The reference is single-threaded numpy, so ours is also timed on one thread for a like-for-like ratio.
CPU seconds (this process) are printed too: on a shared machine they move far less than wall time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import alternate, row, set_threads, timed  # noqa: E402
from tests.audio_media import noise, speech_like  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads for the default-threads row")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of ours (the reference runs once)")
    args = parser.parse_args()

    from transformers import ASTFeatureExtractor as RefExtractor

    from mediaformers.processors.ast_features import ASTFeatureExtractor

    rate = 16000
    clips = [(speech_like if i % 2 else noise)(args.seconds, rate, i) for i in range(args.clips)]
    batch = torch.from_numpy(np.stack(clips))
    ref, ours = RefExtractor(), ASTFeatureExtractor()
    threads = set_threads(args.threads)

    print(f"{args.clips} clips x {args.seconds:g} s at {rate} Hz; torch {torch.__version__}, {threads} threads")
    ref(clips[:1], sampling_rate=rate)  # warm-up (imports, mel bank)
    got: list = []  # one timed run: it is the slow side, and its output is the reference
    t_ref, cpu_ref = timed(lambda: got.append(ref(clips, sampling_rate=rate, return_tensors="np")["input_values"]))
    expected = got[0]

    results = []
    for dtype in (torch.float64, torch.float32):
        for n in sorted({threads, 1}, reverse=True):
            set_threads(n)
            t, cpu = alternate({"ours": lambda: ours(batch, compute_dtype=dtype)}, repeat=args.repeat, cpu=True)["ours"]
            diff = np.abs(ours(batch, compute_dtype=dtype, return_tensors="np")["input_values"] - expected)
            results.append((f"ours {str(dtype).split('.')[-1]} fft, {n} thread(s)", t, cpu, diff))
    set_threads(threads)

    print(f"transformers ASTFeatureExtractor (numpy): {t_ref:.2f} s ({cpu_ref:.2f} CPU s)")
    for name, t, cpu, diff in results:
        print(row(name, t, t_ref) + f"   CPU s ratio {cpu_ref / cpu:5.2f}x   max|diff| {diff.max():.1e}  "
              f"mean {diff.mean():.1e}")


if __name__ == "__main__":
    main()
