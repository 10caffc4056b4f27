"""Preparation of one input into model views, by the media a family's processors take (picklable,
so it runs in DataLoader workers). :func:`make_views` picks one from the family declaration."""
from __future__ import annotations

import os
from typing import Any

import torch

from ..processors.sampling import ClipSampler
from ..processors.transforms import rescale_normalize, resize_shortest_edge, three_crop
from ..processors.video_io import read_clip
from .loading import processor

# Keys views add beside the model's inputs (not passed to the model).
META_KEYS = ("window_start",)


def _is_path(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike))


class VideoViews:
    """A video -> ``pixel_values (clips * crops, T, 3, H, W)``: multi-view testing when asked.

    ``num_clips`` clips spread over the video (multi_clip sampling) and ``num_crops`` 1 (centre)
    or 3 (start/centre/end of the long side after resizing the short side to the crop size).
    """

    def __init__(self, processor, num_clips: int = 1, num_crops: int = 1):
        if num_crops not in (1, 3):
            raise ValueError(f"num_crops: expected 1 or 3, got {num_crops}")
        if num_clips < 1:
            raise ValueError(f"num_clips: expected a positive number, got {num_clips}")
        self.processor, self.num_crops = processor, num_crops
        s = processor.sampler
        self.sampler = s if num_clips == 1 else ClipSampler("multi_clip", s.num_frames, s.step, num_clips)

    def frames(self, source: Any) -> torch.Tensor:
        """uint8 ``(clips, T, 3, H, W)``."""
        if _is_path(source):
            return read_clip(source, self.sampler, allow_partial=self.allow_partial).permute(0, 1, 4, 2, 3)
        return torch.stack(self.processor.to_clips(source))

    def __call__(self, source: Any) -> dict[str, torch.Tensor]:
        clips = self.frames(source)
        t = self.processor.transform
        if self.num_crops == 1:
            return {"pixel_values": t(clips)}
        crop = t.crop_size or clips.shape[-2:]
        x = three_crop(resize_shortest_edge(clips, min(crop), t.interpolation, t.antialias), crop)
        x = rescale_normalize(x.flatten(0, 1), t.rescale_factor, t.offset, t.mean, t.std)
        return {"pixel_values": x}


class SpectrogramWindows:
    """Audio -> ``input_values (windows, max_length, mel)`` and ``window_start`` seconds.

    Audio up to the model's length is one window, padded as the feature extractor pads; longer audio
    is cut into windows of ``max_length`` frames every ``hop`` frames, the last one flush with the end.
    """

    def __init__(self, extractor, hop: int | None = None):
        self.fe = extractor
        self.hop = extractor.max_length // 2 if hop is None else hop
        if self.hop < 1:
            raise ValueError(f"hop: expected a positive number of frames, got {self.hop}")

    def __call__(self, source: Any) -> dict[str, torch.Tensor]:
        from ..processors.audio_io import load_audio
        from ..processors.fbank import fbank, kaldi_framing, kaldi_num_frames

        fe, length = self.fe, self.fe.max_length
        wave = (load_audio(source, fe.sampling_rate, allow_partial=self.allow_partial) if _is_path(source)
                else torch.as_tensor(source, dtype=torch.float32))
        # frames counted first, so the features are computed once (by the extractor for one window)
        shift = kaldi_framing(fe.sampling_rate)[1]
        total = kaldi_num_frames(wave.shape[-1], fe.sampling_rate)
        if total <= length:
            return {"input_values": fe(wave, sampling_rate=fe.sampling_rate)["input_values"], "window_start": torch.zeros(1)}
        feats, _ = fbank(wave, sample_frequency=fe.sampling_rate, num_mel_bins=fe.num_mel_bins)
        frames = feats[0, :total]
        starts = list(range(0, total - length + 1, self.hop))
        if starts[-1] != total - length:
            starts.append(total - length)
        values = torch.stack([frames[s:s + length] for s in starts])
        if fe.do_normalize:
            values = (values - fe.mean) / (fe.std * 2)
        return {"input_values": values, "window_start": torch.tensor(starts, dtype=torch.float32) * shift / fe.sampling_rate}


class AudioVisualViews:
    """A video file -> its frames and its audio track (one view), for models that take both at once."""

    def __init__(self, video_processor, audio_extractor):
        self.video, self.audio = video_processor, audio_extractor

    def __call__(self, source: Any) -> dict[str, torch.Tensor]:
        from ..processors.audio_io import load_audio

        if not _is_path(source):
            raise ValueError("this model takes video files (frames and audio track of the same file), "
                             f"got {type(source).__name__}")
        pixels = self.video(source)
        audio = self.audio(load_audio(source, self.audio.sampling_rate, allow_partial=self.allow_partial),
                           sampling_rate=self.audio.sampling_rate)
        return {"pixel_values": pixels["pixel_values"], "pixel_mask": pixels["pixel_mask"],
                "audio_values": audio["audio_values"], "audio_mask": audio["audio_mask"]}


class ImageOrVideoFrames:
    """An image or a video -> ``pixel_values (frames, 3, H, W)`` for image towers."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, source: Any) -> dict[str, torch.Tensor]:
        from .inputs import media_kind

        if _is_path(source) and media_kind(source) == "image":
            clip = read_clip(source, ClipSampler("uniform", 1))[0]  # PyAV decodes stills too
            return {"pixel_values": self.processor(list(clip))["pixel_values"]}
        if _is_path(source):
            return {"pixel_values": self.processor(videos=source)["pixel_values"][0]}
        return {"pixel_values": self.processor(source)["pixel_values"]}


def make_views(loaded, *, num_clips: int = 1, num_crops: int = 1, hop: int | None = None, allow_partial: bool = False):
    views = _views(loaded, num_clips=num_clips, num_crops=num_crops, hop=hop)
    views.allow_partial = allow_partial  # damaged/cut files: decode what is there instead of failing
    return views


def _views(loaded, *, num_clips: int, num_crops: int, hop: int | None):
    """The preparation a model's processors imply: video alone -> clips (``num_clips`` x ``num_crops``
    views), audio alone -> spectrogram windows every ``hop`` frames, video and audio -> both tracks of
    a video file, images -> an image or a video's frames."""
    kinds = set(loaded.declaration.processors) - {"text"}
    if (num_clips, num_crops) != (1, 1) and kinds != {"video"}:
        raise ValueError(f"num_clips/num_crops: apply to video models; this model takes {' and '.join(sorted(kinds))}")
    if hop is not None and kinds != {"audio"}:
        raise ValueError(f"hop: applies to audio models; this model takes {' and '.join(sorted(kinds))}")
    if kinds == {"video"}:
        return VideoViews(processor(loaded, "video"), num_clips, num_crops)
    if kinds == {"audio"}:
        return SpectrogramWindows(processor(loaded, "audio"), hop)
    if kinds == {"video", "audio"}:
        return AudioVisualViews(processor(loaded, "video"), processor(loaded, "audio"))
    if kinds == {"image"}:
        return ImageOrVideoFrames(processor(loaded, "image"))
    raise ValueError(f"{loaded.family}: no view for processors {sorted(kinds)}")
