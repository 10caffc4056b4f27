"""What the audio feature extractors share: turning call inputs into a padded batch, and
``preprocessor_config.json`` in transformers' layout."""

from __future__ import annotations

import json
import numbers
import os
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from .._config_files import check_fields, find_processor_fields
from .audio_io import load_audio
from ..time_range import ClipPath

CONFIG_NAME = "preprocessor_config.json"


def _load(source: Any, rate: int, **options: Any) -> torch.Tensor:
    """``load_audio`` as the tensor it returns without ``return_numpy``/``return_info``."""
    return cast(torch.Tensor, load_audio(source, rate, **options))


def _is_source(x: Any) -> bool:
    """A file to decode (path, bytes, file object) rather than samples."""
    return isinstance(x, (str, os.PathLike, bytes, bytearray)) or hasattr(x, "read")


def _waveform(item: Any, sampling_rate: int | None, target_rate: int, device: torch.device | None) -> torch.Tensor:
    """One example -> float32 mono ``(samples,)`` at ``target_rate`` on ``device``."""
    if _is_source(item):
        return _load(item, target_rate).to(device or "cpu")
    rate = target_rate if sampling_rate is None else sampling_rate
    if isinstance(item, torch.Tensor) and item.ndim == 1 and item.is_floating_point() and rate == target_rate:
        # already what we need: stay on the tensor's device (no round trip through numpy)
        if item.numel() == 0:
            raise ValueError("audio holds no audio samples (empty, shape (0,))")
        if not torch.isfinite(item).all():
            raise ValueError(f"audio has {int((~torch.isfinite(item)).sum())} non-finite (NaN/inf) sample(s)")
        return item.to(device=device or item.device, dtype=torch.float32)
    if isinstance(item, (list, tuple)):
        item = np.asarray(item, dtype=np.float32)
    if not isinstance(item, (np.ndarray, torch.Tensor)):
        raise ValueError(
            f"audio items must be a path, file object, bytes, array, tensor or list of floats; got {type(item).__name__}"
        )
    wave = _load(item, target_rate, sampling_rate=rate)
    return wave.to(device or (item.device if isinstance(item, torch.Tensor) else "cpu"))


