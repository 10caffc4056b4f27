"""The models of a library: which checkpoints it records, loading them once, and turning media into vectors."""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .records import LibraryError, fingerprint


def check_device(device: str | None) -> str | None:
    """A device the models can run on here, or a usage error (before anything is indexed)."""
    if device is None:
        return None
    if not re.fullmatch(r"(cpu|cuda|mps|xpu)(:\d+)?", str(device)):
        raise LibraryError(f"device: expected cpu, cuda, cuda:N, mps or xpu, got {device!r}")
    kind = str(device).split(":")[0]
    backend = getattr(torch, kind, None) if kind != "cpu" else None
    if backend is not None and not (hasattr(backend, "is_available") and backend.is_available()):
        raise LibraryError(f"device: {device} was asked for, but this machine has no {kind.upper()} device "
                           "torch can use; expected cpu here")
    count = getattr(backend, "device_count", None) if ":" in str(device) else None
    if count is not None and int(str(device).split(":")[1]) >= count():  # cuda:5 on a one-GPU machine
        raise LibraryError(f"device: {device} was asked for, but this machine has {count()} {kind.upper()} "
                           f"device(s): expected {kind}:0..{kind}:{count() - 1}")
    return device


def pin(ref: str | None) -> dict[str, Any]:
    """What library.json records of a checkpoint: a local folder as its absolute path plus a fingerprint of
    its weights (so the library finds it from any folder and notices other weights); a hub id or registry
    name as given."""
    if ref is None:
        return {"ref": None}
    if os.path.isdir(ref):
        folder = str(Path(ref).resolve())
        return {"ref": folder, "fingerprint": fingerprint(folder)}
    return {"ref": ref}


def check_pin(which: str, ref: str, recorded: str | None) -> None:
    """A recorded folder must still hold the weights the library's vectors came from."""
    if recorded is None:  # a library from before fingerprints, or a hub id
        return
    if not os.path.isdir(ref):
        raise LibraryError(f"{which}: this library was built with the checkpoint {ref}, which no longer exists; "
                           "expected it there (or index into a new library)")
    if fingerprint(ref) != recorded:
        raise LibraryError(f"{which}: the weights in {ref} changed since this library was built (fingerprint "
                           f"{recorded}, now {fingerprint(ref)}); its vectors cannot be searched with other "
                           "weights: use a new library")


class Embedder:
    """Loads the library's models on first use and embeds frames, texts and sounds with them."""

    def __init__(self, meta: dict[str, Any], *, device: str | None, precision: str | None, batch_size: int,
                 allow_partial: bool = False):
        self.meta, self.device, self.precision, self.batch_size = meta, device, precision, batch_size
        self.allow_partial = allow_partial  # damaged or cut files: embed what decodes
        self._models: dict[str, Any] = {}

    def loaded(self, which: str):
        if which not in self._models:
            from ..tasks.loading import load_model

            ref = self.meta.get(which)
            if ref is None:
                raise LibraryError(f"{which}: this library has none; it was built with {self.meta}")
            check_pin(which, ref, self.meta.get(f"{which}_fingerprint"))
            self._models[which] = load_model(ref, device=self.device, precision=self.precision)
        return self._models[which]

    def processor(self, which: str, kind: str):
        from ..tasks.loading import processor

        key = f"{which}:{kind}"
        if key not in self._models:
            self._models[key] = processor(self.loaded(which), kind)
        return self._models[key]

    def frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(n, H, W, 3) uint8 frames -> (n, dim) unit vectors of the image-text model."""
        from ..tasks.zero_shot import image_embeddings

        pixels = self.processor("model", "image")(list(frames))["pixel_values"]
        return image_embeddings(self.loaded("model").model, pixels, self.batch_size)

    def text(self, texts: Sequence[str]) -> torch.Tensor:
        from ..tasks.zero_shot import text_embeddings

        tokens = self.processor("model", "text")(text=list(texts), padding=True, truncation=True)
        return text_embeddings(self.loaded("model").model, tokens["input_ids"], tokens["attention_mask"])

    def audio_windows(self, source: str) -> tuple[torch.Tensor, list[tuple[float, float]]]:
        """An audio file (or a video's sound track) -> (windows, dim) unit vectors and their times."""
        from ..tasks.embedding import unit_embedding
        from ..tasks.views import make_views

        loaded = self.loaded("audio_model")
        views = make_views(loaded, allow_partial=self.allow_partial)(source)
        starts = views.get("window_start", torch.zeros(1)).tolist()
        with torch.inference_mode():
            emb = unit_embedding(loaded, {k: v.to(loaded.model.device) if isinstance(v, torch.Tensor) else v
                                          for k, v in views.items()})
        fe = self.processor("audio_model", "audio")
        length: int = getattr(fe, "max_length", 0) or getattr(fe, "spectrogram_length", 1024)
        span = length * 0.01  # Kaldi frames every 10 ms
        return emb.cpu(), [(s, s + span) for s in starts]

    def image_file(self, path: str) -> torch.Tensor:
        from ..processors.video_io import read_frames_at

        return self.frames(read_frames_at(path, [0.0], allow_partial=self.allow_partial))[0]

    def video_segments(self, path: str, segment: float) -> tuple[list[tuple[float, float]], torch.Tensor, float]:
        """A video's segment bounds, their (n, dim) unit vectors and its duration. Two frames per segment (at
        1/4 and 3/4 of it), embedded in batches and averaged, so memory stays bounded by the batch."""
        from ..processors.video_io import probe_video, read_frames_at

        duration = probe_video(path).duration or 0.0
        n = max(1, int(np.ceil(duration / segment))) if duration > 0 else 1
        bounds = [(i * segment, min((i + 1) * segment, duration) if duration > 0 else 0.0) for i in range(n)]
        out = []
        step = max(1, self.batch_size // 2)
        for i in range(0, n, step):
            part = bounds[i:i + step]
            times = [s + f * (e - s) for s, e in part for f in (0.25, 0.75)]
            emb = self.frames(read_frames_at(path, times, allow_partial=self.allow_partial)).view(len(part), 2, -1)
            out.append(F.normalize(emb.mean(1), dim=-1))
        return bounds, torch.cat(out), duration

    def has_audio(self, path: str) -> bool:
        from ..processors.video_io import probe_video

        try:
            return probe_video(path).has_audio
        except ValueError:  # not a container FFmpeg can read: no sound track to embed
            return False
