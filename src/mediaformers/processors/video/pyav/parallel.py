"""Parallel decode for the PyAV backend: seek-heavy requests split over readers of the same file in
threads (FFmpeg decodes without the GIL)."""

from __future__ import annotations

import bisect
import os

import numpy as np
import torch

from .state import ReaderState

# Seek-heavy exact requests are split over up to this many readers of the file in threads, each decoder
# single-threaded (FFmpeg decodes without the GIL), never more than torch's thread count (which follows
# the CPU affinity, and is 1 in DataLoader workers).
_MAX_PARALLEL_READERS = 4


class ParallelDecode(ReaderState):
    """A mixin of ``VideoReader``: cut a request into runs of keyframe intervals, one reader per run."""

    def _decode_sorted(self, targets: list[float], allow_partial: bool) -> list[np.ndarray]:
        """One RGB array per target (sorted, unique, relative seconds).

        Seek-heavy requests are cut into runs of whole keyframe intervals, each decoded by its own reader
        in a thread (``_parallel_chunks``): independent single-threaded decodes scale with the cores,
        where FFmpeg's frame threads refill their pipeline at every seek.
        """
        if self._threads and not self._dense(targets):
            chunks = self._parallel_chunks(targets)
            if len(chunks) > 1:
                return self._decode_parallel(chunks, allow_partial)
        return self._decode_run(targets, allow_partial)

    def _parallel_chunks(self, targets: list[float]) -> list[list[float]]:
        """``targets`` cut into contiguous runs of whole keyframe intervals, one per reader, balanced by the
        time each must decode (from its keyframe to its target); one run when splitting cannot help."""
        keyframes = self._keyframe_times()
        workers = min(_MAX_PARALLEL_READERS, torch.get_num_threads(), len(targets))
        if (workers < 2 or keyframes is None or not isinstance(self._source, (str, os.PathLike))
                or not self._can_seek()):
            return [targets]
        gop = [bisect.bisect_right(keyframes, t + 1e-6) - 1 for t in targets]
        work = [t - keyframes[max(g, 0)] + 0.1 for t, g in zip(targets, gop)]
        share, total, start = sum(work) / workers, 0.0, 0
        chunks: list[list[float]] = []
        for i in range(1, len(targets)):
            total += work[i - 1]
            if gop[i] != gop[i - 1] and total >= share * (len(chunks) + 1) and len(chunks) < workers - 1:
                chunks.append(targets[start:i])
                start = i
        return chunks + [targets[start:]]

    def _decode_parallel(self, chunks: list[list[float]], allow_partial: bool) -> list[np.ndarray]:
        """Each chunk by its own single-threaded reader of the same file, in threads (this reader takes
        the first); the same frames as one reader, since each reader's frames are exact."""
        from concurrent.futures import ThreadPoolExecutor

        twins = [self._twin() for _ in chunks[1:]]
        try:
            with ThreadPoolExecutor(len(twins)) as pool:
                rest = [pool.submit(twin._decode_run, chunk, allow_partial) for twin, chunk in zip(twins, chunks[1:])]
                threads, self._threads = self._threads, False  # a single-threaded decoder (PyAV's default)
                try:
                    self._reopen()
                    first = self._decode_run(chunks[0], allow_partial)
                finally:
                    self._threads = threads
                parts = [first] + [f.result() for f in rest]
        finally:
            for twin in twins:
                self.frames_decoded += twin.frames_decoded
                self._skip_nonref = self._skip_nonref and twin._skip_nonref
                twin.close()
        return [frame for part in parts for frame in part]

    def _twin(self) -> ParallelDecode:
        """Another single-threaded reader of this file, sharing the metadata and keyframe index (no probe)."""
        twin = object.__new__(type(self))
        twin.__dict__.update({k: v for k, v in self.__dict__.items() if not k.startswith("_container")})
        twin._container, twin._threads, twin._error = None, False, None
        twin._skip_targets, twin._nonref_fed, twin.frames_decoded = None, [], 0
        twin._reopen()
        return twin