def _ready_batch(audio: np.ndarray | torch.Tensor, sampling_rate: int | None, target_rate: int,
                 device: torch.device | None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A ``(batch, samples)`` float array already at ``target_rate`` and finite, as the batch itself
    (one cast, no per-row copies); None when it needs the per-example path (or its error messages)."""
    if isinstance(audio, np.ndarray):
        if audio.dtype.kind != "f" or audio.dtype.itemsize < 4 or not audio.dtype.isnative or not audio.flags.writeable:
            return None
        audio = torch.from_numpy(audio)
    if audio.ndim != 2 or not audio.is_floating_point() or audio.numel() == 0:
        return None
    if sampling_rate is not None and sampling_rate != target_rate:
        return None
    batch = audio.to(device=device or audio.device, dtype=torch.float32)
    if not torch.isfinite(batch.sum()):  # one pass; only a sum that overflowed needs the exact check
        if not torch.isfinite(batch).all():
            return None
    return batch, torch.full((batch.shape[0],), batch.shape[1], device=batch.device)


def collate_audio(
    audio: Any,
    sampling_rate: int | None,
    target_rate: int,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Call input -> zero-padded ``(batch, samples)`` float32 at ``target_rate`` and ``lengths (batch,)``.

    ``audio`` is one example (a path/file/bytes, a 1-D waveform, a list of floats), a
    ``(batch, samples)`` array/tensor (rows are examples, as in transformers), or a list of examples.
    """
    if device is not None:
        device = torch.device(device)
    if isinstance(audio, (np.ndarray, torch.Tensor)):
        ready = _ready_batch(audio, sampling_rate, target_rate, device)
        if ready is not None:
            return ready
        if audio.ndim not in (1, 2):
            raise ValueError(
                f"audio must be (samples,) or (batch, samples); got shape {tuple(audio.shape)} "
                "(for multi-channel audio pass a list with one (channels, samples) array per example)"
            )
        items, listed = ([audio] if audio.ndim == 1 else list(audio)), audio.ndim == 2
    elif isinstance(audio, (list, tuple)):
        if len(audio) == 0:
            raise ValueError("audio is an empty list; expected at least one example")
        if all(isinstance(x, numbers.Real) for x in audio):
            items, listed = [np.asarray(audio, dtype=np.float32)], False
        else:
            items, listed = list(audio), True
    else:
        items, listed = [audio], False
    waves = []
    for i, item in enumerate(items):
        try:
            waves.append(_waveform(item, sampling_rate, target_rate, device))
        except (ValueError, FileNotFoundError) as err:
            if not listed:
                raise
            raise type(err)(f"audio[{i}]: {err}") from err
    lengths = torch.tensor([len(w) for w in waves], device=waves[0].device)
    return torch.nn.utils.rnn.pad_sequence(waves, batch_first=True), lengths


def read_preprocessor_config(folder: str | Path, expected_type: str) -> tuple[dict[str, Any], Path]:
    """The fields of ``folder/preprocessor_config.json`` (transformers 5: ``processor_config.json``'s
    "feature_extractor" part; or a file given directly) minus bookkeeping keys, and that file's path."""
    found = find_processor_fields(folder, "feature_extractor")
    if found is None:
        raise FileNotFoundError(f"no {CONFIG_NAME} in {folder}")
    config, path = found
    found_type = config.pop("feature_extractor_type", expected_type)
    if found_type != expected_type:
        raise ValueError(f"{path}: feature_extractor_type: expected {expected_type!r}, got {found_type!r}")
    config.pop("processor_class", None)
    return config, path


def write_preprocessor_config(folder: str | Path, config: dict[str, Any]) -> Path:
    """Write ``config`` as ``folder/preprocessor_config.json`` the way transformers does (sorted, indent 2)."""
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    path = path / CONFIG_NAME
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


class FeatureExtractorFiles:
    """``preprocessor_config.json`` I/O shared by the audio feature extractors.

    Subclasses name their transformers type and the attributes that are their settings.
    """

    feature_extractor_type: str = ""
    config_keys: tuple[str, ...] = ()
    #: field -> kind (see _config_files); checked on construction, so every source of values is
    schema: dict[str, str] = {}
    optional: tuple[str, ...] = ()  # schema fields that may be None

    def _check(self) -> None:
        required = tuple(k for k in self.schema if k not in self.optional)
        check_fields({k: getattr(self, k) for k in self.schema}, self.schema, type(self).__name__, required)

    def to_dict(self) -> dict[str, Any]:
        return {"feature_extractor_type": self.feature_extractor_type, **{k: getattr(self, k) for k in self.config_keys}}

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike):
        """Read ``folder/preprocessor_config.json`` (or that file's path)."""
        config, path = read_preprocessor_config(Path(folder), cls.feature_extractor_type)
        try:
            return cls(**config)
        except ValueError as err:  # name the file the bad value came from
            raise ValueError(f"{path}: {err}") from err

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``folder/preprocessor_config.json``; returns its path."""
        return write_preprocessor_config(folder, self.to_dict())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()})"

    # -- the one route from media to model inputs ---------------------------------------------------
    sampling_rate: int

    def __call__(self, raw_speech: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError

    def windows(self, wave: torch.Tensor, hop: int | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """A mono waveform at ``sampling_rate`` -> model inputs with one row per window, and each
        window's ``(start, end)`` in seconds ``(windows, 2)``. Here the whole clip is one window, cut or
        padded as the extractor does; an extractor whose model takes a fixed length windows long audio."""
        if hop is not None:
            raise ValueError(f"hop: {type(self).__name__} takes the whole clip as one window, got hop={hop}")
        inputs = self(wave, sampling_rate=self.sampling_rate)
        return inputs, torch.tensor([[0.0, wave.shape[-1] / self.sampling_rate]])

    def prepare(self, source: Any, *, allow_partial: bool = False,
                time_range: tuple[float, float | None] | None = None,
                hop: int | None = None) -> dict[str, torch.Tensor]:
        """A file (path, bytes, file object: decoded and resampled here) or a waveform already at
        ``sampling_rate`` -> the model inputs of its windows (see ``windows``) and ``window_start``
        (seconds into the file). ``allow_partial`` keeps the audio before the damage of a cut file."""
        offset = 0.0
        if _is_source(source):
            if time_range is not None:
                source, offset = ClipPath(source, *time_range), float(time_range[0] or 0.0)
            wave = _load(source, self.sampling_rate, allow_partial=allow_partial)
        else:
            if time_range is not None:
                raise ValueError(f"time_range: applies to media files, got {type(source).__name__}")
            wave = torch.as_tensor(source, dtype=torch.float32)
        inputs, spans = self.windows(wave, hop)
        return {**inputs, "window_start": spans[:, 0] + offset}
