"""Timelines: long media (and live streams, see ``tasks.stream``) as windows classified one after another and
merged into labelled segments ``{"label", "start", "end", "score"}``.

Audio models: the model's window every ``hop`` frames (half a window by default), exactly today's views of a
file. Video models: a clip every ``stride`` seconds. Windows are decoded as they are needed
(``processors.media_windows``), so memory does not grow with the file.
"""
from __future__ import annotations

from functools import partial

import math
import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

from ..processors.video.pyav.windows import Window, audio_file_windows, video_file_windows
from .pipeline_base import Pipeline


def _seconds(name: str, value: Any, *, positive: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        raise ValueError(f"{name}: expected {'a positive' if positive else 'a non-negative'} number of seconds, "
                         f"got {value!r}")
    return float(value)


class SegmentMerger:
    """Window scores -> labelled segments, incrementally (a live stream's segments close as it runs).

    Each window votes for its top ``labels_per_window`` labels, keeping those scoring at least ``threshold``
    (None: no floor). A label's votes form one segment while each window starts within ``merge_gap``
    seconds of the segment's end; a segment runs from its first window's start to its last window's end
    and scores the mean of the label's scores in those windows. Segments shorter than ``min_duration`` are
    dropped. Windows must come in order of start.
    """

    def __init__(self, id2label: dict[int, str], *, labels_per_window: int = 1, threshold: float | None = None,
                 min_duration: float = 0.0, merge_gap: float = 0.0) -> None:
        if not isinstance(labels_per_window, int) or labels_per_window < 1:
            raise ValueError(f"labels_per_window: expected a positive number, got {labels_per_window!r}")
        self.id2label, self.k, self.threshold = id2label, labels_per_window, threshold
        self.min_duration = _seconds("min_duration", min_duration)
        self.merge_gap = _seconds("merge_gap", merge_gap)
        self.open: dict[int, list[float]] = {}  # label id -> [start, end, score sum, windows]
        self.last_start = -math.inf

    def push(self, start: float, end: float, scores: torch.Tensor) -> list[dict[str, Any]]:
        """Add one window's ``(labels,)`` scores; returns the segments that can no longer grow."""
        if start < self.last_start:
            raise ValueError(f"windows: expected them in order of start, got {start}s after {self.last_start}s")
        self.last_start = start
        closed = [i for i, seg in self.open.items() if start > seg[1] + self.merge_gap]
        done = [self._close(i) for i in closed]
        values, ids = scores.float().topk(min(self.k, scores.numel()))
        for v, i in zip(values.tolist(), ids.tolist()):
            if self.threshold is not None and v < self.threshold:
                continue
            seg = self.open.get(i)
            if seg is None:
                self.open[i] = [start, end, v, 1]
            else:
                seg[1], seg[2], seg[3] = max(seg[1], end), seg[2] + v, seg[3] + 1
        return _ordered(done)

    def flush(self) -> list[dict[str, Any]]:
        """The segments still open (the end of the media)."""
        return _ordered([self._close(i) for i in list(self.open)])

    def _close(self, i: int) -> dict[str, Any] | None:
        start, end, total, n = self.open.pop(i)
        if end - start < self.min_duration:
            return None
        return {"label": self.id2label.get(i, str(i)), "start": round(start, 3), "end": round(end, 3),
                "score": round(total / n, 6)}


def _ordered(segments: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    return sorted((s for s in segments if s is not None), key=lambda s: (s["start"], s["label"]))


class Timeline:
    """``pipeline(task, model, timeline=True)``: one record per file, ``{"input", "segments", "windows"}``,
    over a classification pipeline (its model, views, labels, ``top_k`` and activation).

    ``stride`` (video): seconds between clips; ``frame_step`` (video): frames between a clip's frames (default:
    clips span the stride). ``labels_per_window``, ``threshold``, ``min_duration`` and ``merge_gap``: see
    :class:`SegmentMerger`. ``iter_records`` streams the same as window and segment records (what
    ``mediaformers classify --timeline`` writes); ``tasks.stream`` runs it on live input.
    """

    OPTIONS = ("stride", "frame_step", "labels_per_window", "threshold", "min_duration", "merge_gap")

    def __init__(self, classification: Pipeline, *, stride: float = 2.0, frame_step: int | None = None,
                 labels_per_window: int = 1, threshold: float | None = None, min_duration: float = 0.0,
                 merge_gap: float = 0.0) -> None:
        if not hasattr(classification, "labels"):
            raise ValueError(f"timeline: applies to classification; got the {classification.task!r} task")
        self.inner = classification
        self.views, self.id2label = classification.views, classification.id2label  # type: ignore[attr-defined]
        self.accept = classification.accept
        self.batch_size = classification.batch_size
        loaded = classification.loaded
        self.kind = "".join(sorted(set(loaded.declaration.processors) - {"text"}))
        if self.kind not in ("audio", "video"):
            raise ValueError(f"timeline: takes audio or video classification models; {loaded.family} takes "
                             f"{self.kind or 'no media'}")
        self.stride = _seconds("stride", stride, positive=True)
        if frame_step is not None and (not isinstance(frame_step, int) or frame_step < 1):
            raise ValueError(f"frame_step: expected a positive number of frames, got {frame_step!r}")
        self.frame_step = frame_step
        self.merge_options: dict[str, Any] = dict(labels_per_window=labels_per_window, threshold=threshold,
                                  min_duration=min_duration, merge_gap=merge_gap)
        SegmentMerger(self.id2label, **self.merge_options)  # checks the options now, not at the first segment

    def labels(self, scores: torch.Tensor) -> list[dict[str, Any]]:
        return self.inner.labels(scores)

    # -- windows -------------------------------------------------------------------------------
    def audio_geometry(self) -> dict[str, int]:
        """Samples per window, per hop and per analysis frame (windows stay on the fbank frame grid)."""
        from ..processors.audio.fbank import kaldi_framing

        fe = self.views.fe
        length, shift, _ = kaldi_framing(fe.sampling_rate)
        hop = self._view_option("hop") or fe.max_length // 2  # the extractor's own default (extractor.windows)
        return {"window": (fe.max_length - 1) * shift + length, "hop": hop * shift, "grid": shift}

    def _view_option(self, name: str) -> Any:
        """An option the views were made with (audio views are ``partial(extractor.prepare, ...)``)."""
        views = self.views
        return views.keywords.get(name) if isinstance(views, partial) else getattr(views, name, None)

    def file_windows(self, source: str | os.PathLike) -> Iterator[Window]:
        allow_partial = bool(self._view_option("allow_partial"))
        if self.kind == "audio":
            return audio_file_windows(source, self.views.fe.sampling_rate, allow_partial=allow_partial,
                                      **self.audio_geometry())
        return video_file_windows(source, num_frames=self.views.processor.sampler.num_frames, step=self.frame_step,
                                  stride=self.stride, allow_partial=allow_partial)

    def window_inputs(self, window: Window) -> dict[str, torch.Tensor]:
        """One window as the model's inputs, with a batch dim of 1."""
        if self.kind == "audio":
            fe = self.views.fe
            return {"input_values": fe(torch.from_numpy(window.data), sampling_rate=fe.sampling_rate)["input_values"]}
        clip = torch.from_numpy(window.data).permute(0, 3, 1, 2)[None]  # (1, T, 3, H, W)
        return {"pixel_values": self.views.processor.transform(clip)}

    # -- scoring -------------------------------------------------------------------------------
    def scored(self, windows: Iterable[Window], batch_size: int | None = None) -> Iterator[tuple[Window, torch.Tensor]]:
        """``(window, scores (labels,))`` in order, ``batch_size`` windows per model call."""
        size = batch_size or self.batch_size
        batch: list[Window] = []
        inputs: list[dict[str, torch.Tensor]] = []

        def run() -> Iterator[tuple[Window, torch.Tensor]]:
            joined = {k: torch.cat([x[k] for x in inputs]) for k in inputs[0]}
            yield from zip(batch, self.inner.forward_batch(joined).cpu())

        for window in windows:
            batch.append(window)
            inputs.append(self.window_inputs(window))
            if len(batch) == size:
                yield from run()
                batch, inputs = [], []
        if batch:
            yield from run()

    def window_record(self, key: str, window: Window, scores: torch.Tensor) -> dict[str, Any]:
        return {"input": key, "kind": "window", "start": round(window.start, 3), "end": round(window.end, 3),
                "labels": self.labels(scores)}

    def merged(self, key: str, scored: Iterable[tuple[Window, torch.Tensor]], *, extra=None,
               collect: list | None = None) -> Iterator[dict[str, Any]]:
        """Window records and, as they close, segment records (``kind`` says which). ``extra(window)`` adds
        fields to a window's record; ``collect`` gathers ``(start, end, scores)`` for a picture."""
        merger = SegmentMerger(self.id2label, **self.merge_options)
        try:
            for window, scores in scored:
                if collect is not None:
                    collect.append((window.start, window.end, scores.numpy().astype(np.float16)))
                yield {**self.window_record(key, window, scores), **(extra(window) if extra else {})}
                for seg in merger.push(window.start, window.end, scores):
                    yield {"input": key, "kind": "segment", **seg}
        except KeyboardInterrupt:  # Ctrl-C on a stream: the segments so far still close, then it stops
            for seg in merger.flush():
                yield {"input": key, "kind": "segment", **seg}
            raise
        for seg in merger.flush():
            yield {"input": key, "kind": "segment", **seg}

    def iter_records(self, source: str | os.PathLike, collect: list | None = None) -> Iterator[dict[str, Any]]:
        """The records of one file, window by window (memory does not grow with the file)."""
        key = os.fspath(source)
        yield from self.merged(key, self.scored(self.file_windows(source)), collect=collect)

    def iter(self, inputs: Any, **_: Any) -> Iterator[dict[str, Any]]:
        from .inputs import expand_inputs

        for item in expand_inputs(inputs, self.accept):
            segments: list[dict[str, Any]] = []
            windows: list[dict[str, Any]] = []
            try:
                for rec in self.iter_records(item.key):
                    rec.pop("input")
                    (segments if rec.pop("kind") == "segment" else windows).append(rec)
            except (ValueError, OSError) as err:
                yield {"input": item.key, "error": str(err)}
                continue
            yield {"input": item.key, "segments": sorted(segments, key=lambda s: (s["start"], s["label"])),
                   "windows": windows}

    def __call__(self, inputs: Any) -> Any:
        """One input: its record (raising on failure); a list: a record per input (``error`` on failure)."""
        records = list(self.iter(inputs))
        if not isinstance(inputs, (list, tuple)) and len(records) == 1:
            if "error" in records[0]:
                raise ValueError(records[0]["error"])
            return records[0]
        return records
