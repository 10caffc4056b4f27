"""``mediaformers info``: what a checkpoint is and what it expects."""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..models.common import pair
from .loading import FAMILIES, load_model


def dummy_inputs(family: str, c) -> tuple[dict[str, torch.Tensor], str]:
    """One input of the shape the model was trained on, and its description."""
    if family in ("videomae", "vivit"):
        h, w = pair(c.image_size)
        return ({"pixel_values": torch.zeros(1, c.num_frames, c.num_channels, h, w)},
                f"pixel_values (batch, {c.num_frames}, {c.num_channels}, {h}, {w}) float: normalised video frames")
    if family == "audio-spectrogram-transformer":
        return ({"input_values": torch.zeros(1, c.max_length, c.num_mel_bins)},
                f"input_values (batch, {c.max_length}, {c.num_mel_bins}) float: normalised Kaldi log-mel frames "
                f"(10 ms hop, {c.max_length / 100:.2f} s per window)")
    if family == "tvlt":
        h, w = pair(c.image_size)
        return ({"pixel_values": torch.zeros(1, c.num_frames, c.num_image_channels, h, w),
                 "audio_values": torch.zeros(1, 1, c.spectrogram_length, c.frequency_length)},
                f"pixel_values (batch, <= {c.num_frames}, {c.num_image_channels}, {h}, {w}) + audio_values "
                f"(batch, 1, <= {c.spectrogram_length}, {c.frequency_length}) log-mel, with pixel_mask/audio_mask")
    v = c.vision_config
    h, w = pair(v.image_size)
    return ({"pixel_values": torch.zeros(1, v.num_channels, h, w)},
            f"pixel_values (batch, {v.num_channels}, {h}, {w}) CLIP-normalised images, and/or input_ids "
            f"(batch, <= {c.text_config.max_position_embeddings - 2}) from the XLM-R tokenizer")


def describe(ref: str) -> dict[str, Any]:
    loaded = load_model(ref)
    model, c = loaded.model, loaded.config
    inputs, text = dummy_inputs(loaded.family, c)
    run = (lambda: model.get_image_features(**inputs)) if loaded.family == "altclip" else (lambda: model(**inputs))
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        run()
    return {
        "model": str(ref),
        "folder": loaded.folder,
        "family": loaded.family,
        "class": type(model).__name__,
        "task": FAMILIES[loaded.family][1],
        "parameters": model.num_parameters(),
        "gflops_per_input": round(counter.get_total_flops() / 1e9, 3),
        "expected_input": text,
        "labels": len(c.id2label) if "Classification" in type(model).__name__ else None,
        "config": c.to_dict(),
    }
