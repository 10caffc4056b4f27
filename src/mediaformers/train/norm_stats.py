"""AST normalisation statistics from the training data (``--norm-stats-from-data``)."""
from __future__ import annotations

import math
import random

from ..processors.audio_io import load_audio
from ..processors.fbank import fbank
from .data import DataError, Item

NORM_STATS_FILES = 500  # most training files read for --norm-stats-from-data (a seeded sample)


def norm_stats(sources: list, extractor) -> tuple[float, float, int]:
    """(mean, std, files read) of the log-mel fbank values ``extractor`` computes (before it
    normalises; real frames only, no padding) over ``sources``; files that fail to decode are skipped."""
    total = squares = 0.0
    count = files = 0
    for source in sources:
        try:
            wave = load_audio(source, extractor.sampling_rate)
            feats, frames = fbank(wave, sample_frequency=extractor.sampling_rate, num_mel_bins=extractor.num_mel_bins)
        except Exception:  # a corrupt file is data: the loop names it when it reaches it
            continue
        x = feats[0, : int(frames[0])].double()
        total, squares = total + x.sum().item(), squares + (x * x).sum().item()
        count, files = count + x.numel(), files + 1
    if not count:
        raise DataError("norm_stats_from_data: expected training files with audio that decodes, got none")
    mean = total / count
    return mean, math.sqrt(max(squares / count - mean * mean, 0.0)), files


def set_norm_stats(items: list[Item], procs: dict, prepare, seed: int, log, family: str) -> None:
    """Compute the spectrogram mean/std over (a seeded sample of) ``items`` and put them in the
    extractor that is saved and in the one the views use."""
    saved, used = procs.get("audio"), getattr(prepare, "fe", None)
    if not all(hasattr(x, "mean") and hasattr(x, "std") for x in (saved, used)):
        raise ValueError(f"norm_stats_from_data: expected a model whose audio features alone are normalised with "
                         f"mean/std (AST), got {family}")
    sample = items if len(items) <= NORM_STATS_FILES else random.Random(seed).sample(items, NORM_STATS_FILES)
    mean, std, files = norm_stats([it.source for it in sample], used)
    if not std > 0:
        raise DataError(f"norm_stats_from_data: the features of {files} files are constant (std 0); "
                        "nothing to normalise with")
    for fe in (saved, used):
        fe.mean, fe.std = mean, std
    log(f"spectrogram statistics from {files} training files: mean={mean:.6g} std={std:.6g}")
