"""Long audio window by window: ``AudioWindows`` decodes any audio as it is needed, in memory bounded
by one window plus a decoded chunk, whatever the length of the file."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from .audio_decode import AudioDecodeError, AudioDecoder, AudioInfo
from .audio_io import AudioSource, resample, _array_audio, _check_rate, _converted, _FiniteCheck, _opened

__all__ = ["AudioWindows"]



class AudioWindows:
    """``(start_seconds, samples)`` windows of any audio at ``target_rate``, decoded as they are needed.

    Windows are ``window`` samples long and start every ``hop`` samples; when the hop grid misses the
    end, one last window ends flush with it (its start rounded down to a multiple of ``grid``, so an
    analysis frame grid, e.g. fbank's 10 ms hop, stays aligned). Audio shorter than a window is one
    shorter window. Memory stays at a window plus a decoded chunk, whatever the length of the file.

    Example::

        windows = AudioWindows("talk.m4a", 16000, window=160_000, hop=80_000)
        for start, wave in windows:          # wave: (160000,) float32, the last may be shorter
            ...
        windows.info.partial                 # after iterating: whether the stream stopped early

    A damaged stream raises when reached (before the window that would include the end) unless
    ``allow_partial``. Arguments as in ``load_audio``; ``target_rate`` is required.
    """

    def __init__(
        self,
        source: AudioSource,
        target_rate: int,
        *,
        window: int,
        hop: int,
        grid: int = 1,
        sampling_rate: int | None = None,
        channel_axis: int | None = None,
        allow_partial: bool = False,
        return_numpy: bool = False,
    ) -> None:
        _check_rate("target_rate", target_rate)
        for arg, value in (("window", window), ("hop", hop), ("grid", grid)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{arg}: expected a positive number of samples, got {value!r}")
        if isinstance(source, (np.ndarray, torch.Tensor)) and sampling_rate is None:
            raise ValueError("sampling_rate is required with array input: pass the rate of `source` in Hz")
        self.source, self.rate = source, int(target_rate)
        self.window, self.hop, self.grid = int(window), int(hop), int(grid)
        self.sampling_rate, self.channel_axis = sampling_rate, channel_axis
        self.allow_partial, self.return_numpy = allow_partial, return_numpy
        self.info: AudioInfo | None = None  # set once the stream has been read to its end

    def __iter__(self) -> Iterator[tuple[float, torch.Tensor | np.ndarray]]:
        if isinstance(self.source, (np.ndarray, torch.Tensor)):
            audio, info = _array_audio(self.source, self.sampling_rate, self.channel_axis)
            audio = resample(audio, info.sample_rate, self.rate)
            yield from self._windows(iter([audio]), lambda: info)
            return
        with _opened(self.source) as (fh, name):
            dec = AudioDecoder(fh, name)
            try:
                if self.sampling_rate is not None and self.sampling_rate != dec.rate:
                    raise ValueError(
                        f"sampling_rate={self.sampling_rate} was given, but audio file {name} is at {dec.rate} Hz"
                    )
                check = _FiniteCheck()

                def finish() -> AudioInfo:
                    dec.close()
                    info = dec.finish(self.allow_partial)
                    check.raise_if_bad(f"audio file {name}")
                    return info

                yield from self._windows(_converted(dec, self.rate, True, check), finish)
            finally:
                dec.close()

    def _windows(self, chunks: Iterator[np.ndarray], finish) -> Iterator[tuple[float, torch.Tensor | np.ndarray]]:
        w, hop, grid = self.window, self.hop, self.grid
        buf = np.empty(2 * (w + grid), np.float32)
        base = 0  # absolute index of buf[0]
        n = 0  # samples received so far (absolute end of buf's content)
        start, last = 0, -1  # next window start; start of the last window given
        for x in chunks:
            if n - base + len(x) > len(buf):
                # Drop what no window can still need: before the next start and before the earliest
                # possible final window (ends flush with an end >= n).
                keep = max(base, min(start, n - w - grid))
                kept = n - keep
                if kept + len(x) > len(buf):
                    buf2 = np.empty(2 * (kept + len(x)), np.float32)
                    buf2[:kept] = buf[keep - base : n - base]
                    buf = buf2
                else:
                    buf[:kept] = buf[keep - base : n - base]
                base = keep
            buf[n - base : n - base + len(x)] = x
            n += len(x)
            while start + w <= n:
                yield self._emit(start, buf[start - base : start - base + w])
                last, start = start, start + hop
        self.info = finish()
        if n == 0:
            raise AudioDecodeError(f"audio file {self.info.source}: no samples at {self.rate} Hz")
        final = 0 if n < w else (n - w) // grid * grid
        if final > last:
            yield self._emit(final, buf[final - base : min(final + w, n) - base])

    def _emit(self, start: int, samples: np.ndarray) -> tuple[float, torch.Tensor | np.ndarray]:
        x = samples.copy()
        return start / self.rate, (x if self.return_numpy else torch.from_numpy(x))
